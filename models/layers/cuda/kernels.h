// The executor's own CUDA kernels for the decode step, behind a plain C++ interface (raw device
// pointers, no libtorch and no CUDA headers here): models/layers/fused.h wraps them for tensors.
// Each fuses what ATen runs as several small kernels, the launches that bound a decode step once
// the GEMMs read the weights at the memory's speed (docs/performance.md):
//   - rope_and_cache: RoPE on q and k of the fused q/k/v projection, k and v written into the KV
//     cache at the step's positions, q written head-first (one kernel for ~10);
//   - decode_attention: one query token per request over the filled part of its KV cache only
//     ([start, end) read from the device, so it runs inside a CUDA graph), split over the keys
//     (flash-decoding) with the query heads of one KV head sharing every key they read; on
//     tensor cores for 16-bit types (a long cache at close to the memory's speed);
//   - silu_mul: silu(gate) * up of the fused gate/up projection;
//   - small_gemm: the projections of a decode step of 1 to 8 rows, one pass over the weight at
//     close to the memory's speed (cuBLAS's kernels for these shapes reach about 79% of it); 3 to
//     8 rows on tensor cores where the GPU has them (compute capability 8.0).
// Element types: float32, float16, bfloat16. Every launch is asynchronous on `stream`.
#pragma once

#include <cstdint>

namespace shardplan::cuda {

enum class Dtype { kFloat32, kFloat16, kBFloat16 };

// The element-wise results round as ATen's ops do (each product and sum to the element type, in
// transformers' order), so rope_and_cache and silu_mul give the bits of the ATen path.
struct RopeAndCache {
  Dtype dtype = Dtype::kFloat32;
  const void* qkv = nullptr;    // [batch, tokens, (q_heads + 2 kv_heads) * head_dim], rows `qkv_row` apart
  int64_t qkv_row = 0;          // elements between consecutive tokens
  const void* cos = nullptr;    // [positions, head_dim] (the rotation table)
  const void* sin = nullptr;
  const int64_t* positions = nullptr;  // [tokens] cache rows (and rotation rows) of the step
  void* q_out = nullptr;        // [batch, q_heads, tokens, head_dim]
  void* k_cache = nullptr;      // [batch, kv_heads, capacity, head_dim]
  void* v_cache = nullptr;
  int64_t batch = 0, tokens = 0, q_heads = 0, kv_heads = 0, head_dim = 0, capacity = 0;
};
void rope_and_cache(const RopeAndCache& a, void* stream);

struct DecodeAttention {
  Dtype dtype = Dtype::kFloat32;
  const void* q = nullptr;        // [batch, q_heads, head_dim] (one token per request)
  const void* k_cache = nullptr;  // [batch, kv_heads, capacity, head_dim]
  const void* v_cache = nullptr;
  // Keys [max(0, end - window), end) are read, end = last_position[request * last_position_stride] + 1
  // (stride 0: every request at the same position); window 0: no window.
  const int64_t* last_position = nullptr;
  int64_t last_position_stride = 0;
  int64_t window = 0;
  // Each request's first row (a ragged batch's left padding is skipped); null: row 0.
  const int64_t* first_row = nullptr;
  // q head h reads KV head head_map[h] (grouped: q heads [g * group, (g + 1) * group) read KV head g).
  const int64_t* head_map = nullptr;  // device, [q_heads]; null when grouped
  int64_t group = 1;                  // q heads per KV head when grouped (1..8)
  float scale = 1.0f;
  void* out = nullptr;                // [batch, q_heads, head_dim]
  float* workspace = nullptr;         // decode_attention_workspace() floats
  int64_t batch = 0, q_heads = 0, kv_heads = 0, head_dim = 0, capacity = 0;
  int64_t splits = 0;                 // key chunks per (request, KV head): choose_decode_attention_splits()
  int64_t min_chunk = 0;              // keys a tensor-core chunk takes at least (set with the splits)
};
// Whether decode_attention runs this shape (head_dim 64, 128 or 256; a group of at most 8).
bool decode_attention_supported(int64_t head_dim, int64_t group);
// Sets a.splits, the key chunks per (request, KV head), and a.min_chunk for `a` (its shapes, type
// and pointers set): `requested` when it is positive (raised to what CUDA cores need), else enough
// blocks for `sm_count` SMs. On tensor cores (float16 and bfloat16 on compute capability 8.0 and
// later, 16-byte aligned caches) chunks follow each request's filled rows and have no size limit;
// otherwise (CUDA cores) a chunk is capacity / splits keys, at most 256.
void choose_decode_attention_splits(DecodeAttention& a, int sm_count, int64_t requested = 0);
// Floats of workspace for `splits` > 1 (0 for one split).
int64_t decode_attention_workspace(int64_t batch, int64_t q_heads, int64_t head_dim, int64_t splits);
void decode_attention(const DecodeAttention& a, void* stream);

// out[r, i] = silu(x[r, i]) * x[r, n + i] for rows r of `x` (`x_row` elements apart), i < n.
void silu_mul(Dtype dtype, const void* x, int64_t x_row, void* out, int64_t rows, int64_t n, void* stream);

// y[r, :] = w @ x[r, :] (+ bias) (+ y[r, :] when accumulate) for r < rows: w [n, k] row-major,
// x and y rows `x_row` / `y_row` elements apart. Accumulated in float32 and rounded once, as
// cuBLAS does; the order of the sums differs, so results are within rounding of ATen's.
struct SmallGemm {
  Dtype dtype = Dtype::kBFloat16;
  const void* w = nullptr;
  const void* x = nullptr;
  const void* bias = nullptr;  // [n] or null
  void* y = nullptr;
  int64_t n = 0, k = 0, rows = 1, x_row = 0, y_row = 0;
  bool accumulate = false;
};
// Whether the tensor-core kernels (decode_attention of head size 128, small_gemm of 3 to 8 rows)
// run on the current device for `dtype`: a 16-bit type, compute capability 8.0 and later, a build
// with PTX or code for it.
bool tensor_cores_run(Dtype dtype);
// Whether small_gemm runs this: a 16-bit type, 1 to 8 rows (5 to 8 only where tensor_cores_run),
// k a multiple of 8 (with w, x and their rows 16-byte aligned: the caller checks the
// pointers).
bool small_gemm_supported(Dtype dtype, int64_t rows, int64_t k);
void small_gemm(const SmallGemm& a, void* stream);

}  // namespace shardplan::cuda
