// libFuzzer target: a .safetensors file's bytes through the reader's header validation
// (parse_safetensors_header, what Checkpoint::open runs on each mapped file). An accepted header
// must keep the reader's promises, checked here: every tensor's bytes lie inside the data area
// (copied out, so AddressSanitizer sees any byte outside the input) and its shape times its
// element size is its byte count. A WeightsError is the normal rejection; a crash, undefined
// behaviour, another exception, a broken promise, a hang or a runaway allocation is a finding.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "base/error.h"
#include "executor/weights/safetensors.h"

namespace {

void require(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "safetensors_fuzz: accepted a header that breaks: %s\n", what);
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace shardplan;
  try {
    const SafetensorsHeader header = parse_safetensors_header(data, size, "fuzz.safetensors");
    require(header.data_start >= 8 && header.data_start <= size, "data_start inside the file");
    std::vector<uint8_t> copy;
    for (const auto& [name, info] : header.tensors) {
      require(info.data_begin <= info.data_end, "begin <= end");
      require(info.data_end <= size - header.data_start, "end inside the data area");
      const uint64_t elt = static_cast<uint64_t>(element_bytes(info.dtype));
      require(static_cast<uint64_t>(info.numel()) * elt == info.nbytes(), "numel x element size == bytes");
      copy.assign(data + header.data_start + info.data_begin, data + header.data_start + info.data_end);
    }
  } catch (const Error&) {
    // a documented rejection
  }
  return 0;
}
