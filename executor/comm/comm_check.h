// The one checked door for c10d / NCCL / CUDA calls: SHARDPLAN_COMM_CHECK(site, call) runs `call`
// and turns any exception it throws into a CommError that names this rank, the collective, its
// group and its purpose, the failing call and its file:line (as PyTorch's C10D_NCCL_CHECK does):
//
//   rank 1: all_reduce over group [0,1] ("all_reduce[tp] after model.layers.3.self_attn") failed:
//   group->allreduce(tensors, opts) (c10d_communicator.cc:212): Connection closed by peer
#pragma once

#include <c10/util/Exception.h>

#include <exception>
#include <string>

#include "executor/comm/communicator.h"

namespace shardplan {

// What a failing call was doing: "rank 3: all_reduce over group [0,1,2,3] (\"what\")".
struct CommCallSite {
  int rank = 0;
  const char* op = "";  // "all_reduce", "create_groups", "rendezvous", ...
  std::string group;    // "[0,1,2,3]"; empty for calls that belong to no group
  std::string what;     // the caller's purpose; may be empty
};

// "[0,1,2,3]"
std::string format_rank_list(const RankList& ranks);
// "all_reduce over group [0,1,2,3] (\"what\")"
std::string describe_collective(const CommCallSite& site);
// "rank 3: all_reduce over group [0,1,2,3] (\"what\")"
std::string describe_call_site(const CommCallSite& site);

[[noreturn]] void throw_comm_error(const CommCallSite& site, const char* call, const char* file, int line,
                                   const std::string& cause);

template <typename Fn>
auto checked_comm_call(Fn&& fn, const CommCallSite& site, const char* call, const char* file, int line)
    -> decltype(fn()) {
  try {
    return fn();
  } catch (const CommError&) {
    throw;
  } catch (const c10::Error& e) {  // c10d's DistBackendError / DistStoreError, TORCH_CHECK, CUDA checks
    throw_comm_error(site, call, file, line, e.what_without_backtrace());
  } catch (const std::exception& e) {  // gloo::IoException, std::system_error, ...
    throw_comm_error(site, call, file, line, e.what());
  }
}

}  // namespace shardplan

#define SHARDPLAN_COMM_CHECK(site, call) \
  ::shardplan::checked_comm_call([&]() { return call; }, (site), #call, __FILE__, __LINE__)
