// Mesh rank arithmetic: the groups of a concrete mesh spelled out by hand, and round trips and
// group consistency over every mesh of 1..64 ranks with 1..3 axes (size-1 axes included).
#include "planner/plan/mesh.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

namespace shardplan {
namespace {

// Every mesh with 1..max_axes axes named x, y, z whose sizes (>= 1) multiply to at most
// max_world, in a fixed order.
std::vector<Mesh> all_meshes(int64_t max_world, int max_axes) {
  std::vector<Mesh> out;
  std::vector<int64_t> sizes;
  // Depth-first over the sizes of the next axis.
  auto rec = [&](auto&& self, int64_t product) -> void {
    if (!sizes.empty()) {
      std::vector<MeshAxis> axes;
      for (size_t i = 0; i < sizes.size(); ++i) axes.push_back({std::string(1, static_cast<char>('x' + i)), sizes[i]});
      out.emplace_back(std::move(axes));
    }
    if (static_cast<int>(sizes.size()) == max_axes) return;
    for (int64_t s = 1; product * s <= max_world; ++s) {
      sizes.push_back(s);
      self(self, product * s);
      sizes.pop_back();
    }
  };
  rec(rec, 1);
  return out;
}

std::string describe(const Mesh& mesh) {
  std::string out = "{";
  for (size_t i = 0; i < mesh.axes().size(); ++i) {
    out += (i ? ", " : "") + mesh.axes()[i].name + ": " + std::to_string(mesh.axes()[i].size);
  }
  return out + "}";
}

// Every ordered list of distinct axis names of `mesh` (the empty list included).
std::vector<std::vector<std::string>> ordered_axis_lists(const Mesh& mesh) {
  std::vector<std::vector<std::string>> out;
  const int n = static_cast<int>(mesh.axes().size());
  for (int mask = 0; mask < (1 << n); ++mask) {
    std::vector<std::string> names;
    for (int i = 0; i < n; ++i) {
      if (mask & (1 << i)) names.push_back(mesh.axes()[i].name);
    }
    std::sort(names.begin(), names.end());
    do {
      out.push_back(names);
    } while (std::next_permutation(names.begin(), names.end()));
  }
  return out;
}

Mesh dp2_tp4() { return Mesh({{"dp", 2}, {"tp", 4}}); }

// {dp: 2, tp: 4}: rank = dp * 4 + tp.
TEST(Mesh, Dp2Tp4CoordinatesByHand) {
  const Mesh mesh = dp2_tp4();
  EXPECT_EQ(mesh.world_size(), 8);
  const std::vector<std::vector<int64_t>> coords = {
      {0, 0}, {0, 1}, {0, 2}, {0, 3}, {1, 0}, {1, 1}, {1, 2}, {1, 3}};
  for (int64_t r = 0; r < 8; ++r) {
    EXPECT_EQ(mesh.coords(r), coords[r]) << "rank " << r;
    EXPECT_EQ(mesh.rank(coords[r]), r);
  }
  EXPECT_EQ(mesh.axis_index("dp"), 0);
  EXPECT_EQ(mesh.axis_index("tp"), 1);
  EXPECT_EQ(mesh.axis_index("ep"), std::nullopt);
  EXPECT_EQ(mesh.axis_size("tp"), 4);
  EXPECT_EQ(mesh.axis_size("ep"), 1);  // unknown names count 1
}

// The table of spec-format.md §1, spelled out.
TEST(Mesh, Dp2Tp4GroupsByHand) {
  const Mesh mesh = dp2_tp4();
  EXPECT_EQ(mesh.groups({"tp"}), (std::vector<RankGroup>{{0, 1, 2, 3}, {4, 5, 6, 7}}));
  EXPECT_EQ(mesh.groups({"dp"}), (std::vector<RankGroup>{{0, 4}, {1, 5}, {2, 6}, {3, 7}}));
  // Flattened in the order listed, the first axis slowest.
  EXPECT_EQ(mesh.groups({"dp", "tp"}), (std::vector<RankGroup>{{0, 1, 2, 3, 4, 5, 6, 7}}));
  EXPECT_EQ(mesh.groups({"tp", "dp"}), (std::vector<RankGroup>{{0, 4, 1, 5, 2, 6, 3, 7}}));
  // No axes: every rank alone.
  EXPECT_EQ(mesh.groups({}),
            (std::vector<RankGroup>{{0}, {1}, {2}, {3}, {4}, {5}, {6}, {7}}));
  EXPECT_EQ(mesh.group_size({"tp"}), 4);
  EXPECT_EQ(mesh.group_size({"dp"}), 2);
  EXPECT_EQ(mesh.group_size({"tp", "dp"}), 8);
  EXPECT_EQ(mesh.group_size({}), 1);
}

TEST(Mesh, Dp2Tp4GroupRanksByHand) {
  const Mesh mesh = dp2_tp4();
  const std::vector<int64_t> tp_rank = {0, 1, 2, 3, 0, 1, 2, 3};
  const std::vector<int64_t> dp_rank = {0, 0, 0, 0, 1, 1, 1, 1};
  const std::vector<int64_t> tp_dp_rank = {0, 2, 4, 6, 1, 3, 5, 7};  // tp slowest
  for (int64_t r = 0; r < 8; ++r) {
    EXPECT_EQ(mesh.group_rank(r, {"tp"}), tp_rank[r]) << "rank " << r;
    EXPECT_EQ(mesh.group_rank(r, {"dp"}), dp_rank[r]) << "rank " << r;
    EXPECT_EQ(mesh.group_rank(r, {"dp", "tp"}), r) << "rank " << r;
    EXPECT_EQ(mesh.group_rank(r, {"tp", "dp"}), tp_dp_rank[r]) << "rank " << r;
    EXPECT_EQ(mesh.group_rank(r, {}), 0);
  }
}

// {pp: 2, dp: 3, tp: 2}: a three-axis mesh with an odd axis, by hand.
TEST(Mesh, ThreeAxesGroupsByHand) {
  const Mesh mesh({{"pp", 2}, {"dp", 3}, {"tp", 2}});
  EXPECT_EQ(mesh.world_size(), 12);
  EXPECT_EQ(mesh.coords(7), (std::vector<int64_t>{1, 0, 1}));  // 7 = 1*6 + 0*2 + 1
  EXPECT_EQ(mesh.rank({1, 2, 1}), 11);
  EXPECT_EQ(mesh.groups({"dp"}), (std::vector<RankGroup>{
                                     {0, 2, 4}, {1, 3, 5}, {6, 8, 10}, {7, 9, 11}}));
  EXPECT_EQ(mesh.groups({"pp", "tp"}), (std::vector<RankGroup>{
                                           {0, 1, 6, 7}, {2, 3, 8, 9}, {4, 5, 10, 11}}));
  EXPECT_EQ(mesh.groups({"tp", "pp"}), (std::vector<RankGroup>{
                                           {0, 6, 1, 7}, {2, 8, 3, 9}, {4, 10, 5, 11}}));
  EXPECT_EQ(mesh.groups({"tp", "dp"}), (std::vector<RankGroup>{
                                           {0, 2, 4, 1, 3, 5}, {6, 8, 10, 7, 9, 11}}));
}

TEST(Mesh, SizeOneAxesByHand) {
  const Mesh mesh({{"dp", 1}, {"tp", 4}, {"ep", 1}});
  EXPECT_EQ(mesh.world_size(), 4);
  EXPECT_EQ(mesh.coords(3), (std::vector<int64_t>{0, 3, 0}));
  EXPECT_EQ(mesh.groups({"dp"}), (std::vector<RankGroup>{{0}, {1}, {2}, {3}}));
  EXPECT_EQ(mesh.groups({"ep", "tp", "dp"}), (std::vector<RankGroup>{{0, 1, 2, 3}}));
}

TEST(Mesh, EnumerationCoversManyMeshes) {
  const auto meshes = all_meshes(64, 3);
  // 64 one-axis meshes; sum over n <= 64 of the ordered 2- and 3-factorizations.
  EXPECT_GT(meshes.size(), 1000u);
  std::set<int> axis_counts;
  bool has_size_one = false;
  for (const Mesh& m : meshes) {
    axis_counts.insert(static_cast<int>(m.axes().size()));
    for (const auto& a : m.axes()) has_size_one |= a.size == 1;
  }
  EXPECT_EQ(axis_counts, (std::set<int>{1, 2, 3}));
  EXPECT_TRUE(has_size_one);
}

// rank -> coords -> rank and coords -> rank -> coords are the identity; ranks are row-major with
// the last axis fastest (enumerating coordinates as an odometer gives 0, 1, 2, ...).
TEST(MeshProperty, RankCoordinatesRoundTrip) {
  for (const Mesh& mesh : all_meshes(64, 3)) {
    SCOPED_TRACE(describe(mesh));
    int64_t expected_world = 1;
    for (const auto& a : mesh.axes()) expected_world *= a.size;
    ASSERT_EQ(mesh.world_size(), expected_world);

    const size_t n = mesh.axes().size();
    std::vector<int64_t> c(n, 0);
    for (int64_t counter = 0; counter < expected_world; ++counter) {
      ASSERT_EQ(mesh.rank(c), counter);
      ASSERT_EQ(mesh.coords(counter), c);
      // Odometer increment, last axis fastest.
      for (int i = static_cast<int>(n) - 1; i >= 0; --i) {
        if (++c[i] < mesh.axes()[i].size) break;
        c[i] = 0;
      }
    }
    for (int64_t r = 0; r < expected_world; ++r) {
      const auto rc = mesh.coords(r);
      ASSERT_EQ(rc.size(), n);
      for (size_t i = 0; i < n; ++i) {
        ASSERT_GE(rc[i], 0);
        ASSERT_LT(rc[i], mesh.axes()[i].size);
      }
      ASSERT_EQ(mesh.rank(rc), r);
    }
  }
}

// For every ordered list of axes: the groups partition the ranks; each has group_size ranks,
// listed by group rank; members share every coordinate off the list and are flattened over the
// list with the first axis slowest; groups come ordered by their lowest rank, which leads them.
TEST(MeshProperty, GroupsAgreeWithGroupRankAndCoordinates) {
  int64_t lists_checked = 0;
  for (const Mesh& mesh : all_meshes(64, 3)) {
    for (const auto& axes : ordered_axis_lists(mesh)) {
      SCOPED_TRACE(describe(mesh) + " over " + std::to_string(axes.size()) + " axes");
      ++lists_checked;
      int64_t g = 1;
      std::vector<int> idx;
      for (const auto& a : axes) {
        idx.push_back(*mesh.axis_index(a));
        g *= mesh.axes()[idx.back()].size;
      }
      ASSERT_EQ(mesh.group_size(axes), g);
      const auto groups = mesh.groups(axes);
      ASSERT_EQ(static_cast<int64_t>(groups.size()), mesh.world_size() / g);
      std::vector<int> seen(mesh.world_size(), 0);
      int64_t previous_lowest = -1;
      for (const RankGroup& group : groups) {
        ASSERT_EQ(static_cast<int64_t>(group.size()), g);
        ASSERT_EQ(*std::min_element(group.begin(), group.end()), group[0]);
        ASSERT_GT(group[0], previous_lowest);
        previous_lowest = group[0];
        const auto lead = mesh.coords(group[0]);
        for (int64_t k = 0; k < g; ++k) {
          const int64_t r = group[k];
          ASSERT_GE(r, 0);
          ASSERT_LT(r, mesh.world_size());
          ++seen[r];
          ASSERT_EQ(mesh.group_rank(r, axes), k) << "rank " << r;
          const auto c = mesh.coords(r);
          // Same coordinates off the list.
          for (size_t i = 0; i < c.size(); ++i) {
            if (std::find(idx.begin(), idx.end(), static_cast<int>(i)) == idx.end()) {
              ASSERT_EQ(c[i], lead[i]) << "rank " << r << " axis " << i;
            } else {
              ASSERT_EQ(lead[i], 0);  // the leading rank has coordinate 0 on the list
            }
          }
          // k in mixed radix over the listed axes, first slowest.
          int64_t flat = 0;
          for (int i : idx) flat = flat * mesh.axes()[i].size + c[i];
          ASSERT_EQ(flat, k);
        }
      }
      for (int64_t r = 0; r < mesh.world_size(); ++r) ASSERT_EQ(seen[r], 1) << "rank " << r;
    }
  }
  EXPECT_GT(lists_checked, 10000);
}

// group_rank is the index of the rank in its group, whatever the list, and two ranks are in the
// same group exactly when they agree off the list.
TEST(MeshProperty, GroupRankIsIndexInGroup) {
  for (const Mesh& mesh : all_meshes(24, 3)) {
    for (const auto& axes : ordered_axis_lists(mesh)) {
      const auto groups = mesh.groups(axes);
      std::vector<int64_t> group_of(mesh.world_size(), -1);
      for (size_t gi = 0; gi < groups.size(); ++gi) {
        for (size_t k = 0; k < groups[gi].size(); ++k) {
          group_of[groups[gi][k]] = static_cast<int64_t>(gi);
          ASSERT_EQ(mesh.group_rank(groups[gi][k], axes), static_cast<int64_t>(k));
        }
      }
      for (int64_t a = 0; a < mesh.world_size(); ++a) {
        for (int64_t b = a + 1; b < mesh.world_size(); ++b) {
          const auto ca = mesh.coords(a), cb = mesh.coords(b);
          bool agree_off_list = true;
          for (size_t i = 0; i < ca.size(); ++i) {
            const bool listed =
                std::find(axes.begin(), axes.end(), mesh.axes()[i].name) != axes.end();
            if (!listed && ca[i] != cb[i]) agree_off_list = false;
          }
          ASSERT_EQ(group_of[a] == group_of[b], agree_off_list)
              << describe(mesh) << " ranks " << a << ", " << b;
        }
      }
    }
  }
}

}  // namespace
}  // namespace shardplan
