// The executor's CUDA kernels (label "gpu"; skipped without a GPU or a build without them)
// against the ATen path they replace: RoPE with the cache writes and silu * up give the same bits;
// the decode attention equals scaled_dot_product_attention over the filled rows (computed in
// float64) and never reads a row past the filled part (those rows hold NaN here). The engine's
// CUDA-graph decode gives the eager decode's logits, and the eager run's tokens when requests
// leave the batch through graphs captured at start-up.
#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <ATen/cuda/CUDAContext.h>

#include <cmath>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>

#include "executor/runtime/engine.h"
#include "executor/runtime/rank_weights.h"
#include "executor/runtime/request_file.h"
#include "executor/runtime/sampling.h"
#include "executor/runtime/workload.h"
#include "executor/weights/safetensors.h"
#include "models/layers/attention.h"
#include "models/layers/fused.h"
#include "models/layers/rope.h"
#include "tests/executor/runtime_test_util.h"

namespace shardplan {
namespace {

const at::Device kCuda(at::kCUDA, 0);

class FusedKernelsTest : public ::testing::TestWithParam<at::ScalarType> {
 protected:
  void SetUp() override {
    if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA";
    if (!fused_kernels_for(at::zeros({1}, at::TensorOptions().device(kCuda)))) GTEST_SKIP() << "built without kernels";
    at::manual_seed(7);
  }
  at::TensorOptions options() const { return at::TensorOptions().dtype(GetParam()).device(kCuda); }
};

// The ATen path of llama_attention_forward for the same inputs.
void aten_rope_and_cache(const at::Tensor& qkv, int64_t qh, int64_t kvh, int64_t d, const at::Tensor& cos,
                         const at::Tensor& sin, const at::Tensor& positions, at::Tensor& q, at::Tensor& k_cache,
                         at::Tensor& v_cache) {
  const at::Tensor c = cos.index_select(0, positions), s = sin.index_select(0, positions);
  const at::Tensor qk = apply_rope(heads_first(qkv.narrow(-1, 0, (qh + kvh) * d), d), c, s);
  q = qk.narrow(1, 0, qh).contiguous();
  k_cache.index_copy_(2, positions, qk.narrow(1, qh, kvh));
  v_cache.index_copy_(2, positions, heads_first(qkv.narrow(-1, (qh + kvh) * d, kvh * d), d));
}

TEST_P(FusedKernelsTest, RopeAndCacheGiveTheAtenBits) {
  const int64_t b = 3, qh = 8, kvh = 2, d = 64, cap = 40;
  RopeParameters rope;
  RopeTable table = rope_table(rope, d, cap, kCuda);
  table.cos = table.cos.to(GetParam());
  table.sin = table.sin.to(GetParam());
  for (const auto& [first, tokens] : std::vector<std::pair<int64_t, int64_t>>{{0, 17}, {23, 1}}) {
    const at::Tensor qkv = at::randn({b, tokens, (qh + 2 * kvh) * d}, options());
    const at::Tensor positions = at::arange(first, first + tokens, at::TensorOptions().dtype(at::kLong).device(kCuda));
    at::Tensor k1 = at::randn({b, kvh, cap, d}, options()), v1 = at::randn({b, kvh, cap, d}, options());
    at::Tensor k2 = k1.clone(), v2 = v1.clone(), q2;
    const at::Tensor q1 = fused_rope_and_cache(qkv, qh, kvh, table.cos, table.sin, positions, k1, v1);
    aten_rope_and_cache(qkv, qh, kvh, d, table.cos, table.sin, positions, q2, k2, v2);
    EXPECT_TRUE(at::equal(q1, q2)) << "q, first " << first;
    EXPECT_TRUE(at::equal(k1, k2)) << "k cache, first " << first;
    EXPECT_TRUE(at::equal(v1, v2)) << "v cache, first " << first;
  }
}

TEST_P(FusedKernelsTest, SiluMulGivesTheAtenBits) {
  const at::Tensor x = at::randn({5, 1, 2 * 300}, options()) * 4;
  const at::Tensor aten = at::silu(x.narrow(-1, 0, 300)) * x.narrow(-1, 300, 300);
  const at::Tensor fused = fused_silu_mul(x);
  EXPECT_EQ(fused.sizes(), aten.sizes());
  EXPECT_LE((fused.to(at::kDouble) - aten.to(at::kDouble)).abs().max().item<double>(), 0.0);
}

// float16 and bfloat16 run the tensor-core kernels wherever the GPU has them (the build's
// architectures include 8.0 or later): otherwise the tests below would check the CUDA-core
// fallbacks only, and the decode step would run them.
TEST_P(FusedKernelsTest, SixteenBitTypesRunOnTensorCoresFromComputeCapability8) {
  const int major = at::cuda::getCurrentDeviceProperties()->major;
  EXPECT_EQ(fused_kernels_use_tensor_cores(at::zeros({1}, options())), GetParam() != at::kFloat && major >= 8)
      << "compute capability " << major;
}

// The decode GEMV against a float64 product: within the output's rounding (two units of its
// last place, as ATen's cuBLAS path is), for 1 to 8 rows, with and without a bias, written fresh
// or added into a residual; odd feature counts and inner sizes of 8 to 14336. float32 stays on
// cuBLAS (fused_linear_supports says no).
TEST_P(FusedKernelsTest, LinearOfFewRowsIsWithinRoundingOfTheExactProduct) {
  if (GetParam() == at::kFloat) {
    EXPECT_FALSE(fused_linear_supports(at::zeros({1, 64}, options()), at::zeros({8, 64}, options())));
    return;
  }
  const double ulp = GetParam() == at::kBFloat16 ? 1.0 / 128 : 1.0 / 1024;
  for (const auto& [rows, n, k] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{
           {1, 4096, 4096}, {1, 37, 8}, {2, 1001, 14336}, {3, 6144, 4096}, {4, 513, 2056},
           // 5 to 8 rows (3 and 4 too): tensor cores; k of a partial last span (136, 2056) and of one
           // lane's piece (8)
           {5, 1001, 14336}, {6, 37, 8}, {7, 513, 2056}, {8, 4096, 4096}, {8, 6144, 136}}) {
    const at::Tensor x = at::randn({rows, 1, k}, options());
    if (rows > 4 && !fused_kernels_use_tensor_cores(x)) continue;  // CUDA cores: 1 to 4 rows (see below)
    const at::Tensor w = at::randn({n, k}, options()) / std::sqrt(static_cast<double>(k));
    const at::Tensor bias = at::randn({n}, options());
    const at::Tensor residual = at::randn({rows, 1, n}, options());
    ASSERT_TRUE(fused_linear_supports(x, w)) << rows << "x" << n << "x" << k;
    const at::Tensor exact = at::matmul(x.to(at::kDouble), w.to(at::kDouble).t());
    const auto check = [&](const at::Tensor& got, const at::Tensor& want, const char* what) {
      ASSERT_EQ(got.sizes(), want.sizes()) << what;
      const at::Tensor error = (got.to(at::kDouble) - want).abs();
      const at::Tensor allowed = want.abs() * 2 * ulp + 1e-3;
      EXPECT_TRUE((error <= allowed).all().item<bool>())
          << what << " " << rows << "x" << n << "x" << k << ": worst error " << error.max().item<double>();
    };
    check(fused_linear(x, w, at::Tensor()), exact, "plain");
    check(fused_linear(x, w, bias), exact + bias.to(at::kDouble), "with a bias");
    at::Tensor into = residual.clone();
    const at::Tensor returned = fused_linear(x, w, bias, into);
    EXPECT_EQ(returned.data_ptr(), into.data_ptr());
    check(into, exact + bias.to(at::kDouble) + residual.to(at::kDouble), "added into a residual");
  }
  EXPECT_FALSE(fused_linear_supports(at::zeros({9, 64}, options()), at::zeros({8, 64}, options())));  // 9 rows
  EXPECT_FALSE(fused_linear_supports(at::zeros({1, 60}, options()), at::zeros({8, 60}, options())));  // k % 8
}

// softmax(q k^T * scale) v over keys [start, end) of each request, in float64 on the CPU.
at::Tensor reference_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                               const std::vector<int64_t>& ends, int64_t window, const std::vector<int64_t>& head_map,
                               const std::vector<int64_t>& firsts = {}) {
  const int64_t b = q.size(0), qh = q.size(1), d = q.size(3);
  at::Tensor out = at::zeros({b, qh, 1, d}, at::kDouble);
  const at::Tensor q64 = q.to(at::kCPU, at::kDouble), k64 = k.to(at::kCPU, at::kDouble), v64 = v.to(at::kCPU, at::kDouble);
  for (int64_t r = 0; r < b; ++r) {
    const int64_t end = ends.size() == 1 ? ends[0] : ends[r];
    int64_t start = window > 0 ? std::max<int64_t>(0, end - window) : 0;
    if (!firsts.empty()) start = std::max(start, firsts[r]);
    for (int64_t h = 0; h < qh; ++h) {
      const at::Tensor keys = k64[r][head_map[h]].narrow(0, start, end - start);
      const at::Tensor values = v64[r][head_map[h]].narrow(0, start, end - start);
      const at::Tensor p = at::softmax(at::matmul(keys, q64[r][h][0]) / std::sqrt(double(d)), 0);
      out[r][h][0] = at::matmul(p, values);
    }
  }
  return out;
}

void expect_close(const at::Tensor& got, const at::Tensor& want, at::ScalarType dtype, const std::string& what) {
  const double tol = dtype == at::kFloat ? 1e-5 : dtype == at::kHalf ? 2e-3 : 1.6e-2;
  const at::Tensor g = got.to(at::kCPU, at::kDouble);
  EXPECT_TRUE(at::isfinite(g).all().item<bool>()) << what << ": read a row past the filled part";
  const double err = (g - want).abs().max().item<double>();
  EXPECT_LE(err, tol * (1 + want.abs().max().item<double>())) << what;
}

TEST_P(FusedKernelsTest, DecodeAttentionReadsOnlyTheFilledRows) {
  const int64_t b = 3, d = 128, cap = 700;
  for (const auto& [qh, kvh, grouped] :
       std::vector<std::tuple<int64_t, int64_t, bool>>{{32, 8, true}, {8, 8, true}, {4, 4, false}, {16, 2, true}}) {
    for (const int64_t window : {int64_t{0}, int64_t{100}}) {
      for (const std::vector<int64_t>& ends : std::vector<std::vector<int64_t>>{{1}, {333}, {700}, {5, 650, 129}}) {
        const at::Tensor q = at::randn({b, qh, 1, d}, options());
        at::Tensor k = at::randn({b, kvh, cap, d}, options()), v = at::randn({b, kvh, cap, d}, options());
        const int64_t max_end = *std::max_element(ends.begin(), ends.end());
        for (int64_t r = 0; r < b; ++r) {
          const int64_t end = ends.size() == 1 ? ends[0] : ends[r];
          if (end < cap) {
            k[r].narrow(1, end, cap - end).fill_(NAN);
            v[r].narrow(1, end, cap - end).fill_(NAN);
          }
        }
        std::vector<int64_t> map(qh);
        for (int64_t h = 0; h < qh; ++h) map[h] = grouped ? h / (qh / kvh) : (h * 3 + 1) % kvh;
        std::vector<int64_t> last;
        for (int64_t e : ends) last.push_back(e - 1);
        const at::Tensor last_position = at::tensor(last, at::kLong).to(kCuda);
        const at::Tensor head_map = grouped ? at::Tensor() : at::tensor(map, at::kLong).to(kCuda);
        const at::Tensor got = fused_decode_attention(q, k, v, last_position, window, head_map, 1 / std::sqrt(double(d)));
        const std::string what = std::to_string(qh) + "/" + std::to_string(kvh) + " heads, window " +
                                 std::to_string(window) + ", last end " + std::to_string(max_end);
        expect_close(got, reference_attention(q, k, v, ends, window, map), GetParam(), what);
      }
    }
  }
}

// A ragged batch: each request reads from its first row on (its left padding, NaN here, skipped).
TEST_P(FusedKernelsTest, DecodeAttentionSkipsEachRequestsPadding) {
  const int64_t b = 3, d = 128, cap = 700, qh = 32, kvh = 8;
  const std::vector<int64_t> ends{650, 650, 650}, firsts{0, 17, 600};
  const at::Tensor q = at::randn({b, qh, 1, d}, options());
  at::Tensor k = at::randn({b, kvh, cap, d}, options()), v = at::randn({b, kvh, cap, d}, options());
  for (int64_t r = 0; r < b; ++r) {
    k[r].narrow(1, ends[r], cap - ends[r]).fill_(NAN);
    v[r].narrow(1, ends[r], cap - ends[r]).fill_(NAN);
    if (firsts[r] > 0) {
      k[r].narrow(1, 0, firsts[r]).fill_(NAN);
      v[r].narrow(1, 0, firsts[r]).fill_(NAN);
    }
  }
  std::vector<int64_t> map(qh);
  for (int64_t h = 0; h < qh; ++h) map[h] = h / (qh / kvh);
  const at::Tensor last_position = at::full({b}, ends[0] - 1, at::TensorOptions().dtype(at::kLong).device(kCuda));
  const at::Tensor first_row = at::tensor(firsts, at::kLong).to(kCuda);
  const at::Tensor got = fused_decode_attention(q, k, v, last_position, 0, at::Tensor(), 1 / std::sqrt(double(d)), 0,
                                                first_row);
  expect_close(got, reference_attention(q, k, v, ends, 0, map, firsts), GetParam(), "first rows 0, 17, 600");
}

// Any count of key chunks gives the same result (one chunk writes the output itself, more go
// through the combine step; on tensor cores the chunks follow the filled rows, so some are empty
// here), for each head size, and over a long cache (many tiles a warp, the copy pipeline wrapping);
// with a window and first rows as well.
TEST_P(FusedKernelsTest, DecodeAttentionAnyChunkCountAndHeadSize) {
  for (const auto& [d, cap, ends] : std::vector<std::tuple<int64_t, int64_t, std::vector<int64_t>>>{
           {64, 700, {5, 650, 129}}, {128, 700, {5, 650, 129}}, {256, 700, {5, 650, 129}}, {128, 4160, {4128, 17, 3001}}}) {
    const int64_t b = 3, qh = 16, kvh = 4;
    const at::Tensor q = at::randn({b, qh, 1, d}, options());
    at::Tensor k = at::randn({b, kvh, cap, d}, options()), v = at::randn({b, kvh, cap, d}, options());
    std::vector<int64_t> map(qh), last;
    for (int64_t h = 0; h < qh; ++h) map[h] = h / (qh / kvh);
    for (int64_t r = 0; r < b; ++r) {
      k[r].narrow(1, ends[r], cap - ends[r]).fill_(NAN);
      v[r].narrow(1, ends[r], cap - ends[r]).fill_(NAN);
      last.push_back(ends[r] - 1);
    }
    const at::Tensor last_position = at::tensor(last, at::kLong).to(kCuda);
    const at::Tensor want = reference_attention(q, k, v, ends, 0, map);
    for (const int64_t splits : {int64_t{1}, int64_t{2}, int64_t{7}, int64_t{40}, int64_t{0}}) {
      const at::Tensor got = fused_decode_attention(q, k, v, last_position, 0, at::Tensor(), 1 / std::sqrt(double(d)), splits);
      expect_close(got, want, GetParam(),
                   "head dim " + std::to_string(d) + ", capacity " + std::to_string(cap) + ", " +
                       (splits > 0 ? std::to_string(splits) + " chunks" : "chunks by the kernel"));
    }
    // A window of 100 and each request's first row (its left padding NaN) at every head size too.
    const std::vector<int64_t> firsts{0, 3, 40};
    at::Tensor kp = k.clone(), vp = v.clone();
    for (int64_t r = 0; r < b; ++r) {
      if (firsts[r] == 0) continue;
      kp[r].narrow(1, 0, firsts[r]).fill_(NAN);
      vp[r].narrow(1, 0, firsts[r]).fill_(NAN);
    }
    const at::Tensor first_row = at::tensor(firsts, at::kLong).to(kCuda);
    const at::Tensor windowed = reference_attention(q, kp, vp, ends, 100, map, firsts);
    for (const int64_t splits : {int64_t{7}, int64_t{0}}) {
      const at::Tensor got =
          fused_decode_attention(q, kp, vp, last_position, 100, at::Tensor(), 1 / std::sqrt(double(d)), splits, first_row);
      expect_close(got, windowed, GetParam(),
                   "window 100 and first rows, head dim " + std::to_string(d) + ", capacity " + std::to_string(cap) +
                       ", " + std::to_string(splits) + " chunks");
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, FusedKernelsTest, ::testing::Values(at::kFloat, at::kHalf, at::kBFloat16));

// The decode step replayed from its CUDA graph gives the logits of the same step run eagerly.
TEST(CudaGraphDecode, MatchesEagerDecode) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA";
  testing::SpecText s;
  s.mesh = "one: 1";
  s.modules.clear();
  s.dtype = "bfloat16";
  s.batch = 3;
  s.prompt_tokens = 9;
  s.new_tokens = 6;
  const std::unique_ptr<Plan> plan = testing::load_plan(testing::write_spec("gpu_graph_vs_eager", s));
  const Checkpoint ckpt = Checkpoint::open(*plan->spec().checkpoint_path);
  const EngineInputs inputs = make_engine_inputs(*plan, 5);
  Generation runs[2];
  for (int graphs = 0; graphs < 2; ++graphs) {
    EngineOptions o{kCuda, at::kBFloat16, /*keep_logits=*/true};
    o.cuda_graphs = graphs == 1;
    Engine engine(*plan, 0, nullptr, load_rank_shards(*plan, 0, ckpt, at::kBFloat16, kCuda), o);
    runs[graphs] = engine.generate(inputs);
    EXPECT_EQ(engine.uses_cuda_graphs(), graphs == 1);
  }
  EXPECT_GT(runs[1].graph_capture_s, 0);
  EXPECT_TRUE(at::equal(runs[0].tokens, runs[1].tokens));
  EXPECT_TRUE(at::equal(runs[0].logits, runs[1].logits));
}

// Requests end after `max_tokens` each and leave the batch; the run with CUDA graphs and the run
// without (eager) must give the same tokens (0 after a request's end), run the decode steps at the
// given batch sizes, and the graph run must capture nothing during the run (every graph size it
// steps down to was captured at start-up by capture_leaving_batches). float32: the eager run
// computes fewer rows than a graph pads to.
void expect_leaving_requests(const std::string& name, const std::vector<int64_t>& max_tokens,
                             const std::vector<int64_t>& eager_rows, const std::vector<int64_t>& graph_rows) {
  testing::SpecText s;
  s.mesh = "one: 1";
  s.modules.clear();
  s.batch = static_cast<int64_t>(max_tokens.size());
  s.prompt_tokens = 9;
  s.new_tokens = 8;
  const std::unique_ptr<Plan> plan = testing::load_plan(testing::write_spec(name, s));
  const Checkpoint ckpt = Checkpoint::open(*plan->spec().checkpoint_path);
  const EngineInputs inputs = make_engine_inputs(*plan, 5);
  std::vector<RequestEnd> ends(max_tokens.size());
  for (size_t i = 0; i < ends.size(); ++i) ends[i].max_tokens = max_tokens[i];
  Generation runs[2];
  double start_up_capture_s = 0;
  for (int graphs = 0; graphs < 2; ++graphs) {
    EngineOptions o{kCuda, at::kFloat};
    o.cuda_graphs = graphs == 1;
    Engine engine(*plan, 0, nullptr, load_rank_shards(*plan, 0, ckpt, at::kFloat, kCuda), o);
    engine.generate(inputs, nullptr, 2);  // the warm-up
    if (graphs == 1) start_up_capture_s = engine.capture_leaving_batches();
    RequestSampler sampler(std::vector<SamplingParams>(max_tokens.size()), engine.binding().output_requests, ends);
    runs[graphs] = engine.generate(inputs, nullptr, -1, &sampler);
  }
  EXPECT_GT(start_up_capture_s, 0);
  EXPECT_EQ(runs[1].graph_capture_s, 0) << "a graph was captured during the run";
  EXPECT_EQ(runs[0].decode_rows, eager_rows);
  EXPECT_EQ(runs[1].decode_rows, graph_rows);
  EXPECT_TRUE(at::equal(runs[0].tokens, runs[1].tokens)) << runs[0].tokens << "\n" << runs[1].tokens;
  for (size_t i = 0; i < max_tokens.size(); ++i) {
    const int64_t end = max_tokens[i];
    if (end < s.new_tokens) {
      EXPECT_EQ(runs[1].tokens[static_cast<int64_t>(i)].narrow(0, end, s.new_tokens - end).abs().sum().item<int64_t>(), 0)
          << "request " << i << " has tokens past its end";
    }
  }
}

// Batch 5 ending after 1, 2, 3, 5 and 8 tokens: the graph batch steps down 4, 4, 2, 2, 1 (the
// default graph sizes 1, 2, 4, 8), the eager one 4, 3, 2, 2, 1.
TEST(CudaGraphDecode, LeavingRequestsReplayGraphsCapturedAtStartUp) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA";
  expect_leaving_requests("gpu_graph_leaving", {1, 2, 3, 5, 8}, {4, 3, 2, 2, 1, 1, 1}, {4, 4, 2, 2, 1, 1, 1});
}

// Batch 4, one request ending after its first token: 3 running requests still take the graph of
// 4, so the batch never shrinks and the finished request's row stays as padding; its tokens past
// its end must not come out.
TEST(CudaGraphDecode, AFinishedRequestPaddingTheGraphBatchGivesNoTokens) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA";
  expect_leaving_requests("gpu_graph_padding", {1, 8, 8, 8}, {3, 3, 3, 3, 3, 3, 3}, {4, 4, 4, 4, 4, 4, 4});
}

}  // namespace
}  // namespace shardplan
