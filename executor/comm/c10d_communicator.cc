// make_communicator: the Communicator over libtorch's c10d. A TCP store for rendezvous (rank 0
// hosts it unless the launcher does), one c10d process group per rank list (Gloo on CPU, NCCL on
// CUDA), and the peer liveness threads (peer_liveness.h) that stop this rank when a peer dies.
//
// The Gloo part is compiled only with SHARDPLAN_WITH_GLOO, the NCCL part only with
// SHARDPLAN_WITH_NCCL, the one-shot all-reduce over peer memory (peer_all_reduce.h) only with
// SHARDPLAN_PEER_ALL_REDUCE (executor/CMakeLists.txt says when).
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/Types.hpp>
#include <torch/csrc/distributed/c10d/Work.hpp>
#ifdef SHARDPLAN_WITH_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#ifdef SHARDPLAN_WITH_NCCL
#include <c10/cuda/CUDAFunctions.h>

#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif
#ifdef SHARDPLAN_PEER_ALL_REDUCE
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "executor/comm/peer_all_reduce.h"
#endif

#include <ATen/ops/empty.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdlib>
#include <exception>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <numeric>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "executor/comm/comm_check.h"
#include "executor/comm/communicator.h"
#include "executor/comm/launcher.h"
#include "executor/comm/peer_liveness.h"
#include "executor/log/log.h"

namespace shardplan {
namespace {

// NOTE: ProcessGroupGloo and ProcessGroupNCCL are c10d Backends (the per-device halves of a
// ProcessGroup); their collective calls are all this file uses.
using C10dGroup = c10d::Backend;

// The run's keys in the TCP store. Under torchrun, whose agent keeps its store across restarts of
// the workers, each attempt has its own (as torch's own rendezvous keys do), so a restarted
// run never counts the ranks that joined the attempt before.
std::string store_prefix() {
  const char* attempt = std::getenv("TORCHELASTIC_RESTART_COUNT");
  return attempt != nullptr && *attempt != '\0' ? std::string("shardplan/attempt_") + attempt : "shardplan";
}

// One group of the run as this rank holds it.
struct Group {
  RankList ranks;
  int index = 0;                     // this rank's position in `ranks`
  c10::intrusive_ptr<C10dGroup> pg;  // null for a one-member group (nothing to exchange)
#ifdef SHARDPLAN_PEER_ALL_REDUCE
  std::unique_ptr<PeerGroup> peer;   // the small all-reduces' path, where the members share a host
#endif
};

bool is_16bit_float(const at::Tensor& t) { return t.scalar_type() == at::kBFloat16 || t.scalar_type() == at::kHalf; }

class C10dCommunicator final : public Communicator {
 public:
  explicit C10dCommunicator(const CommOptions& options);
  ~C10dCommunicator() override;

  int rank() const override { return options_.rank; }
  int world_size() const override { return options_.world_size; }

  void create_groups(const std::vector<RankList>& groups) override;
  void all_reduce(at::Tensor& t, const RankList& group, const std::string& what) override;
  at::Tensor all_gather(const at::Tensor& t, int64_t dim, const RankList& group, const std::string& what) override;
  at::Tensor reduce_scatter(const at::Tensor& t, int64_t dim, const RankList& group, const std::string& what) override;
  at::Tensor all_to_all(const at::Tensor& t, const std::vector<int64_t>& send_counts,
                        const std::vector<int64_t>& recv_counts, const RankList& group,
                        const std::string& what) override;
  void broadcast(at::Tensor& t, int64_t root, const RankList& group, const std::string& what) override;
  void barrier(const std::string& what) override;
  bool capturable() const override { return options_.backend == CommBackend::kNccl; }

 private:
  bool gloo() const { return options_.backend == CommBackend::kGloo; }
  CommCallSite site(const char* op, const RankList& group, const std::string& what) const {
    return CommCallSite{options_.rank, op, group.empty() ? std::string() : format_rank_list(group), what};
  }
  // A fault of the caller's options, arguments or of this build (kExitUsage), or of the run
  // (kExitRunFault: a rank that does not come, a store that does not answer).
  [[noreturn]] void fail(const CommCallSite& site, const std::string& reason, int exit_code = kExitUsage) const {
    throw CommError(describe_call_site(site) + ": " + reason, exit_code);
  }

  void rendezvous();
  c10::intrusive_ptr<c10d::Store> connect_store(const CommCallSite& setup);
  void join(const CommCallSite& setup);
  std::string store_address() const { return options_.master_addr + ":" + std::to_string(options_.master_port); }
  c10::intrusive_ptr<C10dGroup> make_group(const RankList& ranks, int index, const CommCallSite& site);
  void open_peer_group(Group& group, const CommCallSite& site);
  // Whether `t` is all-reduced over peer memory (the same answer on every member: by size and type).
  bool peer_all_reduces(const Group& group, const at::Tensor& t) const;
  const Group& member_group(const RankList& ranks, const CommCallSite& site) const;
  void check_tensor(const at::Tensor& t, const CommCallSite& site) const;
  int64_t normalized_dim(const at::Tensor& t, int64_t dim, const CommCallSite& site) const;
  void wait(const c10::intrusive_ptr<c10d::Work>& work, const CommCallSite& site) const;
  template <typename Fn>
  void run(const CommCallSite& site, const RankList& group, Fn&& fn);
  [[noreturn]] void explain_failure(const CommError& error, const RankList& group);

  // NOTE: the Gloo backend is not relied on for bf16 reductions: bf16 travels as fp16 bits (the data-moving collectives copy
  // bytes, they never compute on them), and 16-bit floats are reduced in fp32.
  at::Tensor wire_view(const at::Tensor& t) const {
    return gloo() && t.scalar_type() == at::kBFloat16 ? t.view(at::kHalf) : t;
  }
  at::Tensor reduction_buffer(const at::Tensor& t, bool fresh) const {
    if (gloo() && is_16bit_float(t)) return t.to(at::kFloat);
    return fresh || !t.is_contiguous() ? t.clone(at::MemoryFormat::Contiguous) : t;
  }

  CommOptions options_;
  bool hosts_store_ = false;
  c10::intrusive_ptr<c10d::Store> store_;          // prefixed "shardplan/"; the groups rendezvous here
  c10::intrusive_ptr<c10d::Store> monitor_store_;  // the liveness threads' own connection
  std::map<RankList, Group> groups_;
  std::unique_ptr<PeerLiveness> liveness_;
};

C10dCommunicator::C10dCommunicator(const CommOptions& options) : options_(options) {
  const CommCallSite setup = site("make_communicator", {}, "");
  if (options_.world_size < 1) fail(setup, "world_size must be at least 1, got " + std::to_string(options_.world_size));
  if (options_.rank < 0 || options_.rank >= options_.world_size) {
    fail(setup, "rank " + std::to_string(options_.rank) + " is not in [0, world_size " +
                    std::to_string(options_.world_size) + ")");
  }
  if (options_.master_port < 1 || options_.master_port > 65535) {
    fail(setup, "master_port " + std::to_string(options_.master_port) + " is not in [1, 65535]");
  }
  if (options_.timeout.count() <= 0 || options_.rendezvous_timeout.count() <= 0 || options_.peer_timeout.count() <= 0 ||
      options_.rendezvous_report_every.count() <= 0) {
    fail(setup, "timeouts must be positive");
  }

  constexpr size_t kLargestPeerMessage = size_t{64} << 20;
  if (const char* env = std::getenv("SHARDPLAN_PEER_ALL_REDUCE_MAX_BYTES")) {
    const std::string value = env;
    if (value.empty() || value.size() > 9 || value.find_first_not_of("0123456789") != std::string::npos) {
      fail(setup, "SHARDPLAN_PEER_ALL_REDUCE_MAX_BYTES=" + value + " is not a number of bytes");
    }
    options_.peer_all_reduce_max_bytes = static_cast<size_t>(std::stoull(value));
  }
  if (options_.peer_all_reduce_max_bytes > kLargestPeerMessage) {
    fail(setup, "the one-shot all-reduce takes messages of at most " + std::to_string(kLargestPeerMessage) +
                    " bytes, not " + std::to_string(options_.peer_all_reduce_max_bytes) +
                    " (SHARDPLAN_PEER_ALL_REDUCE_MAX_BYTES; 0: NCCL only)");
  }
#ifndef SHARDPLAN_WITH_NCCL
  if (!gloo()) fail(setup, "this build has no NCCL (configure with SHARDPLAN_WITH_NCCL on a CUDA libtorch)");
#endif
#ifndef SHARDPLAN_WITH_GLOO
  if (gloo()) {
    fail(setup,
         "this build has no Gloo, so no CPU communicator (configure with SHARDPLAN_GLOO_INCLUDE_DIR "
         "pointing at the gloo headers libtorch was built with)");
  }
#endif
  hosts_store_ = options_.rank == 0 && !options_.launcher_hosts_store;
  // NVLink multicast stays off whoever launched us (NCCL reads these when it starts).
  if (!gloo()) apply_forced_rank_environment();
  rendezvous();
}

namespace {

// Logs `message` (with the time waited) every `every` while a blocking call runs: a rank waiting
// on a store that does not answer says so instead of hanging silently.
class ReportWhileBlocked {
 public:
  ReportWhileBlocked(std::string message, std::chrono::milliseconds every)
      : thread_([this, message = std::move(message), every] {
          const auto start = std::chrono::steady_clock::now();
          std::unique_lock<std::mutex> lock(mutex_);
          while (!wake_.wait_for(lock, every, [this] { return done_; })) {
            const auto waited = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - start);
            log_warn(message + " (" + std::to_string(waited.count()) + " s)");
          }
        }) {}
  ~ReportWhileBlocked() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      done_ = true;
    }
    wake_.notify_all();
    thread_.join();
  }
  ReportWhileBlocked(const ReportWhileBlocked&) = delete;
  ReportWhileBlocked& operator=(const ReportWhileBlocked&) = delete;

 private:
  std::mutex mutex_;
  std::condition_variable wake_;
  bool done_ = false;
  std::thread thread_;  // last: it starts once the members it uses exist
};

// "1, 3 and 7" (at most 16 named, then "and N more").
std::string rank_names(const std::vector<int>& ranks) {
  std::string text;
  const size_t named = std::min<size_t>(ranks.size(), 16);
  for (size_t i = 0; i < named; ++i) {
    if (i > 0) text += i + 1 == ranks.size() ? " and " : ", ";
    text += std::to_string(ranks[i]);
  }
  if (ranks.size() > named) text += " and " + std::to_string(ranks.size() - named) + " more";
  return text;
}

}  // namespace

void C10dCommunicator::rendezvous() {
  const CommCallSite setup = site("rendezvous", {}, store_address());
  c10::intrusive_ptr<c10d::Store> tcp = connect_store(setup);
  store_ = c10::make_intrusive<c10d::PrefixStore>(store_prefix(), tcp);
  join(setup);
  // From here on the store serves the groups' set-up and the collectives' time-out applies.
  tcp->setTimeout(options_.timeout);

#ifdef SHARDPLAN_WITH_NCCL
  if (!gloo()) {
    const int devices = SHARDPLAN_COMM_CHECK(setup, static_cast<int>(c10::cuda::device_count()));
    if (options_.local_rank < 0 || options_.local_rank >= devices) {
      fail(setup, "local_rank " + std::to_string(options_.local_rank) + " has no CUDA device (" +
                      std::to_string(devices) + " visible)");
    }
    SHARDPLAN_COMM_CHECK(setup, (c10::cuda::set_device(static_cast<c10::DeviceIndex>(options_.local_rank)), 0));
  }
#endif

  RankList world(static_cast<size_t>(options_.world_size));
  std::iota(world.begin(), world.end(), 0);
  create_groups({world});

  if (options_.world_size > 1) {
    c10d::TCPStoreOptions monitor_options;
    monitor_options.port = static_cast<uint16_t>(options_.master_port);
    monitor_options.isServer = false;
    monitor_options.waitWorkers = false;
    monitor_options.timeout = options_.timeout;
    c10::intrusive_ptr<c10d::Store> monitor_tcp =
        SHARDPLAN_COMM_CHECK(setup, c10::make_intrusive<c10d::TCPStore>(options_.master_addr, monitor_options));
    monitor_store_ = c10::make_intrusive<c10d::PrefixStore>(store_prefix() + "/live", monitor_tcp);
    PeerLivenessOptions liveness;
    liveness.rank = options_.rank;
    liveness.world_size = options_.world_size;
    const std::string address = options_.master_addr + ":" + std::to_string(options_.master_port);
    liveness.store_owner = options_.launcher_hosts_store ? "the launcher (which hosts the TCP store at " + address + ")"
                                                         : "rank 0 (which hosts the TCP store at " + address + ")";
    liveness.hosts_store = hosts_store_;
    liveness.stale_after = options_.peer_timeout;
    liveness_ = std::make_unique<PeerLiveness>(monitor_store_, liveness);
  }
}

c10::intrusive_ptr<c10d::Store> C10dCommunicator::connect_store(const CommCallSite& setup) {
  c10d::TCPStoreOptions store_options;
  store_options.port = static_cast<uint16_t>(options_.master_port);
  store_options.isServer = hosts_store_;
  store_options.timeout = options_.rendezvous_timeout;
  // NOTE: the host does not wait for the others inside TCPStore (which cannot say who is
  // missing): join() does, naming them.
  store_options.waitWorkers = false;
  if (!options_.launcher_hosts_store) store_options.numWorkers = static_cast<size_t>(options_.world_size);
  const std::string owner = options_.launcher_hosts_store ? "the launcher" : "rank 0";
  const ReportWhileBlocked report(
      "rank " + std::to_string(options_.rank) + ": still waiting for the TCP store at " + store_address() +
          " (hosted by " + owner + "): is " + owner + " running, and is that address its own and not another program's?",
      options_.rendezvous_report_every);
  // NOTE: TCPStore's client waits without a limit for the first answer of whatever listens at
  // the address (another program on MASTER_PORT never answers): it connects on a thread of its
  // own, which is left behind if it has not answered within the time-out.
  auto connected = std::make_shared<std::promise<c10::intrusive_ptr<c10d::Store>>>();
  std::future<c10::intrusive_ptr<c10d::Store>> store = connected->get_future();
  std::thread([connected, addr = options_.master_addr, store_options] {
    try {
      connected->set_value(c10::make_intrusive<c10d::TCPStore>(addr, store_options));
    } catch (...) {
      connected->set_exception(std::current_exception());
    }
  }).detach();
  const std::string limit = std::to_string(options_.rendezvous_timeout.count() / 1000) + " s (--rendezvous-timeout)";
  if (store.wait_for(options_.rendezvous_timeout + std::chrono::seconds(1)) != std::future_status::ready) {
    fail(setup, "the TCP store at " + store_address() + " did not answer within " + limit +
                    ": is MASTER_PORT another program's port?", kExitRunFault);
  }
  try {
    return store.get();
  } catch (const std::exception& e) {
    const auto* c10_error = dynamic_cast<const c10::Error*>(&e);
    std::string cause = c10_error != nullptr ? c10_error->what_without_backtrace() : e.what();
    while (!cause.empty() && (cause.back() == '\n' || cause.back() == ' ')) cause.pop_back();
    if (hosts_store_ && cause.find("EADDRINUSE") != std::string::npos) {
      fail(setup, "cannot host the TCP store: port " + std::to_string(options_.master_port) + " of " +
                      options_.master_addr + " is in use by another program; choose a free MASTER_PORT (" + cause + ")",
           kExitRunFault);
    }
    if (hosts_store_) fail(setup, "cannot host the TCP store: " + cause, kExitRunFault);
    fail(setup,
         "cannot reach the TCP store that " + owner + " hosts at " + store_address() + " within " + limit + ": " + cause,
         kExitRunFault);
  }
}

// Every rank adds its name to the store, then waits until all world_size have: every
// rendezvous_report_every a line says who is missing (rank 0 names them, the others count them),
// and past rendezvous_timeout the error does (the store's host's verdict, on every rank).
void C10dCommunicator::join(const CommCallSite& setup) {
  const auto joined_key = [](int rank) { return "joined/" + std::to_string(rank); };
  const auto start = std::chrono::steady_clock::now();
  {
    // NOTE: the first request is where a listener that is not a TCP store (another program on
    // MASTER_PORT) leaves us waiting for an answer.
    const ReportWhileBlocked report("rank " + std::to_string(options_.rank) + ": connected to " + store_address() +
                                        " but it does not answer as a TCP store: is MASTER_PORT another program's port?",
                                    options_.rendezvous_report_every);
    SHARDPLAN_COMM_CHECK(setup, store_->set(joined_key(options_.rank), std::vector<uint8_t>{1}));
    SHARDPLAN_COMM_CHECK(setup, store_->add("joined", 1));
  }
  auto next_report = start + options_.rendezvous_report_every;
  const std::string verdict_key = "rendezvous_failed";
  while (true) {
    const int64_t count = SHARDPLAN_COMM_CHECK(setup, store_->add("joined", 0));
    if (count >= options_.world_size) return;
    // NOTE: the store's host gives up first for everyone (its clock started first); its verdict
    // names the missing ranks on every rank, not a vanished store.
    if (!hosts_store_ && SHARDPLAN_COMM_CHECK(setup, store_->check({verdict_key}))) {
      const std::vector<uint8_t> verdict = SHARDPLAN_COMM_CHECK(setup, store_->get(verdict_key));
      fail(setup, std::string(verdict.begin(), verdict.end()), kExitRunFault);
    }
    const auto now = std::chrono::steady_clock::now();
    const bool timed_out = now - start >= options_.rendezvous_timeout;
    if (timed_out || now >= next_report) {
      // NOTE: rank 0 alone lists who is missing (world_size requests to the store); the others
      // give the count, and the store's host's verdict names them on every rank.
      std::string who;
      std::vector<int> missing;
      if (options_.rank == 0) {
        for (int r = 0; r < options_.world_size; ++r) {
          if (!SHARDPLAN_COMM_CHECK(setup, store_->check({joined_key(r)}))) missing.push_back(r);
        }
        who = (missing.size() == 1 ? "rank " : "ranks ") + rank_names(missing) + " of " +
              std::to_string(options_.world_size);
      } else {
        const int64_t absent = options_.world_size - count;
        who = std::to_string(absent) + " of the " + std::to_string(options_.world_size) + " ranks";
      }
      const std::string waited =
          std::to_string(std::chrono::duration_cast<std::chrono::seconds>(now - start).count()) + " s";
      if (timed_out) {
        const bool one = options_.rank == 0 ? missing.size() == 1 : options_.world_size - count == 1;
        const std::string verdict = who + (one ? " has" : " have") + " not joined within " + waited +
                                    " (--rendezvous-timeout): was every rank started with WORLD_SIZE=" +
                                    std::to_string(options_.world_size) + " and the same MASTER_ADDR:MASTER_PORT?";
        if (hosts_store_) {
          SHARDPLAN_COMM_CHECK(setup, store_->set(verdict_key, std::vector<uint8_t>(verdict.begin(), verdict.end())));
          std::this_thread::sleep_for(std::chrono::milliseconds(500));  // the others read it before the store goes
        } else {
          // NOTE: this rank's clock may have started before the host's (it was started first, or
          // the host was slow to open the store): the host's verdict, which names the missing
          // ranks, is awaited a little longer before this rank's count is given instead.
          const auto grace = std::chrono::steady_clock::now() + std::chrono::seconds(2);
          while (std::chrono::steady_clock::now() < grace) {
            if (SHARDPLAN_COMM_CHECK(setup, store_->check({verdict_key}))) {
              const std::vector<uint8_t> named = SHARDPLAN_COMM_CHECK(setup, store_->get(verdict_key));
              fail(setup, std::string(named.begin(), named.end()), kExitRunFault);
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
          }
        }
        fail(setup, verdict, kExitRunFault);
      }
      log_warn("rank " + std::to_string(options_.rank) + ": waiting for " + who + " to join the rendezvous at " +
               store_address() + " (" + waited + (options_.rank == 0 ? ")" : "; rank 0 names them)"));
      next_report = now + options_.rendezvous_report_every;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

C10dCommunicator::~C10dCommunicator() {
  const bool failed = std::uncaught_exceptions() > 0;
  // NOTE: the order matters. Groups go first (their sockets close, so a peer still inside a
  // collective with us fails at once); then "left" is announced, so peers blame the right rank;
  // the store's host keeps the store up until every peer has left; the store goes last.
  for (auto& entry : groups_) {
#ifdef SHARDPLAN_PEER_ALL_REDUCE
    // The peer buffers go first, once every member's last one-shot all-reduce has ended (a run
    // that failed keeps them: the process is ending, and a member may be gone).
    if (!failed && entry.second.peer && !(liveness_ && liveness_->departed_member(entry.first))) {
      void* stream = c10::cuda::getCurrentCUDAStream(static_cast<c10::DeviceIndex>(options_.local_rank)).stream();
      if (!entry.second.peer->close(stream, uint64_t{10} * 1000000000)) {
        log_warn("rank " + std::to_string(options_.rank) + ": the one-shot all-reduce buffers of group " +
                 format_rank_list(entry.first) + " were not released (a member did not reach the end)");
      }
    }
#endif
#if defined(SHARDPLAN_WITH_NCCL)
    if (!gloo() && entry.second.pg) {
      auto* nccl = static_cast<c10d::ProcessGroupNCCL*>(entry.second.pg.get());
      try {
        if (failed) {
          nccl->abort();
        } else {
          nccl->shutdown();
        }
      } catch (const std::exception& e) {
        log_warn("rank " + std::to_string(options_.rank) + ": shutting down NCCL group " +
                 format_rank_list(entry.first) + ": " + e.what());
      }
    }
#endif
    entry.second.pg.reset();
  }
  groups_.clear();
  if (liveness_) {
    liveness_->leave(failed, hosts_store_ ? options_.timeout : std::chrono::milliseconds(0));
    liveness_.reset();
  }
  monitor_store_.reset();
  store_.reset();
}

c10::intrusive_ptr<C10dGroup> C10dCommunicator::make_group(const RankList& ranks, int index,
                                                           const CommCallSite& where) {
  std::string name = "g:";
  for (size_t i = 0; i < ranks.size(); ++i) name += (i > 0 ? "," : "") + std::to_string(ranks[i]);
  c10::intrusive_ptr<c10d::Store> group_store = c10::make_intrusive<c10d::PrefixStore>(name, store_);
  const int size = static_cast<int>(ranks.size());
#ifdef SHARDPLAN_WITH_GLOO
  if (gloo()) {
    auto gloo_options = c10d::ProcessGroupGloo::Options::create(options_.timeout);
    // NOTE: loopback runs (our own launcher) bind to 127.0.0.1 whatever the hostname resolves
    // to; otherwise GLOO_SOCKET_IFNAME picks the interface, as in torch.distributed.
    const char* interface = std::getenv("GLOO_SOCKET_IFNAME");
    const bool loopback = options_.master_addr == "localhost" || options_.master_addr.rfind("127.", 0) == 0;
    if (interface != nullptr && *interface != '\0') {
      gloo_options->devices.push_back(
          SHARDPLAN_COMM_CHECK(where, c10d::ProcessGroupGloo::createDeviceForInterface(interface)));
    } else if (loopback) {
      gloo_options->devices.push_back(
          SHARDPLAN_COMM_CHECK(where, c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1")));
    } else {
      gloo_options->devices.push_back(SHARDPLAN_COMM_CHECK(where, c10d::ProcessGroupGloo::createDefaultDevice()));
    }
    // The constructor connects the full mesh of the group (every member must get here).
    c10::intrusive_ptr<C10dGroup> group = SHARDPLAN_COMM_CHECK(
        where, c10::make_intrusive<c10d::ProcessGroupGloo>(group_store, index, size, gloo_options));
    return group;
  }
#endif
#ifdef SHARDPLAN_WITH_NCCL
  auto nccl_options = c10d::ProcessGroupNCCL::Options::create();
  nccl_options->timeout = options_.timeout;  // enforced by c10d's NCCL watchdog
  // NCCL communicators are created lazily, at the group's first collective.
  c10::intrusive_ptr<C10dGroup> group =
      SHARDPLAN_COMM_CHECK(where, c10::make_intrusive<c10d::ProcessGroupNCCL>(group_store, index, size, nccl_options));
  return group;
#else
  fail(where, "this build has no NCCL");
#endif
}

// Checks: every rank in [0, world_size), no rank twice, no empty group. Then creates the groups
// that hold this rank, sorted, so that every rank creates them in the same order whatever the
// order they were listed in.
void C10dCommunicator::create_groups(const std::vector<RankList>& groups) {
  std::vector<RankList> sorted;
  for (const RankList& ranks : groups) {
    const CommCallSite where = site("create_groups", ranks, "");
    if (ranks.empty()) fail(where, "a group needs at least one rank");
    RankList seen = ranks;
    std::sort(seen.begin(), seen.end());
    if (std::adjacent_find(seen.begin(), seen.end()) != seen.end()) fail(where, "a rank appears twice");
    if (seen.front() < 0 || seen.back() >= options_.world_size) {
      fail(where, "ranks must be in [0, " + std::to_string(options_.world_size) + ")");
    }
    sorted.push_back(ranks);
  }
  std::sort(sorted.begin(), sorted.end());
  sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
  for (const RankList& ranks : sorted) {
    if (groups_.count(ranks) > 0) continue;
    const auto member = std::find(ranks.begin(), ranks.end(), static_cast<int64_t>(options_.rank));
    if (member == ranks.end()) continue;
    const CommCallSite where = site("create_groups", ranks, "");
    Group group;
    group.ranks = ranks;
    group.index = static_cast<int>(member - ranks.begin());
    if (ranks.size() > 1) {
      run(where, ranks, [&] { group.pg = make_group(ranks, group.index, where); });
      open_peer_group(group, where);
    }
    groups_.emplace(ranks, std::move(group));
  }
}

// NCCL groups of 2 to 8 ranks on one host map each other's buffers for the one-shot all-reduce;
// every member learns the same verdict (a group that cannot, or a build without it, runs NCCL
// alone, and says why once).
void C10dCommunicator::open_peer_group(Group& group, const CommCallSite& where) {
#ifdef SHARDPLAN_PEER_ALL_REDUCE
  if (gloo()) return;
  std::string name = "peer:";
  for (size_t i = 0; i < group.ranks.size(); ++i) name += (i > 0 ? "," : "") + std::to_string(group.ranks[i]);
  const c10::intrusive_ptr<c10d::Store> store = c10::make_intrusive<c10d::PrefixStore>(name, store_);
  const auto exchange = [&](const std::string& key, const std::string& mine) {
    store->set(key + "/" + std::to_string(group.index), std::vector<uint8_t>(mine.begin(), mine.end()));
    std::vector<std::string> all;
    for (size_t m = 0; m < group.ranks.size(); ++m) {
      const std::vector<uint8_t> theirs = store->get(key + "/" + std::to_string(m));
      all.emplace_back(theirs.begin(), theirs.end());
    }
    return all;
  };
  std::string why_not;
  try {
    run(where, group.ranks, [&] {
      group.peer = PeerGroup::open(group.index, static_cast<int>(group.ranks.size()), options_.local_rank,
                                   options_.peer_all_reduce_max_bytes,
                                   static_cast<uint64_t>(options_.timeout.count()) * 1000000, exchange, &why_not);
    });
  } catch (const std::invalid_argument& e) {
    fail(where, e.what());  // the ranks' settings disagree (exit 2)
  } catch (const CommError&) {
    throw;
  } catch (const std::exception& e) {
    throw_comm_error(where, "PeerGroup::open", __FILE__, __LINE__, e.what());
  }
  if (!group.peer && group.index == 0) {
    log_info("all_reduce over " + format_rank_list(group.ranks) + ": NCCL for every size (no peer memory: " +
             why_not + ")");
  }
#else
  (void)group;
  (void)where;
#endif
}

bool C10dCommunicator::peer_all_reduces(const Group& group, const at::Tensor& t) const {
#ifdef SHARDPLAN_PEER_ALL_REDUCE
  const at::ScalarType type = t.scalar_type();
  return group.peer && (type == at::kFloat || type == at::kHalf || type == at::kBFloat16) &&
         static_cast<size_t>(t.numel()) * t.element_size() <= group.peer->max_bytes();
#else
  (void)group;
  (void)t;
  return false;
#endif
}

const Group& C10dCommunicator::member_group(const RankList& ranks, const CommCallSite& where) const {
  const auto found = groups_.find(ranks);
  if (found != groups_.end()) return found->second;
  if (std::find(ranks.begin(), ranks.end(), static_cast<int64_t>(options_.rank)) == ranks.end()) {
    fail(where, "rank " + std::to_string(options_.rank) + " is not a member of the group");
  }
  fail(where, "the group was not created (create_groups must list every group of the run)");
}

void C10dCommunicator::check_tensor(const at::Tensor& t, const CommCallSite& where) const {
  if (!t.defined()) fail(where, "the tensor is undefined");
  if (gloo() && !t.device().is_cpu()) fail(where, "Gloo runs on CPU tensors; this one is on " + t.device().str());
  if (!gloo() && !t.device().is_cuda()) fail(where, "NCCL runs on CUDA tensors; this one is on " + t.device().str());
}

int64_t C10dCommunicator::normalized_dim(const at::Tensor& t, int64_t dim, const CommCallSite& where) const {
  const int64_t rank = t.dim();
  const int64_t d = dim < 0 ? dim + rank : dim;
  if (d < 0 || d >= rank) {
    fail(where,
         "dim " + std::to_string(dim) + " is out of range for a tensor of " + std::to_string(rank) + " dimensions");
  }
  return d;
}

void C10dCommunicator::wait(const c10::intrusive_ptr<c10d::Work>& work, const CommCallSite& where) const {
  // NOTE: Gloo runs on c10d's threads, so this rank waits on the host, at most `timeout`. An NCCL
  // wait only makes the current CUDA stream wait (no host block, CUDA graphs stay possible); a
  // hung NCCL collective is aborted by c10d's watchdog after the group's timeout instead.
  // 0 is c10d's kNoTimeout.
  const std::chrono::milliseconds limit = gloo() ? options_.timeout : std::chrono::milliseconds(0);
  const bool done = SHARDPLAN_COMM_CHECK(where, work->wait(limit));
  if (!done) {
    throw_comm_error(where, "work->wait(limit)", __FILE__, __LINE__,
                     "timed out after " + std::to_string(options_.timeout.count()) + " ms");
  }
}

template <typename Fn>
void C10dCommunicator::run(const CommCallSite& where, const RankList& group, Fn&& fn) {
  if (liveness_) liveness_->set_activity(describe_collective(where));
  try {
    fn();
  } catch (const CommError& e) {
    explain_failure(e, group);
  }
  if (liveness_) liveness_->set_activity("");
}

// A collective that fails usually fails because a member died or left. Waits (at most the
// liveness verdict time) for a name: a member that left is named here; a dead one makes the
// liveness watchdog end the process with its own message. Then throws.
void C10dCommunicator::explain_failure(const CommError& error, const RankList& group) {
  if (!liveness_) throw error;
  const auto deadline = std::chrono::steady_clock::now() + liveness_->verdict_time();
  while (true) {
    if (std::optional<std::string> gone = liveness_->departed_member(group)) {
      liveness_->set_activity("");
      throw CommError(std::string(error.what()) + "; " + *gone);
    }
    if (std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  liveness_->set_activity("");
  throw CommError(std::string(error.what()) + "; every peer still answers its heartbeat");
}

void C10dCommunicator::all_reduce(at::Tensor& t, const RankList& ranks, const std::string& what) {
  const CommCallSite where = site("all_reduce", ranks, what);
  const Group& group = member_group(ranks, where);
  check_tensor(t, where);
  if (!group.pg) return;
#ifdef SHARDPLAN_PEER_ALL_REDUCE
  if (peer_all_reduces(group, t)) {
    run(where, ranks, [&] {
      at::Tensor buffer = t.contiguous();
      const PeerDtype type = t.scalar_type() == at::kFloat  ? PeerDtype::kFloat32
                             : t.scalar_type() == at::kHalf ? PeerDtype::kFloat16
                                                            : PeerDtype::kBFloat16;
      const c10::cuda::CUDAGuard guard(t.device());
      void* stream = c10::cuda::getCurrentCUDAStream(t.device().index()).stream();
      SHARDPLAN_COMM_CHECK(where, (group.peer->all_reduce(buffer.data_ptr(), buffer.data_ptr(), buffer.numel(), type, stream), 0));
      if (!buffer.is_same(t)) t.copy_(buffer);
    });
    return;
  }
#endif
  run(where, ranks, [&] {
    at::Tensor buffer = reduction_buffer(t, /*fresh=*/false);
    std::vector<at::Tensor> tensors{buffer};
    c10d::AllreduceOptions opts;
    opts.timeout = options_.timeout;
    wait(SHARDPLAN_COMM_CHECK(where, group.pg->allreduce(tensors, opts)), where);
    if (!buffer.is_same(t)) t.copy_(buffer);
  });
}

at::Tensor C10dCommunicator::all_gather(const at::Tensor& t, int64_t dim, const RankList& ranks,
                                        const std::string& what) {
  const CommCallSite where = site("all_gather", ranks, what);
  const Group& group = member_group(ranks, where);
  check_tensor(t, where);
  const int64_t d = normalized_dim(t, dim, where);
  if (!group.pg) return t.clone(at::MemoryFormat::Contiguous);
  const int64_t n = static_cast<int64_t>(ranks.size());
  at::Tensor result;
  run(where, ranks, [&] {
    at::Tensor input = wire_view(t.contiguous());
    std::vector<int64_t> shape{n};
    for (int64_t size : input.sizes()) shape.push_back(size);
    // gathered[i] is member i's tensor.
    at::Tensor gathered = at::empty(shape, input.options());
    c10d::AllgatherOptions opts;
    opts.timeout = options_.timeout;
    if (gloo()) {
      std::vector<std::vector<at::Tensor>> outputs(1);
      for (int64_t i = 0; i < n; ++i) outputs[0].push_back(gathered.select(0, i));
      std::vector<at::Tensor> inputs{input};
      wait(SHARDPLAN_COMM_CHECK(where, group.pg->allgather(outputs, inputs, opts)), where);
    } else {
      at::Tensor out_flat = gathered.view({-1});
      at::Tensor in_flat = input.view({-1});
      wait(SHARDPLAN_COMM_CHECK(where, group.pg->_allgather_base(out_flat, in_flat, opts)), where);
    }
    gathered = gathered.view(t.scalar_type());
    // [n, s0, .., sd, ..] -> [s0, .., n, sd, ..] -> [s0, .., n*sd, ..]: concatenation along d.
    std::vector<int64_t> merged(t.sizes().begin(), t.sizes().end());
    merged[static_cast<size_t>(d)] *= n;
    result = gathered.movedim(0, d).reshape(merged);
  });
  return result;
}

at::Tensor C10dCommunicator::reduce_scatter(const at::Tensor& t, int64_t dim, const RankList& ranks,
                                            const std::string& what) {
  const CommCallSite where = site("reduce_scatter", ranks, what);
  const Group& group = member_group(ranks, where);
  check_tensor(t, where);
  const int64_t d = normalized_dim(t, dim, where);
  const int64_t n = static_cast<int64_t>(ranks.size());
  if (t.size(d) % n != 0) {
    fail(where, "dim " + std::to_string(d) + " has size " + std::to_string(t.size(d)) +
                    ", not divisible by the group size " + std::to_string(n));
  }
  if (!group.pg) return t.clone(at::MemoryFormat::Contiguous);
  const int64_t chunk = t.size(d) / n;
  at::Tensor result;
  run(where, ranks, [&] {
    if (gloo()) {
      // NOTE: not Gloo's reduce_scatter (absent from older torch, never exercised here): an
      // all_reduce, then this member's slice, gives the same values (CPU runs are for
      // correctness, not speed).
      at::Tensor buffer = reduction_buffer(t, /*fresh=*/true);
      std::vector<at::Tensor> tensors{buffer};
      c10d::AllreduceOptions opts;
      opts.timeout = options_.timeout;
      wait(SHARDPLAN_COMM_CHECK(where, group.pg->allreduce(tensors, opts)), where);
      at::Tensor slice = buffer.narrow(d, group.index * chunk, chunk);
      result = slice.scalar_type() != t.scalar_type() ? slice.to(t.scalar_type()).contiguous()
                                                      : slice.clone(at::MemoryFormat::Contiguous);
      return;
    }
    // [s0, .., n*chunk, ..] -> [s0, .., n, chunk, ..] -> [n, s0, .., chunk, ..]: block i is member
    // i's slice, laid out as the output.
    std::vector<int64_t> split(t.sizes().begin(), t.sizes().end());
    split[static_cast<size_t>(d)] = chunk;
    split.insert(split.begin() + d, n);
    at::Tensor input = t.reshape(split).movedim(d, 0).contiguous();
    std::vector<int64_t> out_shape(t.sizes().begin(), t.sizes().end());
    out_shape[static_cast<size_t>(d)] = chunk;
    result = at::empty(out_shape, t.options());
    at::Tensor out_flat = result.view({-1});
    at::Tensor in_flat = input.view({-1});
    c10d::ReduceScatterOptions opts;
    opts.timeout = options_.timeout;
    wait(SHARDPLAN_COMM_CHECK(where, group.pg->_reduce_scatter_base(out_flat, in_flat, opts)), where);
  });
  return result;
}

// Checks: one count per member, none negative, the send counts add up to the rows of `t`.
at::Tensor C10dCommunicator::all_to_all(const at::Tensor& t, const std::vector<int64_t>& send_counts,
                                        const std::vector<int64_t>& recv_counts, const RankList& ranks,
                                        const std::string& what) {
  const CommCallSite where = site("all_to_all", ranks, what);
  const Group& group = member_group(ranks, where);
  check_tensor(t, where);
  if (t.dim() < 1) fail(where, "all_to_all needs a tensor with rows (dim >= 1)");
  const size_t n = ranks.size();
  if (send_counts.size() != n || recv_counts.size() != n) {
    fail(where, std::to_string(send_counts.size()) + " send and " + std::to_string(recv_counts.size()) +
                    " receive counts for a group of " + std::to_string(n));
  }
  for (size_t i = 0; i < n; ++i) {
    if (send_counts[i] < 0 || recv_counts[i] < 0) fail(where, "row counts must not be negative");
  }
  const int64_t rows_out = std::accumulate(send_counts.begin(), send_counts.end(), int64_t{0});
  const int64_t rows_in = std::accumulate(recv_counts.begin(), recv_counts.end(), int64_t{0});
  if (rows_out != t.size(0)) {
    fail(where, "the send counts add up to " + std::to_string(rows_out) + " rows, the tensor has " +
                    std::to_string(t.size(0)));
  }
  std::vector<int64_t> row_shape(t.sizes().begin() + 1, t.sizes().end());
  int64_t row_elems = 1;
  for (int64_t size : row_shape) row_elems *= size;
  std::vector<int64_t> out_shape{rows_in};
  out_shape.insert(out_shape.end(), row_shape.begin(), row_shape.end());
  if (!group.pg) {
    if (recv_counts[0] != send_counts[0]) {
      fail(where, "a one-member group receives what it sends: " + std::to_string(send_counts[0]) +
                      " != " + std::to_string(recv_counts[0]) + " rows");
    }
    return t.clone(at::MemoryFormat::Contiguous);
  }
  at::Tensor result;
  run(where, ranks, [&] {
    // NOTE: flat 1-D buffers with splits in elements (rows * row_elems): c10d derives the size of
    // a "row" from each tensor's shape, which breaks when one side has no rows at all.
    at::Tensor input = wire_view(t.contiguous()).view({-1});
    at::Tensor output = at::empty({rows_in * row_elems}, input.options());
    std::vector<int64_t> in_splits(n), out_splits(n);
    for (size_t i = 0; i < n; ++i) {
      in_splits[i] = send_counts[i] * row_elems;
      out_splits[i] = recv_counts[i] * row_elems;
    }
    c10d::AllToAllOptions opts;
    opts.timeout = options_.timeout;
    wait(SHARDPLAN_COMM_CHECK(where, group.pg->alltoall_base(output, input, out_splits, in_splits, opts)), where);
    result = output.view(t.scalar_type()).view(out_shape);
  });
  return result;
}

void C10dCommunicator::broadcast(at::Tensor& t, int64_t root, const RankList& ranks, const std::string& what) {
  const CommCallSite where = site("broadcast", ranks, what);
  const Group& group = member_group(ranks, where);
  check_tensor(t, where);
  const auto root_at = std::find(ranks.begin(), ranks.end(), root);
  if (root_at == ranks.end()) fail(where, "the root, rank " + std::to_string(root) + ", is not in the group");
  if (!group.pg) return;
  run(where, ranks, [&] {
    at::Tensor buffer = t.is_contiguous() ? t : t.contiguous();
    std::vector<at::Tensor> tensors{wire_view(buffer)};
    c10d::BroadcastOptions opts;
    opts.rootRank = static_cast<int64_t>(root_at - ranks.begin());
    opts.rootTensor = 0;
    opts.timeout = options_.timeout;
    wait(SHARDPLAN_COMM_CHECK(where, group.pg->broadcast(tensors, opts)), where);
    if (!buffer.is_same(t)) t.copy_(buffer);
  });
}

void C10dCommunicator::barrier(const std::string& what) {
  RankList world(static_cast<size_t>(options_.world_size));
  std::iota(world.begin(), world.end(), 0);
  const CommCallSite where = site("barrier", world, what);
  const Group& group = member_group(world, where);
  if (!group.pg) return;
  run(where, world, [&] {
    if (gloo()) {
      c10d::BarrierOptions opts;
      opts.timeout = options_.timeout;
      wait(SHARDPLAN_COMM_CHECK(where, group.pg->barrier(opts)), where);
      return;
    }
    // NOTE: an all_reduce of one element on this rank's device, then a copy to the host: unlike
    // c10d's NCCL barrier it needs no guess of the device and really waits for every member.
    std::vector<at::Tensor> tensors{at::empty(
        {1},
        at::TensorOptions().dtype(at::kFloat).device(at::kCUDA, static_cast<c10::DeviceIndex>(options_.local_rank)))};
    tensors[0].fill_(1.0);
    c10d::AllreduceOptions opts;
    opts.timeout = options_.timeout;
    wait(SHARDPLAN_COMM_CHECK(where, group.pg->allreduce(tensors, opts)), where);
    SHARDPLAN_COMM_CHECK(where, tensors[0].cpu());
  });
}

}  // namespace

std::unique_ptr<Communicator> make_communicator(const CommOptions& options) {
  // NOTE: a peer that dies leaves broken sockets (the TCP store's, Gloo's); a write to one raises
  // SIGPIPE, which would kill this rank silently before the watchdog can name the dead peer.
  // Ignored, the write fails with EPIPE and surfaces as an error that names it.
  std::signal(SIGPIPE, SIG_IGN);
  return std::make_unique<C10dCommunicator>(options);
}

}  // namespace shardplan
