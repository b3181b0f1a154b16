// Mesh rank arithmetic (see mesh.h for a worked example).
#include "planner/plan/mesh.h"

namespace shardplan {

Mesh::Mesh(std::vector<MeshAxis> axes) : axes_(std::move(axes)) {
  strides_.assign(axes_.size(), 1);
  world_size_ = 1;
  for (int i = static_cast<int>(axes_.size()) - 1; i >= 0; --i) {
    strides_[i] = world_size_;
    world_size_ *= axes_[i].size;
  }
}

std::optional<int> Mesh::axis_index(const std::string& name) const {
  for (size_t i = 0; i < axes_.size(); ++i) {
    if (axes_[i].name == name) return static_cast<int>(i);
  }
  return std::nullopt;
}

int64_t Mesh::axis_size(const std::string& name) const {
  auto i = axis_index(name);
  return i ? axes_[*i].size : 1;
}

std::vector<int64_t> Mesh::coords(int64_t rank) const {
  std::vector<int64_t> c(axes_.size());
  for (size_t i = 0; i < axes_.size(); ++i) c[i] = (rank / strides_[i]) % axes_[i].size;
  return c;
}

int64_t Mesh::rank(const std::vector<int64_t>& coords) const {
  int64_t r = 0;
  for (size_t i = 0; i < axes_.size(); ++i) r += coords[i] * strides_[i];
  return r;
}

int64_t Mesh::group_size(const std::vector<std::string>& axes) const {
  int64_t g = 1;
  for (const auto& a : axes) g *= axis_size(a);
  return g;
}

int64_t Mesh::group_rank(int64_t rank, const std::vector<std::string>& axes) const {
  int64_t r = 0;
  for (const auto& a : axes) {
    auto i = axis_index(a);
    if (!i) continue;
    r = r * axes_[*i].size + (rank / strides_[*i]) % axes_[*i].size;
  }
  return r;
}

std::vector<RankGroup> Mesh::groups(const std::vector<std::string>& axes) const {
  std::vector<int> idx;
  for (const auto& a : axes) {
    if (auto i = axis_index(a)) idx.push_back(*i);
  }
  const int64_t g = group_size(axes);
  std::vector<RankGroup> out;
  std::vector<bool> seen(world_size_, false);
  for (int64_t base = 0; base < world_size_; ++base) {
    if (seen[base]) continue;
    // `base` has coordinate 0 on every grouped axis (it is the lowest unseen rank of its group).
    RankGroup group(g);
    for (int64_t k = 0; k < g; ++k) {
      int64_t rest = k, r = base;
      for (int j = static_cast<int>(idx.size()) - 1; j >= 0; --j) {
        const int64_t size = axes_[idx[j]].size;
        r += (rest % size) * strides_[idx[j]];
        rest /= size;
      }
      group[k] = r;
      seen[r] = true;
    }
    out.push_back(std::move(group));
  }
  return out;
}

}  // namespace shardplan
