// A main() for the fuzz targets where libFuzzer is not there (gcc): runs LLVMFuzzerTestOneInput
// once on every file of the folders (and files) on the command line, so CI replays the committed
// corpora and regressions in the normal build. Exit 0 when every input ran; a finding crashes
// the process as it would under libFuzzer.
//   spec_fuzz_replay tests/fuzz/corpus/spec tests/fuzz/regressions/spec
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  std::vector<fs::path> inputs;
  for (int i = 1; i < argc; ++i) {
    const fs::path arg(argv[i]);
    if (fs::is_directory(arg)) {
      for (const auto& entry : fs::directory_iterator(arg)) {
        if (entry.is_regular_file()) inputs.push_back(entry.path());
      }
    } else if (fs::is_regular_file(arg)) {
      inputs.push_back(arg);
    } else {
      std::cerr << argv[0] << ": " << arg.string() << " is neither a folder nor a file\n";
      return 2;
    }
  }
  std::sort(inputs.begin(), inputs.end());  // NOTE: a deterministic order, whatever the file system's
  for (const fs::path& path : inputs) {
    std::ifstream in(path, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::cerr << "replaying " << path.string() << " (" << bytes.size() << " bytes)\n";
    // NOTE: a copy of exactly the input's size, as libFuzzer passes it, so that a read past the
    // end is a read past an allocation under AddressSanitizer.
    std::vector<uint8_t> data(bytes.begin(), bytes.end());
    LLVMFuzzerTestOneInput(data.empty() ? nullptr : data.data(), data.size());
  }
  std::cerr << "replayed " << inputs.size() << " inputs\n";
  return 0;
}
