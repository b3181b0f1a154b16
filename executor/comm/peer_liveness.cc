// Heartbeat and watchdog threads over the run's TCP store (see peer_liveness.h).
#include "executor/comm/peer_liveness.h"

#include <c10/util/Exception.h>
#include <unistd.h>

#include <cstdio>
#include <exception>

#include "base/error.h"

namespace shardplan {
namespace {

using Clock = std::chrono::steady_clock;

std::string heartbeat_key(int rank) { return "hb/" + std::to_string(rank); }
std::string left_key(int rank) { return "left/" + std::to_string(rank); }

std::string seconds_text(Clock::duration d) {
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%.1fs", std::chrono::duration<double>(d).count());
  return buffer;
}

std::string exception_text(const std::exception& e) {
  if (const auto* c10_error = dynamic_cast<const c10::Error*>(&e)) return c10_error->what_without_backtrace();
  return e.what();
}

}  // namespace

PeerLiveness::PeerLiveness(c10::intrusive_ptr<c10d::Store> store, PeerLivenessOptions options)
    : store_(std::move(store)), options_(std::move(options)) {
  const Clock::time_point now = Clock::now();
  peers_.assign(static_cast<size_t>(options_.world_size), Peer{-1, now, 0});
  last_round_ = now;
  heartbeat_ = std::thread([this] { heartbeat_loop(); });
  watchdog_ = std::thread([this] { watchdog_loop(); });
}

PeerLiveness::~PeerLiveness() { leave(false, std::chrono::milliseconds(0)); }

void PeerLiveness::set_activity(const std::string& activity) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (activity.empty() && !activity_.empty()) last_activity_.swap(activity_);
  activity_ = activity;
}

std::optional<std::string> PeerLiveness::departed_member(const RankList& group) const {
  std::lock_guard<std::mutex> lock(mutex_);
  for (int64_t member : group) {
    if (member == options_.rank || member < 0 || member >= options_.world_size) continue;
    const int64_t left = peers_[static_cast<size_t>(member)].left;
    if (left != 0) {
      return "rank " + std::to_string(member) + " has shut down its communicator" +
             (left == 2 ? " after an error" : " (it finished)");
    }
  }
  return std::nullopt;
}

bool PeerLiveness::stopping() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stop_;
}

void PeerLiveness::heartbeat_loop() {
  std::vector<std::pair<int64_t, int64_t>> reads(peers_.size());
  while (true) {
    try {
      store_->add(heartbeat_key(options_.rank), 1);
      for (int p = 0; p < options_.world_size; ++p) {
        if (p == options_.rank) continue;
        reads[static_cast<size_t>(p)] = {store_->add(heartbeat_key(p), 0), store_->add(left_key(p), 0)};
      }
      std::lock_guard<std::mutex> lock(mutex_);
      const Clock::time_point now = Clock::now();
      for (int p = 0; p < options_.world_size; ++p) {
        if (p == options_.rank) continue;
        Peer& peer = peers_[static_cast<size_t>(p)];
        if (reads[static_cast<size_t>(p)].first != peer.beats) {
          peer.beats = reads[static_cast<size_t>(p)].first;
          peer.last_change = now;
        }
        peer.left = reads[static_cast<size_t>(p)].second;
      }
      last_round_ = now;
      store_failing_since_.reset();
    } catch (const std::exception& e) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!store_failing_since_) store_failing_since_ = Clock::now();
      store_error_ = exception_text(e);
    }
    std::unique_lock<std::mutex> lock(mutex_);
    if (wake_.wait_for(lock, options_.interval, [this] { return stop_; })) return;
  }
}

void PeerLiveness::watchdog_loop() {
  while (true) {
    std::string cause;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      if (wake_.wait_for(lock, options_.interval, [this] { return stop_; })) return;
      const Clock::time_point now = Clock::now();
      // NOTE: the store is checked first: while it is down no heartbeat can be read, and every
      // peer would look dead.
      if (store_failing_since_ && now - *store_failing_since_ >= 2 * options_.interval) {
        cause = options_.store_owner + " stopped responding (the TCP store is unreachable: " + store_error_ + ")";
      } else if (now - last_round_ > options_.stale_after) {
        cause = options_.store_owner + " stopped responding (the TCP store has not answered for " +
                seconds_text(now - last_round_) + ")";
      } else {
        for (int p = 0; p < options_.world_size && cause.empty(); ++p) {
          const Peer& peer = peers_[static_cast<size_t>(p)];
          if (p == options_.rank || peer.left != 0) continue;
          if (now - peer.last_change > options_.stale_after) {
            cause = "rank " + std::to_string(p) + " stopped responding (" +
                    (peer.beats < 0 ? std::string("no heartbeat seen for ") : std::string("last heartbeat ")) +
                    seconds_text(now - peer.last_change) + (peer.beats < 0 ? ")" : " ago)");
          }
        }
      }
    }
    if (!cause.empty()) report_and_exit(cause);
  }
}

void PeerLiveness::report_and_exit(const std::string& cause) {
  std::string message = "rank " + std::to_string(options_.rank) + ": " + cause;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!activity_.empty()) {
      message += " during " + activity_;
    } else if (!last_activity_.empty()) {
      message += " while not in a collective (the last one was " + last_activity_ + ")";
    } else {
      message += " before any collective";
    }
  }
  message += "; exiting\n";
  // NOTE: raw write(2) and _exit: the main thread may be stuck inside a collective (holding locks
  // that logging or destructors would need), and nothing else in the process should run now.
  const char* data = message.data();
  size_t remaining = message.size();
  while (remaining > 0) {
    const ssize_t written = ::write(STDERR_FILENO, data, remaining);
    if (written <= 0) break;
    data += written;
    remaining -= static_cast<size_t>(written);
  }
  if (options_.hosts_store) std::this_thread::sleep_for(3 * options_.interval);
  ::_exit(kExitRunFault);
}

void PeerLiveness::leave(bool failed, std::chrono::milliseconds wait_for_peers) {
  if (left_.exchange(true)) return;
  try {
    store_->add(left_key(options_.rank), failed ? 2 : 1);
  } catch (const std::exception&) {
    // The store is gone: there is nobody left to tell.
  }
  const Clock::time_point deadline = Clock::now() + wait_for_peers;
  while (Clock::now() < deadline) {
    bool all_left = true;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (int p = 0; p < options_.world_size; ++p) {
        if (p != options_.rank && peers_[static_cast<size_t>(p)].left == 0) all_left = false;
      }
    }
    if (all_left) break;
    std::this_thread::sleep_for(options_.interval / 4);
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  if (heartbeat_.joinable()) heartbeat_.join();
  if (watchdog_.joinable()) watchdog_.join();
}

}  // namespace shardplan
