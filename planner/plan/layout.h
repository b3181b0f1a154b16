// Value types for how things are laid out over the mesh: a tensor's per-dimension split
// (TensorLayout, as XLA's NamedSharding / Shardy's [{"tp"}, {}]) and an activation's state over
// every mesh axis (ActivationLayout). No methods here move data.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace shardplan {

// One entry per tensor dimension: the mesh axes that dimension is split over.
// k_proj under tensor over [tp]: [{tp}, {}]; a norm weight: [{}].
struct TensorLayout {
  std::vector<std::vector<std::string>> dims;

  bool operator==(const TensorLayout& o) const { return dims == o.dims; }
  bool operator!=(const TensorLayout& o) const { return !(*this == o); }
  bool is_replicated() const;
  std::string to_string() const;  // canonical: "[{tp}, {}]"
  size_t hash() const;
};

// The state of an activation over one mesh axis (spec-format.md §3).
enum class AxisState {
  kReplicated,  // every rank of the axis holds the same values
  kBatchSplit,  // requests (or encoder items) divided over the axis
  kPartial,     // each rank holds a summand
  kVocabSplit,  // logits split by vocabulary over the axis (lm_head under tensor)
};
const char* to_string(AxisState state);

// The state of one activation over every mesh axis, in mesh order.
struct ActivationLayout {
  std::vector<AxisState> axes;

  bool operator==(const ActivationLayout& o) const { return axes == o.axes; }
  bool operator!=(const ActivationLayout& o) const { return !(*this == o); }
  std::string to_string(const std::vector<std::string>& axis_names) const;  // "{dp: batch, tp: partial}"
};

}  // namespace shardplan

template <>
struct std::hash<shardplan::TensorLayout> {
  size_t operator()(const shardplan::TensorLayout& l) const { return l.hash(); }
};
