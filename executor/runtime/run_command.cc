// `executor run`: spec check, launch, one rank's run, the report (see run_command.h).
#include "executor/runtime/run_command.h"

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <optional>
#include <thread>

#include <nlohmann/json.hpp>

#include "base/error.h"
#include "executor/comm/communicator.h"
#include "executor/comm/launcher.h"
#include "executor/runtime/engine.h"
#include "executor/runtime/rank_run.h"
#include "executor/runtime/request_file.h"
#include "executor/runtime/request_media.h"
#include "executor/runtime/request_text.h"
#include "executor/runtime/run_error.h"
#include "executor/weights/weights_error.h"
#include "models/graph/model_graph.h"
#include "planner/io/output_file.h"
#include "planner/plan/plan.h"
#include "planner/spec/spec_check.h"

namespace shardplan {
namespace {

constexpr const char* kSpecChecked = "SHARDPLAN_SPEC_CHECKED";

// How many ranks share this machine's cores: the launcher's LOCAL_WORLD_SIZE, else the world.
int local_ranks(int world_size) {
  if (const char* v = std::getenv("LOCAL_WORLD_SIZE")) {
    const int n = std::atoi(v);
    if (n >= 1) return n;
  }
  return world_size;
}

// One request's result: the tokens kept (to the end-of-sequence token or max_tokens, then to the
// first stop string) and their text (special tokens skipped, as vLLM and transformers' decode do).
nlohmann::json request_result(int64_t index, const Request& q, const std::vector<int64_t>& generated,
                              const RequestText* text, const std::vector<int64_t>& eos_ids, double ttft_s,
                              double tpot_s) {
  std::string reason;
  std::vector<int64_t> kept = finish_tokens(generated, q, eos_ids, reason);
  nlohmann::json j = {{"index", index}};
  if (text) {
    std::string decoded = text->decode(kept);
    const std::string cut = finish_text(decoded, q, reason);
    if (cut.size() != decoded.size()) {
      // The tokens up to the one that completes the stop string.
      size_t n = 1;
      while (n < kept.size() && finish_text(text->decode({kept.begin(), kept.begin() + n}), q, reason).size() ==
                                    text->decode({kept.begin(), kept.begin() + n}).size()) {
        ++n;
      }
      kept.resize(n);
      reason = "stop";
    }
    j["text"] = cut;
  }
  j["token_ids"] = kept;
  j["finish_reason"] = reason;
  j["prompt_tokens"] = q.prompt_ids.size();
  j["output_tokens"] = kept.size();
  j["ttft_ms"] = ttft_s * 1e3;
  j["tpot_ms"] = tpot_s * 1e3;
  return j;
}

// --requests' results: one JSON line a request, in input order, to --output (if given); the
// first few texts on stdout.
void write_request_results(const std::vector<Request>& requests, const RunReport& report, const RequestText* text,
                           const std::vector<int64_t>& eos_ids, const RunOptions& o) {
  std::string lines;
  constexpr size_t kShown = 5;
  for (size_t i = 0; i < requests.size(); ++i) {
    const nlohmann::json r = request_result(static_cast<int64_t>(i), requests[i], report.generated.at(i), text, eos_ids,
                                            report.request_ttft_s.at(i), report.request_tpot_s.at(i));
    lines += r.dump() + "\n";
    if (i < kShown && o.format != "json") {
      std::cout << "request " << i << " (" << r["finish_reason"].get<std::string>() << ", "
                << r["output_tokens"].get<int64_t>() << " tokens): "
                << (r.contains("text") ? nlohmann::json(r["text"]).dump() : r["token_ids"].dump()) << "\n";
    }
  }
  if (requests.size() > kShown && o.format != "json") {
    std::cout << "(" << requests.size() - kShown << " more" << (o.output.empty() ? "; --output FILE.jsonl has them all" : "")
              << ")\n";
  }
  if (!o.output.empty()) {
    if (const std::string failure = write_output_file(o.output, lines); !failure.empty()) {
      throw RunError(RunError::Code::kUsage, "cannot write --output '" + o.output + "': " + failure);
    }
  }
}

// The requests' images and audio as the engine takes them.
struct RequestMedia {
  int64_t images_per_request = 0;
  at::Tensor pixels;  // [requests * images_per_request, channels, size, size]
  at::Tensor audio;   // [requests, mel bins, frames]
};

// Checks what the model takes and loads it; expands each image token of a llava prompt into the
// image's tokens_per_image copies (as transformers' processor expands "<image>"). Checks: images
// only for a model with an image stream, audio only with an audio stream; llava: every request has
// the same number of images (at least one), one image token in its prompt for each; whisper: an
// audio clip in every request. RunError (exit 2) naming the request.
RequestMedia request_media(std::vector<Request>& requests, const ModelGraph& graph, const std::string& model_dir,
                           const std::string& file) {
  const WorkloadShape& shape = graph.workload;
  const bool images = shape.tokens_per_image > 0, audio = shape.encoder_tokens_per_clip > 0;
  RequestMedia out;
  out.images_per_request = images ? static_cast<int64_t>(requests.front().images.size()) : 0;
  std::vector<std::string> image_files;
  std::vector<float> features;
  for (size_t i = 0; i < requests.size(); ++i) {
    Request& q = requests[i];
    const std::string which = file + ": request " + std::to_string(i + 1) + " ";
    if (!q.images.empty() && !images) {
      throw RunError(RunError::Code::kUsage, which + "has images, but " + graph.model_type + " takes none");
    }
    if (!q.audio.empty() && !audio) {
      throw RunError(RunError::Code::kUsage, which + "has audio, but " + graph.model_type + " takes none");
    }
    if (audio) {
      if (q.audio.empty()) throw RunError(RunError::Code::kUsage, which + "has no 'audio' (" + graph.model_type + " transcribes a clip a request)");
      const std::vector<float> f = load_request_audio(q.audio, shape.mel_bins, shape.encoder_tokens_per_clip);
      features.insert(features.end(), f.begin(), f.end());
    }
    if (!images) continue;
    if (static_cast<int64_t>(q.images.size()) != out.images_per_request || q.images.empty()) {
      throw RunError(RunError::Code::kUsage, which + "has " + std::to_string(q.images.size()) + " images: " +
                                                 graph.model_type + " requests need at least one, the same number in "
                                                 "every request (request 1 has " +
                                                 std::to_string(out.images_per_request) + ")");
    }
    std::vector<int64_t> expanded;
    int64_t marks = 0;
    for (int64_t id : q.prompt_ids) {
      if (id != shape.image_token) {
        expanded.push_back(id);
        continue;
      }
      ++marks;
      expanded.insert(expanded.end(), shape.tokens_per_image, id);
    }
    if (marks != static_cast<int64_t>(q.images.size())) {
      throw RunError(RunError::Code::kUsage, which + "has " + std::to_string(q.images.size()) + " images but " +
                                                 std::to_string(marks) + " image tokens (id " +
                                                 std::to_string(shape.image_token) +
                                                 ", \"<image>\") in its prompt: one marks where each image goes");
    }
    q.prompt_ids = std::move(expanded);
    image_files.insert(image_files.end(), q.images.begin(), q.images.end());
  }
  const auto f32 = at::TensorOptions().dtype(at::kFloat);
  if (!image_files.empty()) {
    std::vector<float> pixels = load_request_images(image_files, model_dir, shape.image_size);
    out.pixels = at::tensor(pixels, f32).view({static_cast<int64_t>(image_files.size()), shape.image_channels,
                                               shape.image_size, shape.image_size});
  }
  if (audio) {
    out.audio = at::tensor(features, f32).view({static_cast<int64_t>(requests.size()), shape.mel_bins,
                                                2 * shape.encoder_tokens_per_clip});
  }
  return out;
}

// The part of a run that can fail with any of the layers' exceptions; `rank_prefix` is set as
// soon as this process knows it is one of several ranks.
int run_checked(const RunOptions& o, std::string& rank_prefix) {
  std::optional<LaunchEnv> env = launch_env_from_environment();
  // NOTE: ranks this process starts inherit kSpecChecked, so the spec's warnings print once.
  const bool prints = (!env || env->rank == 0) && std::getenv(kSpecChecked) == nullptr;

  Diagnostics diags;
  CheckedSpec checked;
  const CheckOutcome outcome = check_spec_file(o.spec, diags, &checked);
  diags.sort();
  if (prints) {
    for (const Diagnostic& d : diags.all()) std::cerr << format_diagnostic(d) << "\n";
  }
  if (outcome == CheckOutcome::kIoError) return kExitUsage;
  if (outcome == CheckOutcome::kInvalid) return kExitInvalid;

  // --requests replaces the workload's batch, prompt length and new tokens; the spec is checked
  // again with them (a batch that no longer divides over the batch axes is the spec's error).
  std::optional<std::vector<Request>> requests;
  std::unique_ptr<RequestText> text;  // the tokenizer, where there is one
  std::vector<int64_t> eos_ids;
  RequestMedia media;
  if (!o.requests.empty()) {
    const std::string model_dir = !o.tokenizer.empty()          ? o.tokenizer
                                  : checked.spec.checkpoint_path ? *checked.spec.checkpoint_path
                                                                 : std::string();
    text = load_request_text(model_dir, !o.tokenizer.empty());
    requests = read_request_file(o.requests, checked.graph.vocab,
                                 text ? TokenizeFn([&](const std::string& s) { return text->encode(s); }) : TokenizeFn());
    media = request_media(*requests, checked.graph, model_dir, o.requests);
    eos_ids = text ? text->eos_token_ids() : model_dir.empty() ? std::vector<int64_t>() : read_eos_token_ids(model_dir);
    WorkloadSpec& w = checked.spec.workload;
    w.batch = static_cast<int64_t>(requests->size());
    w.batch_given = true;
    w.prompt_tokens = 0;
    w.new_tokens = 0;
    for (const Request& q : *requests) {
      w.prompt_tokens = std::max<int64_t>(w.prompt_tokens, static_cast<int64_t>(q.prompt_ids.size()));
      w.new_tokens = std::max(w.new_tokens, q.max_tokens);
    }
    // The prompts' image tokens (each image's, expanded) count apart from the text.
    w.images_per_request = media.images_per_request;
    w.prompt_tokens -= media.images_per_request * checked.graph.workload.tokens_per_image;
    Diagnostics again;
    check_spec(checked.spec, checked.graph, again);
    again.sort();
    if (again.has_errors()) {
      if (prints) {
        std::cerr << "executor: error: the spec does not fit the " << w.batch << " requests of " << o.requests << ":\n";
        for (const Diagnostic& d : again.all()) std::cerr << format_diagnostic(d) << "\n";
      }
      return kExitInvalid;
    }
  }
  const std::unique_ptr<Plan> plan = build_plan(std::move(checked));
  {
    Diagnostics binding;
    check_executable(*plan, binding);
    if (binding.has_errors()) {
      if (prints) {
        for (const Diagnostic& d : binding.all()) std::cerr << format_diagnostic(d) << "\n";
      }
      return kExitInvalid;
    }
  }
  const int world = static_cast<int>(plan->world_size());

  // Everything that would fail on every rank is checked once, before any rank starts.
  if (!engine_supports_family(plan->graph().family)) {
    throw RunError(RunError::Code::kUsage, "model family '" + plan->graph().family + "' (model_type " +
                                               plan->graph().model_type +
                                               ") is not supported by the executor yet (it runs llama, mistral, qwen2)");
  }
  const bool cuda = o.device == "cuda";
  if (cuda && !at::hasCUDA()) {
    throw RunError(RunError::Code::kUsage, "--device cuda: this executor's libtorch has no CUDA (or no GPU is visible)");
  }
  run_dtype(plan->spec().dtype, cuda ? at::Device(at::kCUDA, 0) : at::Device(at::kCPU));
  if (!plan->spec().checkpoint_path) {
    throw RunError(RunError::Code::kUsage,
                   o.spec + ": the spec names no model.checkpoint (`executor make-checkpoint` writes one)");
  }
  bind_for_engine(*plan, 0);

  if (!env) {
    if (world > 1) {
      ::setenv(kSpecChecked, "1", 1);
      return run_local_ranks(world, o.argv);
    }
    env = LaunchEnv{};
  } else if (env->world_size != world) {
    throw RunError(RunError::Code::kUsage, "WORLD_SIZE " + std::to_string(env->world_size) +
                                               " from the launcher, but the spec's mesh has world size " +
                                               std::to_string(world));
  }
  if (world > 1) rank_prefix = "rank " + std::to_string(env->rank) + ": ";

  // NOTE: libtorch uses one thread unless told; the ranks on this machine share its cores.
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  at::set_num_threads(std::max(1, cores / local_ranks(world)));

  std::unique_ptr<Communicator> comm;
  if (world > 1) {
    apply_forced_rank_environment();
    CommOptions c;
    c.backend = cuda ? CommBackend::kNccl : CommBackend::kGloo;
    c.rank = env->rank;
    c.world_size = world;
    c.master_addr = env->master_addr;
    c.master_port = env->master_port;
    c.local_rank = env->local_rank;
    c.launcher_hosts_store = env->launcher_hosts_store;
    const auto milliseconds = [](double seconds) { return std::chrono::milliseconds(std::llround(seconds * 1000)); };
    c.timeout = milliseconds(o.collective_timeout_s);
    c.rendezvous_timeout = milliseconds(o.rendezvous_timeout_s);
    c.peer_timeout = milliseconds(o.peer_timeout_s);
    comm = make_communicator(c);
  }
  RankRunOptions r;
  r.device = cuda ? at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(env->local_rank)) : at::Device(at::kCPU);
  r.verify = o.verify;
  r.profile = o.profile;
  r.cuda_graphs = !o.no_cuda_graphs;
  r.logits_out = o.logits_out;
  r.allow_links_outside_checkpoint = o.allow_links_outside_checkpoint;
  if (requests) {
    for (const Request& q : *requests) {
      r.prompt_ids.push_back(q.prompt_ids);
      r.sampling.push_back(q.sampling);
      RequestEnd end{q.max_tokens, q.ignore_eos, {}};
      if (!q.stop.empty() && text) {
        // The request leaves the batch once its text reaches a stop string (cut there afterwards).
        // Checked after every token, so a stop string first appears at the newest one: decoding
        // the last tokens (each gives at least one byte, bar special ones) is enough.
        size_t longest = 0;
        for (const std::string& stop : q.stop) longest = std::max(longest, stop.size());
        Request only_stops;
        only_stops.stop = q.stop;
        end.stopped = [only_stops, window = longest + 16, decoder = text.get()](const std::vector<int64_t>& ids) {
          const size_t from = ids.size() > window ? ids.size() - window : 0;
          std::string reason;
          finish_text(decoder->decode({ids.begin() + static_cast<std::ptrdiff_t>(from), ids.end()}), only_stops, reason);
          return reason == "stop";
        };
      }
      r.ends.push_back(std::move(end));
    }
    r.eos_ids = eos_ids;
    r.pixels = media.pixels;
    r.audio = media.audio;
  }
  r.seed = o.seed;
  r.progress = env->rank == 0;
  const std::optional<RunReport> report = run_rank(*plan, env->rank, comm.get(), r);
  if (!report) return 0;
  if (o.format == "json") {
    std::cout << report_json(*report).dump(2) << "\n";
  } else {
    std::cout << report_text(*report);
  }
  if (requests) write_request_results(*requests, *report, text.get(), eos_ids, o);
  std::cout.flush();
  if (report->verify && !report->verify->passed) {
    std::cerr << "executor: error: --verify: the logits differ from the unsharded run's by a relative error of "
              << report->verify->relative_error << ", more than the " << to_string(plan->spec().dtype)
              << " tolerance " << report->verify->tolerance << " (largest difference "
              << report->verify->max_abs_diff << ")\n";
    return kExitInvalid;
  }
  return 0;
}

}  // namespace

int run_command(const RunOptions& options) {
  std::string rank_prefix;
  const auto fail = [&](int code, const std::string& message) {
    std::cerr << "executor: error: " << rank_prefix << message << "\n";
    return code;
  };
  try {
    return run_checked(options, rank_prefix);
  } catch (const CommError& e) {
    rank_prefix.clear();  // the communicator's messages name the rank, the op and the group
    return fail(e.exit_code(), e.what());
  } catch (const Error& e) {
    return fail(e.exit_code(), e.what());
  } catch (const c10::Error& e) {
    return fail(kExitUsage, std::string("libtorch: ") + e.what_without_backtrace());
  } catch (const std::exception& e) {
    return fail(kExitUsage, std::string("internal error: ") + e.what());
  }
}

}  // namespace shardplan
