// The few constructors every family builds its module tree with: a module, a norm, and linear
// layers that split column- or row-parallel under `tensor` mode.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "models/graph/model_graph.h"

namespace shardplan {

TensorSplit no_split();
// Dimension `dim` holds `units` equal units (heads, intermediate rows, vocabulary rows).
TensorSplit split_units(int dim, int64_t units);
// KV heads: as split_units, and replicated when the group is larger than `units`.
TensorSplit split_replicable_units(int dim, int64_t units);

Module make_module(std::string path, ModuleKind kind, Stream stream, int layer = -1);

// Appends a weight (Param::bias false) of `role`; returns it so the caller can mark it further.
Param& add_param(Module& module, std::string name, std::vector<int64_t> shape, TensorSplit split,
                 ParamRole role, int expert = -1);

// "<prefix>.weight" [width] (and "<prefix>.bias" [width]), whole on every rank.
void add_norm(Module& module, const std::string& prefix, int64_t width, bool has_bias,
              ParamRole role = ParamRole::kNorm);

// Column-parallel nn.Linear(in, out): "<prefix>.weight" [out, in] and "<prefix>.bias" [out], both
// split on dim 0 into `units` (heads, KV heads, intermediate rows). Worked example, Llama-3-8B
// k_proj over tp=4: [1024, 4096] in 8 KV heads, each rank loads 2 heads = rows [256r, 256r+256).
void add_column_linear(Module& module, const std::string& prefix, int64_t out, int64_t in,
                       int64_t units, bool has_bias, ParamRole role, bool replicable = false);

// Row-parallel nn.Linear(in, out): "<prefix>.weight" [out, in] split on dim 1 into `units`; the
// bias [out] is whole (added once, after the all-reduce).
void add_row_linear(Module& module, const std::string& prefix, int64_t out, int64_t in,
                    int64_t units, bool has_bias, ParamRole role);

// "text_config.hidden_size 4100 is not divisible by text_config.num_attention_heads 32"
// as a ConfigError unless `numerator` % `denominator` == 0.
void require_divisible(int64_t numerator, const std::string& numerator_name, int64_t denominator,
                       const std::string& denominator_name);

}  // namespace shardplan
