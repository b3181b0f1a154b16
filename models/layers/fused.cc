// Tensor wrappers of the CUDA kernels (see fused.h).
#include "models/layers/fused.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#ifdef SHARDPLAN_CUDA_KERNELS
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "models/layers/cuda/kernels.h"
#endif

namespace shardplan {

#ifdef SHARDPLAN_CUDA_KERNELS
namespace {

cuda::Dtype dtype_of(const at::Tensor& t) {
  switch (t.scalar_type()) {
    case at::kFloat: return cuda::Dtype::kFloat32;
    case at::kHalf: return cuda::Dtype::kFloat16;
    case at::kBFloat16: return cuda::Dtype::kBFloat16;
    default: break;
  }
  throw std::invalid_argument(std::string("fused kernels: unsupported dtype ") + at::toString(t.scalar_type()));
}

void require(bool ok, const char* what) {
  if (!ok) throw std::invalid_argument(std::string("fused kernels: ") + what);
}

void* stream_of(const at::Tensor& t) { return at::cuda::getCurrentCUDAStream(t.device().index()).stream(); }

}  // namespace

bool fused_kernels_for(const at::Tensor& t) {
  if (!t.defined() || !t.is_cuda()) return false;
  const auto s = t.scalar_type();
  return s == at::kFloat || s == at::kHalf || s == at::kBFloat16;
}

bool fused_kernels_use_tensor_cores(const at::Tensor& t) {
  if (!fused_kernels_for(t) || t.scalar_type() == at::kFloat) return false;
  const c10::cuda::CUDAGuard guard(t.device());
  return cuda::tensor_cores_run(dtype_of(t));
}

at::Tensor fused_rope_and_cache(const at::Tensor& qkv, int64_t q_heads, int64_t kv_heads, const at::Tensor& cos,
                                const at::Tensor& sin, const at::Tensor& positions, at::Tensor& k_cache,
                                at::Tensor& v_cache) {
  const int64_t d = k_cache.size(3);
  require(qkv.dim() == 3 && qkv.size(2) == (q_heads + 2 * kv_heads) * d && qkv.stride(2) == 1 &&
              qkv.stride(0) == qkv.size(1) * qkv.stride(1),
          "qkv must be [batch, tokens, (q + 2 kv) heads * head_dim] with contiguous rows");
  require(k_cache.is_contiguous() && v_cache.is_contiguous() && k_cache.sizes() == v_cache.sizes() &&
              k_cache.size(0) == qkv.size(0) && k_cache.size(1) == kv_heads,
          "k/v caches must be contiguous [batch, kv_heads, capacity, head_dim]");
  require(cos.is_contiguous() && sin.is_contiguous() && cos.size(1) == d && cos.scalar_type() == qkv.scalar_type() &&
              sin.scalar_type() == qkv.scalar_type() && k_cache.scalar_type() == qkv.scalar_type(),
          "cos/sin tables and caches of the activations' dtype, [positions, head_dim]");
  require(positions.scalar_type() == at::kLong && positions.is_contiguous() && positions.numel() == qkv.size(1),
          "positions: one int64 a token");
  const c10::cuda::CUDAGuard guard(qkv.device());
  at::Tensor q = at::empty({qkv.size(0), q_heads, qkv.size(1), d}, qkv.options());
  cuda::RopeAndCache a;
  a.dtype = dtype_of(qkv);
  a.qkv = qkv.data_ptr();
  a.qkv_row = qkv.stride(1);
  a.cos = cos.data_ptr();
  a.sin = sin.data_ptr();
  a.positions = positions.data_ptr<int64_t>();
  a.q_out = q.data_ptr();
  a.k_cache = k_cache.data_ptr();
  a.v_cache = v_cache.data_ptr();
  a.batch = qkv.size(0);
  a.tokens = qkv.size(1);
  a.q_heads = q_heads;
  a.kv_heads = kv_heads;
  a.head_dim = d;
  a.capacity = k_cache.size(2);
  cuda::rope_and_cache(a, stream_of(qkv));
  return q;
}

bool fused_decode_attention_supports(int64_t head_dim, int64_t q_heads, int64_t kv_heads, bool grouped) {
  if (grouped && (kv_heads == 0 || q_heads % kv_heads != 0)) return false;
  return cuda::decode_attention_supported(head_dim, grouped ? q_heads / kv_heads : 1);
}

at::Tensor fused_decode_attention(const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache,
                                  const at::Tensor& last_position, int64_t window, const at::Tensor& head_map,
                                  double scale, int64_t splits, const at::Tensor& first_row) {
  const int64_t batch = q.size(0), q_heads = q.size(1), d = q.size(3);
  const int64_t kv_heads = k_cache.size(1), capacity = k_cache.size(2);
  require(q.dim() == 4 && q.size(2) == 1 && q.is_contiguous(), "q must be contiguous [batch, q_heads, 1, head_dim]");
  require(k_cache.is_contiguous() && v_cache.is_contiguous() && k_cache.sizes() == v_cache.sizes() &&
              k_cache.size(0) == batch && k_cache.size(3) == d && k_cache.scalar_type() == q.scalar_type(),
          "k/v caches must be contiguous [batch, kv_heads, capacity, head_dim] of q's dtype");
  require(last_position.scalar_type() == at::kLong && last_position.is_contiguous() &&
              (last_position.numel() == 1 || last_position.numel() == batch),
          "last_position: one int64, or one a request");
  require(!first_row.defined() || (first_row.scalar_type() == at::kLong && first_row.is_contiguous() &&
                                    first_row.numel() == batch && first_row.device() == q.device()),
          "first_row: one int64 a request, on q's device");
  const bool grouped = !head_map.defined();
  require(fused_decode_attention_supports(d, q_heads, kv_heads, grouped), "unsupported head_dim or grouping");
  require(grouped || (head_map.scalar_type() == at::kLong && head_map.numel() == q_heads && head_map.is_cuda()),
          "head_map: one int64 a q head");
  const c10::cuda::CUDAGuard guard(q.device());
  const int sms = at::cuda::getCurrentDeviceProperties()->multiProcessorCount;
  cuda::DecodeAttention a;
  at::Tensor out = at::empty_like(q);
  a.dtype = dtype_of(q);
  a.q = q.data_ptr();
  a.k_cache = k_cache.data_ptr();
  a.v_cache = v_cache.data_ptr();
  a.last_position = last_position.data_ptr<int64_t>();
  a.last_position_stride = last_position.numel() == 1 ? 0 : 1;
  a.window = window;
  a.first_row = first_row.defined() ? first_row.data_ptr<int64_t>() : nullptr;
  a.head_map = grouped ? nullptr : head_map.data_ptr<int64_t>();
  a.group = grouped ? q_heads / kv_heads : 1;
  a.scale = static_cast<float>(scale);
  a.out = out.data_ptr();
  a.batch = batch;
  a.q_heads = q_heads;
  a.kv_heads = kv_heads;
  a.head_dim = d;
  a.capacity = capacity;
  cuda::choose_decode_attention_splits(a, sms, splits);
  at::Tensor workspace;
  if (const int64_t floats = cuda::decode_attention_workspace(batch, q_heads, d, a.splits)) {
    workspace = at::empty({floats}, q.options().dtype(at::kFloat));
    a.workspace = workspace.data_ptr<float>();
  }
  cuda::decode_attention(a, stream_of(q));
  return out;
}

at::Tensor fused_silu_mul(const at::Tensor& x) {
  require(x.stride(-1) == 1 && x.size(-1) % 2 == 0, "silu_mul: the last dim must be contiguous and even");
  const int64_t n = x.size(-1) / 2;
  const at::Tensor rows2d = x.dim() == 1 ? x.unsqueeze(0) : x.reshape({-1, x.size(-1)});
  require(rows2d.stride(1) == 1, "silu_mul: rows must be addressable with one stride");
  std::vector<int64_t> shape = x.sizes().vec();
  shape.back() = n;
  at::Tensor out = at::empty(shape, x.options());
  const c10::cuda::CUDAGuard guard(x.device());
  cuda::silu_mul(dtype_of(x), rows2d.data_ptr(), rows2d.stride(0), out.data_ptr(), rows2d.size(0), n, stream_of(x));
  return out;
}

bool fused_linear_supports(const at::Tensor& x, const at::Tensor& weight) {
  const auto aligned = [](const at::Tensor& t) { return reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0; };
  if (!x.is_cuda() || !weight.is_cuda() || x.scalar_type() != weight.scalar_type() || weight.dim() != 2 ||
      x.dim() < 1 || x.size(-1) != weight.size(1) || !x.is_contiguous() || !weight.is_contiguous()) {
    return false;
  }
  if (x.scalar_type() != at::kHalf && x.scalar_type() != at::kBFloat16) return false;
  const int64_t k = weight.size(1);
  return cuda::small_gemm_supported(dtype_of(x), x.numel() / std::max<int64_t>(k, 1), k) && aligned(x) &&
         aligned(weight);
}

at::Tensor fused_linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, at::Tensor into) {
  require(fused_linear_supports(x, weight), "linear: unsupported shapes, dtypes or layout");
  const int64_t k = weight.size(1), n = weight.size(0), rows = x.numel() / k;
  const bool accumulate = into.defined();
  if (!accumulate) {
    std::vector<int64_t> shape = x.sizes().vec();
    shape.back() = n;
    into = at::empty(shape, x.options());
  } else {
    require(into.is_contiguous() && into.numel() == rows * n && into.scalar_type() == x.scalar_type(),
            "linear: the tensor added into must be contiguous, of the output's size and type");
  }
  require(!bias.defined() || (bias.is_contiguous() && bias.numel() == n && bias.scalar_type() == x.scalar_type()),
          "linear: the bias must be contiguous, of n elements and the input's type");
  cuda::SmallGemm a;
  a.dtype = dtype_of(x);
  a.w = weight.data_ptr();
  a.x = x.data_ptr();
  a.bias = bias.defined() ? bias.data_ptr() : nullptr;
  a.y = into.data_ptr();
  a.n = n;
  a.k = k;
  a.rows = rows;
  a.x_row = k;
  a.y_row = n;
  a.accumulate = accumulate;
  const c10::cuda::CUDAGuard guard(x.device());
  cuda::small_gemm(a, stream_of(x));
  return into;
}

#else  // no CUDA kernels in this build: the forwards take the ATen path

bool fused_kernels_for(const at::Tensor&) { return false; }
bool fused_kernels_use_tensor_cores(const at::Tensor&) { return false; }

namespace {
[[noreturn]] void unavailable() { throw std::logic_error("this build has no CUDA kernels (SHARDPLAN_CUDA_KERNELS)"); }
}  // namespace

at::Tensor fused_rope_and_cache(const at::Tensor&, int64_t, int64_t, const at::Tensor&, const at::Tensor&,
                                const at::Tensor&, at::Tensor&, at::Tensor&) {
  unavailable();
}
bool fused_decode_attention_supports(int64_t, int64_t, int64_t, bool) { return false; }
at::Tensor fused_decode_attention(const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&, int64_t,
                                  const at::Tensor&, double, int64_t, const at::Tensor&) {
  unavailable();
}
at::Tensor fused_silu_mul(const at::Tensor&) { unavailable(); }
bool fused_linear_supports(const at::Tensor&, const at::Tensor&) { return false; }
at::Tensor fused_linear(const at::Tensor&, const at::Tensor&, const at::Tensor&, at::Tensor) { unavailable(); }

#endif

}  // namespace shardplan
