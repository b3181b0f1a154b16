// libFuzzer target: a model.safetensors.index.json's text through parse_safetensors_index (what
// Checkpoint::open runs on an index). An accepted index names only plain file names, checked
// here. A WeightsError is the normal rejection; a crash, undefined behaviour, another exception, a
// hang or a runaway allocation is a finding.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "base/error.h"
#include "executor/weights/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace shardplan;
  // The index reader refuses a larger file before reading it.
  if (size > kMaxSafetensorsHeaderBytes) return 0;
  try {
    const auto files = parse_safetensors_index(std::string(reinterpret_cast<const char*>(data), size),
                                               "model.safetensors.index.json");
    for (const auto& [file, tensors] : files) {
      if (file.empty() || file == "." || file == ".." || file.find('/') != std::string::npos || tensors.empty()) {
        std::fprintf(stderr, "index_fuzz: accepted file name '%s' (%zu tensors)\n", file.c_str(), tensors.size());
        std::abort();
      }
    }
  } catch (const Error&) {
    // a documented rejection
  }
  return 0;
}
