// The decode step's fused kernels (see kernels.h).
#include "models/layers/cuda/kernels.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <type_traits>

namespace shardplan::cuda {
namespace {

// Conversions between the element type and float, rounding to nearest even as ATen does.
template <typename T>
__device__ __forceinline__ float to_float(T x);
template <>
__device__ __forceinline__ float to_float<float>(float x) { return x; }
template <>
__device__ __forceinline__ float to_float<__half>(__half x) { return __half2float(x); }
template <>
__device__ __forceinline__ float to_float<__nv_bfloat16>(__nv_bfloat16 x) { return __bfloat162float(x); }

template <typename T>
__device__ __forceinline__ T from_float(float x);
template <>
__device__ __forceinline__ float from_float<float>(float x) { return x; }
template <>
__device__ __forceinline__ __half from_float<__half>(float x) { return __float2half_rn(x); }
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }

// What an ATen op on T returns for a float result: rounded to T (and back to float).
template <typename T>
__device__ __forceinline__ float rounded(float x) { return to_float<T>(from_float<T>(x)); }

// Eight consecutive elements (16-byte aligned for 16-bit types, 32 for float) as floats.
template <typename T>
__device__ __forceinline__ void load8(const T* p, float* out);
template <>
__device__ __forceinline__ void load8<float>(const float* p, float* out) {
  const float4 a = reinterpret_cast<const float4*>(p)[0];
  const float4 b = reinterpret_cast<const float4*>(p)[1];
  out[0] = a.x; out[1] = a.y; out[2] = a.z; out[3] = a.w;
  out[4] = b.x; out[5] = b.y; out[6] = b.z; out[7] = b.w;
}
template <>
__device__ __forceinline__ void load8<__half>(const __half* p, float* out) {
  const uint4 raw = *reinterpret_cast<const uint4*>(p);
  const __half2* h = reinterpret_cast<const __half2*>(&raw);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 f = __half22float2(h[i]);
    out[2 * i] = f.x;
    out[2 * i + 1] = f.y;
  }
}
template <>
__device__ __forceinline__ void load8<__nv_bfloat16>(const __nv_bfloat16* p, float* out) {
  const uint4 raw = *reinterpret_cast<const uint4*>(p);
  const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&raw);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 f = __bfloat1622float2(h[i]);
    out[2 * i] = f.x;
    out[2 * i + 1] = f.y;
  }
}

void check_launch(const char* what) {
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(e));
}

// Programmatic dependent launch (compute capability 9.0 on): each kernel here lets the next one
// launch as soon as all its blocks have started (launch_dependents), and waits for the one before
// it to finish (griddepcontrol.wait) before it reads or writes what that one touches; so a
// kernel's launch and ramp overlap the tail of the one before (a decode step is ~10 kernels a
// layer). The GEMV sends its first weight loads out before it waits (weights do not depend on the
// kernel before). Without the launch attribute (older GPUs, SHARDPLAN_PDL=0; see dependent_launch)
// both are no-ops.
__device__ __forceinline__ void let_next_kernel_launch() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}
__device__ __forceinline__ void wait_for_previous_kernel() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

// `decide(device)` for `kernel` on the current device, computed once per (kernel, device) and
// remembered (each caller's own table, under its own lock); `fallback` without a current device.
template <typename Answer, typename Decide>
Answer once_per_device(const void* kernel, Answer fallback, Decide decide) {
  static std::mutex mutex;
  static std::map<std::pair<const void*, int>, Answer> known;
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess) return fallback;
  const std::lock_guard<std::mutex> lock(mutex);
  const auto key = std::make_pair(kernel, device);
  const auto found = known.find(key);
  if (found != known.end()) return found->second;
  const Answer answer = decide(device);
  known.emplace(key, answer);
  return answer;
}

// Whether `kernel` launches with the programmatic-serialization attribute on the current device:
// compute capability 9.0 or later, the kernel compiled for 9.0 or later (its PTX: a build whose
// kernels come from older PTX, JIT-compiled, has no griddepcontrol.wait in them), and not
// SHARDPLAN_PDL=0.
bool dependent_launch(const void* kernel) {
  return once_per_device(kernel, false, [kernel](int device) {
    int major = 0;
    cudaFuncAttributes attributes = {};
    const char* env = std::getenv("SHARDPLAN_PDL");
    return cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) == cudaSuccess && major >= 9 &&
           cudaFuncGetAttributes(&attributes, kernel) == cudaSuccess && attributes.ptxVersion >= 90 &&
           !(env != nullptr && std::string(env) == "0");
  });
}

// Clears the error a refused query (an attribute the device lacks) left behind, so that the next
// launch's check does not report it; an error pending before the query is left for its owner.
void forget_refusal(bool pending_before) {
  if (!pending_before) cudaGetLastError();
}

// Whether `kernel` (a tensor-core kernel: its body is empty below 8.0) runs on the current
// device: compute capability 8.0 on and its PTX for 8.0 or later.
bool tensor_core_kernel_runs(const void* kernel) {
  return once_per_device(kernel, false, [kernel](int device) {
    int major = 0;
    cudaFuncAttributes attributes = {};
    const bool pending = cudaPeekAtLastError() != cudaSuccess;
    const bool runs = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) == cudaSuccess &&
                      major >= 8 && cudaFuncGetAttributes(&attributes, kernel) == cudaSuccess &&
                      attributes.ptxVersion >= 80;
    forget_refusal(pending);
    return runs;
  });
}

template <typename... Params, typename... Args>
void launch(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream, Args... args) {
  if (!dependent_launch(reinterpret_cast<const void*>(kernel))) {
    kernel<<<grid, block, smem, stream>>>(args...);
    return;
  }
  cudaLaunchConfig_t config = {};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = smem;
  config.stream = stream;
  cudaLaunchAttribute attribute[1];
  attribute[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute[0].val.programmaticStreamSerializationAllowed = 1;
  config.attrs = attribute;
  config.numAttrs = 1;
  const cudaError_t e = cudaLaunchKernelEx(&config, kernel, args...);
  if (e != cudaSuccess) throw std::runtime_error(std::string("kernel launch: ") + cudaGetErrorString(e));
}

int blocks_for(int64_t work, int threads) {
  return static_cast<int>(std::min<int64_t>((work + threads - 1) / threads, 65535 * 8));
}

__device__ __forceinline__ float warp_sum(float x) {
#pragma unroll
  for (int off = 16; off > 0; off /= 2) x += __shfl_xor_sync(0xffffffffu, x, off);
  return x;
}

// ---- small_gemm: one warp per output feature; each lane reads 16 bytes of the weight row per
// load with kGemmUnroll loads in flight (streamed past L1: each weight byte is read once), the
// input rows from L1, and the warp sums its lanes at the end.
constexpr int kGemmWarps = 8;
constexpr int kGemmUnroll = 4;

template <typename T>
__device__ __forceinline__ void load8_streaming(const T* p, float* out) {
  const uint4 raw = __ldcs(reinterpret_cast<const uint4*>(p));
  load8<T>(reinterpret_cast<const T*>(&raw), out);
}

template <typename T, int R>
__global__ void __launch_bounds__(32 * kGemmWarps) small_gemm_kernel(SmallGemm a) {
  let_next_kernel_launch();
  const int lane = threadIdx.x % 32;
  const int64_t n = static_cast<int64_t>(blockIdx.x) * kGemmWarps + threadIdx.x / 32;
  const bool active = n < a.n;
  const T* w = static_cast<const T*>(a.w) + (active ? n : 0) * a.k;
  constexpr int64_t kStep = 32 * 8;  // elements a warp reads per load
  int64_t k0 = lane * 8;
  const auto whole_chunk = [&] { return k0 + (kGemmUnroll - 1) * kStep < a.k; };
  // The first chunk of weights goes out before waiting for the kernel before (it cannot write them).
  float wv[kGemmUnroll][8];
  if (active && whole_chunk()) {
#pragma unroll
    for (int u = 0; u < kGemmUnroll; ++u) load8_streaming<T>(w + k0 + u * kStep, wv[u]);
  }
  wait_for_previous_kernel();
  if (!active) return;
  const T* x = static_cast<const T*>(a.x);
  const int64_t x_row = a.x_row;
  float acc[R];
#pragma unroll
  for (int r = 0; r < R; ++r) acc[r] = 0.0f;
  if (whole_chunk()) {
    while (true) {
#pragma unroll
      for (int u = 0; u < kGemmUnroll; ++u) {
#pragma unroll
        for (int r = 0; r < R; ++r) {
          float xv[8];
          load8<T>(x + r * x_row + k0 + u * kStep, xv);
#pragma unroll
          for (int i = 0; i < 8; ++i) acc[r] = fmaf(wv[u][i], xv[i], acc[r]);
        }
      }
      k0 += kGemmUnroll * kStep;
      if (!whole_chunk()) break;
#pragma unroll
      for (int u = 0; u < kGemmUnroll; ++u) load8_streaming<T>(w + k0 + u * kStep, wv[u]);
    }
  }
  for (; k0 < a.k; k0 += kStep) {
    float wt[8];
    load8_streaming<T>(w + k0, wt);
#pragma unroll
    for (int r = 0; r < R; ++r) {
      float xv[8];
      load8<T>(x + r * x_row + k0, xv);
#pragma unroll
      for (int i = 0; i < 8; ++i) acc[r] = fmaf(wt[i], xv[i], acc[r]);
    }
  }
#pragma unroll
  for (int r = 0; r < R; ++r) acc[r] = warp_sum(acc[r]);
  if (lane != 0) return;
  T* y = static_cast<T*>(a.y);
  const float bias = a.bias != nullptr ? to_float<T>(static_cast<const T*>(a.bias)[n]) : 0.0f;
#pragma unroll
  for (int r = 0; r < R; ++r) {
    T& out = y[r * a.y_row + n];
    out = from_float<T>(acc[r] + bias + (a.accumulate ? to_float<T>(out) : 0.0f));
  }
}

// ---- rope_and_cache: one thread per rotated pair (i, i + head_dim / 2) of one head of one token.
template <typename T>
__global__ void rope_and_cache_kernel(RopeAndCache a) {
  let_next_kernel_launch();
  wait_for_previous_kernel();
  const int64_t half = a.head_dim / 2;
  const int64_t heads = a.q_heads + 2 * a.kv_heads;
  const int64_t total = a.batch * a.tokens * heads * half;
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t i = idx % half;
    int64_t rest = idx / half;
    const int64_t h = rest % heads;
    rest /= heads;
    const int64_t t = rest % a.tokens;
    const int64_t b = rest / a.tokens;
    const T* x = static_cast<const T*>(a.qkv) + (b * a.tokens + t) * a.qkv_row + h * a.head_dim;
    const int64_t pos = a.positions[t];
    if (h >= a.q_heads + a.kv_heads) {  // v: into the cache as it is
      T* dst = static_cast<T*>(a.v_cache) +
               ((b * a.kv_heads + (h - a.q_heads - a.kv_heads)) * a.capacity + pos) * a.head_dim;
      dst[i] = x[i];
      dst[i + half] = x[i + half];
      continue;
    }
    const T* c = static_cast<const T*>(a.cos) + pos * a.head_dim;
    const T* s = static_cast<const T*>(a.sin) + pos * a.head_dim;
    const float x1 = to_float(x[i]), x2 = to_float(x[i + half]);
    // transformers: x * cos + rotate_half(x) * sin, rotate_half(x) = cat(-x2, x1), each op rounded
    // to T. NOTE: __fmul_rn/__fadd_rn keep the compiler from contracting them into one FMA.
    const float lo = rounded<T>(__fadd_rn(rounded<T>(__fmul_rn(x1, to_float(c[i]))),
                                          rounded<T>(__fmul_rn(-x2, to_float(s[i])))));
    const float hi = rounded<T>(__fadd_rn(rounded<T>(__fmul_rn(x2, to_float(c[i + half]))),
                                          rounded<T>(__fmul_rn(x1, to_float(s[i + half])))));
    T* dst = h < a.q_heads
                 ? static_cast<T*>(a.q_out) + ((b * a.q_heads + h) * a.tokens + t) * a.head_dim
                 : static_cast<T*>(a.k_cache) + ((b * a.kv_heads + (h - a.q_heads)) * a.capacity + pos) * a.head_dim;
    dst[i] = from_float<T>(lo);
    dst[i + half] = from_float<T>(hi);
  }
}

// ---- decode_attention
constexpr int kThreads = 128;
constexpr int kWarps = kThreads / 32;
constexpr int kMaxGroupAll = 8;  // q heads per KV head, at most
constexpr int kMaxChunk = 256;  // keys of one block, at most
constexpr float kLog2e = 1.4426950408889634f;


// The running softmax of one head over some keys: max m (log2 units), sum l of 2^(s - m), and
// the sum of 2^(s - m) * v (8 elements of it in a thread).
struct Running {
  float m, l;
};

// Scale of a part with max `m` when merged under max `big` (0 for an empty part).
__device__ __forceinline__ float merged_scale(float m, float big) { return m == -INFINITY ? 0.f : exp2f(m - big); }

// The end of a decode-attention block: merges its warps' parts of its G heads (warp_acc
// [kWarps][stride][D] unnormalised sums, warp_run [kWarps][stride] maxima and sums) and writes the
// output (one split) or the block's part, max and sum to the workspace for decode_combine_kernel.
template <typename T, int D>
__device__ void store_block_result(const DecodeAttention& a, const float* warp_acc, const Running* warp_run,
                                   int stride, int G, int64_t b, int64_t head0, int64_t split) {
  for (int idx = threadIdx.x; idx < G * D; idx += blockDim.x) {
    const int g = idx / D, d = idx % D;
    float top = -INFINITY;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) top = fmaxf(top, warp_run[w * stride + g].m);
    float o = 0.f, l = 0.f;
    if (top != -INFINITY) {
#pragma unroll
      for (int w = 0; w < kWarps; ++w) {
        const float c = merged_scale(warp_run[w * stride + g].m, top);
        o = fmaf(c, warp_acc[(w * stride + g) * D + d], o);
        l = fmaf(c, warp_run[w * stride + g].l, l);
      }
    }
    const int64_t row = b * a.q_heads + head0 + g;
    if (a.splits == 1) {
      static_cast<T*>(a.out)[row * D + d] = from_float<T>(l > 0.f ? o / l : 0.f);
    } else {
      // NOTE: the combine kernel works in log2 units too: the part's max as the running max.
      float* ws_o = a.workspace;
      float* ws_m = ws_o + a.batch * a.q_heads * a.splits * D;
      float* ws_l = ws_m + a.batch * a.q_heads * a.splits;
      ws_o[(row * a.splits + split) * D + d] = o;
      if (d == 0) {
        ws_m[row * a.splits + split] = top;
        ws_l[row * a.splits + split] = l;
      }
    }
  }
}

// One block: request blockIdx.z, one KV head's group of q heads (blockIdx.y), key chunk blockIdx.x.
// What a decode-attention block (blockIdx: split, query-head group or head, request) works on,
// for both kernels: its KV head, its first query head and how many it has (G), and the request's
// keys [start, end): up to its last position, past the window and the request's padding.
struct AttentionBlock {
  int G;
  int64_t kv, head0, start, end;
};

__device__ __forceinline__ AttentionBlock attention_block(const DecodeAttention& a) {
  const int64_t grp = blockIdx.y, b = blockIdx.z;
  const bool grouped = a.head_map == nullptr;
  AttentionBlock blk;
  blk.G = grouped ? static_cast<int>(a.group) : 1;
  blk.kv = grouped ? grp : a.head_map[grp];
  blk.head0 = grouped ? grp * blk.G : grp;
  blk.end = a.last_position[b * a.last_position_stride] + 1;
  blk.start = a.window > 0 ? max(int64_t{0}, blk.end - a.window) : int64_t{0};
  if (a.first_row != nullptr) blk.start = max(blk.start, a.first_row[b]);
  return blk;
}

// A team of D / 8 threads holds one key row and its value row (8 elements a thread); each team
// takes kUnroll rows at a time (their keys and values loaded together: the loads are what the
// kernel waits for) and keeps a running softmax per head, so K and V are read in one pass. The
// teams' parts are merged by shuffles within a warp, then through shared memory. With one chunk
// the block writes the output; otherwise its unnormalised part, max and sum go to the workspace
// for decode_combine_kernel.
template <typename T, int D, int kMaxGroup>
__global__ void __launch_bounds__(kThreads) decode_attention_kernel(DecodeAttention a, int64_t chunk) {
  let_next_kernel_launch();
  wait_for_previous_kernel();
  constexpr int kVec = 8;
  constexpr int kTeam = D / kVec;
  constexpr int kTeams = kThreads / kTeam;
  constexpr int kUnroll = 4;
  __shared__ float warp_acc[kWarps][kMaxGroup][D];
  __shared__ Running warp_run[kWarps][kMaxGroup];

  const int64_t split = blockIdx.x, b = blockIdx.z;
  const AttentionBlock blk = attention_block(a);
  const int G = blk.G;
  const int64_t kv = blk.kv, head0 = blk.head0, start = blk.start, end = blk.end;
  const int64_t lo = max(start, split * chunk);
  const int64_t n = min(end, (split + 1) * chunk) - lo;  // keys of this block (<= 0: none)
  const int tid = threadIdx.x, team = tid / kTeam, lane = tid % kTeam;
  const int warp = tid / 32, lane32 = tid % 32;
  const T* keys = static_cast<const T*>(a.k_cache) + ((b * a.kv_heads + kv) * a.capacity + lo) * D + lane * kVec;
  const T* values = static_cast<const T*>(a.v_cache) + ((b * a.kv_heads + kv) * a.capacity + lo) * D + lane * kVec;

  float q[kMaxGroup][kVec], acc[kMaxGroup][kVec];
  Running run[kMaxGroup];
#pragma unroll
  for (int g = 0; g < kMaxGroup; ++g) {
    run[g] = {-INFINITY, 0.f};
#pragma unroll
    for (int e = 0; e < kVec; ++e) acc[g][e] = 0.f;
    if (g < G) {
      load8(static_cast<const T*>(a.q) + (b * a.q_heads + head0 + g) * D + lane * kVec, q[g]);
#pragma unroll
      for (int e = 0; e < kVec; ++e) q[g][e] *= a.scale * kLog2e;
    } else {
#pragma unroll
      for (int e = 0; e < kVec; ++e) q[g][e] = 0.f;
    }
  }

  // Every lane runs the same iterations: the shuffles need the whole warp.
  for (int64_t k0 = 0; k0 < n; k0 += kTeams * kUnroll) {
    float kr[kUnroll][kVec], vr[kUnroll][kVec];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t k = k0 + u * kTeams + team;
      if (k < n) {
        load8(keys + k * D, kr[u]);
        load8(values + k * D, vr[u]);
      } else {
#pragma unroll
        for (int e = 0; e < kVec; ++e) kr[u][e] = vr[u][e] = 0.f;
      }
    }
#pragma unroll
    for (int g = 0; g < kMaxGroup; ++g) {
      if (g >= G) break;
      float sc[kUnroll];
      float top = run[g].m;
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        float s = 0.f;
#pragma unroll
        for (int e = 0; e < kVec; ++e) s = fmaf(q[g][e], kr[u][e], s);
#pragma unroll
        for (int off = kTeam / 2; off > 0; off /= 2) s += __shfl_xor_sync(0xffffffffu, s, off);
        sc[u] = k0 + u * kTeams + team < n ? s : -INFINITY;
        top = fmaxf(top, sc[u]);
      }
      if (top == -INFINITY) continue;  // no key of this team in these rows
      const float c = merged_scale(run[g].m, top);
      run[g].m = top;
      run[g].l *= c;
#pragma unroll
      for (int e = 0; e < kVec; ++e) acc[g][e] *= c;
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const float p = merged_scale(sc[u], top);
        run[g].l += p;
#pragma unroll
        for (int e = 0; e < kVec; ++e) acc[g][e] = fmaf(p, vr[u][e], acc[g][e]);
      }
    }
  }

  // Merge the teams of a warp (lanes kTeam apart hold the same elements), then the warps.
#pragma unroll
  for (int g = 0; g < kMaxGroup; ++g) {
    if (g >= G) break;
#pragma unroll
    for (int off = kTeam; off < 32; off *= 2) {
      const float om = __shfl_xor_sync(0xffffffffu, run[g].m, off);
      const float ol = __shfl_xor_sync(0xffffffffu, run[g].l, off);
      const float top = fmaxf(run[g].m, om);
      const float mine = top == -INFINITY ? 0.f : merged_scale(run[g].m, top);
      const float theirs = top == -INFINITY ? 0.f : merged_scale(om, top);
#pragma unroll
      for (int e = 0; e < kVec; ++e) {
        const float other = __shfl_xor_sync(0xffffffffu, acc[g][e], off);
        acc[g][e] = acc[g][e] * mine + other * theirs;
      }
      run[g] = {top, run[g].l * mine + ol * theirs};
    }
    if (lane32 < kTeam) {
#pragma unroll
      for (int e = 0; e < kVec; ++e) warp_acc[warp][g][lane * kVec + e] = acc[g][e];
      if (lane32 == 0) warp_run[warp][g] = run[g];
    }
  }
  __syncthreads();
  store_block_result<T, D>(a, &warp_acc[0][0][0], &warp_run[0][0], kMaxGroup, G, b, head0, split);
}

// Merges the chunks of one (request, q head): thread d computes output element d.
template <typename T>
__global__ void decode_combine_kernel(DecodeAttention a) {
  let_next_kernel_launch();
  wait_for_previous_kernel();
  const int64_t row = blockIdx.x;  // request * q_heads + head
  const int64_t D = a.head_dim, S = a.splits;
  const float* ws_o = a.workspace;
  const float* ws_m = ws_o + a.batch * a.q_heads * S * D;
  const float* ws_l = ws_m + a.batch * a.q_heads * S;
  float m = -INFINITY;
  for (int64_t s = 0; s < S; ++s) {
    if (ws_l[row * S + s] > 0.f) m = fmaxf(m, ws_m[row * S + s]);
  }
  for (int64_t d = threadIdx.x; d < D; d += blockDim.x) {
    float num = 0.f, den = 0.f;
    for (int64_t s = 0; s < S; ++s) {
      const float l = ws_l[row * S + s];
      if (!(l > 0.f)) continue;
      const float w = exp2f(ws_m[row * S + s] - m);
      num = fmaf(w, ws_o[(row * S + s) * D + d], num);
      den = fmaf(w, l, den);
    }
    static_cast<T*>(a.out)[row * D + d] = from_float<T>(den > 0.f ? num / den : 0.f);
  }
}

// ---- decode_attention on tensor cores (16-bit types, compute capability 8.0 on)
//
// The same work as decode_attention_kernel with the products on tensor cores: at 4 query heads a
// KV head, a key row costs 1,024 multiply-adds on CUDA cores for its 512 bytes, too many to keep
// up with the memory (the kernel above reads a long cache at about half the copy rate). Here a
// warp takes a tile of 16 keys at a time: S = Q K^T as two mma.m16n8k16 per 16 dimensions (the
// group's heads are the 16 rows of A, rows past the group zero), the running softmax on S's
// fragments, then O += P V with P straight from S's registers (the accumulator's layout is the
// A operand's, as in FlashAttention-2) rounded to the element type. K and V tiles stream into
// shared memory with cp.async, kStages tiles in flight a warp (each warp its own pipeline, so no
// block barrier in the loop), rows swizzled so that ldmatrix reads them without bank conflicts.
// A block's keys are an equal share of its request's filled rows (chunks follow the fill, not
// the capacity), split over its warps tile by tile.
constexpr int kTileKeys = 16;

template <int D>
__host__ __device__ constexpr int mma_stages() { return D <= 64 ? 4 : D <= 128 ? 3 : 2; }
template <int D>
__host__ __device__ constexpr int mma_smem_bytes() {
  // The pipelines during the loop, the warps' parts (as store_block_result reads them) after it.
  constexpr int pipelines = kWarps * mma_stages<D>() * 2 * kTileKeys * D * 2;
  constexpr int parts = kWarps * kMaxGroupAll * (D * 4 + static_cast<int>(sizeof(Running)));
  return pipelines > parts ? pipelines : parts;
}

__device__ __forceinline__ uint32_t shared_address(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
// 16 bytes global -> shared, asynchronously; zeros when !valid (nothing is read then).
__device__ __forceinline__ void copy16_async(uint32_t dst, const void* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(valid ? 16 : 0) : "memory");
}
__device__ __forceinline__ void copies_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int kPending>
__device__ __forceinline__ void copies_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending) : "memory");
}
__device__ __forceinline__ void load_matrices(uint32_t address, uint32_t (&r)[4]) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(address)
               : "memory");
}
__device__ __forceinline__ void load_matrices_transposed(uint32_t address, uint32_t (&r)[4]) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(address)
               : "memory");
}

// d += A B for a 16 x 16 A (a0: rows 0..7, columns 2q, 2q + 1; a1: rows 8..15; a2, a3: columns
// 8 + 2q, 9 + 2q) and a 16 x 8 B (b0: rows 2q, 2q + 1, column f; b1: rows 8 + 2q, 9 + 2q), float
// sums; d[0..1]: row f, columns 2q, 2q + 1; d[2..3]: row 8 + f (f = lane / 4, q = lane % 4).
template <typename T>
__device__ __forceinline__ void mma16816(float (&d)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                         uint32_t b0, uint32_t b1) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
  } else {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
  }
}

// The same for an A whose rows 8..15 are zero; only d[0..1] is kept.
template <typename T>
__device__ __forceinline__ void mma_rows0to7(float (&d)[2], uint32_t a0, uint32_t a2, uint32_t b0, uint32_t b1) {
  float full[4] = {d[0], d[1], 0.f, 0.f};
  mma16816<T>(full, a0, 0u, a2, 0u, b0, b1);
  d[0] = full[0];
  d[1] = full[1];
}

template <typename T>
__device__ __forceinline__ uint32_t pack2(float lo, float hi);
template <>
__device__ __forceinline__ uint32_t pack2<__nv_bfloat16>(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&v);
}
template <>
__device__ __forceinline__ uint32_t pack2<__half>(float lo, float hi) {
  const __half2 v = __floats2half2_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&v);
}

template <typename T, int D>
__global__ void __launch_bounds__(kThreads) decode_attention_mma_kernel(DecodeAttention a) {
  let_next_kernel_launch();
  wait_for_previous_kernel();
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  constexpr int kStages = mma_stages<D>();
  constexpr int kPieces = D / 8;                     // 16-byte pieces of a row
  constexpr int kTileBytes = kTileKeys * D * 2;      // one tile of K or of V
  extern __shared__ __align__(128) unsigned char shared[];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int row = lane / 4, quad = lane % 4;  // the fragments' coordinates (PTX: groupID, threadID_in_group)

  const int64_t split = blockIdx.x, b = blockIdx.z;
  const AttentionBlock blk = attention_block(a);
  const int G = blk.G;
  const int64_t kv = blk.kv, head0 = blk.head0, start = blk.start, end = blk.end;
  // This block's keys [lo, lo + n): an equal share of the request's rows in whole tiles, at least
  // min_chunk keys (a cache filled far below its capacity leaves the last chunks empty).
  const int64_t filled = max(int64_t{0}, end - start);
  const int64_t chunk =
      max(a.min_chunk, ((filled + a.splits - 1) / a.splits + kTileKeys - 1) / kTileKeys * kTileKeys);
  const int64_t lo = start + split * chunk;
  const int64_t n = max(int64_t{0}, min(end, lo + chunk) - lo);
  const int64_t tiles = (n + kTileKeys - 1) / kTileKeys;
  const int64_t my_tiles = tiles > warp ? (tiles - warp + kWarps - 1) / kWarps : 0;  // tiles warp, warp + kWarps, ...

  const int64_t base = (b * a.kv_heads + kv) * a.capacity * D;
  const T* keys = static_cast<const T*>(a.k_cache) + base;
  const T* values = static_cast<const T*>(a.v_cache) + base;
  const uint32_t stages = shared_address(shared) + warp * kStages * 2 * kTileBytes;
  // Row r, piece c of a tile lies at r * D * 2 + ((c ^ (r % 8)) * 16): the 8 rows an ldmatrix
  // phase reads then hit 8 different bank quads.
  const auto swizzled = [](int r, int c) { return static_cast<uint32_t>(r * D * 2 + ((c ^ (r & 7)) * 16)); };
  const auto load_tile = [&](int64_t i) {  // the warp's i-th tile into stage i % kStages
    const int64_t key0 = lo + (warp + i * kWarps) * kTileKeys;
    const uint32_t k_dst = stages + static_cast<uint32_t>(i % kStages) * 2 * kTileBytes, v_dst = k_dst + kTileBytes;
#pragma unroll
    for (int u = 0; u < kTileKeys * kPieces / 32; ++u) {
      const int idx = lane + 32 * u, r = idx / kPieces, c = idx % kPieces;
      const bool valid = key0 + r < lo + n;
      const int64_t src = (valid ? key0 + r : lo) * D + c * 8;
      copy16_async(k_dst + swizzled(r, c), keys + src, valid);
      copy16_async(v_dst + swizzled(r, c), values + src, valid);
    }
  };

  // Q as the A operand: this lane's row is head `row` of the group (zero past the group).
  uint32_t qa[D / 16][2];
  {
    const bool mine = row < G;
    const T* q = static_cast<const T*>(a.q) + (b * a.q_heads + head0 + (mine ? row : 0)) * D + 2 * quad;
#pragma unroll
    for (int s = 0; s < D / 16; ++s) {
      qa[s][0] = mine ? *reinterpret_cast<const uint32_t*>(q + 16 * s) : 0u;
      qa[s][1] = mine ? *reinterpret_cast<const uint32_t*>(q + 16 * s + 8) : 0u;
    }
  }

  float acc[D / 8][2];  // O[row][8 j + 2 quad + e], unnormalised
#pragma unroll
  for (int j = 0; j < D / 8; ++j) acc[j][0] = acc[j][1] = 0.f;
  float m = -INFINITY, l = 0.f;  // running max (log2 units) and this lane's part of the sum
  const float scale = a.scale * kLog2e;
  // The ldmatrix lane -> row/piece map: lanes 8i..8i+7 address the rows of matrix i; matrices
  // 0, 1 are keys 0-7 and 8-15 of piece p, matrices 2, 3 the same keys of piece p + 1.
  const int ld_row = (lane & 7) + ((lane >> 3) & 1) * 8, ld_piece = lane >> 4;

#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < my_tiles) load_tile(s);
    copies_commit();
  }
  for (int64_t i = 0; i < my_tiles; ++i) {
    if (i + kStages - 1 < my_tiles) load_tile(i + kStages - 1);
    copies_commit();
    copies_wait<kStages - 1>();  // this lane's copies of tile i have landed
    __syncwarp();                // and every lane's
    const uint32_t k_tile = stages + static_cast<uint32_t>(i % kStages) * 2 * kTileBytes, v_tile = k_tile + kTileBytes;

    // S = Q K^T: s0 keys 2q, 2q + 1 of the tile, s1 keys 8 + 2q, 9 + 2q.
    float s0[2] = {0.f, 0.f}, s1[2] = {0.f, 0.f};
#pragma unroll
    for (int s = 0; s < D / 16; ++s) {
      uint32_t kb[4];
      load_matrices(k_tile + swizzled(ld_row, 2 * s + ld_piece), kb);
      mma_rows0to7<T>(s0, qa[s][0], qa[s][1], kb[0], kb[2]);
      mma_rows0to7<T>(s1, qa[s][0], qa[s][1], kb[1], kb[3]);
    }
    const int64_t first = (warp + i * kWarps) * kTileKeys;  // the tile's first key, from lo
    float sc[4] = {s0[0], s0[1], s1[0], s1[1]};
    const int column[4] = {2 * quad, 2 * quad + 1, 8 + 2 * quad, 9 + 2 * quad};  // of sc[e] in the tile
    float top = m;
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      sc[e] = first + column[e] < n ? sc[e] * scale : -INFINITY;
      top = fmaxf(top, sc[e]);
    }
    top = fmaxf(top, __shfl_xor_sync(0xffffffffu, top, 1));
    top = fmaxf(top, __shfl_xor_sync(0xffffffffu, top, 2));  // finite: the tile's first key is in range
    const float c = exp2f(m - top);
    m = top;
    l *= c;
#pragma unroll
    for (int j = 0; j < D / 8; ++j) {
      acc[j][0] *= c;
      acc[j][1] *= c;
    }
    float p[4];
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      p[e] = exp2f(sc[e] - top);
      l += p[e];
    }
    const uint32_t pa0 = pack2<T>(p[0], p[1]), pa2 = pack2<T>(p[2], p[3]);

    // O += P V, two blocks of 8 dimensions per ldmatrix.
#pragma unroll
    for (int j = 0; j < D / 8; j += 2) {
      uint32_t vb[4];
      load_matrices_transposed(v_tile + swizzled(ld_row, j + ld_piece), vb);
      mma_rows0to7<T>(acc[j], pa0, pa2, vb[0], vb[1]);
      mma_rows0to7<T>(acc[j + 1], pa0, pa2, vb[2], vb[3]);
    }
    __syncwarp();  // every lane has read the stage before it is refilled
  }
  copies_wait<0>();
  l += __shfl_xor_sync(0xffffffffu, l, 1);
  l += __shfl_xor_sync(0xffffffffu, l, 2);

  __syncthreads();  // every warp is done with its stages: the parts reuse the memory
  float* warp_acc = reinterpret_cast<float*>(shared);  // [kWarps][kMaxGroupAll][D]
  Running* warp_run = reinterpret_cast<Running*>(warp_acc + kWarps * kMaxGroupAll * D);
  if (row < G) {
#pragma unroll
    for (int j = 0; j < D / 8; ++j) {
      warp_acc[(warp * kMaxGroupAll + row) * D + 8 * j + 2 * quad] = acc[j][0];
      warp_acc[(warp * kMaxGroupAll + row) * D + 8 * j + 2 * quad + 1] = acc[j][1];
    }
    if (quad == 0) warp_run[warp * kMaxGroupAll + row] = {m, l};
  }
  __syncthreads();
  store_block_result<T, D>(a, warp_acc, warp_run, kMaxGroupAll, G, b, head0, split);
#endif
}

// Blocks of decode_attention_mma_kernel<T, D> an SM runs at once on the current device; 0 where it
// cannot run (tensor_core_kernel_runs). Sets the kernel's shared-memory limit on first use, once
// per device.
template <typename T, int D>
int mma_blocks_per_sm() {
  const auto kernel = decode_attention_mma_kernel<T, D>;
  return once_per_device(reinterpret_cast<const void*>(kernel), 0, [kernel](int) {
    if (!tensor_core_kernel_runs(reinterpret_cast<const void*>(kernel))) return 0;
    int blocks = 0;
    const bool pending = cudaPeekAtLastError() != cudaSuccess;
    if (cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, mma_smem_bytes<D>()) != cudaSuccess ||
        cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, kernel, kThreads, mma_smem_bytes<D>()) != cudaSuccess) {
      blocks = 0;
    }
    forget_refusal(pending);
    return blocks;
  });
}

template <typename T>
int mma_blocks_per_sm_typed(int64_t head_dim) {
  switch (head_dim) {
    case 64: return mma_blocks_per_sm<T, 64>();
    case 128: return mma_blocks_per_sm<T, 128>();
    case 256: return mma_blocks_per_sm<T, 256>();
    default: return 0;
  }
}

int mma_blocks_per_sm(const DecodeAttention& a) {
  const auto aligned = [](const void* p, uintptr_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; };
  if (!aligned(a.k_cache, 16) || !aligned(a.v_cache, 16) || !aligned(a.q, 4)) return 0;
  switch (a.dtype) {
    case Dtype::kFloat16: return mma_blocks_per_sm_typed<__half>(a.head_dim);
    case Dtype::kBFloat16: return mma_blocks_per_sm_typed<__nv_bfloat16>(a.head_dim);
    case Dtype::kFloat32: break;
  }
  return 0;
}

template <typename T, int D>
void launch_decode_attention(const DecodeAttention& a, cudaStream_t stream) {
  const int64_t groups = a.head_map == nullptr ? a.kv_heads : a.q_heads;
  const int64_t group = a.head_map == nullptr ? a.group : 1;
  const dim3 grid(static_cast<unsigned>(a.splits), static_cast<unsigned>(groups), static_cast<unsigned>(a.batch));
  if constexpr (!std::is_same_v<T, float>) {
    if (mma_blocks_per_sm(a) > 0) {
      launch(decode_attention_mma_kernel<T, D>, grid, kThreads, mma_smem_bytes<D>(), stream, a);
      check_launch("decode_attention");
      if (a.splits > 1) {
        launch(decode_combine_kernel<T>, dim3(static_cast<unsigned>(a.batch * a.q_heads)), dim3(static_cast<unsigned>(D)),
               0, stream, a);
        check_launch("decode_attention (combine)");
      }
      return;
    }
  }
  const int64_t chunk = (a.capacity + a.splits - 1) / a.splits;
  // NOTE: the registers of q and of the sums grow with the group: the smallest kernel that fits.
  if (group <= 1) {
    launch(decode_attention_kernel<T, D, 1>, grid, kThreads, 0, stream, a, chunk);
  } else if (group <= 2) {
    launch(decode_attention_kernel<T, D, 2>, grid, kThreads, 0, stream, a, chunk);
  } else if (group <= 4) {
    launch(decode_attention_kernel<T, D, 4>, grid, kThreads, 0, stream, a, chunk);
  } else {
    launch(decode_attention_kernel<T, D, 8>, grid, kThreads, 0, stream, a, chunk);
  }
  check_launch("decode_attention");
  if (a.splits > 1) {
    launch(decode_combine_kernel<T>, dim3(static_cast<unsigned>(a.batch * a.q_heads)), dim3(static_cast<unsigned>(D)), 0, stream, a);
    check_launch("decode_attention (combine)");
  }
}

template <typename T>
void decode_attention_typed(const DecodeAttention& a, cudaStream_t stream) {
  switch (a.head_dim) {
    case 64: return launch_decode_attention<T, 64>(a, stream);
    case 128: return launch_decode_attention<T, 128>(a, stream);
    case 256: return launch_decode_attention<T, 256>(a, stream);
    default: break;
  }
  throw std::invalid_argument("decode_attention: head_dim " + std::to_string(a.head_dim) + " is not 64, 128 or 256");
}

// ---- small_gemm of 3 to 8 rows, on tensor cores (compute capability 8.0 on)
//
// At 8 rows the CUDA-core GEMV above would read its input rows from L1 eight times per weight
// load, more than L1 delivers. Here a block of kSkinnyWarps warps computes 16 output features for
// every row as y^T [16 x 8] = W [16 x k] X^T [k x 8] with mma.m16n8k16: the weight rows are the A
// operand (read once, streamed past L1), the input rows the 8 columns of B (rows past `rows`
// zero). Each warp takes every kSkinnyWarps-th span of 128 of k: in a span a lane reads 16 bytes
// of weight rows f and f + 8 and of input row f (f = lane / 4) at each of 4 places, and the k
// order inside the span is taken the same for W and X, so the products pair the right elements
// whatever it is. The next span's weights are in flight (in registers) while this one's are
// multiplied; the warps' partial tiles are summed in shared memory. (A version that streamed the
// weights through shared memory with cp.async, two spans ahead, measured 1.3x slower on an H200.)
constexpr int kSkinnyWarps = 8;
constexpr int kSkinnySpan = 128;

template <typename T>
__global__ void __launch_bounds__(32 * kSkinnyWarps) skinny_gemm_kernel(SmallGemm a) {
  let_next_kernel_launch();
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, f = lane / 4, q = lane % 4;
  const int64_t n0 = static_cast<int64_t>(blockIdx.x) * 16;
  const int64_t spans = (a.k + kSkinnySpan - 1) / kSkinnySpan;
  // Features past n read row n - 1 (their results are dropped).
  const T* w_lo = static_cast<const T*>(a.w) + min(n0 + f, a.n - 1) * a.k;
  const T* w_hi = static_cast<const T*>(a.w) + min(n0 + f + 8, a.n - 1) * a.k;
  // The lane's i-th 8 elements of a span: 4 lanes of a row read 64 contiguous bytes together.
  const auto at = [&](int64_t span, int i) { return span * kSkinnySpan + 8 * (4 * i + q); };
  uint4 lo[4], hi[4];  // the next span's weights of rows f and f + 8
  const auto load_weights = [&](int64_t span) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int64_t k = at(span, i);
      const bool in = k < a.k;
      lo[i] = in ? __ldcs(reinterpret_cast<const uint4*>(w_lo + k)) : make_uint4(0, 0, 0, 0);
      hi[i] = in ? __ldcs(reinterpret_cast<const uint4*>(w_hi + k)) : make_uint4(0, 0, 0, 0);
    }
  };
  // The first span's weights go out before waiting for the kernel before (it cannot write them).
  int64_t span = warp;
  if (span < spans) load_weights(span);
  wait_for_previous_kernel();
  const bool row_in = f < a.rows;
  const T* x = static_cast<const T*>(a.x) + (row_in ? f : 0) * a.x_row;
  float d[4] = {0.f, 0.f, 0.f, 0.f};  // features f and f + 8 x rows 2q, 2q + 1
  for (; span < spans; span += kSkinnyWarps) {
    uint4 xv[4], wl[4], wh[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int64_t k = at(span, i);
      xv[i] = row_in && k < a.k ? *reinterpret_cast<const uint4*>(x + k) : make_uint4(0, 0, 0, 0);
      wl[i] = lo[i];
      wh[i] = hi[i];
    }
    if (span + kSkinnyWarps < spans) load_weights(span + kSkinnyWarps);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      mma16816<T>(d, wl[i].x, wh[i].x, wl[i].y, wh[i].y, xv[i].x, xv[i].y);
      mma16816<T>(d, wl[i].z, wh[i].z, wl[i].w, wh[i].w, xv[i].z, xv[i].w);
    }
  }
  __shared__ float parts[kSkinnyWarps][32][4];
#pragma unroll
  for (int e = 0; e < 4; ++e) parts[warp][lane][e] = d[e];
  __syncthreads();
  if (threadIdx.x >= 16 * 8) return;
  const int feature = threadIdx.x / 8, r = threadIdx.x % 8;  // of the block's 16 x 8 outputs
  const int64_t n = n0 + feature;
  if (n >= a.n || r >= a.rows) return;
  const int holder = (feature % 8) * 4 + r / 2, slot = (feature / 8) * 2 + r % 2;
  float sum = 0.f;
#pragma unroll
  for (int w = 0; w < kSkinnyWarps; ++w) sum += parts[w][holder][slot];
  T& out = static_cast<T*>(a.y)[r * a.y_row + n];
  const float bias = a.bias != nullptr ? to_float<T>(static_cast<const T*>(a.bias)[n]) : 0.0f;
  out = from_float<T>(sum + bias + (a.accumulate ? to_float<T>(out) : 0.0f));
#else
  wait_for_previous_kernel();
#endif
}

// ---- silu_mul
template <typename T>
__global__ void silu_mul_kernel(const T* x, int64_t x_row, T* out, int64_t rows, int64_t n) {
  let_next_kernel_launch();
  wait_for_previous_kernel();
  const int64_t total = rows * n;
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = idx / n, i = idx % n;
    const float g = to_float(x[r * x_row + i]);
    const float u = to_float(x[r * x_row + n + i]);
    // ATen: silu(x) = x / (1 + exp(-x)) rounded to T, then the product rounded to T.
    const float s = rounded<T>(g / (1.0f + expf(-g)));
    out[idx] = from_float<T>(__fmul_rn(s, u));
  }
}

template <template <typename> class Fn, typename... Args>
void by_dtype(Dtype dtype, Args&&... args) {
  switch (dtype) {
    case Dtype::kFloat32: return Fn<float>::run(args...);
    case Dtype::kFloat16: return Fn<__half>::run(args...);
    case Dtype::kBFloat16: return Fn<__nv_bfloat16>::run(args...);
  }
}

template <typename T>
struct RopeRun {
  static void run(const RopeAndCache& a, cudaStream_t stream) {
    const int64_t work = a.batch * a.tokens * (a.q_heads + 2 * a.kv_heads) * (a.head_dim / 2);
    if (work == 0) return;
    launch(rope_and_cache_kernel<T>, dim3(blocks_for(work, 256)), dim3(256), 0, stream, a);
    check_launch("rope_and_cache");
  }
};
template <typename T>
struct AttentionRun {
  static void run(const DecodeAttention& a, cudaStream_t stream) { decode_attention_typed<T>(a, stream); }
};
template <typename T>
struct SiluMulRun {
  static void run(const void* x, int64_t x_row, void* out, int64_t rows, int64_t n, cudaStream_t stream) {
    if (rows * n == 0) return;
    launch(silu_mul_kernel<T>, dim3(blocks_for(rows * n, 256)), dim3(256), 0, stream, static_cast<const T*>(x), x_row,
           static_cast<T*>(out), rows, n);
    check_launch("silu_mul");
  }
};

template <typename T>
struct SmallGemmRun {
  // Rows from which the tensor-core kernel runs where it can: decode_linear_bench on an H200 (the
  // Llama-3-8B projections) had the CUDA-core GEMV ahead at 1 and 2 rows and behind at 4 (1.3 to
  // 1.8x the bound against 1.0 to 1.4x), the tensor-core kernel taking about the same time at 3 to 8.
  static constexpr int64_t kTensorCoreRows = 3;
  static void run(const SmallGemm& a, cudaStream_t stream) {
    if (a.n == 0) return;
    if (a.rows >= kTensorCoreRows && tensor_core_kernel_runs(reinterpret_cast<const void*>(skinny_gemm_kernel<T>))) {
      launch(skinny_gemm_kernel<T>, dim3(static_cast<unsigned>((a.n + 15) / 16)), dim3(32 * kSkinnyWarps), 0, stream, a);
      check_launch("small_gemm");
      return;
    }
    const dim3 grid(static_cast<unsigned>((a.n + kGemmWarps - 1) / kGemmWarps));
    switch (a.rows) {
      case 1: launch(small_gemm_kernel<T, 1>, grid, dim3(32 * kGemmWarps), 0, stream, a); break;
      case 2: launch(small_gemm_kernel<T, 2>, grid, dim3(32 * kGemmWarps), 0, stream, a); break;
      case 3: launch(small_gemm_kernel<T, 3>, grid, dim3(32 * kGemmWarps), 0, stream, a); break;
      case 4: launch(small_gemm_kernel<T, 4>, grid, dim3(32 * kGemmWarps), 0, stream, a); break;
      default: throw std::invalid_argument("small_gemm: 5 to 8 rows need tensor cores (compute capability 8.0)");
    }
    check_launch("small_gemm");
  }
};

}  // namespace

void rope_and_cache(const RopeAndCache& a, void* stream) {
  if (a.head_dim % 2 != 0) throw std::invalid_argument("rope_and_cache: odd head_dim");
  by_dtype<RopeRun>(a.dtype, a, static_cast<cudaStream_t>(stream));
}

bool decode_attention_supported(int64_t head_dim, int64_t group) {
  return (head_dim == 64 || head_dim == 128 || head_dim == 256) && group >= 1 && group <= kMaxGroupAll;
}

void choose_decode_attention_splits(DecodeAttention& a, int sm_count, int64_t requested) {
  const int64_t groups = a.head_map == nullptr ? a.kv_heads : a.q_heads, pairs = std::max<int64_t>(1, a.batch * groups);
  a.min_chunk = 0;
  if (const int blocks = mma_blocks_per_sm(a); blocks > 0) {
    if (requested > 0) {
      a.splits = requested;
      return;
    }
    // One wave: as many chunks as leave no SM slot idle, each of at least kMinChunkKeys keys: below
    // that a chunk's start-up and the combine step cost more than the parallelism gains
    // (decode_attention_bench on an H200: batch 1 over 192 keys 5 us in one chunk, 10 in three).
    // The chunks divide the filled rows, known on the device only: the kernel keeps them at
    // least that long, so a cache filled far below its capacity runs fewer, longer chunks.
    constexpr int64_t kMinChunkKeys = 512;
    const int64_t most = std::max<int64_t>(1, a.capacity / kMinChunkKeys);
    a.splits = std::clamp<int64_t>(static_cast<int64_t>(sm_count) * blocks / pairs, 1, most);
    a.min_chunk = kMinChunkKeys;
    return;
  }
  const auto splits_of = [&](int64_t c) { return (a.capacity + c - 1) / c; };
  if (requested > 0) {
    a.splits = std::max(requested, splits_of(kMaxChunk));
    return;
  }
  int64_t chunk = kMaxChunk;
  while (chunk > 32 && pairs * splits_of(chunk) < 2 * static_cast<int64_t>(sm_count)) chunk /= 2;
  a.splits = std::max<int64_t>(1, splits_of(chunk));
}

int64_t decode_attention_workspace(int64_t batch, int64_t q_heads, int64_t head_dim, int64_t splits) {
  return splits > 1 ? batch * q_heads * splits * (head_dim + 2) : 0;
}

void decode_attention(const DecodeAttention& a, void* stream) {
  if (!decode_attention_supported(a.head_dim, a.head_map == nullptr ? a.group : 1) || a.splits < 1) {
    throw std::invalid_argument("decode_attention: unsupported head_dim or group");
  }
  if (mma_blocks_per_sm(a) == 0 && (a.capacity + a.splits - 1) / a.splits > kMaxChunk) {
    throw std::invalid_argument("decode_attention: chunks of more than 256 keys");
  }
  if (a.batch == 0) return;
  by_dtype<AttentionRun>(a.dtype, a, static_cast<cudaStream_t>(stream));
}

void silu_mul(Dtype dtype, const void* x, int64_t x_row, void* out, int64_t rows, int64_t n, void* stream) {
  by_dtype<SiluMulRun>(dtype, x, x_row, out, rows, n, static_cast<cudaStream_t>(stream));
}

bool tensor_cores_run(Dtype dtype) {
  switch (dtype) {
    case Dtype::kFloat16:
      return tensor_core_kernel_runs(reinterpret_cast<const void*>(skinny_gemm_kernel<__half>)) &&
             mma_blocks_per_sm<__half, 128>() > 0;
    case Dtype::kBFloat16:
      return tensor_core_kernel_runs(reinterpret_cast<const void*>(skinny_gemm_kernel<__nv_bfloat16>)) &&
             mma_blocks_per_sm<__nv_bfloat16, 128>() > 0;
    case Dtype::kFloat32: break;
  }
  return false;
}

bool small_gemm_supported(Dtype dtype, int64_t rows, int64_t k) {
  if (dtype == Dtype::kFloat32 || rows < 1 || rows > 8 || k <= 0 || k % 8 != 0) return false;
  if (rows <= 4) return true;
  return tensor_core_kernel_runs(dtype == Dtype::kFloat16 ? reinterpret_cast<const void*>(skinny_gemm_kernel<__half>)
                                                          : reinterpret_cast<const void*>(skinny_gemm_kernel<__nv_bfloat16>));
}

void small_gemm(const SmallGemm& a, void* stream) {
  if (!small_gemm_supported(a.dtype, a.rows, a.k)) throw std::invalid_argument("small_gemm: unsupported shape or dtype");
  switch (a.dtype) {
    case Dtype::kFloat16: return SmallGemmRun<__half>::run(a, static_cast<cudaStream_t>(stream));
    case Dtype::kBFloat16: return SmallGemmRun<__nv_bfloat16>::run(a, static_cast<cudaStream_t>(stream));
    case Dtype::kFloat32: break;
  }
}

}  // namespace shardplan::cuda
