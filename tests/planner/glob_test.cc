// Module-path globs: '*' is one segment, '**' any number of segments.
#include "planner/spec/glob.h"

#include <gtest/gtest.h>

namespace shardplan {
namespace {

TEST(Glob, StarIsOneSegment) {
  EXPECT_TRUE(glob_match("model.layers.*.mlp", "model.layers.3.mlp"));
  EXPECT_TRUE(glob_match("model.layers.*.mlp", "model.layers.31.mlp"));
  EXPECT_FALSE(glob_match("model.layers.*.mlp", "model.layers.3.x.mlp"));
  EXPECT_FALSE(glob_match("model.layers.*.mlp", "model.layers.mlp"));
}

TEST(Glob, DoubleStarIsAnyNumberOfSegments) {
  EXPECT_TRUE(glob_match("language_model.**", "language_model.model.layers.0.self_attn"));
  EXPECT_TRUE(glob_match("**.self_attn", "model.layers.0.self_attn"));
  EXPECT_TRUE(glob_match("model.**.mlp", "model.mlp"));
  EXPECT_FALSE(glob_match("language_model.**", "vision_tower"));
  EXPECT_TRUE(glob_match("**", "lm_head"));
}

TEST(Glob, ExactAndPartialSegments) {
  EXPECT_TRUE(glob_match("model.layers.0.mlp", "model.layers.0.mlp"));
  EXPECT_FALSE(glob_match("model.layers.0.mlp", "model.layers.10.mlp"));
  EXPECT_TRUE(glob_match("model.layers.1?.mlp", "model.layers.12.mlp"));
  EXPECT_FALSE(glob_match("model.layers.1?.mlp", "model.layers.1.mlp"));
  EXPECT_TRUE(glob_match("model.layers.[0-3].mlp", "model.layers.2.mlp"));
  EXPECT_FALSE(glob_match("model.layers.[0-3].mlp", "model.layers.4.mlp"));
  EXPECT_FALSE(glob_match("model.layers.*", "model.layers"));
}

}  // namespace
}  // namespace shardplan
