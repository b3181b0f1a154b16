// The one-shot all-reduce over peer memory (peer_all_reduce.h).
#include "executor/comm/peer_all_reduce.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <stdexcept>

namespace shardplan {
namespace {

// Every member launches the same grid, so that block b of each handles the same elements.
constexpr int kBlocks = 32;
constexpr int kThreads = 512;
constexpr int kMax = PeerView::kMaxMembers;
// A region: flags [kBlocks][kMax] (member m's arrival at block b, written by m), the call counters
// [kBlocks] (this member's own), then two message buffers.
constexpr size_t kCountersOffset = sizeof(uint32_t) * kBlocks * kMax;
constexpr size_t kHeaderBytes = 4096;
static_assert(kCountersOffset + sizeof(uint32_t) * kBlocks <= kHeaderBytes, "the header holds the flags and counters");

size_t buffer_stride(size_t max_bytes) { return (max_bytes + 255) / 256 * 256; }

__device__ __forceinline__ void store_release(uint32_t* p, uint32_t v) {
  asm volatile("st.release.sys.global.u32 [%0], %1;" ::"l"(p), "r"(v) : "memory");
}
__device__ __forceinline__ uint32_t load_acquire(const uint32_t* p) {
  uint32_t v;
  asm volatile("ld.acquire.sys.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
  return v;
}
__device__ __forceinline__ uint64_t global_ns() {
  uint64_t t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

// An element type's bits and its conversions to and from the float32 it is summed in.
template <PeerDtype D> struct Element;
template <> struct Element<PeerDtype::kFloat32> {
  using Bits = float;
  __device__ static float widen(Bits x) { return x; }
  __device__ static Bits narrow(float x) { return x; }
};
template <> struct Element<PeerDtype::kFloat16> {
  using Bits = unsigned short;
  __device__ static float widen(Bits x) { return __half2float(__ushort_as_half(x)); }
  __device__ static Bits narrow(float x) { return __half_as_ushort(__float2half_rn(x)); }
};
template <> struct Element<PeerDtype::kBFloat16> {
  using Bits = unsigned short;
  __device__ static float widen(Bits x) { return __bfloat162float(__ushort_as_bfloat16(x)); }
  __device__ static Bits narrow(float x) { return __bfloat16_as_ushort(__float2bfloat16_rn(x)); }
};

// Moves one 16-byte vector (kVec elements) between a message buffer (aligned) and the caller's
// tensor (aligned or not).
template <typename Bits>
__device__ __forceinline__ uint4 load_vector(const Bits* p, bool aligned) {
  if (aligned) return *reinterpret_cast<const uint4*>(p);
  uint4 v;
  Bits* e = reinterpret_cast<Bits*>(&v);
  for (int j = 0; j < static_cast<int>(16 / sizeof(Bits)); ++j) e[j] = p[j];
  return v;
}
template <typename Bits>
__device__ __forceinline__ void store_vector(Bits* p, uint4 v, bool aligned) {
  if (aligned) {
    *reinterpret_cast<uint4*>(p) = v;
    return;
  }
  const Bits* e = reinterpret_cast<const Bits*>(&v);
  for (int j = 0; j < static_cast<int>(16 / sizeof(Bits)); ++j) p[j] = e[j];
}

struct Regions {
  char* base[kMax];
};

// See peer_all_reduce.h for the protocol. N: the members.
template <PeerDtype D, int N>
__global__ void __launch_bounds__(kThreads) one_shot_all_reduce(Regions r, int member, size_t stride, uint64_t timeout_ns,
                                                                const void* in_ptr, void* out_ptr, int64_t count) {
  using E = Element<D>;
  using Bits = typename E::Bits;
  constexpr int kVec = 16 / sizeof(Bits);
  __shared__ uint32_t call;
  const int b = blockIdx.x;
  char* const own = r.base[member];
  if (threadIdx.x == 0) {
    uint32_t* counter = reinterpret_cast<uint32_t*>(own + kCountersOffset) + b;
    call = *counter + 1;
    *counter = call;
  }
  __syncthreads();
  const size_t parity = (call & 1u) * stride;
  const Bits* in = static_cast<const Bits*>(in_ptr);
  Bits* out = static_cast<Bits*>(out_ptr);
  const bool in_aligned = reinterpret_cast<uintptr_t>(in) % 16 == 0;
  const bool out_aligned = reinterpret_cast<uintptr_t>(out) % 16 == 0;
  const int64_t vectors = count / kVec;
  const int64_t tail = count - vectors * kVec;  // < kVec elements, block 0's

  // 1. This block's part of the input into this member's buffer.
  Bits* mine = reinterpret_cast<Bits*>(own + kHeaderBytes + parity);
  for (int64_t i = static_cast<int64_t>(b) * kThreads + threadIdx.x; i < vectors; i += kBlocks * kThreads) {
    *reinterpret_cast<uint4*>(mine + i * kVec) = load_vector(in + i * kVec, in_aligned);
  }
  if (b == 0 && threadIdx.x < tail) mine[vectors * kVec + threadIdx.x] = in[vectors * kVec + threadIdx.x];
  __syncthreads();

  // 2. Arrive at every member (thread p tells member p), then wait for every member's arrival.
  if (threadIdx.x < N) {
    const int p = threadIdx.x;
    store_release(reinterpret_cast<uint32_t*>(r.base[p]) + b * kMax + member, call);
    const uint32_t* flag = reinterpret_cast<const uint32_t*>(own) + b * kMax + p;
    const uint64_t start = global_ns();
    for (uint32_t spins = 1; static_cast<int32_t>(load_acquire(flag) - call) < 0; ++spins) {
      if (spins % 1024 == 0 && global_ns() - start > timeout_ns) __trap();
    }
  }
  __syncthreads();

  // 3. The sum over the members' buffers, in member order. NOTE: __ldcg reads through L2, never
  // a line an earlier call left in this SM's L1.
  const Bits* theirs[N];
#pragma unroll
  for (int m = 0; m < N; ++m) theirs[m] = reinterpret_cast<const Bits*>(r.base[m] + kHeaderBytes + parity);
  for (int64_t i = static_cast<int64_t>(b) * kThreads + threadIdx.x; i < vectors; i += kBlocks * kThreads) {
    float sum[kVec];
#pragma unroll
    for (int m = 0; m < N; ++m) {
      const uint4 v = __ldcg(reinterpret_cast<const uint4*>(theirs[m] + i * kVec));
      const Bits* e = reinterpret_cast<const Bits*>(&v);
#pragma unroll
      for (int j = 0; j < kVec; ++j) sum[j] = m == 0 ? E::widen(e[j]) : sum[j] + E::widen(e[j]);
    }
    uint4 result;
    Bits* e = reinterpret_cast<Bits*>(&result);
#pragma unroll
    for (int j = 0; j < kVec; ++j) e[j] = E::narrow(sum[j]);
    store_vector(out + i * kVec, result, out_aligned);
  }
  if (b == 0 && threadIdx.x < tail) {
    const int64_t i = vectors * kVec + threadIdx.x;
    const volatile Bits* first = theirs[0] + i;
    float sum = E::widen(*first);
#pragma unroll
    for (int m = 1; m < N; ++m) {
      const volatile Bits* x = theirs[m] + i;
      sum += E::widen(*x);
    }
    out[i] = E::narrow(sum);
  }
}

template <PeerDtype D>
void launch(const PeerView& v, const void* in, void* out, int64_t count, cudaStream_t stream) {
  Regions r{};
  for (int m = 0; m < v.size; ++m) r.base[m] = static_cast<char*>(v.regions[m]);
  const size_t stride = buffer_stride(v.max_bytes);
  switch (v.size) {
#define SHARDPLAN_PEER_CASE(n)                                                                                    \
  case n:                                                                                                         \
    one_shot_all_reduce<D, n><<<kBlocks, kThreads, 0, stream>>>(r, v.member, stride, v.timeout_ns, in, out, count); \
    break;
    SHARDPLAN_PEER_CASE(2)
    SHARDPLAN_PEER_CASE(3)
    SHARDPLAN_PEER_CASE(4)
    SHARDPLAN_PEER_CASE(5)
    SHARDPLAN_PEER_CASE(6)
    SHARDPLAN_PEER_CASE(7)
    SHARDPLAN_PEER_CASE(8)
#undef SHARDPLAN_PEER_CASE
    default: throw std::invalid_argument("peer_all_reduce: " + std::to_string(v.size) + " members (2 to 8)");
  }
}

void check(cudaError_t e, const std::string& what) {
  if (e != cudaSuccess) throw std::runtime_error(what + ": " + cudaGetErrorString(e));
}

size_t element_bytes(PeerDtype d) { return d == PeerDtype::kFloat32 ? 4 : 2; }

// This machine's boot (one per host and boot), else its host name.
std::string host_identity() {
  std::ifstream boot("/proc/sys/kernel/random/boot_id");
  std::string id;
  if (boot && std::getline(boot, id) && !id.empty()) return id;
  char name[256] = {};
  gethostname(name, sizeof(name) - 1);
  return name;
}

// Makes `device` current; restores the caller's. Never throws (a member that fails must still
// take part in the exchanges).
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    cudaGetDevice(&previous_);
    ok_ = cudaSetDevice(device) == cudaSuccess;
    if (!ok_) cudaGetLastError();
  }
  ~DeviceGuard() { cudaSetDevice(previous_); }
  bool ok() const { return ok_; }

 private:
  int previous_ = 0;
  bool ok_ = false;
};

}  // namespace

size_t peer_region_bytes(size_t max_bytes) { return kHeaderBytes + 2 * buffer_stride(max_bytes); }

void peer_region_reset(void* region, void* stream) {
  check(cudaMemsetAsync(region, 0, kHeaderBytes, static_cast<cudaStream_t>(stream)), "peer_region_reset");
}

void peer_all_reduce(const PeerView& v, const void* in, void* out, int64_t count, PeerDtype dtype, void* stream) {
  if (v.member < 0 || v.member >= v.size) throw std::invalid_argument("peer_all_reduce: member out of range");
  if (count < 0 || static_cast<size_t>(count) * element_bytes(dtype) > v.max_bytes) {
    throw std::invalid_argument("peer_all_reduce: " + std::to_string(count) + " elements exceed the " +
                                std::to_string(v.max_bytes) + "-byte buffers");
  }
  const auto s = static_cast<cudaStream_t>(stream);
  switch (dtype) {
    case PeerDtype::kFloat32: launch<PeerDtype::kFloat32>(v, in, out, count, s); break;
    case PeerDtype::kFloat16: launch<PeerDtype::kFloat16>(v, in, out, count, s); break;
    case PeerDtype::kBFloat16: launch<PeerDtype::kBFloat16>(v, in, out, count, s); break;
  }
  check(cudaGetLastError(), "peer_all_reduce launch");
}

std::unique_ptr<PeerGroup> PeerGroup::open(int member, int size, int device, size_t max_bytes, uint64_t timeout_ns,
                                           const Exchange& exchange, std::string* why_not) {
  if (size < 2 || size > kMax) {
    *why_not = "groups of 2 to " + std::to_string(kMax) + " members only";
    return nullptr;
  }
  // Every member's verdict, so that all take the same path: "" where this member can go on.
  const auto agree = [&](const std::string& key, const std::string& mine) {
    const std::vector<std::string> all = exchange(key, mine);
    for (size_t m = 0; m < all.size(); ++m) {
      if (!all[m].empty()) {
        *why_not = "member " + std::to_string(m) + ": " + all[m];
        return false;
      }
    }
    return true;
  };
  // 0. The same limit on every member (the buffers' offsets and the choice of path depend on it);
  // 0 on any member: NCCL for every size.
  const std::vector<std::string> limits = exchange("max_bytes", std::to_string(max_bytes));
  for (size_t m = 0; m < limits.size(); ++m) {
    if (limits[m] == "0") {
      *why_not = "turned off (SHARDPLAN_PEER_ALL_REDUCE_MAX_BYTES=0 on member " + std::to_string(m) + ")";
      return nullptr;
    }
  }
  for (size_t m = 0; m < limits.size(); ++m) {
    if (limits[m] != limits[0]) {
      throw std::invalid_argument("the members' one-shot all-reduce limits differ: " + limits[0] + " bytes on member 0, " +
                                  limits[m] + " on member " + std::to_string(m) +
                                  " (SHARDPLAN_PEER_ALL_REDUCE_MAX_BYTES must be the same on every rank)");
    }
  }
  DeviceGuard guard(device);

  // 1. One host, and every peer's GPU visible here with peer access to this one.
  char bus[64] = {};
  std::string problem;
  if (!guard.ok()) {
    problem = "cannot use GPU " + std::to_string(device);
  } else if (cudaDeviceGetPCIBusId(bus, sizeof(bus), device) != cudaSuccess) {
    cudaGetLastError();
    problem = "no PCI bus id for GPU " + std::to_string(device);
  }
  const std::vector<std::string> where = exchange("where", host_identity() + "|" + bus);
  for (size_t m = 0; m < where.size() && problem.empty(); ++m) {
    const size_t bar = where[m].find('|');
    const std::string host = where[m].substr(0, bar), peer_bus = where[m].substr(bar + 1);
    if (host != host_identity()) {
      problem = "member " + std::to_string(m) + " is on another host";
      break;
    }
    int peer_device = -1;
    if (cudaDeviceGetByPCIBusId(&peer_device, peer_bus.c_str()) != cudaSuccess) {
      cudaGetLastError();
      problem = "member " + std::to_string(m) + "'s GPU (" + peer_bus + ") is not visible here";
      break;
    }
    int can = 0;
    if (peer_device != device && (cudaDeviceCanAccessPeer(&can, device, peer_device) != cudaSuccess || can == 0)) {
      cudaGetLastError();
      problem = "no peer access from GPU " + std::to_string(device) + " to GPU " + std::to_string(peer_device);
    }
  }
  if (!agree("eligible", problem)) return nullptr;

  // 2. This member's region, zeroed, then every member's mapped here.
  std::unique_ptr<PeerGroup> group(new PeerGroup());
  group->device_ = device;
  group->view_.member = member;
  group->view_.size = size;
  group->view_.max_bytes = max_bytes;
  group->view_.timeout_ns = timeout_ns;
  void* region = nullptr;
  cudaIpcMemHandle_t handle{};
  if (cudaMalloc(&region, peer_region_bytes(max_bytes)) != cudaSuccess) {
    cudaGetLastError();
    problem = "cudaMalloc of " + std::to_string(peer_region_bytes(max_bytes)) + " bytes failed";
    region = nullptr;
  } else if (cudaMemset(region, 0, kHeaderBytes) != cudaSuccess || cudaDeviceSynchronize() != cudaSuccess ||
             cudaIpcGetMemHandle(&handle, region) != cudaSuccess) {
    problem = std::string("preparing the region: ") + cudaGetErrorString(cudaGetLastError());
  }
  group->view_.regions[member] = region;
  if (!agree("allocated", problem)) return nullptr;  // (the destructor frees what was made)
  const std::vector<std::string> handles =
      exchange("ipc", std::string(reinterpret_cast<const char*>(&handle), sizeof(handle)));
  for (int m = 0; m < size && problem.empty(); ++m) {
    if (m == member) continue;
    cudaIpcMemHandle_t theirs{};
    std::memcpy(&theirs, handles[static_cast<size_t>(m)].data(), sizeof(theirs));
    if (cudaIpcOpenMemHandle(&group->view_.regions[m], theirs, cudaIpcMemLazyEnablePeerAccess) != cudaSuccess) {
      group->view_.regions[m] = nullptr;
      problem = "mapping member " + std::to_string(m) + "'s memory (CUDA IPC): " + cudaGetErrorString(cudaGetLastError());
    }
  }
  if (!agree("mapped", problem)) return nullptr;
  group->opened_ = true;
  return group;
}

bool PeerGroup::close(void* stream, uint64_t timeout_ns) {
  if (closed_ || !opened_) return true;
  DeviceGuard guard(device_);
  // A call of no elements is the protocol's barrier alone: once it ends here, every member has
  // finished its calls before it, so none reads this member's buffer any more.
  PeerView last = view_;
  last.timeout_ns = std::min(view_.timeout_ns, timeout_ns);
  try {
    peer_all_reduce(last, nullptr, nullptr, 0, PeerDtype::kFloat32, stream);
  } catch (const std::exception&) {
    return false;
  }
  if (!guard.ok() || cudaStreamSynchronize(static_cast<cudaStream_t>(stream)) != cudaSuccess) return false;
  release();
  closed_ = true;
  return true;
}

void PeerGroup::release() {
  for (int m = 0; m < view_.size; ++m) {
    if (view_.regions[m] == nullptr) continue;
    if (m == view_.member) {
      cudaFree(view_.regions[m]);
    } else {
      cudaIpcCloseMemHandle(view_.regions[m]);
    }
    view_.regions[m] = nullptr;
  }
  cudaGetLastError();
}

PeerGroup::~PeerGroup() {
  // NOTE: an open group that was not closed (a run that failed) keeps its memory: a peer may still
  // read it, and freeing would wait for a kernel that may wait for a peer that is gone. The
  // process is ending. A group whose opening failed has no reader: its memory goes.
  if (opened_) return;
  int previous = 0;
  cudaGetDevice(&previous);
  cudaSetDevice(device_);
  release();
  cudaSetDevice(previous);
}

}  // namespace shardplan
