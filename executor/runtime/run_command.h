// `executor run --spec SPEC [--device cpu|cuda] [--verify] [--format text|json] [--seed N]`
// (spec-format.md §6): checks the spec with the planner, then either is one rank (under a
// launcher: RANK, WORLD_SIZE, ... set) or starts the mesh's world size of local ranks, each of
// which runs executor/runtime/rank_run.h; rank 0 prints the report. No libtorch in this header:
// the CLI's main includes spdlog.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace shardplan {

struct RunOptions {
  std::string spec;
  std::string device = "cpu";    // cpu | cuda
  bool verify = false;
  bool profile = false;          // --profile: time by module kind (CUDA events)
  bool no_cuda_graphs = false;   // --no-cuda-graphs: every decode step eagerly
  std::string format = "text";   // text | json
  uint64_t seed = 0;             // of the random prompts
  std::string logits_out;        // write the run's logits (.npy), [new_tokens, requests, vocab]
  bool allow_links_outside_checkpoint = false;  // read checkpoint files that link outside its folder
  std::string requests;          // --requests FILE.jsonl (request_file.h); empty: the spec's workload
  std::string output;            // --output OUT.jsonl: one result a request (with --requests)
  std::string tokenizer;         // --tokenizer DIR: tokenizer.json's folder (default: the checkpoint's)
  double collective_timeout_s = 60;   // a collective waits this long for its group
  double rendezvous_timeout_s = 120;  // every rank joins within this (the missing ones are named)
  double peer_timeout_s = 8;          // a peer silent this long is declared dead (named within ~2 s more)
  std::vector<std::string> argv; // the whole command line, to start the local ranks with
};

// Returns the exit code: 0 done (and --verify within tolerance); 1 the spec is invalid (the
// planner's diagnostics on stderr) or --verify found logits outside the tolerance; 2 usage or
// I/O error, an unsupported model or plan; 3 a rank failed, was killed or stopped, never joined,
// or a collective timed out (base/error.h); 128 + N interrupted by signal N. Errors go to stderr as
// "executor: error: ..." (with "rank N: " in a world of several ranks).
int run_command(const RunOptions& options);

}  // namespace shardplan
