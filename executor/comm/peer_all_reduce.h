// A one-shot all-reduce for small messages between the GPUs of one host: every member reads every
// other member's buffer directly (NVLink or PCIe peer memory, mapped with CUDA IPC) and sums, in
// one kernel. NCCL's all-reduce costs a latency of several microseconds whatever the size; a
// tensor-parallel decode step runs two per layer on a few kilobytes each, so that latency adds up
// (docs/performance.md). The Communicator (c10d_communicator.cc) picks this path by message size
// and falls back to NCCL for everything else; every member of a group makes the same choice.
//
// Protocol, per call (one kernel, a fixed grid of kBlocks blocks on every member, so that block b
// of every member handles the same elements):
//   1. block b copies its part of the input into this member's buffer (two buffers, alternating
//      per call, so a call's writes never meet a slow peer still reading the previous call's);
//   2. block b tells every peer that its part is there (a flag per (block, member) in the peer's
//      memory, release at system scope) and waits for every peer's flag (acquire);
//   3. block b sums its part over the members' buffers, in member order, in float32 for 16-bit
//      types, and writes the output: every member gets the same bits.
// A call's number (its flag value) counts per block in device memory, so the kernel replays in a
// CUDA graph. A flag that does not come within the time-out traps the kernel (a CUDA error on the
// next call that waits for the device; a peer that died is named by peer liveness first).
//
// No libtorch and no CUDA headers here: raw pointers, CUDA streams as void*.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace shardplan {

enum class PeerDtype { kFloat32, kFloat16, kBFloat16 };

// What one member's kernel reads and writes: each member's region (this member's own and the
// peers', mapped into this process), in member order.
struct PeerView {
  static constexpr int kMaxMembers = 8;
  int member = 0;           // this member's index in the group
  int size = 0;             // members, 2..kMaxMembers
  void* regions[kMaxMembers] = {};
  size_t max_bytes = 0;     // the largest message (each region holds two buffers of this size)
  uint64_t timeout_ns = 0;  // how long a block waits for a peer's flag before trapping
};

// Bytes of one member's region for messages of up to `max_bytes`.
size_t peer_region_bytes(size_t max_bytes);
// Zeroes a region's flags and counters (before any member's first call; asynchronous on `stream`).
void peer_region_reset(void* region, void* stream);
// out = the sum over members of each member's `in` ([count] elements of `dtype`; out may be in).
// Every member calls it with the same count and dtype, in the same order as its other calls on
// the group. Asynchronous on `stream`; throws std::runtime_error if the launch fails.
void peer_all_reduce(const PeerView& view, const void* in, void* out, int64_t count, PeerDtype dtype, void* stream);

// One group's regions, mapped through CUDA IPC. `exchange(key, mine)` gives every member's
// `mine` in member order (through the run's store; a member blocks until all have given theirs).
class PeerGroup {
 public:
  using Exchange = std::function<std::vector<std::string>(const std::string& key, const std::string& mine)>;

  // The group, or null with `why_not` set when its members cannot read each other's memory: not
  // all on one host, no peer access between two of their GPUs, a CUDA IPC failure, or a limit of
  // 0 on a member (turned off). Every member gets the same answer (the verdicts are exchanged).
  // Members whose `max_bytes` differ throw std::invalid_argument (all of them). `device`: this
  // member's GPU.
  static std::unique_ptr<PeerGroup> open(int member, int size, int device, size_t max_bytes, uint64_t timeout_ns,
                                         const Exchange& exchange, std::string* why_not);
  // At the end of a run that did not fail, on every member: waits (at most `timeout_ns`) until
  // every member's calls have ended, then unmaps the peers' regions and frees this member's.
  // False when that wait failed (the memory is then kept).
  bool close(void* stream, uint64_t timeout_ns);
  ~PeerGroup();  // frees nothing of a group that opened and was not closed (a failed run)
  PeerGroup(const PeerGroup&) = delete;
  PeerGroup& operator=(const PeerGroup&) = delete;

  size_t max_bytes() const { return view_.max_bytes; }
  void all_reduce(const void* in, void* out, int64_t count, PeerDtype dtype, void* stream) const {
    peer_all_reduce(view_, in, out, count, dtype, stream);
  }

 private:
  PeerGroup() = default;
  void release();  // unmaps the peers' regions, frees this member's
  PeerView view_;
  int device_ = 0;
  bool opened_ = false, closed_ = false;
};

}  // namespace shardplan
