// The differential test's driver (media_reference_test.py runs it): preprocesses image or WAV
// files with executor_media and writes each result as a float32 .npy file named after the input.
//   media_driver images <model_dir> <vision_image_size> <out_dir> <image>...
//   media_driver audio <num_mel_bins> <max_source_positions> <out_dir> <wav>...
// A file that is refused prints "REFUSED <file> exit=<code>: <message>" and the others go on.
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "executor/media/image_processor.h"
#include "executor/media/log_mel.h"
#include "executor/media/media_error.h"

namespace {

// A .npy (format 1.0) of float32 values, C order.
void write_npy(const std::string& path, const std::vector<float>& values, const std::vector<int64_t>& shape) {
  std::string dims;
  for (int64_t d : shape) dims += std::to_string(d) + ", ";
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + dims + "), }";
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::ofstream out(path, std::ios::binary);
  out.write("\x93NUMPY\x01\x00", 8);
  const uint16_t length = static_cast<uint16_t>(header.size());
  out.put(static_cast<char>(length & 0xff));
  out.put(static_cast<char>(length >> 8));
  out << header;
  out.write(reinterpret_cast<const char*>(values.data()), static_cast<std::streamsize>(values.size() * sizeof(float)));
}

std::string base_name(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: media_driver images|audio <a> <b> <out_dir> <file>...\n");
    return 2;
  }
  const std::string mode = argv[1];
  const std::string out_dir = argv[4];
  try {
    if (mode == "images") {
      const shardplan::ImageProcessorConfig config = shardplan::ImageProcessorConfig::load(argv[2], std::stoll(argv[3]));
      for (int i = 5; i < argc; ++i) {
        try {
          const shardplan::PixelValues p = shardplan::preprocess_image(argv[i], config);
          write_npy(out_dir + "/" + base_name(argv[i]) + ".npy", p.values, {3, p.height, p.width});
        } catch (const shardplan::MediaError& e) {
          std::printf("REFUSED %s exit=%d: %s\n", argv[i], e.exit_code(), e.what());
        }
      }
    } else if (mode == "audio") {
      const auto config = shardplan::LogMelConfig::whisper(std::stoll(argv[2]), std::stoll(argv[3]));
      for (int i = 5; i < argc; ++i) {
        try {
          const std::vector<float> f = shardplan::whisper_log_mel(argv[i], config);
          write_npy(out_dir + "/" + base_name(argv[i]) + ".npy", f, {config.n_mels, config.frames});
        } catch (const shardplan::MediaError& e) {
          std::printf("REFUSED %s exit=%d: %s\n", argv[i], e.exit_code(), e.what());
        }
      }
    } else {
      std::fprintf(stderr, "media_driver: unknown mode %s\n", mode.c_str());
      return 2;
    }
  } catch (const shardplan::Error& e) {
    std::fprintf(stderr, "media_driver: %s\n", e.what());
    return e.exit_code();
  }
  return 0;
}
