// Requests held per layout, and the checks that the plan's gathers, scatters and local slices of
// requests keep them in order (see request_blocks.h).
#include "planner/plan/request_blocks.h"

#include <stdexcept>

namespace shardplan {
namespace {

std::string range_text(const RequestRange& r) {
  return "[" + std::to_string(r.begin) + ", " + std::to_string(r.end()) + ")";
}

}  // namespace

RequestRange requests_held(const Mesh& mesh, const ActivationLayout& layout, int64_t rank, int64_t batch) {
  const std::vector<int64_t> coords = mesh.coords(rank);
  int64_t block = 0, blocks = 1;
  for (size_t x = 0; x < layout.axes.size() && x < mesh.axes().size(); ++x) {
    if (layout.axes[x] != AxisState::kBatchSplit) continue;
    block = block * mesh.axes()[x].size + coords[x];
    blocks *= mesh.axes()[x].size;
  }
  if (batch % blocks != 0) {
    throw std::logic_error(std::to_string(batch) + " requests do not split into " + std::to_string(blocks) +
                           " blocks");
  }
  const int64_t per = batch / blocks;
  return {block * per, per};
}

std::string check_request_gather(const Mesh& mesh, const ActivationLayout& from, const ActivationLayout& to,
                                 const std::vector<std::string>& axes, int64_t batch) {
  const std::vector<RankGroup> groups = mesh.groups(axes);
  // NOTE: group by group (each member's range once), and the message only for a failure: the
  // binding checks every rank of meshes of hundreds of ranks.
  for (const RankGroup& group : groups) {
    RequestRange joined = requests_held(mesh, from, group.front(), batch);
    bool contiguous = true;
    for (size_t i = 1; i < group.size(); ++i) {
      const RequestRange next = requests_held(mesh, from, group[i], batch);
      contiguous = contiguous && next.begin == joined.end();
      joined.count += next.count;
    }
    for (int64_t rank : group) {
      const RequestRange want = requests_held(mesh, to, rank, batch);
      if (contiguous && joined == want) continue;
      std::string pieces;
      for (int64_t member : group) {
        pieces += (pieces.empty() ? "" : " + ") + range_text(requests_held(mesh, from, member, batch));
      }
      return "rank " + std::to_string(rank) + " would gather requests " + pieces + ", which is not the " +
             range_text(want) + " its layout holds";
    }
  }
  return "";
}

std::string check_request_scatter(const Mesh& mesh, const ActivationLayout& from, const ActivationLayout& to,
                                  const std::vector<std::string>& axes, int64_t batch) {
  const int64_t g = mesh.group_size(axes);
  for (int64_t rank = 0; rank < mesh.world_size(); ++rank) {
    const RequestRange have = requests_held(mesh, from, rank, batch);
    const int64_t piece = have.count / g;
    const RequestRange got{have.begin + mesh.group_rank(rank, axes) * piece, piece};
    const RequestRange want = requests_held(mesh, to, rank, batch);
    if (!(got == want)) {
      return "rank " + std::to_string(rank) + " would keep requests " + range_text(got) + " of " +
             range_text(have) + ", which is not the " + range_text(want) + " its layout holds";
    }
  }
  return "";
}

std::string check_request_slice(const Mesh& mesh, const ActivationLayout& from, const ActivationLayout& to,
                                int64_t batch) {
  for (int64_t rank = 0; rank < mesh.world_size(); ++rank) {
    const RequestRange have = requests_held(mesh, from, rank, batch);
    const RequestRange want = requests_held(mesh, to, rank, batch);
    if (want.begin < have.begin || want.end() > have.end()) {
      return "rank " + std::to_string(rank) + " holds requests " + range_text(have) + " but its next layout needs " +
             range_text(want);
    }
  }
  return "";
}

ItemSlice encoder_item_slice(int64_t items, int64_t group, int64_t index) {
  ItemSlice s;
  s.padded = (items + group - 1) / group * group;
  s.count = s.padded / group;
  s.begin = index * s.count;
  return s;
}

}  // namespace shardplan
