// Where this process sits in a run, and the local launcher. Under a launcher (torchrun, Slurm
// wrappers, mpirun: RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT set) the process is
// that one rank; otherwise `executor run` calls run_local_ranks, which starts world_size copies of
// itself with those variables set and supervises them. No torch here (see executor/log/log.h).
//
//   if (std::optional<LaunchEnv> env = launch_env_from_environment()) {
//     ... this process is rank env->rank: make_communicator(...) and run ...
//   } else {
//     return run_local_ranks(plan.world_size, std::vector<std::string>(argv, argv + argc));
//   }
#pragma once

#include <chrono>
#include <optional>
#include <stdexcept>

#include "base/error.h"
#include <string>
#include <utility>
#include <vector>

namespace shardplan {

class LaunchError : public Error {
 public:
  explicit LaunchError(const std::string& message) : Error(2, message) {}
};

struct LaunchEnv {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;  // CUDA device index under NCCL
  std::string master_addr;
  int master_port = 0;
  bool launcher_hosts_store = false;  // TORCHELASTIC_USE_AGENT_STORE=True: torchrun's agent hosts the store
};

// Reads RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT; nullopt when neither RANK nor
// WORLD_SIZE is set (not under a launcher). Checks, each failing with a LaunchError that names
// the variable and its value:
//   - RANK and WORLD_SIZE are both set; every number is a whole decimal integer;
//   - WORLD_SIZE >= 1, 0 <= RANK < WORLD_SIZE, LOCAL_RANK >= 0 (default: RANK);
//   - MASTER_ADDR is set and not empty; MASTER_PORT is set and in [1, 65535].
std::optional<LaunchEnv> launch_env_from_environment();

// Set in every rank's environment, overriding what the user set: NVLink multicast must stay off
// on the GPU hosts (it can put a shared host's GPUs out of service).
const std::vector<std::pair<std::string, std::string>>& forced_rank_environment();
// setenv()s forced_rank_environment() in this process (before NCCL reads it); for ranks started
// by another launcher.
void apply_forced_rank_environment();

// A TCP port on `host` that nobody listens on now (the kernel's pick for port 0).
int find_free_port(const std::string& host = "127.0.0.1");

struct LocalRanksOptions {
  std::string executable = "/proc/self/exe";  // the binary each rank runs
  std::string master_addr = "127.0.0.1";
  int master_port = 0;                         // 0: find_free_port(master_addr)
  std::chrono::milliseconds kill_grace{5000};  // SIGTERM, then SIGKILL after this
  std::chrono::milliseconds timeout{0};        // the whole run; 0: no limit
};

// Starts world_size processes of `executable` with arguments `args` (args[0] is the name they
// see) and RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT and
// forced_rank_environment() added to this environment; waits for all of them.
//   - Output: rank 0's stdout passes through untouched; every other line (rank 0's stderr, the
//     other ranks' stdout and stderr) goes to stderr prefixed "[rank N] ".
//   - When a rank exits non-zero or by a signal: logs "rank N failed (exit code X)" or
//     "rank N failed (signal Y, SIGNAME)", sends SIGTERM to the others and SIGKILL after
//     kill_grace; returns that rank's exit code (kExitRunFault, 3, for a signal).
//   - SIGINT / SIGTERM to this process are forwarded to the ranks (SIGKILL after kill_grace);
//     SIGHUP stops them as SIGTERM does; returns 128 + the signal received.
//   - A run longer than `timeout` is stopped the same way; returns kExitRunFault.
// Returns 0 when every rank exits 0. Throws LaunchError when it cannot start them.
int run_local_ranks(int world_size, const std::vector<std::string>& args, const LocalRanksOptions& options = {});

}  // namespace shardplan
