// The family table is the one place that names families: no source file of the project outside
// models/<family>/ and the two tables (models/family/family_table.cc, the family list;
// models/forward/forward_table.cc, their forwards) holds a family name or a config.json
// model_type as a string literal, so no code compares against one. Tests are exempt (they build
// configs of every family on purpose).
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "models/graph/family.h"

namespace shardplan {
namespace {

namespace fs = std::filesystem;

const fs::path kRoot = SHARDPLAN_SOURCE_DIR;
// The project's code (tests/ and scripts/ excluded).
const char* const kCodeDirs[] = {"base", "planner", "executor", "models", "bench"};

std::string read(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Every name of the table, as a C++ string literal.
std::set<std::string> quoted_names() {
  std::set<std::string> names;
  for (const Family* family : family_table()) {
    names.insert("\"" + family->name + "\"");
    for (const std::string& type : family->model_types) names.insert("\"" + type + "\"");
  }
  return names;
}

bool allowed(const fs::path& relative) {
  const std::string text = relative.generic_string();
  if (text == "models/family/family_table.cc" || text == "models/forward/forward_table.cc") return true;
  for (const Family* family : family_table()) {
    if (text.rfind("models/" + family->name + "/", 0) == 0) return true;
  }
  return false;
}

TEST(FamilyNamesTest, OnlyTheFamilyFoldersAndTheTableNameFamilies) {
  const std::set<std::string> names = quoted_names();
  ASSERT_GE(names.size(), 7u);  // 5 families, 7 model types (family names are model types too)
  int scanned = 0, allowed_with_names = 0;
  std::vector<std::string> offenders;
  for (const char* dir : kCodeDirs) {
    for (const fs::directory_entry& entry : fs::recursive_directory_iterator(kRoot / dir)) {
      const fs::path ext = entry.path().extension();
      if (!entry.is_regular_file() || (ext != ".cc" && ext != ".h")) continue;
      const fs::path relative = fs::relative(entry.path(), kRoot);
      const std::string text = read(entry.path());
      ++scanned;
      for (const std::string& name : names) {
        if (text.find(name) == std::string::npos) continue;
        if (allowed(relative)) {
          ++allowed_with_names;
        } else {
          offenders.push_back(relative.generic_string() + " holds " + name);
        }
      }
    }
  }
  EXPECT_GT(scanned, 50);
  // The scan sees names where they belong (each family folder names its family).
  EXPECT_GE(allowed_with_names, static_cast<int>(family_table().size()));
  EXPECT_TRUE(offenders.empty()) << "family or model-type names outside models/<family>/ and the table:\n"
                                 << ::testing::PrintToString(offenders);
}

TEST(FamilyNamesTest, EveryModelTypeHasOneFamily) {
  std::set<std::string> seen;
  for (const Family* family : family_table()) {
    EXPECT_EQ(find_family(family->name), family);
    EXPECT_TRUE(fs::is_directory(kRoot / "models" / family->name)) << family->name;
    for (const std::string& type : family->model_types) {
      EXPECT_TRUE(seen.insert(type).second) << type << " is in two families";
      EXPECT_EQ(family_of_model_type(type), family);
    }
  }
}

}  // namespace
}  // namespace shardplan
