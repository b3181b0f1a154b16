// The statistics of `executor sweep` (rank correlation, quantiles, regret and errors) on lists
// whose answers are known by hand.
#include <gtest/gtest.h>

#include "executor/sweep/measured_sweep.h"

namespace shardplan {
namespace {

TEST(MeasuredSweep, SpearmanOfKnownLists) {
  EXPECT_DOUBLE_EQ(*spearman({1, 2, 3, 4}, {10, 20, 30, 40}), 1.0);
  EXPECT_DOUBLE_EQ(*spearman({1, 2, 3, 4}, {40, 30, 20, 10}), -1.0);
  // One swap of neighbours in five: 1 - 6 * 2 / (5 * 24) = 0.9.
  EXPECT_NEAR(*spearman({1, 2, 3, 4, 5}, {1, 3, 2, 4, 5}), 0.9, 1e-12);
  // Ties take their mean rank: ranks (1.5, 1.5, 3) against (1, 2, 3).
  EXPECT_NEAR(*spearman({5, 5, 7}, {1, 2, 3}), 0.8660254037844386, 1e-12);
  EXPECT_FALSE(spearman({1}, {2}).has_value());
  EXPECT_FALSE(spearman({1, 1, 1}, {1, 2, 3}).has_value());
}

TEST(MeasuredSweep, Quantiles) {
  EXPECT_DOUBLE_EQ(quantile({3, 1, 2}, 0.5), 2);
  EXPECT_DOUBLE_EQ(quantile({1, 2, 3, 4}, 0.5), 2.5);
  EXPECT_DOUBLE_EQ(quantile({0, 10}, 0.9), 9);
  EXPECT_DOUBLE_EQ(quantile({}, 0.5), 0);
}

TEST(MeasuredSweep, AccuracyOverThePlansThatRan) {
  std::vector<MeasuredPlan> plans(3);
  // Predicted best (rank 1) measures 80 tokens/s; the best measured is 100: regret 20%.
  plans[0] = {1, "", "a", 1, 10, 1.0, 120, 1000, true, "", 11, 1.25, 80, 800};
  plans[1] = {2, "", "b", 1, 10, 1.0, 110, 1000, true, "", 10, 1.0, 100, 1000};
  plans[2] = {3, "", "c", 1, 10, 1.0, 100, 1000, false, "exit 2", 0, 0, 0, 0};
  const SweepAccuracy a = sweep_accuracy(plans);
  EXPECT_EQ(a.points, 2);
  EXPECT_NEAR(a.top1_regret, 0.2, 1e-12);
  EXPECT_EQ(a.regret_sweeps, 1);
  EXPECT_DOUBLE_EQ(*a.spearman, -1.0);  // predicted a > b, measured a < b
  // decode errors |1 - 1.25| / 1.25 = 0.2 and 0; median 0.1.
  EXPECT_NEAR(a.decode_error_median, 0.1, 1e-12);
  // memory errors |1000 - 800| / 800 = 0.25 and 0.
  EXPECT_NEAR(a.memory_error_max, 0.25, 1e-12);
}

// Several sweeps (one per workload): the regret is taken within each sweep, never across them (a
// plan of another workload is no alternative), and a sweep with one plan has none.
TEST(MeasuredSweep, RegretWithinEachSweep) {
  std::vector<MeasuredPlan> plans(5);
  // Sweep "x": predicted best measures 90, best 100: 10%. Sweep "y": predicted best is the best.
  plans[0] = {1, "x", "a", 1, 10, 1.0, 500, 1000, true, "", 10, 1.0, 90, 1000};
  plans[1] = {2, "x", "b", 1, 10, 1.0, 400, 1000, true, "", 10, 1.0, 100, 1000};
  plans[2] = {1, "y", "c", 1, 10, 1.0, 50, 1000, true, "", 10, 1.0, 20, 1000};
  plans[3] = {2, "y", "d", 1, 10, 1.0, 40, 1000, true, "", 10, 1.0, 10, 1000};
  // Sweep "z" has one plan: it measures far below sweep x's, which must not count as regret.
  plans[4] = {1, "z", "e", 1, 10, 1.0, 1000, 1000, true, "", 10, 1.0, 1, 1000};
  const SweepAccuracy a = sweep_accuracy(plans);
  EXPECT_EQ(a.points, 5);
  EXPECT_EQ(a.regret_sweeps, 2);
  EXPECT_NEAR(a.top1_regret, 0.1, 1e-12);
}

}  // namespace
}  // namespace shardplan
