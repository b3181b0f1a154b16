// Which requests a rank holds while an activation has a given layout (docs/executor-design.md):
// requests are split over the layout's batch-split axes, in contiguous blocks ordered mixed-radix
// over those axes in mesh order (first axis slowest). No libtorch here.
//
// Worked example, {dp: 2, tp: 2}, 8 requests:
//   {dp: batch, tp: replicated}  rank (dp, tp) holds [4*dp, 4*dp + 4): ranks 0, 1: [0, 4); 2, 3: [4, 8)
//   {dp: batch, tp: batch}       rank (dp, tp) holds block dp*2 + tp: rank 0 [0, 2), 1 [2, 4), 2 [4, 6), 3 [6, 8)
// Going from the first to the second is a local slice (rank 1 keeps rows [2, 4) of its [0, 4));
// going back is an all_gather over [tp] whose pieces, in group order, concatenate to [0, 4).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "planner/plan/layout.h"
#include "planner/plan/mesh.h"

namespace shardplan {

struct RequestRange {
  int64_t begin = 0;
  int64_t count = 0;
  int64_t end() const { return begin + count; }
  bool operator==(const RequestRange& o) const { return begin == o.begin && count == o.count; }
};

// The requests `rank` holds out of `batch` under `layout` (its batch-split axes; other states
// hold every request). `batch` must divide by the product of the split axes' sizes.
RequestRange requests_held(const Mesh& mesh, const ActivationLayout& layout, int64_t rank, int64_t batch);

// "" when, for every rank, the requests held under `to` are what a gather or scatter of requests
// over `axes` makes from those held under `from`: gathering concatenates the members' ranges in
// group order (`axes` flattened in the order listed), scattering gives each member its piece of
// its range in group order. Otherwise the problem, naming the first rank where it fails, e.g.
// "rank 1 would gather requests [0, 2) + [4, 6), which is not the [0, 4) its layout holds".
std::string check_request_gather(const Mesh& mesh, const ActivationLayout& from, const ActivationLayout& to,
                                 const std::vector<std::string>& axes, int64_t batch);
std::string check_request_scatter(const Mesh& mesh, const ActivationLayout& from, const ActivationLayout& to,
                                  const std::vector<std::string>& axes, int64_t batch);
// "" when, for every rank, the requests under `to` lie inside those under `from` (a local slice).
std::string check_request_slice(const Mesh& mesh, const ActivationLayout& from, const ActivationLayout& to,
                                int64_t batch);

// A data-parallel encoder's share of its stream's items: the items are padded with empty ones to
// a multiple of the group, and member `index` encodes [begin, begin + count) of the padded list.
// 5 images over 2 ranks: padded 6, rank 0 [0, 3), rank 1 [3, 6) (item 5 is padding); the
// all_gather after it drops the padding. The one home of this rule: collectives (bytes), costs
// and the binding use it.
struct ItemSlice {
  int64_t padded = 0, begin = 0, count = 0;
};
ItemSlice encoder_item_slice(int64_t items, int64_t group, int64_t index);

}  // namespace shardplan
