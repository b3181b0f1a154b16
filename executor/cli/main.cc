// The `executor` command line: one CLI11 subcommand per verb (run, make-checkpoint; run's logic
// lives in executor/runtime/run_command.h). Every error is printed as "executor: error: ..." on
// stderr and becomes an exit code:
// 0 ok, 1 invalid input (a checkpoint or graph that makes no sense), 2 usage or I/O error.
#include <cstdint>
#include <exception>
#include <filesystem>
#include <iostream>
#include <optional>
#include <string>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "base/error.h"
#include "base/interrupt.h"
#if SHARDPLAN_WITH_REQUESTS
#include "executor/cli/tokenize_command.h"
#endif
#include "executor/runtime/bandwidth.h"
#include "executor/runtime/calibrate.h"
#include "executor/sweep/measured_sweep.h"
#include "executor/runtime/run_command.h"
#include "executor/weights/checkpoint_writer.h"
#include "models/graph/model_graph.h"
#include "models/graph/registry.h"

namespace shardplan {
namespace {

int fail(int code, const std::string& message) {
  std::cerr << "executor: error: " << message << "\n";
  return code;
}

// Runs a subcommand, turning every exception into its documented exit code.
template <typename Fn>
int guarded(Fn&& fn) {
  try {
    return fn();
  } catch (const Error& e) {
    return fail(e.exit_code(), e.what());
  } catch (const std::filesystem::filesystem_error& e) {
    return fail(kExitUsage, e.what());
  } catch (const std::exception& e) {
    return fail(kExitUsage, fmt::format("internal error: {}", e.what()));
  }
}

struct MakeCheckpointOptions {
  std::string config;
  std::string out;
  uint64_t seed = 0;
  std::string dtype;  // empty: the config's torch_dtype
  std::string max_shard_size = std::to_string(kDefaultMaxShardBytes);
};

void add_make_checkpoint(CLI::App& app, MakeCheckpointOptions& opts) {
  CLI::App* cmd = app.add_subcommand(
      "make-checkpoint", "Write deterministic random weights for a config.json in the Hugging Face Hub layout");
  cmd->add_option("--config", opts.config, "Hugging Face config.json")->required();
  cmd->add_option("--out", opts.out, "Output directory (created if missing)")->required();
  cmd->add_option("--seed", opts.seed, "Seed: the same seed gives the same bytes")
      ->check(CLI::Validator(
          [](std::string& text) {
            return !text.empty() && text[0] == '-' ? "must be a non-negative integer, got " + text : std::string();
          },
          "UINT"))
      ->capture_default_str();
  cmd->add_option("--dtype", opts.dtype, "float32 | bfloat16 | float16 (default: the config's torch_dtype)")
      ->check(CLI::IsMember({"float32", "bfloat16", "float16"}));
  cmd->add_option("--max-shard-size", opts.max_shard_size,
                  "Largest file before splitting, in bytes or with a unit (500MB, 2GiB)")
      ->capture_default_str();
}

int run_make_checkpoint(const MakeCheckpointOptions& opts) {
  const std::optional<uint64_t> max_shard = parse_byte_size(opts.max_shard_size);
  if (!max_shard) {
    return fail(kExitUsage, fmt::format("--max-shard-size '{}' is not a positive size (e.g. 2147483648, 500MB, 2GiB)",
                                        opts.max_shard_size));
  }
  const ModelGraph graph = load_model_graph(opts.config);
  const DType dtype = opts.dtype.empty() ? graph.config_dtype : *parse_dtype(opts.dtype);
  const InterruptGuard interrupts;  // Ctrl-C leaves no .tmp files behind
  const WrittenCheckpoint written = write_random_checkpoint(graph, opts.out, opts.seed, dtype, *max_shard);
  std::cout << fmt::format("wrote {} tensors, {} bytes of {} (seed {}) to {}:\n", written.tensors,
                           written.tensor_bytes, to_string(dtype), opts.seed, opts.out);
  for (const std::string& file : written.files) std::cout << "  " << file << "\n";
  return 0;
}

void add_run(CLI::App& app, RunOptions& opts) {
  CLI::App* cmd = app.add_subcommand("run", "Run a spec's workload (prefill, greedy decoding) on its mesh and report");
  cmd->add_option("--spec", opts.spec, "Sharding spec (YAML)")->required();
  cmd->add_option("--device", opts.device, "cpu | cuda")->check(CLI::IsMember({"cpu", "cuda"}))->capture_default_str();
  cmd->add_flag("--verify", opts.verify, "Also run the unsharded model on one device and compare the logits");
  cmd->add_flag("--profile", opts.profile,
                "Time every module and collective by kind (CUDA events, read once per step) and report it "
                "(decode steps then run eagerly)");
  cmd->add_flag("--no-cuda-graphs", opts.no_cuda_graphs,
                "Run every decode step eagerly instead of replaying its CUDA graph (CUDA only)");
  cmd->add_option("--logits-out", opts.logits_out,
                  "Write the run's logits [new_tokens, requests, vocab] as float32 .npy");
  cmd->add_flag("--allow-links-outside-checkpoint", opts.allow_links_outside_checkpoint,
                "Read checkpoint files that are symlinks to files outside the checkpoint directory "
                "(e.g. a Hub cache snapshot); refused otherwise");
  cmd->add_option("--requests", opts.requests,
                  "JSON Lines of requests ({\"prompt\": TEXT | \"prompt_token_ids\": [...], \"max_tokens\": N, "
                  "\"temperature\", \"top_p\", \"top_k\", \"seed\", \"stop\", \"ignore_eos\"}) replacing the "
                  "workload's random prompts (docs/executor-run.md)");
  cmd->add_option("--output", opts.output, "With --requests: one JSON line a request (text, tokens, finish reason)");
  cmd->add_option("--tokenizer", opts.tokenizer,
                  "With --requests: the folder of tokenizer.json (default: the checkpoint's)");
  cmd->add_option("--format", opts.format, "text | json")->check(CLI::IsMember({"text", "json"}))->capture_default_str();
  cmd->add_option("--seed", opts.seed, "Seed of the random prompts")
      ->check(CLI::Validator(
          [](std::string& text) {
            return !text.empty() && text[0] == '-' ? "must be a non-negative integer, got " + text : std::string();
          },
          "UINT"))
      ->capture_default_str();
  const auto seconds_option = [&](const char* name, double& value, double least, const char* help) {
    cmd->add_option(name, value, help)->check(CLI::Range(least, 86400.0))->capture_default_str();
  };
  seconds_option("--collective-timeout", opts.collective_timeout_s, 1,
                 "Seconds a collective may wait for its group before the run fails naming it");
  seconds_option("--rendezvous-timeout", opts.rendezvous_timeout_s, 1,
                 "Seconds every rank has to join at MASTER_ADDR:MASTER_PORT (the missing ones are named every 10 s)");
  // NOTE: heartbeats come every second: a shorter time-out would declare live peers dead.
  seconds_option("--peer-timeout", opts.peer_timeout_s, 3,
                 "Seconds without a peer's heartbeat before it is declared dead and the run stops naming it");
}

void add_bandwidth(CLI::App& app, BandwidthOptions& opts) {
  CLI::App* cmd = app.add_subcommand(
      "bandwidth", "Measure device memory bandwidth (a large copy), for the decode bound of bench/");
  cmd->add_option("--device", opts.device, "cpu | cuda")->check(CLI::IsMember({"cpu", "cuda"}))->capture_default_str();
  cmd->add_option("--bytes", opts.bytes, "Bytes of the buffer copied")->check(CLI::Range(int64_t{1} << 20, int64_t{1} << 36))->capture_default_str();
  cmd->add_option("--repeats", opts.repeats, "Timed copies (the median is reported)")->check(CLI::Range(1, 1000))->capture_default_str();
  cmd->add_option("--format", opts.format, "text | json")->check(CLI::IsMember({"text", "json"}))->capture_default_str();
}

void add_calibrate(CLI::App& app, CalibrateOptions& opts) {
  CLI::App* cmd = app.add_subcommand(
      "calibrate", "Measure the device for planner sweep's cost model; writes a hardware file (hardware/*.yaml)");
  cmd->add_option("--device", opts.device, "cpu | cuda")->check(CLI::IsMember({"cpu", "cuda"}))->capture_default_str();
  cmd->add_option("--base", opts.base, "Preset (h100, h200) or hardware file giving what is not measured (links)")
      ->capture_default_str();
  cmd->add_option("-o,--output", opts.output, "The hardware file to write (default: stdout)");
  cmd->add_option("--format", opts.format, "yaml (a hardware file) | json")
      ->check(CLI::IsMember({"yaml", "json"}))
      ->capture_default_str();
  cmd->add_flag("--quick", opts.quick, "Fewer, smaller measurements (seconds; for tests)");
  cmd->add_option("--ranks", opts.ranks,
                  "Also time all_reduce, all_gather and reduce_scatter over 2..N local ranks (one GPU each on cuda)")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
}

void add_sweep(CLI::App& app, MeasuredSweepOptions& opts) {
  CLI::App* cmd = app.add_subcommand(
      "sweep", "Run the specs planner sweep wrote to DIR and compare each with its prediction (docs/sweep.md)");
  cmd->add_option("dirs", opts.dirs,
                  "planner sweep's -o folders (sweep.json, rank-NN.yaml); several: one per model and workload, "
                  "accuracy over all")
      ->required();
  cmd->add_option("--device", opts.device, "cpu | cuda")->check(CLI::IsMember({"cpu", "cuda"}))->capture_default_str();
  cmd->add_option("--checkpoint", opts.checkpoint,
                  "Weights for specs without model.checkpoint (default: random weights, made once)");
  cmd->add_option("-o,--output", opts.output, "Results folder (default: DIR/measured; required with several DIRs)");
  cmd->add_option("--top", opts.top, "Run only the first N specs (0: all)")->check(CLI::NonNegativeNumber);
  cmd->add_flag("--resume", opts.resume,
                "Reuse the results folder's report of a spec run before with the same text instead of running it");
}

// The executor binary itself, for the child runs of `executor sweep`.
std::string self_path(const char* argv0) {
  std::error_code ec;
  const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string(argv0) : self.string();
}

int run_main(int argc, char** argv) {
  CLI::App app{"shardplan executor: runs a sharding plan; make-checkpoint writes test weights", "executor"};
  app.set_version_flag("--version", std::string("executor (shardplan) ") + SHARDPLAN_VERSION + ", libtorch " +
                                        SHARDPLAN_TORCH_VERSION);
  app.require_subcommand(1);
  RunOptions run;
  add_run(app, run);
  MakeCheckpointOptions make_checkpoint;
  add_make_checkpoint(app, make_checkpoint);
  BandwidthOptions bandwidth;
  add_bandwidth(app, bandwidth);
  CalibrateOptions calibrate;
  add_calibrate(app, calibrate);
  MeasuredSweepOptions sweep;
  add_sweep(app, sweep);
#if SHARDPLAN_WITH_REQUESTS
  TokenizeOptions tokenize;
  add_tokenize_command(app, tokenize);
#endif

  // NOTE: CLI11 reports an unknown first word as "A subcommand is required"; name it instead.
  if (argc >= 2 && argv[1][0] != '-') {
    std::string names;
    bool known = false;
    for (const CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) {
      known = known || sub->get_name() == argv[1];
      names += (names.empty() ? "" : ", ") + sub->get_name();
    }
    if (!known) return fail(kExitUsage, fmt::format("unknown subcommand '{}' (known: {})", argv[1], names));
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help
    fail(kExitUsage, e.what());
    std::cerr << "Run with --help for more information.\n";
    return kExitUsage;
  }

  auto logger = spdlog::stderr_color_mt("executor");
  logger->set_pattern("executor: %v");
  spdlog::set_default_logger(logger);

  if (app.got_subcommand("run")) {
    run.argv.assign(argv, argv + argc);
    return run_command(run);  // prints its own errors and returns the exit code
  }
  if (app.got_subcommand("bandwidth")) return bandwidth_command(bandwidth);
#if SHARDPLAN_WITH_REQUESTS
  if (app.got_subcommand("tokenize")) return tokenize_command(tokenize);
#endif
  if (app.got_subcommand("calibrate")) {
    calibrate.argv.assign(argv, argv + argc);
    return calibrate_command(calibrate);
  }
  if (app.got_subcommand("sweep")) {
    sweep.executor = self_path(argv[0]);
    return measured_sweep_command(sweep);
  }
  if (app.got_subcommand("make-checkpoint")) return guarded([&] { return run_make_checkpoint(make_checkpoint); });
  return fail(kExitUsage, "no subcommand");
}

}  // namespace
}  // namespace shardplan

int main(int argc, char** argv) {
  try {
    return shardplan::run_main(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "executor: error: internal error: " << e.what() << "\n";
    return 2;
  }
}
