// Peer liveness: a rank that dies or freezes mid-run makes every other rank stop within a bounded
// time with a message naming it, with or without our own launcher watching the processes.
//
// Every rank runs two threads over its own connection to the run's TCP store:
//   - heartbeat: every `interval`, adds 1 to "hb/<rank>" and reads every peer's "hb/<p>" and
//     "left/<p>" counters (store `add`, never a blocking `get`);
//   - watchdog: every `interval`, declares a peer dead when its counter has not moved for
//     `stale_after` (measured on this rank's steady clock, so clocks need not agree), and the store
//     dead when it fails or stops answering; it then prints
//       rank 1: rank 2 stopped responding (last heartbeat 10.4s ago) during all_reduce over group
//       [0,1,2,3] ("all_reduce[tp] after model.layers.3.mlp")
//     and ends the process with exit code 3, kExitRunFault (_exit: a collective stuck on the
//     dead peer could block any orderly teardown).
// A rank that shuts its communicator down sets "left/<rank>" first (1: finished, 2: during an
// exception), so peers neither mistake its silence for death nor wait on it: a collective that
// fails because a member left names that member. Rank 0 hosts the store, so it keeps it (and its
// heartbeat) alive until every peer has left or `leave_wait` has passed.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <torch/csrc/distributed/c10d/Store.hpp>
#include <vector>

#include "executor/comm/communicator.h"

namespace shardplan {

struct PeerLivenessOptions {
  int rank = 0;
  int world_size = 1;
  // "rank 0 (which hosts the TCP store at 127.0.0.1:29500)"; named when the store fails.
  std::string store_owner = "rank 0";
  // This rank hosts the store: before it exits on a verdict it keeps the store up for a few
  // intervals, so that the peers name the dead rank too rather than the vanished store.
  bool hosts_store = false;
  std::chrono::milliseconds interval{1000};
  std::chrono::milliseconds stale_after{10000};
};

class PeerLiveness {
 public:
  // `store` must be a connection of its own (not the one the process groups block on).
  PeerLiveness(c10::intrusive_ptr<c10d::Store> store, PeerLivenessOptions options);
  ~PeerLiveness();  // leave(false, 0) when leave() was not called
  PeerLiveness(const PeerLiveness&) = delete;
  PeerLiveness& operator=(const PeerLiveness&) = delete;

  // The collective in flight, for the watchdog's message; "" when none.
  void set_activity(const std::string& activity);

  // "rank 2 has shut down its communicator (after an error)" for the first member of `group`
  // (other than this rank) that has left; nullopt when none has.
  std::optional<std::string> departed_member(const RankList& group) const;

  // How long a caller should wait for the watchdog to name a dead peer after a collective failed.
  std::chrono::milliseconds verdict_time() const { return options_.stale_after + 2 * options_.interval; }

  // Announces that this rank leaves (failed: during an exception) and stops the threads; the
  // store's host first waits, heartbeating, until every peer has left (at most `wait_for_peers`).
  void leave(bool failed, std::chrono::milliseconds wait_for_peers);

 private:
  struct Peer {
    int64_t beats = -1;  // last counter read
    std::chrono::steady_clock::time_point last_change;
    int64_t left = 0;  // 0: running, 1: finished, 2: failed
  };

  void heartbeat_loop();
  void watchdog_loop();
  [[noreturn]] void report_and_exit(const std::string& cause);
  bool stopping() const;

  c10::intrusive_ptr<c10d::Store> store_;
  PeerLivenessOptions options_;

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::vector<Peer> peers_;  // indexed by rank
  std::string activity_;
  std::string last_activity_;
  std::chrono::steady_clock::time_point last_round_;  // last completed heartbeat round
  std::optional<std::chrono::steady_clock::time_point> store_failing_since_;
  std::string store_error_;

  std::atomic<bool> left_{false};
  std::thread heartbeat_;
  std::thread watchdog_;
};

}  // namespace shardplan
