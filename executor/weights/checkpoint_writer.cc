// Random checkpoint writing: the value streams, the split into files, atomic writes, progress.
// NOTE: compiled with -ffp-contract=off (executor/CMakeLists.txt): 1 + x * scale must not become a
// fused multiply-add on some targets and not on others, or the bytes would differ across platforms.
#include "executor/weights/checkpoint_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <limits>
#include <regex>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "base/interrupt.h"
#include "executor/weights/checkpoint_check.h"
#include "executor/weights/half_float.h"
#include "executor/weights/safetensors.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the checkpoint writer stores host-order values; safetensors is little-endian"
#endif

namespace shardplan {

namespace fs = std::filesystem;
using Code = WeightsError::Code;

namespace {

constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ull;

// splitmix64's output function.
uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint64_t fnv1a64(const std::string& text) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (unsigned char c : text) {
    h ^= c;
    h *= 0x100000001B3ull;
  }
  return h;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The values of one tensor: element i = base + odd(i) * unit, odd(i) an odd integer in
// [-(2^24 - 1), 2^24 - 1] from 24 random bits, so the values are uniform with mean exactly base.
// A uniform on [-a, a] has std a / sqrt(3): a = std * sqrt(3).
struct ValueStream {
  uint64_t key = 0;
  double base = 0.0;
  double unit = 0.0;  // a / 2^24

  ValueStream(const std::string& name, uint64_t seed) {
    key = mix64(mix64(seed + kGolden) ^ fnv1a64(name));
    double amplitude = 0.034641016151377546;  // std 0.02
    if (ends_with(name, "norm.weight") || ends_with(name, "norm1.weight") || ends_with(name, "norm2.weight")) {
      base = 1.0;
    } else if (ends_with(name, ".bias")) {
      amplitude = 0.017320508075688773;  // std 0.01
    }
    unit = amplitude / 16777216.0;
  }

  float value(int64_t index) const {
    const uint64_t word = mix64(key + (static_cast<uint64_t>(index >> 1) + 1) * kGolden);
    const uint32_t half = (index & 1) ? static_cast<uint32_t>(word) : static_cast<uint32_t>(word >> 32);
    const int64_t odd = 2 * static_cast<int64_t>(half >> 8) + 1 - (int64_t{1} << 24);
    const double scaled = static_cast<double>(odd) * unit;
    return static_cast<float>(base + scaled);
  }
};

const char* safetensors_dtype_name(DType dtype) {
  switch (dtype) {
    case DType::kFloat32: return "F32";
    case DType::kBFloat16: return "BF16";
    case DType::kFloat16: return "F16";
  }
  return "?";
}

const char* torch_dtype_name(DType dtype) {
  switch (dtype) {
    case DType::kFloat32: return "float32";
    case DType::kBFloat16: return "bfloat16";
    case DType::kFloat16: return "float16";
  }
  return "?";
}

int bytes_of(DType dtype) { return dtype == DType::kFloat32 ? 4 : 2; }

struct PlannedTensor {
  const Param* param = nullptr;
  int64_t numel = 0;
  uint64_t nbytes = 0;
};

struct PlannedFile {
  std::string name;
  std::vector<PlannedTensor> tensors;  // sorted by name
  uint64_t bytes = 0;
};

std::string gib(uint64_t bytes) { return fmt::format("{:.2f} GiB", static_cast<double>(bytes) / (1ull << 30)); }

// Periodic progress lines for checkpoints large enough to take a while.
class Progress {
 public:
  Progress(uint64_t total) : total_(total), enabled_(total >= (256ull << 20)), last_(Clock::now()) {}
  void add(uint64_t bytes) {
    done_ += bytes;
    if (!enabled_) return;
    const auto now = Clock::now();
    if (now - last_ >= std::chrono::seconds(5)) {
      last_ = now;
      spdlog::info("make-checkpoint: {} of {} written ({:.0f}%)", gib(done_), gib(total_),
                   100.0 * static_cast<double>(done_) / static_cast<double>(total_));
    }
  }
  bool enabled() const { return enabled_; }

 private:
  using Clock = std::chrono::steady_clock;
  uint64_t total_;
  uint64_t done_ = 0;
  bool enabled_;
  Clock::time_point last_;
};

// An open file descriptor that writes everything or throws kIo.
class OutputFile {
 public:
  explicit OutputFile(const std::string& path) : path_(path) {
    fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) throw WeightsError(Code::kIo, fmt::format("{}: cannot create: {}", path, std::strerror(errno)));
  }
  ~OutputFile() {
    if (fd_ >= 0) ::close(fd_);
  }
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;

  void write(const void* data, size_t size) {
    const char* p = static_cast<const char*>(data);
    while (size > 0) {
      ssize_t n = ::write(fd_, p, size);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) throw WeightsError(Code::kIo, fmt::format("{}: write failed: {}", path_, std::strerror(errno)));
      p += n;
      size -= static_cast<size_t>(n);
    }
  }
  // Flushes to disk and closes, so that a rename afterwards publishes a complete file.
  void finish() {
    if (::fsync(fd_) != 0 || ::close(fd_) != 0) {
      fd_ = -1;
      throw WeightsError(Code::kIo, fmt::format("{}: cannot flush: {}", path_, std::strerror(errno)));
    }
    fd_ = -1;
  }

 private:
  std::string path_;
  int fd_ = -1;
};

void write_safetensors(const PlannedFile& file, const std::string& path, uint64_t seed, DType dtype,
                       Progress& progress) {
  nlohmann::ordered_json header;
  header["__metadata__"] = {{"format", "pt"}};
  uint64_t offset = 0;
  for (const PlannedTensor& t : file.tensors) {
    header[t.param->name] = {{"dtype", safetensors_dtype_name(dtype)},
                             {"shape", t.param->shape},
                             {"data_offsets", {offset, offset + t.nbytes}}};
    offset += t.nbytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // as the reference writer: data starts 8-aligned

  OutputFile out(path);
  uint8_t length[8];
  const uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) length[i] = static_cast<uint8_t>(n >> (8 * i));
  out.write(length, sizeof length);
  out.write(text.data(), text.size());

  constexpr int64_t kChunk = 1 << 20;  // elements converted and written at a time
  std::vector<uint8_t> buffer(static_cast<size_t>(kChunk) * bytes_of(dtype));
  for (const PlannedTensor& t : file.tensors) {
    const ValueStream stream(t.param->name, seed);
    for (int64_t begin = 0; begin < t.numel; begin += kChunk) {
      throw_if_interrupted();
      const int64_t count = std::min(kChunk, t.numel - begin);
      for (int64_t i = 0; i < count; ++i) {
        const float v = stream.value(begin + i);
        switch (dtype) {
          case DType::kFloat32: std::memcpy(buffer.data() + 4 * i, &v, 4); break;
          case DType::kBFloat16: {
            const uint16_t b = float_to_bfloat16_bits(v);
            std::memcpy(buffer.data() + 2 * i, &b, 2);
            break;
          }
          case DType::kFloat16: {
            const uint16_t b = float_to_float16_bits(v);
            std::memcpy(buffer.data() + 2 * i, &b, 2);
            break;
          }
        }
      }
      const size_t bytes = static_cast<size_t>(count) * bytes_of(dtype);
      out.write(buffer.data(), bytes);
      progress.add(bytes);
    }
  }
  out.finish();
}

void write_text(const std::string& path, const std::string& text) {
  OutputFile out(path);
  out.write(text.data(), text.size());
  out.finish();
}

// Removes the temporary files of an unfinished write, whatever happens.
class TempFiles {
 public:
  ~TempFiles() {
    for (const std::string& path : paths_) {
      std::error_code ec;
      fs::remove(path, ec);
    }
  }
  std::string add(const std::string& final_path) {
    paths_.push_back(final_path + ".tmp");
    return paths_.back();
  }
  void release() { paths_.clear(); }

 private:
  std::vector<std::string> paths_;
};

}  // namespace

float random_weight(const std::string& name, uint64_t seed, int64_t index) {
  return ValueStream(name, seed).value(index);
}

WrittenCheckpoint write_random_checkpoint(const ModelGraph& graph, const std::string& dir, uint64_t seed,
                                          DType dtype, uint64_t max_shard_bytes) {
  if (max_shard_bytes == 0) throw WeightsError(Code::kInvalid, "max shard size must be at least 1 byte");
  if (!graph.config.is_object()) {
    throw WeightsError(Code::kInvalid, fmt::format("the {} model graph has no config object to write as config.json",
                                                   graph.model_type));
  }

  // Sizes, checked: the graph comes from a config file.
  std::vector<PlannedTensor> tensors;
  uint64_t total_bytes = 0;
  int64_t total_params = 0;
  for (const Param* param : checkpoint_params(graph)) {
    PlannedTensor t{param, 1, 0};
    for (int64_t d : param->shape) {
      if (d < 0 || (d > 0 && t.numel > std::numeric_limits<int64_t>::max() / 8 / d)) {
        throw WeightsError(Code::kInvalid, fmt::format("tensor '{}' has shape {}: {}", param->name,
                                                       shape_to_string(param->shape),
                                                       d < 0 ? "a negative dimension" : "too many elements"));
      }
      t.numel *= d;
    }
    t.nbytes = static_cast<uint64_t>(t.numel) * bytes_of(dtype);
    if (total_bytes > std::numeric_limits<uint64_t>::max() - t.nbytes) {
      throw WeightsError(Code::kInvalid, fmt::format("the {} tensors total more than 2^64 bytes", graph.model_type));
    }
    total_bytes += t.nbytes;
    total_params += t.numel;
    tensors.push_back(t);
  }

  // Split in graph order, as save_pretrained does.
  std::vector<PlannedFile> files;
  for (const PlannedTensor& t : tensors) {
    if (files.empty() || (files.back().bytes > 0 && files.back().bytes + t.nbytes > max_shard_bytes)) {
      files.emplace_back();
    }
    files.back().tensors.push_back(t);
    files.back().bytes += t.nbytes;
  }
  if (files.empty()) files.emplace_back();  // a graph without tensors still gets a (valid, empty) file
  for (size_t i = 0; i < files.size(); ++i) {
    files[i].name = files.size() == 1 ? std::string(kSafetensorsSingleFile)
                                      : fmt::format("model-{:05d}-of-{:05d}.safetensors", i + 1, files.size());
    std::sort(files[i].tensors.begin(), files[i].tensors.end(),
              [](const PlannedTensor& a, const PlannedTensor& b) { return a.param->name < b.param->name; });
  }

  // NOTE: the temporary files are written whole before any is renamed, while the files they
  // replace still exist: all of total_bytes must fit in what is free now (checked on the folder,
  // or the nearest one above it that exists, before anything is created).
  std::error_code ec;
  fs::path existing = fs::absolute(dir, ec);
  while (!ec && !existing.empty() && !fs::exists(existing, ec) && existing.has_parent_path() &&
         existing.parent_path() != existing) {
    existing = existing.parent_path();
  }
  const fs::space_info space = fs::space(existing, ec);
  if (!ec && space.available < total_bytes + (1u << 20)) {
    throw WeightsError(Code::kIo, fmt::format("{} has {} free; the checkpoint needs {} ({} tensors of {})",
                                              existing.string(), gib(space.available), gib(total_bytes),
                                              tensors.size(), torch_dtype_name(dtype)));
  }
  ec.clear();
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir)) {
    throw WeightsError(Code::kIo, fmt::format("cannot create output directory '{}': {}", dir,
                                              ec ? ec.message() : "not a directory"));
  }

  Progress progress(total_bytes);
  if (progress.enabled()) {
    spdlog::info("make-checkpoint: writing {} tensors, {} of {} in {} file{} to {}", tensors.size(), gib(total_bytes),
                 torch_dtype_name(dtype), files.size(), files.size() == 1 ? "" : "s", dir);
  }

  WrittenCheckpoint written;
  written.tensors = static_cast<int64_t>(tensors.size());
  written.tensor_bytes = total_bytes;
  TempFiles temps;
  std::vector<std::pair<std::string, std::string>> renames;  // temp -> final
  auto stage = [&](const std::string& name) {
    const std::string final_path = (fs::path(dir) / name).string();
    renames.emplace_back(temps.add(final_path), final_path);
    written.files.push_back(final_path);
    return renames.back().first;
  };

  for (const PlannedFile& file : files) write_safetensors(file, stage(file.name), seed, dtype, progress);

  if (files.size() > 1) {
    nlohmann::ordered_json index;
    index["metadata"] = {{"total_parameters", total_params}, {"total_size", total_bytes}};
    nlohmann::json weight_map = nlohmann::json::object();  // sorted by tensor name
    for (const PlannedFile& file : files) {
      for (const PlannedTensor& t : file.tensors) weight_map[t.param->name] = file.name;
    }
    index["weight_map"] = weight_map;
    write_text(stage(kSafetensorsIndexFile), index.dump(2) + "\n");
  }

  nlohmann::json config = graph.config;
  config["torch_dtype"] = torch_dtype_name(dtype);
  write_text(stage("config.json"), config.dump(2) + "\n");

  for (const auto& [temp, final_path] : renames) {
    fs::rename(temp, final_path, ec);
    if (ec) throw WeightsError(Code::kIo, fmt::format("cannot rename {} to {}: {}", temp, final_path, ec.message()));
  }
  temps.release();

  // Stale files of an earlier checkpoint in the same directory.
  const std::regex checkpoint_file(R"(model(-\d{5}-of-\d{5})?\.safetensors|model\.safetensors\.index\.json)");
  std::set<std::string> keep;
  for (const std::string& path : written.files) keep.insert(fs::path(path).filename().string());
  for (const fs::directory_entry& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (std::regex_match(name, checkpoint_file) && keep.count(name) == 0) {
      std::error_code remove_ec;
      fs::remove(entry.path(), remove_ec);
      if (remove_ec) {
        throw WeightsError(Code::kIo, fmt::format("cannot remove stale {}: {}", entry.path().string(),
                                                  remove_ec.message()));
      }
    }
  }

  if (progress.enabled()) spdlog::info("make-checkpoint: done, {} in {}", gib(total_bytes), dir);
  return written;
}

std::optional<uint64_t> parse_byte_size(const std::string& text) {
  size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits]))) ++digits;
  if (digits == 0) return std::nullopt;
  uint64_t value = 0;
  for (size_t i = 0; i < digits; ++i) {
    const uint64_t d = static_cast<uint64_t>(text[i] - '0');
    if (value > (std::numeric_limits<uint64_t>::max() - d) / 10) return std::nullopt;
    value = value * 10 + d;
  }
  std::string suffix;
  for (size_t i = digits; i < text.size(); ++i) suffix += static_cast<char>(std::tolower(static_cast<unsigned char>(text[i])));
  struct Unit {
    const char* suffix;
    uint64_t factor;
  };
  constexpr Unit kUnits[] = {{"", 1},           {"b", 1},
                             {"kb", 1000},      {"mb", 1000000},   {"gb", 1000000000}, {"tb", 1000000000000},
                             {"kib", 1ull << 10}, {"mib", 1ull << 20}, {"gib", 1ull << 30}, {"tib", 1ull << 40}};
  for (const Unit& unit : kUnits) {
    if (suffix == unit.suffix) {
      if (value == 0 || value > std::numeric_limits<uint64_t>::max() / unit.factor) return std::nullopt;
      return value * unit.factor;
    }
  }
  return std::nullopt;
}

}  // namespace shardplan
