// Plans for the render tests (see render_test_util.h).
#include "render_test_util.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace shardplan {

namespace fs = std::filesystem;

namespace {

// Removes the folders temp_spec made once every test has run.
class TempSpecCleanup : public ::testing::Environment {
 public:
  void TearDown() override {
    for (const auto& d : dirs) fs::remove_all(d);
  }
  std::vector<std::string> dirs;
};

TempSpecCleanup* cleanup() {
  static TempSpecCleanup* env =
      static_cast<TempSpecCleanup*>(::testing::AddGlobalTestEnvironment(new TempSpecCleanup));
  return env;
}

}  // namespace

std::unique_ptr<Plan> plan_of(const std::string& file) {
  Diagnostics diags;
  CheckedSpec checked;
  const CheckOutcome o = check_spec_file(file, diags, &checked);
  std::string text;
  for (const auto& d : diags.all()) text += format_diagnostic(d) + "\n";
  EXPECT_EQ(o, CheckOutcome::kValid) << file << "\n" << text;
  if (o != CheckOutcome::kValid) return nullptr;
  return build_plan(std::move(checked));
}

std::unique_ptr<Plan> shipped_plan(const std::string& name) {
  return plan_of(std::string(SHARDPLAN_SOURCE_DIR) + "/specs/" + name + ".yaml");
}

std::string temp_spec(const std::string& yaml) {
  std::string dir_template = (fs::temp_directory_path() / "render-test-XXXXXX").string();
  const char* dir = mkdtemp(dir_template.data());
  EXPECT_NE(dir, nullptr);
  cleanup()->dirs.push_back(dir);
  std::string text = yaml;
  const std::string configs = std::string(SHARDPLAN_SOURCE_DIR) + "/models/configs";
  for (size_t pos; (pos = text.find("CONFIGS")) != std::string::npos;) {
    text.replace(pos, 7, configs);
  }
  const std::string path = std::string(dir) + "/spec.yaml";
  std::ofstream(path) << text;
  return path;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<std::string> shipped_specs() {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(std::string(SHARDPLAN_SOURCE_DIR) + "/specs")) {
    const std::string name = e.path().filename().string();
    if (e.path().extension() == ".yaml" && name[0] != '.') out.push_back(e.path().stem().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace shardplan
