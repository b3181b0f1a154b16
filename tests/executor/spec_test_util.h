// Helpers for the tests of `executor run`: a scratch directory per test process, random
// checkpoints made with the checkpoint writer, and specs written around them. No libtorch here.
#pragma once

#include <ftw.h>
#include <unistd.h>

#include <cstdio>

#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "executor/weights/checkpoint_writer.h"
#include "models/graph/registry.h"

namespace shardplan::testing {

namespace fs = std::filesystem;

inline const std::string kConfigDir = std::string(SHARDPLAN_SOURCE_DIR) + "/models/configs/";

// A directory under the system temp dir, per process, for files shared by a suite's tests;
// removed by a gtest environment after the last test.
// NOTE: removed with nftw(3), not std::filesystem::remove_all: pip's libtorch exports its own
// copy of remove_all, which the test binaries bind to and which crashes (seen with torch 2.11).
inline const std::string& suite_dir_name() {
  static const std::string name =
      (fs::temp_directory_path() / ("shardplan_runtime_" + std::to_string(::getpid()))).string();
  return name;
}

inline fs::path suite_dir() {
  fs::create_directories(suite_dir_name());
  return suite_dir_name();
}

class SuiteDirCleanup : public ::testing::Environment {
 public:
  void TearDown() override {
    ::nftw(
        suite_dir_name().c_str(), [](const char* path, const struct stat*, int, struct FTW*) { return ::remove(path); },
        16, FTW_DEPTH | FTW_PHYS);
  }
};
inline const bool kSuiteDirCleanupRegistered = (::testing::AddGlobalTestEnvironment(new SuiteDirCleanup), true);

// A checkpoint of `config` (a file name under models/configs or a path) written once per process
// in `dtype` with seed 7; returns its directory.
inline std::string checkpoint_for(const std::string& config, DType dtype = DType::kFloat32) {
  const std::string path = config.find('/') == std::string::npos ? kConfigDir + config : config;
  const std::string dir =
      (suite_dir() / ("ckpt_" + fs::path(path).stem().string() + "_" + to_string(dtype))).string();
  if (!fs::exists(fs::path(dir) / "config.json")) {
    write_random_checkpoint(load_model_graph(path), dir, 7, dtype);
  }
  return dir;
}

struct SpecText {
  std::string config = "tiny-llama.json";
  std::string dtype = "float32";
  std::string mesh = "tp: 2";          // YAML lines under `mesh:`, ';'-separated
  std::string batch_axes;              // "[dp]" or empty
  std::string modules = "  - kind: [embedding, attention, mlp, lm_head]\n    mode: tensor\n    axes: [tp]\n";
  int batch = 4, prompt_tokens = 8, new_tokens = 4;
  int images_per_request = 0;          // > 0: written into the workload (llava)
};

// Writes the spec as `name`.yaml in the suite directory, with a checkpoint of its config.
inline std::string write_spec(const std::string& name, const SpecText& s) {
  const std::string config = s.config.find('/') == std::string::npos ? kConfigDir + s.config : s.config;
  const DType dtype = *parse_dtype(s.dtype);
  std::string mesh;
  size_t start = 0;
  while (start <= s.mesh.size()) {
    size_t end = s.mesh.find(';', start);
    if (end == std::string::npos) end = s.mesh.size();
    mesh += "  " + s.mesh.substr(start, end - start) + "\n";
    start = end + 1;
  }
  std::string text = "version: 1\nname: " + name + "\nmodel:\n  config: " + config + "\n  checkpoint: " +
                     checkpoint_for(config, dtype) + "\n  dtype: " + s.dtype + "\nmesh:\n" + mesh;
  if (!s.batch_axes.empty()) text += "batch_axes: " + s.batch_axes + "\n";
  if (!s.modules.empty()) text += "modules:\n" + s.modules;
  text += "workload:\n  batch: " + std::to_string(s.batch) + "\n  prompt_tokens: " + std::to_string(s.prompt_tokens) +
          "\n  new_tokens: " + std::to_string(s.new_tokens) + "\n";
  if (s.images_per_request > 0) text += "  images_per_request: " + std::to_string(s.images_per_request) + "\n";
  const std::string file = (suite_dir() / (name + ".yaml")).string();
  std::ofstream(file) << text;
  return file;
}

}  // namespace shardplan::testing
