// The one interface through which the executor runs collectives: NCCL on CUDA, Gloo (libtorch's
// c10d) on CPU. The runtime binds the plan's collectives (planner Plan::comms) to these calls;
// model code never picks a collective itself.
//
// Groups are lists of global ranks, exactly as the plan prints them ({dp: 2, tp: 4}: the tp
// groups are [0,1,2,3] and [4,5,6,7]); a call passes the group that holds the calling rank, and
// "group order" means the order of that list. Every group a run will use is announced up front
// (create_groups), in the same order on every rank, so that group set-up cannot deadlock.
//
// Failures: every call names what it is for (`what`, e.g. "all_reduce[tp] after
// model.layers.3.self_attn"); an error or a time-out raises CommError with this rank, the op,
// the group and `what`.
#pragma once

#include <ATen/core/Tensor.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <stdexcept>

#include "base/error.h"
#include <string>
#include <vector>

namespace shardplan {

using RankList = std::vector<int64_t>;

// A collective, rendezvous or peer failure (exit code 2); the message names the rank, the op and
// the group.
class CommError : public Error {
 public:
  // kExitRunFault unless the fault is the caller's (a bad option, a build without the backend).
  explicit CommError(const std::string& message, int exit_code = kExitRunFault) : Error(exit_code, message) {}
};

enum class CommBackend { kGloo, kNccl };

struct CommOptions {
  CommBackend backend = CommBackend::kGloo;
  int rank = 0;
  int world_size = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  int local_rank = 0;                       // CUDA device index under NCCL
  std::chrono::milliseconds timeout{60000}; // per collective; a hung peer surfaces within it
  // Every rank must have joined within this; the missing ones are named in the error.
  std::chrono::milliseconds rendezvous_timeout{120000};
  // While the rendezvous waits, a line every this often names what it waits for.
  std::chrono::milliseconds rendezvous_report_every{10000};
  // A peer whose heartbeat has not moved for this long is declared dead (peer_liveness.h); the
  // message naming it comes at most two heartbeats (2 s) later.
  std::chrono::milliseconds peer_timeout{8000};
  // The launcher already hosts the TCP store at master_addr:master_port (torchrun sets
  // TORCHELASTIC_USE_AGENT_STORE=True): rank 0 connects to it instead of hosting one.
  bool launcher_hosts_store = false;
  // NCCL groups of 2 to 8 ranks on one host: an all-reduce of at most this many bytes runs the
  // one-shot kernel over peer memory (peer_all_reduce.h) instead of NCCL; 0: NCCL for every size.
  // The environment's SHARDPLAN_PEER_ALL_REDUCE_MAX_BYTES replaces it (the same on every rank).
  size_t peer_all_reduce_max_bytes = 512 * 1024;
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;

  // Sets up every group of the run, in the same order on every rank (ranks not in a group skip it).
  virtual void create_groups(const std::vector<RankList>& groups) = 0;

  // Sum over the group, in place. bf16/fp16 are reduced in fp32 where the backend cannot (Gloo).
  virtual void all_reduce(at::Tensor& t, const RankList& group, const std::string& what) = 0;
  // Concatenation along `dim` of every member's tensor, in group order (equal shapes).
  virtual at::Tensor all_gather(const at::Tensor& t, int64_t dim, const RankList& group,
                                const std::string& what) = 0;
  // Sum over the group, then this member's equal slice along `dim` (in group order).
  virtual at::Tensor reduce_scatter(const at::Tensor& t, int64_t dim, const RankList& group,
                                    const std::string& what) = 0;
  // Rows along dim 0: send_counts[i] rows go to group member i (in order), recv_counts[i] rows
  // come from member i; the result stacks what was received in group order.
  virtual at::Tensor all_to_all(const at::Tensor& t, const std::vector<int64_t>& send_counts,
                                const std::vector<int64_t>& recv_counts, const RankList& group,
                                const std::string& what) = 0;
  virtual void broadcast(at::Tensor& t, int64_t root, const RankList& group,
                         const std::string& what) = 0;
  virtual void barrier(const std::string& what) = 0;
  // Whether the collectives may be captured in a CUDA graph: enqueued on the device without the
  // host waiting for them (NCCL). The engine runs its decode eagerly over any other.
  virtual bool capturable() const { return false; }
};

// Rendezvous through a TCP store at master_addr:master_port (rank 0 hosts it). Throws CommError.
std::unique_ptr<Communicator> make_communicator(const CommOptions& options);

}  // namespace shardplan
