// One rank's run, the gathering of results on rank 0, and the report (see rank_run.h).
#include "executor/runtime/rank_run.h"


#include <ATen/ATen.h>

#include <sys/resource.h>

#include <algorithm>
#include <chrono>

#include "executor/runtime/engine.h"
#include "executor/runtime/sampling.h"
#include "executor/runtime/rank_weights.h"
#include "executor/runtime/run_error.h"
#include "executor/runtime/verify.h"
#include "executor/runtime/workload.h"
#include "executor/weights/safetensors.h"
#include "models/graph/family.h"
#include "planner/io/output_file.h"

#if __has_include(<c10/cuda/CUDACachingAllocator.h>)
#include <c10/cuda/CUDACachingAllocator.h>
#define SHARDPLAN_CUDA_ALLOCATOR_STATS 1
#else
#define SHARDPLAN_CUDA_ALLOCATOR_STATS 0
#endif

namespace shardplan {
namespace {

// The rank's peak memory so far: on CUDA the most bytes the caching allocator had allocated on the
// device; on the CPU the process's peak resident set (libraries and the runtime included).
int64_t peak_memory_bytes(at::Device device) {
#if SHARDPLAN_CUDA_ALLOCATOR_STATS
  if (device.is_cuda()) {
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.index() < 0 ? 0 : device.index());
    return stats.allocated_bytes[static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE)].peak;
  }
#endif
  struct rusage usage {};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<int64_t>(usage.ru_maxrss) * 1024;
}

RankList world_group(const Plan& plan) {
  RankList world;
  for (int64_t r = 0; r < plan.world_size(); ++r) world.push_back(r);
  return world;
}

// Every rank's `t` (equal shapes) concatenated along `dim` in rank order, on the CPU.
// NOTE: through the rank's device, since NCCL moves device memory only.
at::Tensor gather_on_all(Communicator* comm, const Plan& plan, at::Device device, const at::Tensor& t, int64_t dim,
                         const std::string& what) {
  if (plan.world_size() == 1) return t.to(at::kCPU);
  return comm->all_gather(t.to(device).contiguous(), dim, world_group(plan), what).to(at::kCPU);
}

// Rows of `gathered` (rank r's block of `per_rank` rows at r * per_rank) put in request order:
// request i comes from the first rank that holds it.
at::Tensor by_request(const Plan& plan, const at::Tensor& gathered, int64_t dim, int64_t per_rank) {
  const int64_t batch = plan.spec().workload.batch;
  std::vector<int64_t> source(batch, -1);
  for (int64_t r = 0; r < plan.world_size(); ++r) {
    const RequestRange held = output_requests(plan, r);
    for (int64_t i = 0; i < held.count; ++i) {
      if (source[held.begin + i] < 0) source[held.begin + i] = r * per_rank + i;
    }
  }
  return gathered.index_select(dim, at::tensor(source, at::TensorOptions().dtype(at::kLong)));
}

// The spec's checkpoint, finding tensors under the family's other Hub layout too.
Checkpoint open_checkpoint(const Plan& plan, const RankRunOptions& options) {
  Checkpoint checkpoint = Checkpoint::open(*plan.spec().checkpoint_path, options.allow_links_outside_checkpoint);
  if (const Family* family = find_family(plan.graph().family)) checkpoint.set_alternate_names(family->alternate_hub_name);
  return checkpoint;
}

}  // namespace

at::ScalarType run_dtype(DType dtype, at::Device device) {
  switch (dtype) {
    case DType::kFloat32: return at::kFloat;
    case DType::kBFloat16: return at::kBFloat16;
    case DType::kFloat16:
      if (device.is_cpu()) {
        throw RunError(RunError::Code::kUsage,
                       "model.dtype float16 on --device cpu: libtorch has no float16 matrix product on the CPU; "
                       "use bfloat16 or float32 on the CPU, or float16 with --device cuda");
      }
      return at::kHalf;
  }
  return at::kFloat;
}

// A float32 tensor as a NumPy .npy file (version 1.0 header), for comparisons outside the
// executor (scripts/gpu/ compares against transformers' logits).
void write_npy_float32(const std::string& path, const at::Tensor& t) {
  const at::Tensor c = t.to(at::kCPU).to(at::kFloat).contiguous();
  std::string shape;
  for (int64_t i = 0; i < c.dim(); ++i) shape += std::to_string(c.size(i)) + (c.dim() == 1 || i + 1 < c.dim() ? "," : "");
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + shape + "), }";
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::string bytes("\x93NUMPY\x01\x00", 8);
  const uint16_t len = static_cast<uint16_t>(header.size());
  bytes.append(reinterpret_cast<const char*>(&len), 2);
  bytes += header;
  bytes.append(static_cast<const char*>(c.data_ptr()), static_cast<size_t>(c.numel()) * 4);
  const std::string failure = write_output_file(path, bytes);
  if (!failure.empty()) throw RunError(RunError::Code::kUsage, "cannot write --logits-out '" + path + "': " + failure);
}

// Whether the engine keeps every step's logits and rank 0 gathers them (--verify, --logits-out).
bool keeps_logits(const RankRunOptions& options) { return options.verify || !options.logits_out.empty(); }

std::optional<RunReport> run_rank(const Plan& plan, int64_t rank, Communicator* comm, const RankRunOptions& options) {
  const Spec& spec = plan.spec();
  const WorkloadSpec& w = spec.workload;
  const at::ScalarType dtype = run_dtype(spec.dtype, options.device);
  if (dtype == at::kFloat && options.device.is_cuda()) {
    // NOTE: float32 means float32: cuDNN's convolutions (CLIP's patches, Whisper's front end)
    // would otherwise run in TF32 and miss the fp32 tolerance against other implementations.
    at::globalContext().setAllowTF32CuDNN(false);
    at::globalContext().setAllowTF32CuBLAS(false);
  }
  if (!spec.checkpoint_path) {
    throw RunError(RunError::Code::kUsage, spec.file + ": the spec names no model.checkpoint (`executor make-checkpoint` writes one)");
  }

  EngineInputs inputs = make_engine_inputs(plan, options.seed);
  if (!options.prompt_ids.empty()) {
    // Prompts of different lengths are left-padded to the longest (id 0, or 1 where 0 is llava's
    // image token: the padding is masked out, but an image token there would take an image's
    // features); first[r] is where request r's prompt starts.
    const int64_t pad = plan.graph().workload.image_token == 0 ? 1 : 0;
    size_t longest = 0;
    for (const auto& p : options.prompt_ids) longest = std::max(longest, p.size());
    std::vector<int64_t> flat, first;
    bool ragged = false;
    for (const auto& p : options.prompt_ids) {
      first.push_back(static_cast<int64_t>(longest - p.size()));
      ragged = ragged || p.size() != longest;
      flat.insert(flat.end(), longest - p.size(), pad);
      flat.insert(flat.end(), p.begin(), p.end());
    }
    inputs.prompts = at::tensor(flat, at::TensorOptions().dtype(at::kLong))
                         .view({static_cast<int64_t>(options.prompt_ids.size()), -1});
    if (ragged) inputs.first = at::tensor(first, at::TensorOptions().dtype(at::kLong));
  }
  if (options.pixels.defined()) inputs.pixels = options.pixels;
  if (options.audio.defined()) inputs.audio = options.audio;
  uint64_t bytes_read = 0;
  double load_s = 0;          // reading and placing the rank's slices
  Generation g;
  double capture_s = 0;       // the decode step's CUDA graph capture (warm-up or first step)
  bool decode_graph = false;
  double encoder_capture_s = 0;  // the encoders' CUDA graph captures (warm-up or first prefill)
  int64_t encoder_graphs = 0;
  {
    // NOTE: the rank's shards and caches are freed before --verify loads the whole model on
    // rank 0's device (a 70B model in bf16 fits an H200 alone, not next to its TP8 shard).
    const Checkpoint checkpoint = open_checkpoint(plan, options);
    const auto load_start = std::chrono::steady_clock::now();
    Progress loading("loading weights", static_cast<int64_t>(rank_shard_bytes(plan, rank, checkpoint)), "bytes",
                     options.progress);
    TensorShards shards = load_rank_shards(plan, rank, checkpoint, dtype, options.device, &loading);
    bytes_read = checkpoint.bytes_touched();
    load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - load_start).count();

    if (comm) comm->create_groups(plan_groups(plan));
    Engine engine(plan, rank, comm, shards,
                  EngineOptions{options.device, dtype, keeps_logits(options), options.profile, options.cuda_graphs});
    // NOTE: the model keeps what it uses (fused projections in place of their parts): the loaded
    // slices it fused are freed here, so the rank holds its weights once.
    shards.clear();
    // Requests may end before new_tokens (EOS, max_tokens, stop strings) and leave.
    const bool requests_may_leave = !options.ends.empty();
    if (options.warm_up) {
      const Generation warm = engine.generate(inputs, nullptr, 2);
      capture_s = warm.graph_capture_s;
      encoder_capture_s = warm.encoder_capture_s;
      if (requests_may_leave) capture_s += engine.capture_leaving_batches();
    }

    if (comm) comm->barrier("start of the workload");
    std::unique_ptr<RequestSampler> sampler;
    if (any_sampling(options.sampling) || requests_may_leave) {
      std::vector<SamplingParams> params = options.sampling;
      params.resize(static_cast<size_t>(w.batch));  // greedy where none is given
      sampler = std::make_unique<RequestSampler>(params, engine.binding().output_requests, options.ends,
                                                 options.eos_ids);
    }
    Progress running("generating", std::max<int64_t>(w.new_tokens, 1), "steps", options.progress);
    g = engine.generate(inputs, nullptr, -1, sampler.get(), &running);
    capture_s += g.graph_capture_s;
    encoder_capture_s += g.encoder_capture_s;
    encoder_graphs = static_cast<int64_t>(engine.encoder_graph_count());
    decode_graph = engine.uses_cuda_graphs();
  }
  const int64_t peak_memory = peak_memory_bytes(options.device);

  // Rank 0 collects every rank's requests.
  const int64_t held = g.requests.count;
  const at::Device device = options.device;
  const at::Tensor my_times =
      at::tensor({g.first_token_s, g.last_token_s}, at::TensorOptions().dtype(at::kDouble)).view({1, 2});
  const at::Tensor my_bytes =
      at::tensor({static_cast<int64_t>(bytes_read), peak_memory}, at::TensorOptions().dtype(at::kLong)).view({1, 2});
  const at::Tensor tokens = gather_on_all(comm, plan, device, g.tokens, 0, "all_gather of the generated tokens");
  const at::Tensor times = gather_on_all(comm, plan, device, my_times, 0, "all_gather of the timings");
  const at::Tensor bytes = gather_on_all(comm, plan, device, my_bytes, 0, "all_gather of the bytes read");
  at::Tensor kinds;  // with --profile (every rank has it or none)
  if (options.profile) {
    const at::Tensor my_kinds = at::tensor(g.seconds_by_kind, at::TensorOptions().dtype(at::kDouble)).view({1, -1});
    kinds = gather_on_all(comm, plan, device, my_kinds, 0, "all_gather of the time by module kind");
  }
  at::Tensor logits;
  if (keeps_logits(options)) logits = gather_on_all(comm, plan, device, g.logits, 1, "all_gather of the logits");
  if (rank != 0) return std::nullopt;

  RunReport report;
  report.spec_file = spec.file;
  report.name = spec.name;
  report.model_type = plan.graph().model_type;
  report.dtype = to_string(spec.dtype);
  report.device = options.device.is_cuda() ? "cuda" : "cpu";
  for (const MeshAxis& a : plan.mesh.axes()) report.mesh.emplace_back(a.name, a.size);
  report.world_size = plan.world_size();
  report.requests = w.batch;
  report.prompt_tokens = w.prompt_tokens;
  report.image_tokens = prefill_tokens(plan) - w.prompt_tokens;
  report.images_per_request = report.image_tokens > 0 ? w.images_per_request : 0;
  const int64_t steps_run = g.tokens.size(1);  // fewer than new_tokens when every request ended early
  report.new_tokens = steps_run;

  const at::Tensor all_tokens = by_request(plan, tokens, 0, held);  // [batch, new_tokens]
  for (int64_t i = 0; i < w.batch; ++i) {
    const at::Tensor row = all_tokens[i].contiguous();
    report.generated.emplace_back(row.data_ptr<int64_t>(), row.data_ptr<int64_t>() + row.numel());
  }
  const at::Tensor per_request = by_request(plan, times.repeat_interleave(held, 0), 0, held);  // [batch, 2]
  std::vector<double> ttft, tpot;
  for (int64_t i = 0; i < w.batch; ++i) {
    const double first = per_request[i][0].item<double>(), last = per_request[i][1].item<double>();
    ttft.push_back(first);
    tpot.push_back(steps_run > 1 ? (last - first) / static_cast<double>(steps_run - 1) : 0.0);
  }
  report.request_ttft_s = ttft;
  report.request_tpot_s = tpot;
  report.ttft = summarize(ttft);
  report.tpot = summarize(tpot);
  report.duration_s = times.select(1, 1).max().item<double>();
  for (int64_t r = 0; r < plan.world_size(); ++r) {
    report.weight_bytes_read.push_back(bytes[r][0].item<int64_t>());
    report.peak_memory_bytes.push_back(bytes[r][1].item<int64_t>());
  }
  report.decode_graph = decode_graph;
  report.decode_batch = g.decode_rows;
  report.load_s = load_s;
  report.graph_capture_s = capture_s;
  report.encoder_graphs = encoder_graphs;
  report.encoder_capture_s = encoder_capture_s;
  // The kinds the model has, in engine_time_categories() order, then the collectives.
  const std::vector<std::string> categories = engine_time_categories();
  const at::Tensor mean_kinds = kinds.defined() ? kinds.to(at::kCPU).mean(0) : at::Tensor();
  for (size_t k = 0; kinds.defined() && k < categories.size(); ++k) {
    const bool present = k + 1 == categories.size() ||
                         std::any_of(plan.modules.begin(), plan.modules.end(), [&](const ModulePlan& mp) {
                           return to_string(mp.module->kind) == categories[k];
                         });
    if (present) report.time_by_kind_s.emplace_back(categories[k], mean_kinds[k].item<double>());
  }

  if (options.verify) {
    const std::unique_ptr<Plan> one = unsharded_plan(plan);
    const Checkpoint whole = open_checkpoint(plan, options);
    const TensorShards all = load_rank_shards(*one, 0, whole, dtype, options.device);
    // NOTE: the reference runs eagerly: it is what the graphs are checked against, and it holds
    // the whole model on rank 0 (no graph memory pools next to it).
    Engine reference(*one, 0, nullptr, all, EngineOptions{options.device, dtype, true, false, /*cuda_graphs=*/false});
    const Generation ref = reference.generate(inputs, &all_tokens);
    const at::Tensor sharded = by_request(plan, logits, 1, held);
    report.verify = compare_logits(sharded, ref.logits, all_tokens, spec.dtype);
  }
  if (!options.logits_out.empty()) write_npy_float32(options.logits_out, by_request(plan, logits, 1, held));
  return report;
}

}  // namespace shardplan
