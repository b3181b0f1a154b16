// Layout value types (to_string, ==, hash), the one transition table that names a collective for
// a change of activation layout over an axis (spec-format.md §3), cell by cell, and the ring
// formulas for the bytes a rank sends.
#include "planner/plan/layout.h"

#include <gtest/gtest.h>

#include <optional>
#include <unordered_set>
#include <vector>

#include "planner/plan/collectives.h"
#include "planner/plan/plan.h"

namespace shardplan {
namespace {

TensorLayout layout(std::vector<std::vector<std::string>> dims) { return TensorLayout{std::move(dims)}; }

TEST(TensorLayout, ToStringIsCanonical) {
  EXPECT_EQ(layout({{"tp"}, {}}).to_string(), "[{tp}, {}]");       // column-parallel weight
  EXPECT_EQ(layout({{}, {"tp"}}).to_string(), "[{}, {tp}]");       // row-parallel weight
  EXPECT_EQ(layout({{}}).to_string(), "[{}]");                     // a norm weight
  EXPECT_EQ(layout({{"dp", "tp"}, {}}).to_string(), "[{dp, tp}, {}]");
  EXPECT_EQ(layout({{"tp", "dp"}, {}}).to_string(), "[{tp, dp}, {}]");  // order is kept
  EXPECT_EQ(layout({{}, {}, {}}).to_string(), "[{}, {}, {}]");
  EXPECT_EQ(layout({}).to_string(), "[]");  // a scalar
}

TEST(TensorLayout, IsReplicated) {
  EXPECT_TRUE(layout({}).is_replicated());
  EXPECT_TRUE(layout({{}, {}}).is_replicated());
  EXPECT_FALSE(layout({{"tp"}, {}}).is_replicated());
  EXPECT_FALSE(layout({{}, {"ep"}}).is_replicated());
}

// Layouts that differ anywhere (which dimension, which axes, their order, the rank) compare
// unequal and hash apart; equal ones hash alike.
TEST(TensorLayout, EqualityAndHash) {
  const std::vector<TensorLayout> distinct = {
      layout({}),
      layout({{}}),
      layout({{}, {}}),
      layout({{"tp"}}),
      layout({{"tp"}, {}}),
      layout({{}, {"tp"}}),
      layout({{"dp"}, {}}),
      layout({{"dp", "tp"}, {}}),
      layout({{"tp", "dp"}, {}}),
      layout({{"dp"}, {"tp"}}),
      layout({{"tp"}, {"dp"}}),
      layout({{"dp", "tp"}}),
      layout({{"dp"}, {"tp"}, {}}),
      layout({{}, {}, {"tp"}}),
  };
  for (size_t i = 0; i < distinct.size(); ++i) {
    for (size_t j = 0; j < distinct.size(); ++j) {
      EXPECT_EQ(distinct[i] == distinct[j], i == j) << distinct[i].to_string() << " vs "
                                                    << distinct[j].to_string();
      EXPECT_EQ(distinct[i] != distinct[j], i != j);
      if (i != j) {
        EXPECT_NE(distinct[i].hash(), distinct[j].hash())
            << distinct[i].to_string() << " vs " << distinct[j].to_string();
        EXPECT_NE(distinct[i].to_string(), distinct[j].to_string());
      }
    }
    const TensorLayout copy = distinct[i];
    EXPECT_EQ(copy, distinct[i]);
    EXPECT_EQ(copy.hash(), distinct[i].hash());
    EXPECT_EQ(std::hash<TensorLayout>{}(copy), distinct[i].hash());
  }
  std::unordered_set<TensorLayout> set(distinct.begin(), distinct.end());
  EXPECT_EQ(set.size(), distinct.size());
  set.insert(layout({{"tp"}, {}}));
  EXPECT_EQ(set.size(), distinct.size());
  EXPECT_EQ(set.count(layout({{"dp", "tp"}, {}})), 1u);
  EXPECT_EQ(set.count(layout({{"ep"}, {}})), 0u);
}

TEST(ActivationLayout, ToStringAndEquality) {
  const ActivationLayout a{{AxisState::kBatchSplit, AxisState::kPartial}};
  EXPECT_EQ(a.to_string({"dp", "tp"}), "{dp: batch, tp: partial}");
  const ActivationLayout b{{AxisState::kReplicated, AxisState::kVocabSplit}};
  EXPECT_EQ(b.to_string({"dp", "tp"}), "{dp: replicated, tp: vocab}");
  EXPECT_EQ(ActivationLayout{}.to_string({}), "{}");
  EXPECT_EQ(a, (ActivationLayout{{AxisState::kBatchSplit, AxisState::kPartial}}));
  EXPECT_NE(a, b);
  EXPECT_NE(a, (ActivationLayout{{AxisState::kPartial, AxisState::kBatchSplit}}));
  EXPECT_STREQ(to_string(AxisState::kReplicated), "replicated");
  EXPECT_STREQ(to_string(AxisState::kBatchSplit), "batch");
  EXPECT_STREQ(to_string(AxisState::kPartial), "partial");
  EXPECT_STREQ(to_string(AxisState::kVocabSplit), "vocab");
}

TEST(CollectiveOp, Names) {
  EXPECT_STREQ(to_string(CollectiveOp::kAllReduce), "all_reduce");
  EXPECT_STREQ(to_string(CollectiveOp::kAllGather), "all_gather");
  EXPECT_STREQ(to_string(CollectiveOp::kReduceScatter), "reduce_scatter");
  EXPECT_STREQ(to_string(CollectiveOp::kAllToAll), "all_to_all");
}

// spec-format.md §3, one mesh axis at a time, every one of the 16 cells.
//   partial    -> replicated : all_reduce
//   partial    -> batch      : reduce_scatter
//   batch      -> replicated : all_gather
//   vocab      -> replicated : all_gather (vocabulary-split logits made whole)
//   replicated -> batch      : none, a local slice
//   same state               : none
// No collective creates partial sums or a vocabulary split (only a module does), and nothing
// turns a batch split or a vocabulary split into the other: those cells have no op either; the
// property tests check that the walk never asks for them.
TEST(TransitionTable, EveryCell) {
  using S = AxisState;
  using Op = std::optional<CollectiveOp>;
  const S states[] = {S::kReplicated, S::kBatchSplit, S::kPartial, S::kVocabSplit};
  // expected[from][to], in the order of `states`.
  const Op none = std::nullopt;
  const Op expected[4][4] = {
      /* replicated -> */ {none, none, none, none},
      /* batch      -> */ {CollectiveOp::kAllGather, none, none, none},
      /* partial    -> */ {CollectiveOp::kAllReduce, CollectiveOp::kReduceScatter, none, none},
      /* vocab      -> */ {CollectiveOp::kAllGather, none, none, none},
  };
  for (int f = 0; f < 4; ++f) {
    for (int t = 0; t < 4; ++t) {
      const Op got = transition_op(states[f], states[t]);
      EXPECT_EQ(got, expected[f][t])
          << to_string(states[f]) << " -> " << to_string(states[t]) << ": got "
          << (got ? to_string(*got) : "none") << ", expected "
          << (expected[f][t] ? to_string(*expected[f][t]) : "none");
    }
  }
}

// Ring algorithms, S = bytes a rank holds before the op, g = group size:
// all_reduce 2(g-1)/g*S, reduce_scatter (g-1)/g*S, all_gather (g-1)*S, all_to_all (g-1)/g*S.
TEST(BytesSent, RingFormulas) {
  // g = 1: nothing moves.
  for (CollectiveOp op : {CollectiveOp::kAllReduce, CollectiveOp::kAllGather,
                          CollectiveOp::kReduceScatter, CollectiveOp::kAllToAll}) {
    EXPECT_EQ(bytes_sent(op, 1, 4096), 0) << to_string(op);
    EXPECT_EQ(bytes_sent(op, 4, 0), 0) << to_string(op);
  }
  EXPECT_EQ(bytes_sent(CollectiveOp::kAllReduce, 2, 4096), 4096);
  EXPECT_EQ(bytes_sent(CollectiveOp::kReduceScatter, 2, 4096), 2048);
  EXPECT_EQ(bytes_sent(CollectiveOp::kAllGather, 2, 4096), 4096);
  EXPECT_EQ(bytes_sent(CollectiveOp::kAllToAll, 2, 4096), 2048);

  EXPECT_EQ(bytes_sent(CollectiveOp::kAllReduce, 4, 1000), 1500);
  EXPECT_EQ(bytes_sent(CollectiveOp::kReduceScatter, 4, 1000), 750);
  EXPECT_EQ(bytes_sent(CollectiveOp::kAllGather, 4, 1000), 3000);
  EXPECT_EQ(bytes_sent(CollectiveOp::kAllToAll, 4, 1000), 750);

  // Llama-3-8B, one decode step of 16 requests, hidden 4096, bf16, tp = 8: S = 131072.
  const int64_t s = 16 * 4096 * 2;
  EXPECT_EQ(bytes_sent(CollectiveOp::kAllReduce, 8, s), 229376);    // 2 * 7/8 * S
  EXPECT_EQ(bytes_sent(CollectiveOp::kReduceScatter, 8, s), 114688);  // 7/8 * S
  EXPECT_EQ(bytes_sent(CollectiveOp::kAllGather, 8, s), 917504);    // 7 * S
  EXPECT_EQ(bytes_sent(CollectiveOp::kAllToAll, 8, s), 114688);

  // Odd group, odd size: 2*2*1000/3 = 1333.3.., 2*1000/3 = 666.6..; never more than the exact
  // value and off by less than one byte.
  EXPECT_EQ(bytes_sent(CollectiveOp::kAllReduce, 3, 1000), 1333);
  EXPECT_EQ(bytes_sent(CollectiveOp::kReduceScatter, 3, 1000), 666);
  EXPECT_EQ(bytes_sent(CollectiveOp::kAllGather, 3, 1000), 2000);
  EXPECT_EQ(bytes_sent(CollectiveOp::kAllToAll, 3, 1000), 666);

  // Large: a 64-rank group over 1 TiB must not overflow.
  const int64_t tib = int64_t{1} << 40;
  EXPECT_EQ(bytes_sent(CollectiveOp::kAllReduce, 64, tib), 2 * 63 * (tib / 64));
  EXPECT_EQ(bytes_sent(CollectiveOp::kAllGather, 64, tib), 63 * tib);
}

// Over every group size, all_reduce sends exactly reduce_scatter + all_gather of the scattered
// piece (its two ring phases), and all_to_all sends what reduce_scatter does.
TEST(BytesSent, PhasesAgreeOverGroupSizes) {
  for (int64_t g = 1; g <= 64; ++g) {
    const int64_t s = g * 3 * 1024;  // divisible by g: no rounding
    const int64_t rs = bytes_sent(CollectiveOp::kReduceScatter, g, s);
    const int64_t ag = bytes_sent(CollectiveOp::kAllGather, g, s / g);
    EXPECT_EQ(bytes_sent(CollectiveOp::kAllReduce, g, s), rs + ag) << "g " << g;
    EXPECT_EQ(bytes_sent(CollectiveOp::kAllToAll, g, s), rs) << "g " << g;
    EXPECT_EQ(rs, (g - 1) * s / g) << "g " << g;
  }
}

}  // namespace
}  // namespace shardplan
