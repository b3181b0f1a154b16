// Images and audio of `executor run --requests` as the model's inputs (executor/media: JPEG/PNG
// through llava-1.5's CLIP preprocessing, WAV through Whisper's log-mel features); an executor
// built without it (SHARDPLAN_WITH_REQUESTS off) refuses them. No libtorch here.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace shardplan {

// The pixel values of every image in turn, [images, 3, image_size, image_size] float32 flat: the
// processor of `model_dir` (its preprocessor_config.json, else llava-1.5's at image_size). Throws
// the media layer's errors (exit 1 bad content, 2 unreadable) naming the file.
std::vector<float> load_request_images(const std::vector<std::string>& paths, const std::string& model_dir,
                                       int64_t image_size);

// Whisper's log-mel features of a WAV file, [mel_bins, 2 * max_source_positions] float32 flat.
std::vector<float> load_request_audio(const std::string& path, int64_t mel_bins, int64_t max_source_positions);

}  // namespace shardplan
