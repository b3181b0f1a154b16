// `planner render`: the format comes from the extension; a bad extension, an unwritable path, a
// --layer the model lacks are errors with exit code 2 that write nothing.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>

#include "render_test_util.h"

namespace shardplan {
namespace {

namespace fs = std::filesystem;

struct CliResult {
  int code = -1;
  std::string err;
};

// Runs the planner with `args`, stderr captured.
CliResult planner(const std::string& args, const fs::path& dir) {
  const fs::path err = dir / "stderr.txt";
  const std::string cmd = std::string(SHARDPLAN_BINARY_DIR) + "/planner/planner " + args + " 2> " +
                          err.string() + " > /dev/null";
  const int status = std::system(cmd.c_str());
  CliResult r;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.err = read_file(err.string());
  return r;
}

class RenderCli : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string t = (fs::temp_directory_path() / "render-cli-XXXXXX").string();
    ASSERT_NE(mkdtemp(t.data()), nullptr);
    dir_ = t;
  }
  void TearDown() override { fs::remove_all(dir_); }

  // The files in dir_ other than the captured stderr.
  std::vector<std::string> written() const {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir_)) {
      if (e.path().filename() != "stderr.txt") out.push_back(e.path().filename().string());
    }
    return out;
  }

  std::string spec(const std::string& name) const {
    return std::string(SHARDPLAN_SOURCE_DIR) + "/specs/" + name + ".yaml";
  }

  fs::path dir_;
};

TEST_F(RenderCli, WritesSvgPngAndDotByExtension) {
  const std::string s = spec("llama-3-8b-tp4");
  ASSERT_EQ(planner("render " + s + " -o " + (dir_ / "a.svg").string(), dir_).code, 0);
  ASSERT_EQ(planner("render " + s + " -o " + (dir_ / "a.dot").string(), dir_).code, 0);
  ASSERT_EQ(
      planner("render " + s + " --view ranks --layer 3 -o " + (dir_ / "b.SVG").string(), dir_).code,
      0);
  EXPECT_EQ(read_file((dir_ / "a.svg").string()).rfind("<?xml", 0), 0u);
  EXPECT_EQ(read_file((dir_ / "a.dot").string()).rfind("digraph plan {", 0), 0u);
  EXPECT_NE(read_file((dir_ / "b.SVG").string()).find("layer 3"), std::string::npos);
  const CliResult png = planner("render " + s + " -o " + (dir_ / "a.png").string(), dir_);
  if (png.code == 0) {
    EXPECT_EQ(read_file((dir_ / "a.png").string()).rfind("\x89PNG", 0), 0u);
  } else {
    EXPECT_EQ(png.code, 2);
    EXPECT_NE(png.err.find("PNG needs Graphviz's cairo renderer"), std::string::npos) << png.err;
  }
  // No temporary file left behind.
  for (const auto& f : written()) EXPECT_EQ(f.find(".tmp"), std::string::npos) << f;
}

TEST_F(RenderCli, UnknownExtensionIsAUsageErrorAndWritesNothing) {
  for (const std::string out : {"plan.jpg", "plan", "plan.svg.bak"}) {
    const CliResult r =
        planner("render " + spec("llama-3-8b-tp4") + " -o " + (dir_ / out).string(), dir_);
    EXPECT_EQ(r.code, 2) << out;
    EXPECT_EQ(r.err.rfind("planner: error: cannot tell the picture format from '", 0), 0u) << r.err;
    EXPECT_NE(r.err.find(".svg, .png or .dot"), std::string::npos) << r.err;
    EXPECT_TRUE(written().empty()) << out;
  }
}

TEST_F(RenderCli, UnwritablePathIsAnIoErrorAndWritesNothing) {
  const CliResult missing = planner(
      "render " + spec("llama-3-8b-tp4") + " -o " + (dir_ / "no/such/dir/p.svg").string(), dir_);
  EXPECT_EQ(missing.code, 2);
  EXPECT_EQ(missing.err.rfind("planner: error: cannot write '", 0), 0u) << missing.err;
  EXPECT_NE(missing.err.find("No such file or directory"), std::string::npos) << missing.err;
  EXPECT_TRUE(written().empty());

  // A folder in the way: the rename fails, the temporary file is removed.
  fs::create_directory(dir_ / "taken.svg");
  const CliResult taken =
      planner("render " + spec("llama-3-8b-tp4") + " -o " + (dir_ / "taken.svg").string(), dir_);
  EXPECT_EQ(taken.code, 2);
  EXPECT_NE(taken.err.find("cannot write"), std::string::npos) << taken.err;
  EXPECT_EQ(written(), std::vector<std::string>{"taken.svg"});
  EXPECT_TRUE(fs::is_empty(dir_ / "taken.svg"));
}

TEST_F(RenderCli, LayerErrorsAreUsageErrors) {
  const CliResult outside = planner("render " + spec("llama-3-8b-tp4") +
                                        " --view ranks --layer 40 -o " + (dir_ / "p.svg").string(),
                                    dir_);
  EXPECT_EQ(outside.code, 2);
  EXPECT_NE(outside.err.find("planner: error: layer 40 is not in the model"), std::string::npos)
      << outside.err;
  const CliResult modules = planner(
      "render " + spec("llama-3-8b-tp4") + " --layer 1 -o " + (dir_ / "p.svg").string(), dir_);
  EXPECT_EQ(modules.code, 2);
  EXPECT_NE(modules.err.find("--layer applies to the ranks view only"), std::string::npos);
  const CliResult view = planner(
      "render " + spec("llama-3-8b-tp4") + " --view layers -o " + (dir_ / "p.svg").string(), dir_);
  EXPECT_EQ(view.code, 2);
  EXPECT_TRUE(written().empty());
}

TEST_F(RenderCli, InvalidSpecExitsOneAndMissingSpecTwo) {
  const std::string bad = temp_spec(R"(version: 1
model:
  config: CONFIGS/llama-3-8b.json
mesh:
  tp: 6
modules:
  - kind: attention
    mode: tensor
    axes: [tp]
)");
  const CliResult invalid = planner("render " + bad + " -o " + (dir_ / "p.svg").string(), dir_);
  EXPECT_EQ(invalid.code, 1);
  EXPECT_NE(invalid.err.find("not divisible by 6"), std::string::npos) << invalid.err;
  const CliResult missing =
      planner("render " + (dir_ / "none.yaml").string() + " -o " + (dir_ / "p.svg").string(), dir_);
  EXPECT_EQ(missing.code, 2);
  EXPECT_TRUE(written().empty());
}

}  // namespace
}  // namespace shardplan
