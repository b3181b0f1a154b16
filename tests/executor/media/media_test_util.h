// Helpers of the executor_media tests: fixture bytes, a scratch folder, files written there.
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

namespace shardplan::media_test {

inline std::string fixture_path(const std::string& name) {
  return std::string(SHARDPLAN_SOURCE_DIR) + "/tests/executor/media/data/" + name;
}

inline std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

inline std::string scratch_dir() {
  char tmpl[] = "/tmp/media_test_XXXXXX";
  const char* dir = ::mkdtemp(tmpl);
  return dir == nullptr ? std::string("/tmp") : std::string(dir);
}

inline std::string write_file(const std::string& dir, const std::string& name, const std::string& bytes) {
  const std::string path = dir + "/" + name;
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

}  // namespace shardplan::media_test
