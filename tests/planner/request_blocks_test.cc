// Which requests a rank holds per layout, spelled out on {dp: 2, tp: 2} with 8 requests, and the
// checks that refuse gathers, scatters and local slices that would break the request order.
#include "planner/plan/request_blocks.h"

#include <gtest/gtest.h>

namespace shardplan {
namespace {

using S = AxisState;

const Mesh kMesh({{"dp", 2}, {"tp", 2}});  // rank = dp * 2 + tp

ActivationLayout layout(S dp, S tp) { return ActivationLayout{{dp, tp}}; }

TEST(RequestBlocksTest, MixedRadixInMeshOrder) {
  // {dp: batch, tp: replicated}: ranks 0, 1 hold [0, 4); ranks 2, 3 hold [4, 8).
  const ActivationLayout dp = layout(S::kBatchSplit, S::kReplicated);
  EXPECT_EQ(requests_held(kMesh, dp, 1, 8), (RequestRange{0, 4}));
  EXPECT_EQ(requests_held(kMesh, dp, 2, 8), (RequestRange{4, 4}));
  // {dp: batch, tp: batch}: rank (dp, tp) holds block dp * 2 + tp.
  const ActivationLayout both = layout(S::kBatchSplit, S::kBatchSplit);
  for (int64_t r = 0; r < 4; ++r) EXPECT_EQ(requests_held(kMesh, both, r, 8), (RequestRange{2 * r, 2})) << r;
  // {dp: partial, tp: batch}: only tp splits: ranks 0, 2 hold [0, 4), ranks 1, 3 hold [4, 8).
  const ActivationLayout tp = layout(S::kPartial, S::kBatchSplit);
  EXPECT_EQ(requests_held(kMesh, tp, 2, 8), (RequestRange{0, 4}));
  EXPECT_EQ(requests_held(kMesh, tp, 3, 8), (RequestRange{4, 4}));
  // Nothing split: everyone holds all.
  EXPECT_EQ(requests_held(kMesh, layout(S::kReplicated, S::kPartial), 3, 8), (RequestRange{0, 8}));
}

TEST(RequestBlocksTest, TrailingAxesGatherScatterAndSliceInOrder) {
  const ActivationLayout dp = layout(S::kBatchSplit, S::kReplicated);
  const ActivationLayout both = layout(S::kBatchSplit, S::kBatchSplit);
  // tp is the fastest axis of {dp, tp}: its pieces are contiguous inside each dp block.
  EXPECT_EQ(check_request_slice(kMesh, dp, both, 8), "");
  EXPECT_EQ(check_request_gather(kMesh, both, dp, {"tp"}, 8), "");
  EXPECT_EQ(check_request_scatter(kMesh, layout(S::kBatchSplit, S::kPartial), both, {"tp"}, 8), "");
  // Gathering over both axes at once, listed in mesh order, restores [0, 8).
  EXPECT_EQ(check_request_gather(kMesh, both, layout(S::kReplicated, S::kReplicated), {"dp", "tp"}, 8), "");
}

TEST(RequestBlocksTest, LeadingAxesWouldBreakTheOrder) {
  const ActivationLayout tp = layout(S::kReplicated, S::kBatchSplit);
  const ActivationLayout both = layout(S::kBatchSplit, S::kBatchSplit);
  // Splitting dp under an existing tp split: rank 1 (dp 0, tp 1) holds [4, 8) but would need
  // block 1 = [2, 4).
  EXPECT_EQ(check_request_slice(kMesh, tp, both, 8),
            "rank 1 holds requests [4, 8) but its next layout needs [2, 4)");
  // Gathering dp out of {dp, tp}: rank 0 would get blocks 0 and 2, [0, 2) + [4, 6).
  EXPECT_EQ(check_request_gather(kMesh, both, tp, {"dp"}, 8),
            "rank 0 would gather requests [0, 2) + [4, 6), which is not the [0, 4) its layout holds");
  EXPECT_NE(check_request_scatter(kMesh, layout(S::kPartial, S::kBatchSplit), both, {"dp"}, 8), "");
}

TEST(EncoderItemSlice, DataModeItemSlicesPadToTheGroup) {
  // 5 images over 2 ranks: padded to 6, [0, 3) and [3, 6).
  EXPECT_EQ(encoder_item_slice(5, 2, 0).padded, 6);
  EXPECT_EQ(encoder_item_slice(5, 2, 1).begin, 3);
  EXPECT_EQ(encoder_item_slice(5, 2, 1).count, 3);
  // 3 images over 4 ranks: one each, the last rank's is padding.
  EXPECT_EQ(encoder_item_slice(3, 4, 3).begin, 3);
  EXPECT_EQ(encoder_item_slice(3, 4, 3).count, 1);
  EXPECT_EQ(encoder_item_slice(4, 4, 2).padded, 4);
}

}  // namespace
}  // namespace shardplan
