// Output files: a new path or a plain regular file is replaced atomically; a symlink, FIFO or
// device is written through and stays what it was; dangling links, folders and inputs are refused.
#include "planner/io/output_file.h"

#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

namespace shardplan {
namespace {

namespace fs = std::filesystem;

class OutputFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("shardplan_output_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string at(const std::string& name) const { return (dir_ / name).string(); }
  static std::string read(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
  // Nothing but `names` is left in the folder (no temporary files).
  void expect_only(std::vector<std::string> names) const {
    std::vector<std::string> found;
    for (const auto& e : fs::directory_iterator(dir_)) found.push_back(e.path().filename().string());
    std::sort(found.begin(), found.end());
    std::sort(names.begin(), names.end());
    EXPECT_EQ(found, names);
  }
  fs::path dir_;
};

TEST_F(OutputFileTest, NewAndRegularFilesAreReplacedAtomicallyKeepingTheirMode) {
  EXPECT_EQ(write_output_file(at("plan.txt"), "first"), "");
  EXPECT_EQ(read(at("plan.txt")), "first");
  ASSERT_EQ(::chmod(at("plan.txt").c_str(), 0640), 0);
  struct stat before {};
  ASSERT_EQ(::stat(at("plan.txt").c_str(), &before), 0);
  EXPECT_EQ(write_output_file(at("plan.txt"), "second"), "");
  EXPECT_EQ(read(at("plan.txt")), "second");
  struct stat after {};
  ASSERT_EQ(::stat(at("plan.txt").c_str(), &after), 0);
  EXPECT_EQ(after.st_mode & 07777, 0640u);
  EXPECT_NE(after.st_ino, before.st_ino) << "a regular file is replaced by a rename, not rewritten in place";
  expect_only({"plan.txt"});
}

TEST_F(OutputFileTest, SymlinkStaysALinkAndItsTargetGetsTheBytes) {
  std::ofstream(at("target.svg")) << "old";
  fs::create_symlink("target.svg", at("link.svg"));
  EXPECT_EQ(write_output_file(at("link.svg"), "new"), "");
  EXPECT_TRUE(fs::is_symlink(at("link.svg")));
  EXPECT_EQ(read(at("target.svg")), "new");
  expect_only({"target.svg", "link.svg"});
}

TEST_F(OutputFileTest, DanglingSymlinkIsRefusedAndCreatesNothing) {
  fs::create_symlink(at("nowhere/x.svg"), at("dangling.svg"));
  const std::string failure = write_output_file(at("dangling.svg"), "bytes");
  EXPECT_NE(failure.find("does not exist"), std::string::npos) << failure;
  EXPECT_TRUE(fs::is_symlink(at("dangling.svg")));
  EXPECT_FALSE(fs::exists(at("nowhere")));
}

TEST_F(OutputFileTest, FifoIsWrittenThroughAndStaysAFifo) {
  ASSERT_EQ(::mkfifo(at("pipe").c_str(), 0600), 0);
  std::string received;
  std::thread reader([&] { received = read(at("pipe")); });
  EXPECT_EQ(write_output_file(at("pipe"), "through the pipe"), "");
  reader.join();
  EXPECT_EQ(received, "through the pipe");
  EXPECT_TRUE(fs::is_fifo(at("pipe")));
  expect_only({"pipe"});
}

TEST_F(OutputFileTest, DeviceIsWrittenThroughAndStaysADevice) {
  // NOTE: a null device of the test's own (as /dev/null: char 1:3), never the system's.
  if (::mknod(at("null").c_str(), S_IFCHR | 0666, makedev(1, 3)) != 0) {
    GTEST_SKIP() << "cannot make a device node here (needs root): " << std::strerror(errno);
  }
  EXPECT_EQ(write_output_file(at("null"), "discarded"), "");
  EXPECT_TRUE(fs::is_character_file(at("null")));
  expect_only({"null"});
}

TEST_F(OutputFileTest, DirectoryAndInputsAreRefused) {
  fs::create_directory(at("folder"));
  EXPECT_EQ(write_output_file(at("folder"), "x"), "it is a directory");
  std::ofstream(at("spec.yaml")) << "version: 1\n";
  fs::create_symlink("spec.yaml", at("spec-link.yaml"));
  for (const std::string& out : {at("spec.yaml"), at("spec-link.yaml"), dir_.string() + "/./spec.yaml"}) {
    const std::string failure = write_output_file(out, "plan", {at("spec.yaml")});
    EXPECT_NE(failure.find("input file"), std::string::npos) << out << ": " << failure;
  }
  EXPECT_EQ(read(at("spec.yaml")), "version: 1\n");
  expect_only({"folder", "spec.yaml", "spec-link.yaml"});
}

TEST_F(OutputFileTest, MissingFolderIsAnError) {
  EXPECT_NE(write_output_file(at("no/such/dir/plan.json"), "x"), "");
  EXPECT_FALSE(fs::exists(at("no")));
}

}  // namespace
}  // namespace shardplan
