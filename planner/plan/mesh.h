// The device mesh and its rank arithmetic. Ranks are row-major over the axes in document order,
// the last axis fastest. For {dp: 2, tp: 4}:
//   rank = dp * 4 + tp
//   groups({tp}) = [0,1,2,3] [4,5,6,7]
//   groups({dp}) = [0,4] [1,5] [2,6] [3,7]
//   groups({tp, dp}) = [0,4,1,5,2,6,3,7]   (flattened in the order listed: tp slowest)
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace shardplan {

struct MeshAxis {
  std::string name;
  int64_t size = 1;
};

using RankGroup = std::vector<int64_t>;

class Mesh {
 public:
  Mesh() = default;
  explicit Mesh(std::vector<MeshAxis> axes);

  const std::vector<MeshAxis>& axes() const { return axes_; }
  int64_t world_size() const { return world_size_; }
  std::optional<int> axis_index(const std::string& name) const;
  int64_t axis_size(const std::string& name) const;  // 1 for an unknown name

  std::vector<int64_t> coords(int64_t rank) const;
  int64_t rank(const std::vector<int64_t>& coords) const;

  // Product of the sizes of `axes` (unknown names count 1).
  int64_t group_size(const std::vector<std::string>& axes) const;
  // The index of `rank` in its group over `axes`, flattened in the order listed (first slowest).
  int64_t group_rank(int64_t rank, const std::vector<std::string>& axes) const;
  // Every group over `axes`, each listed by group rank; groups ordered by their lowest rank.
  std::vector<RankGroup> groups(const std::vector<std::string>& axes) const;

 private:
  std::vector<MeshAxis> axes_;
  std::vector<int64_t> strides_;
  int64_t world_size_ = 1;
};

}  // namespace shardplan
