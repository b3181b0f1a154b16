// TensorLayout and ActivationLayout printing and hashing.
#include "planner/plan/layout.h"

#include <functional>

namespace shardplan {

bool TensorLayout::is_replicated() const {
  for (const auto& d : dims) {
    if (!d.empty()) return false;
  }
  return true;
}

std::string TensorLayout::to_string() const {
  std::string out = "[";
  for (size_t i = 0; i < dims.size(); ++i) {
    if (i) out += ", ";
    out += "{";
    for (size_t j = 0; j < dims[i].size(); ++j) {
      if (j) out += ", ";
      out += dims[i][j];
    }
    out += "}";
  }
  return out + "]";
}

size_t TensorLayout::hash() const {
  size_t h = dims.size();
  for (const auto& d : dims) {
    for (const auto& a : d) h = h * 1000003u ^ std::hash<std::string>{}(a);
    h = h * 31u + 7u;
  }
  return h;
}

const char* to_string(AxisState state) {
  switch (state) {
    case AxisState::kReplicated: return "replicated";
    case AxisState::kBatchSplit: return "batch";
    case AxisState::kPartial: return "partial";
    case AxisState::kVocabSplit: return "vocab";
  }
  return "?";
}

std::string ActivationLayout::to_string(const std::vector<std::string>& axis_names) const {
  std::string out = "{";
  for (size_t i = 0; i < axes.size(); ++i) {
    if (i) out += ", ";
    out += (i < axis_names.size() ? axis_names[i] : "?") + std::string(": ") +
           shardplan::to_string(axes[i]);
  }
  return out + "}";
}

}  // namespace shardplan
