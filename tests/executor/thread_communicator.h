// An in-process Communicator for tests: every rank is a thread of the test, and collectives meet
// in a shared hub. It checks what the real one relies on: every group was announced with
// create_groups, the caller is in the group, and all members call the same collective (same
// `what`) in the same order. bf16 / fp16 sums are done in fp32 and cast back, as Gloo's are.
#pragma once

#include <ATen/ATen.h>

#include <chrono>
#include <condition_variable>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "executor/comm/communicator.h"

namespace shardplan::testing {

class ThreadHub {
 public:
  explicit ThreadHub(int world_size) : world_size_(world_size) {}
  int world_size() const { return world_size_; }

  // Every member's tensor of one collective, in group order (each member gets the same list).
  std::vector<at::Tensor> exchange(int rank, const RankList& group, const at::Tensor& t, const std::string& what) {
    std::unique_lock<std::mutex> lock(mu_);
    const int64_t seq = next_[{rank, group}]++;
    Round& round = rounds_[{group, seq}];
    if (round.inputs.empty()) {
      round.inputs.resize(group.size());
      round.what = what;
    } else if (round.what != what) {
      throw CommError("rank " + std::to_string(rank) + " called '" + what + "' while another member called '" +
                      round.what + "'");
    }
    size_t index = 0;
    while (index < group.size() && group[index] != rank) ++index;
    round.inputs[index] = t.detach().clone();
    ++round.arrived;
    cv_.notify_all();
    if (!cv_.wait_for(lock, std::chrono::seconds(60), [&] { return round.arrived == group.size(); })) {
      throw CommError("rank " + std::to_string(rank) + ": time-out in " + what);
    }
    std::vector<at::Tensor> out = round.inputs;
    if (++round.left == group.size()) rounds_.erase({group, seq});
    return out;
  }

 private:
  struct Round {
    std::vector<at::Tensor> inputs;
    std::string what;
    size_t arrived = 0, left = 0;
  };
  int world_size_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::pair<int, RankList>, int64_t> next_;
  std::map<std::pair<RankList, int64_t>, Round> rounds_;
};

class ThreadCommunicator : public Communicator {
 public:
  ThreadCommunicator(std::shared_ptr<ThreadHub> hub, int rank) : hub_(std::move(hub)), rank_(rank) {}

  int rank() const override { return rank_; }
  int world_size() const override { return hub_->world_size(); }

  void create_groups(const std::vector<RankList>& groups) override {
    for (const RankList& g : groups) groups_.insert(g);
  }

  void all_reduce(at::Tensor& t, const RankList& group, const std::string& what) override {
    const std::vector<at::Tensor> all = exchange(group, t, "all_reduce " + what);
    at::Tensor sum = at::zeros_like(t, at::TensorOptions().dtype(at::kFloat));
    for (const at::Tensor& x : all) sum += x.to(at::kFloat);
    t.copy_(sum.to(t.scalar_type()));
  }
  at::Tensor all_gather(const at::Tensor& t, int64_t dim, const RankList& group, const std::string& what) override {
    return at::cat(exchange(group, t, "all_gather " + what), dim);
  }
  at::Tensor reduce_scatter(const at::Tensor& t, int64_t dim, const RankList& group, const std::string& what) override {
    const std::vector<at::Tensor> all = exchange(group, t, "reduce_scatter " + what);
    at::Tensor sum = at::zeros_like(t, at::TensorOptions().dtype(at::kFloat));
    for (const at::Tensor& x : all) sum += x.to(at::kFloat);
    return sum.to(t.scalar_type()).chunk(static_cast<int64_t>(group.size()), dim)[index_in(group)].contiguous();
  }
  at::Tensor all_to_all(const at::Tensor& t, const std::vector<int64_t>& send_counts,
                        const std::vector<int64_t>& recv_counts, const RankList& group, const std::string& what) override {
    // The counts travel first (not recorded as a call), then every member's rows.
    const at::Tensor counts = at::tensor(send_counts, at::TensorOptions().dtype(at::kLong));
    const std::vector<at::Tensor> all_counts = hub_->exchange(rank_, group, counts, "all_to_all counts " + what);
    const std::vector<at::Tensor> all = exchange(group, t, "all_to_all " + what);
    const int64_t me = static_cast<int64_t>(index_in(group));
    std::vector<at::Tensor> parts;
    for (size_t j = 0; j < group.size(); ++j) {
      const int64_t offset = all_counts[j].narrow(0, 0, me).sum().item<int64_t>();
      const int64_t n = all_counts[j][me].item<int64_t>();
      if (n != recv_counts.at(j)) {
        throw CommError("rank " + std::to_string(rank_) + ": all_to_all " + what + " expects " +
                        std::to_string(recv_counts[j]) + " rows from member " + std::to_string(j) + ", gets " +
                        std::to_string(n));
      }
      parts.push_back(all[j].narrow(0, offset, n));
    }
    return at::cat(parts, 0);
  }
  void broadcast(at::Tensor& t, int64_t root, const RankList& group, const std::string& what) override {
    const std::vector<at::Tensor> all = exchange(group, t, "broadcast " + what);
    for (size_t i = 0; i < group.size(); ++i) {
      if (group[i] == root) t.copy_(all[i]);
    }
  }
  void barrier(const std::string& what) override {
    RankList world;
    for (int r = 0; r < world_size(); ++r) world.push_back(r);
    exchange(world, at::zeros({1}), "barrier " + what);
  }

  // Every collective this rank ran, "op what", in order.
  const std::vector<std::string>& calls() const { return calls_; }

 private:
  size_t index_in(const RankList& group) const {
    for (size_t i = 0; i < group.size(); ++i) {
      if (group[i] == rank_) return i;
    }
    throw CommError("rank " + std::to_string(rank_) + " is not in its group");
  }
  std::vector<at::Tensor> exchange(const RankList& group, const at::Tensor& t, const std::string& what) {
    index_in(group);
    if (what.rfind("barrier", 0) != 0 && !groups_.count(group)) {
      throw CommError("rank " + std::to_string(rank_) + ": '" + what + "' on a group never announced");
    }
    calls_.push_back(what);
    return hub_->exchange(rank_, group, t, what);
  }

  std::shared_ptr<ThreadHub> hub_;
  int rank_;
  std::set<RankList> groups_;
  std::vector<std::string> calls_;
};

// Runs fn(rank, communicator) on `world_size` threads and rethrows the first exception.
inline void run_ranks(int world_size, const std::function<void(int, ThreadCommunicator&)>& fn) {
  auto hub = std::make_shared<ThreadHub>(world_size);
  std::vector<std::exception_ptr> errors(world_size);
  std::vector<std::thread> threads;
  for (int r = 0; r < world_size; ++r) {
    threads.emplace_back([&, r] {
      ThreadCommunicator comm(hub, r);
      try {
        fn(r, comm);
      } catch (...) {
        errors[r] = std::current_exception();
      }
    });
  }
  for (std::thread& t : threads) t.join();
  for (const std::exception_ptr& e : errors) {
    if (e) std::rethrow_exception(e);
  }
}

}  // namespace shardplan::testing
