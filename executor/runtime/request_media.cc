// Images and audio for requests (see request_media.h).
#include "executor/runtime/request_media.h"

#include "executor/runtime/run_error.h"
#if SHARDPLAN_WITH_REQUESTS
#include "executor/media/image_processor.h"
#include "executor/media/log_mel.h"
#endif

namespace shardplan {

#if SHARDPLAN_WITH_REQUESTS
std::vector<float> load_request_images(const std::vector<std::string>& paths, const std::string& model_dir,
                                       int64_t image_size) {
  const ImageProcessorConfig config = ImageProcessorConfig::load(model_dir, image_size);
  std::vector<float> out;
  for (const std::string& path : paths) {
    const PixelValues p = preprocess_image(path, config);
    out.insert(out.end(), p.values.begin(), p.values.end());
  }
  return out;
}

std::vector<float> load_request_audio(const std::string& path, int64_t mel_bins, int64_t max_source_positions) {
  return whisper_log_mel(path, LogMelConfig::whisper(mel_bins, max_source_positions));
}
#else
std::vector<float> load_request_images(const std::vector<std::string>&, const std::string&, int64_t) {
  throw RunError(RunError::Code::kUsage, "images in --requests: this executor was built without image decoding "
                                         "(SHARDPLAN_WITH_REQUESTS=OFF)");
}
std::vector<float> load_request_audio(const std::string&, int64_t, int64_t) {
  throw RunError(RunError::Code::kUsage, "audio in --requests: this executor was built without audio decoding "
                                         "(SHARDPLAN_WITH_REQUESTS=OFF)");
}
#endif

}  // namespace shardplan
