// Constructors for modules and their params, shared by the family code.
#include "models/graph/module_builder.h"

#include <utility>

namespace shardplan {

TensorSplit no_split() { return TensorSplit{}; }

TensorSplit split_units(int dim, int64_t units) {
  TensorSplit split;
  split.type = TensorSplit::Type::kUnits;
  split.dim = dim;
  split.units = units;
  return split;
}

TensorSplit split_replicable_units(int dim, int64_t units) {
  TensorSplit split = split_units(dim, units);
  split.replicable = true;
  return split;
}

Module make_module(std::string path, ModuleKind kind, Stream stream, int layer) {
  Module module;
  module.path = std::move(path);
  module.kind = kind;
  module.stream = stream;
  module.layer = layer;
  return module;
}

Param& add_param(Module& module, std::string name, std::vector<int64_t> shape, TensorSplit split,
                 ParamRole role, int expert) {
  Param param;
  param.name = std::move(name);
  param.shape = std::move(shape);
  param.tensor_split = split;
  param.expert = expert;
  param.role = role;
  module.params.push_back(std::move(param));
  return module.params.back();
}

namespace {

void add_bias(Module& module, const std::string& prefix, int64_t width, TensorSplit split,
              ParamRole role) {
  add_param(module, prefix + ".bias", {width}, split, role).bias = true;
}

}  // namespace

void add_norm(Module& module, const std::string& prefix, int64_t width, bool has_bias,
              ParamRole role) {
  add_param(module, prefix + ".weight", {width}, no_split(), role);
  if (has_bias) add_bias(module, prefix, width, no_split(), role);
}

void add_column_linear(Module& module, const std::string& prefix, int64_t out, int64_t in,
                       int64_t units, bool has_bias, ParamRole role, bool replicable) {
  TensorSplit weight_split = replicable ? split_replicable_units(0, units) : split_units(0, units);
  add_param(module, prefix + ".weight", {out, in}, weight_split, role);
  if (has_bias) add_bias(module, prefix, out, weight_split, role);
}

void add_row_linear(Module& module, const std::string& prefix, int64_t out, int64_t in,
                    int64_t units, bool has_bias, ParamRole role) {
  add_param(module, prefix + ".weight", {out, in}, split_units(1, units), role);
  if (has_bias) add_bias(module, prefix, out, no_split(), role);
}

void require_divisible(int64_t numerator, const std::string& numerator_name, int64_t denominator,
                       const std::string& denominator_name) {
  if (denominator <= 0 || numerator % denominator != 0) {
    throw ConfigError(numerator_name + " " + std::to_string(numerator) +
                      " is not divisible by " + denominator_name + " " +
                      std::to_string(denominator));
  }
}

}  // namespace shardplan
