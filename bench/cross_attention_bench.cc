// Whisper cross-attention on one tensor-parallel rank: the split projection (q from the decoder,
// one fused k/v projection over the encoder states, computed once per request at prefill; what
// spec-format.md §2 prescribes for `cross_attention: tensor`) against vLLM's behaviour before
// vllm-project/vllm#12325 (the whole q/k/v column-parallel projection applied to the decoder
// states AND to the encoder states, the unused parts thrown away). Google Benchmark + ATen.
//
//   cross_attention_bench [--device=cpu|cuda] [--size=large-v3|tiny] [--requests=N] [benchmark flags]
//   (or SHARDPLAN_BENCH_DEVICE, SHARDPLAN_BENCH_SIZE, SHARDPLAN_BENCH_REQUESTS)
//
// Defaults: cpu with the tiny size (seconds, for CI); cuda with whisper-large-v3's size (d_model
// 1280, 20 heads of 64, 1500 encoder frames) in bfloat16. Cases: {prefill, decode} x {split, full}
// x tp {1, 2, 4}; a rank holds heads / tp heads. Prefill = a 4-token decoder prompt per request
// attending to its encoder states (the split variant projects k/v once; the full variant runs the
// whole q/k/v projection over the decoder and the encoder states). Decode = one token per request
// against the cached k/v (the full variant still projects q, k and v of that token).
// NOTE: the out_proj is row-parallel in both variants and is followed by the same all_reduce of
// [requests, tokens, d_model]; it is computed here (partial sums) but no collective runs: the
// difference between the variants lies entirely before it.
// NOTE: timing waits for the device by copying one output element to the host at the end of every
// iteration (the same cost in both variants; no CUDA headers needed). Times are wall-clock
// (UseRealTime).
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

namespace {

struct Shape {
  int64_t d_model, heads, head_dim, encoder_frames, prompt_tokens;
};

// whisper-large-v3: d_model 1280, 20 attention heads (64 each), 1500 encoder frames (3000 mel
// frames after the stride-2 convolution); the decoder prompt of the spec's workload (4 tokens).
constexpr Shape kWhisper{1280, 20, 64, 1500, 4};
constexpr Shape kTiny{128, 4, 32, 50, 4};

struct Options {
  at::Device device = at::kCPU;
  Shape shape = kTiny;
  int64_t requests = 8;
};

Options g_options;

at::TensorOptions tensor_options() {
  return at::TensorOptions().device(g_options.device).dtype(g_options.device.is_cuda() ? at::kBFloat16 : at::kFloat);
}

int64_t element_bytes() { return g_options.device.is_cuda() ? 2 : 4; }

void wait_for_device(const at::Tensor& t) { benchmark::DoNotOptimize(t.reshape(-1)[0].item<double>()); }

// One rank's weights and inputs at a tensor-parallel degree.
struct Rank {
  int64_t local_heads, local;  // local = local_heads * head_dim
  at::Tensor w_q, w_kv, b_q, b_kv;   // split: [local, d], [2 * local, d] (biases everywhere: immaterial)
  at::Tensor w_qkv, b_qkv;           // full: [3 * local, d] (QKVParallelLinear's shard: q, k, v)
  at::Tensor w_o;                    // [d, local], row-parallel
  at::Tensor decoder, decoder_step;  // [requests, prompt, d], [requests, 1, d]
  at::Tensor encoder;                // [requests, frames, d]
  at::Tensor k_cache, v_cache;       // [requests, local_heads, frames, head_dim]

  explicit Rank(int64_t tp) {
    const Shape& s = g_options.shape;
    const int64_t r = g_options.requests;
    const at::TensorOptions o = tensor_options();
    local_heads = s.heads / tp;
    local = local_heads * s.head_dim;
    const double scale = 1.0 / std::sqrt(static_cast<double>(s.d_model));
    w_qkv = at::randn({3 * local, s.d_model}, o) * scale;
    b_qkv = at::randn({3 * local}, o) * 0.02;
    w_q = w_qkv.narrow(0, 0, local).contiguous();
    b_q = b_qkv.narrow(0, 0, local).contiguous();
    w_kv = w_qkv.narrow(0, local, 2 * local).contiguous();
    b_kv = b_qkv.narrow(0, local, 2 * local).contiguous();
    w_o = at::randn({s.d_model, local}, o) * (1.0 / std::sqrt(static_cast<double>(local)));
    decoder = at::randn({r, s.prompt_tokens, s.d_model}, o);
    decoder_step = at::randn({r, 1, s.d_model}, o);
    encoder = at::randn({r, s.encoder_frames, s.d_model}, o);
    const at::Tensor kv = at::linear(encoder, w_kv, b_kv);
    k_cache = heads(kv.narrow(-1, 0, local)).contiguous();
    v_cache = heads(kv.narrow(-1, local, local)).contiguous();
  }

  // [requests, tokens, local] -> [requests, local_heads, tokens, head_dim]
  at::Tensor heads(const at::Tensor& x) const {
    return x.reshape({x.size(0), x.size(1), local_heads, g_options.shape.head_dim}).transpose(1, 2);
  }

  // Attention of q [requests, tokens, local] over k, v [requests, heads, frames, head_dim], then
  // the rank's out_proj slice (a partial sum, all-reduced afterwards in both variants).
  at::Tensor attend(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) const {
    const double scale = 1.0 / std::sqrt(static_cast<double>(g_options.shape.head_dim));
    const at::Tensor p = at::softmax(at::matmul(heads(q) * scale, k.transpose(-1, -2)), -1);
    const at::Tensor o = at::matmul(p, v).transpose(1, 2).reshape({q.size(0), q.size(1), local});
    return at::linear(o, w_o);
  }
};

enum class Phase { kPrefill, kDecode };
enum class Variant { kSplit, kFull };

// FLOPs of one iteration's projections (2 * m * n * k each); what the variants differ by.
double projection_flops(Phase phase, Variant variant, const Rank& rank) {
  const Shape& s = g_options.shape;
  const double r = static_cast<double>(g_options.requests), d = static_cast<double>(s.d_model);
  const double dec = r * (phase == Phase::kPrefill ? s.prompt_tokens : 1), enc = r * s.encoder_frames;
  const double l = static_cast<double>(rank.local);
  double flops = 2 * dec * d * (variant == Variant::kSplit ? l : 3 * l);             // decoder side
  if (phase == Phase::kPrefill) flops += 2 * enc * d * (variant == Variant::kSplit ? 2 * l : 3 * l);  // encoder
  return flops;
}

// Bytes of projection weights read per iteration (the decode step is bound by these).
double projection_weight_bytes(Phase phase, Variant variant, const Rank& rank) {
  const double d = static_cast<double>(g_options.shape.d_model), l = static_cast<double>(rank.local);
  const double rows = variant == Variant::kFull ? 3 * l : (phase == Phase::kPrefill ? 3 * l : l);
  return rows * d * static_cast<double>(element_bytes());
}

void run_case(benchmark::State& state, Phase phase, Variant variant, int64_t tp) {
  c10::InferenceMode guard;
  const Rank rank(tp);
  const int64_t l = rank.local;
  auto step = [&]() -> at::Tensor {
    if (phase == Phase::kPrefill) {
      if (variant == Variant::kSplit) {
        const at::Tensor q = at::linear(rank.decoder, rank.w_q, rank.b_q);
        const at::Tensor kv = at::linear(rank.encoder, rank.w_kv, rank.b_kv);  // once per request
        return rank.attend(q, rank.heads(kv.narrow(-1, 0, l)), rank.heads(kv.narrow(-1, l, l)));
      }
      const at::Tensor q = at::linear(rank.decoder, rank.w_qkv, rank.b_qkv).narrow(-1, 0, l);
      const at::Tensor qkv = at::linear(rank.encoder, rank.w_qkv, rank.b_qkv);  // q part discarded
      return rank.attend(q, rank.heads(qkv.narrow(-1, l, l)), rank.heads(qkv.narrow(-1, 2 * l, l)));
    }
    const at::Tensor q = variant == Variant::kSplit
                             ? at::linear(rank.decoder_step, rank.w_q, rank.b_q)
                             : at::linear(rank.decoder_step, rank.w_qkv, rank.b_qkv).narrow(-1, 0, l);  // k, v discarded
    return rank.attend(q, rank.k_cache, rank.v_cache);
  };
  for (int i = 0; i < 3; ++i) wait_for_device(step());  // warm-up: kernels, allocator
  for (auto _ : state) wait_for_device(step());

  const Shape& s = g_options.shape;
  state.counters["local_heads"] = static_cast<double>(rank.local_heads);
  state.counters["requests"] = static_cast<double>(g_options.requests);
  state.counters["proj_GFLOP"] = projection_flops(phase, variant, rank) / 1e9;
  state.counters["proj_weight_MB"] = projection_weight_bytes(phase, variant, rank) / 1e6;
  state.counters["proj_FLOP/s"] = benchmark::Counter(projection_flops(phase, variant, rank),
                                                    benchmark::Counter::kIsIterationInvariantRate);
  // k/v held per rank after prefill (the cache both variants keep).
  state.counters["kv_cache_MB"] = 2.0 * g_options.requests * s.encoder_frames * l * element_bytes() / 1e6;
}

// --name=value from argv (removed from it), else the environment variable, else "".
std::string take_option(int& argc, char** argv, const char* name, const char* env) {
  const std::string prefix = std::string("--") + name + "=";
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], prefix.c_str(), prefix.size()) == 0) {
      std::string value = argv[i] + prefix.size();
      for (int j = i; j + 1 < argc; ++j) argv[j] = argv[j + 1];
      --argc;
      return value;
    }
  }
  const char* v = std::getenv(env);
  return v ? v : "";
}

}  // namespace

int main(int argc, char** argv) {
  const std::string device = take_option(argc, argv, "device", "SHARDPLAN_BENCH_DEVICE");
  const std::string size = take_option(argc, argv, "size", "SHARDPLAN_BENCH_SIZE");
  const std::string requests = take_option(argc, argv, "requests", "SHARDPLAN_BENCH_REQUESTS");
  if (device == "cuda") {
    if (!at::hasCUDA()) {
      std::cerr << "cross_attention_bench: --device=cuda but this libtorch has no CUDA device\n";
      return 2;
    }
    g_options.device = at::Device(at::kCUDA, 0);
  } else if (!device.empty() && device != "cpu") {
    std::cerr << "cross_attention_bench: --device must be cpu or cuda, not '" << device << "'\n";
    return 2;
  }
  const std::string shape = size.empty() ? (g_options.device.is_cuda() ? "large-v3" : "tiny") : size;
  if (shape != "large-v3" && shape != "tiny") {
    std::cerr << "cross_attention_bench: --size must be large-v3 (whisper-large-v3's sizes) or tiny, not '" << shape
              << "'\n";
    return 2;
  }
  g_options.shape = shape == "large-v3" ? kWhisper : kTiny;
  if (!requests.empty()) g_options.requests = std::atoll(requests.c_str());
  if (g_options.requests < 1) {
    std::cerr << "cross_attention_bench: --requests must be >= 1\n";
    return 2;
  }
  at::manual_seed(0);

  for (Phase phase : {Phase::kPrefill, Phase::kDecode}) {
    for (int64_t tp : {1, 2, 4}) {
      for (Variant variant : {Variant::kSplit, Variant::kFull}) {
        const std::string name = std::string("cross_attention/") + (phase == Phase::kPrefill ? "prefill" : "decode") +
                                 "/" + (variant == Variant::kSplit ? "split" : "full_qkv") + "/tp:" + std::to_string(tp);
        benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& st) { run_case(st, phase, variant, tp); })
            ->UseRealTime()
            ->Unit(benchmark::kMicrosecond);
      }
    }
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("device", g_options.device.is_cuda() ? "cuda (bfloat16)" : "cpu (float32)");
  benchmark::AddCustomContext("size", shape + " (d_model " + std::to_string(g_options.shape.d_model) + ", " +
                                          std::to_string(g_options.shape.heads) + " heads of " +
                                          std::to_string(g_options.shape.head_dim) + ", " +
                                          std::to_string(g_options.shape.encoder_frames) + " encoder frames, " +
                                          std::to_string(g_options.shape.prompt_tokens) + "-token prompt)");
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
