// A validated, memory-mapped reader for Hugging Face checkpoints in safetensors format: one
// `model.safetensors`, or shards listed by `model.safetensors.index.json`. A rank copies out only
// the hyper-rectangles it owns, and the reader counts the bytes it touched.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "executor/weights/weights_error.h"

namespace shardplan {

// The element types of the safetensors format, by their names in the header ("F32", "BF16", ...).
enum class SafetensorsDType {
  kF64,
  kF32,
  kF16,
  kBF16,
  kI64,
  kI32,
  kI16,
  kI8,
  kU8,
  kBool,
  kF8E4M3,
  kF8E5M2,
};
const char* to_string(SafetensorsDType dtype);  // "F32", "BF16", "F8_E4M3", ...
std::optional<SafetensorsDType> parse_safetensors_dtype(const std::string& text);
int element_bytes(SafetensorsDType dtype);

// "[4, 8]": how every weights message writes a shape.
std::string shape_to_string(const std::vector<int64_t>& shape);

// One tensor as a checkpoint file describes it; every field has been validated.
struct TensorInfo {
  std::string name;              // as stored in the file (after alias resolution, see below)
  SafetensorsDType dtype = SafetensorsDType::kF32;
  std::vector<int64_t> shape;
  std::string file;              // path of the .safetensors file that holds it
  uint64_t data_begin = 0;       // [data_begin, data_end): bytes relative to the end of the header
  uint64_t data_end = 0;

  int64_t numel() const;
  uint64_t nbytes() const { return data_end - data_begin; }
};

// The name files and indexes are looked up by.
inline constexpr const char* kSafetensorsSingleFile = "model.safetensors";
inline constexpr const char* kSafetensorsIndexFile = "model.safetensors.index.json";
// NOTE: the reference implementation (safetensors' Rust crate) refuses headers over 100 MB; so do we,
// before allocating anything for one.
inline constexpr uint64_t kMaxSafetensorsHeaderBytes = 100ull * 1000 * 1000;

// A safetensors file's header, validated (the checks of Checkpoint below, from "at least the
// 8-byte header length" on). Offsets in `tensors` are relative to `data_start`.
struct SafetensorsHeader {
  uint64_t data_start = 0;  // 8 + the header's length: where the data area begins
  std::map<std::string, TensorInfo> tensors;
};

// Validates the `size` bytes of a whole safetensors file (the length field, the header, the data
// area) and returns its header; `path` names the file in messages and in each TensorInfo. The file
// reader calls it on a mapped file, the fuzzer on its input. Throws WeightsError(kInvalid).
SafetensorsHeader parse_safetensors_header(const uint8_t* bytes, uint64_t size, const std::string& path);

// The weight_map of a model.safetensors.index.json's text, grouped: file name -> the tensors the
// index maps to it. Checks: valid JSON (nested at most 64 levels) with a "weight_map" object whose
// values are plain file names (no path). Throws WeightsError(kInvalid) naming `path`.
std::map<std::string, std::vector<std::string>> parse_safetensors_index(const std::string& text,
                                                                        const std::string& path);

class SafetensorsFile;

// A checkpoint opened for reading. Opening validates every header (and the index) completely;
// tensor data is mapped, never read up front.
//
// Checks, in order, for each file (WeightsError, code kIo = 2 for the first, kInvalid = 1 for the rest):
//   - the file exists, is a regular file and can be opened and mapped;
//   - it holds at least the 8-byte little-endian header length N;
//   - N <= file size - 8 and N <= 100 MB;
//   - the header is a JSON object; "__metadata__", if present, maps strings to strings;
//   - every tensor entry has a known dtype, a shape of non-negative integers and data_offsets
//     [begin, end] of non-negative integers with begin <= end;
//   - product(shape) * element size == end - begin, computed without overflow;
//   - end <= size of the data area (file size - 8 - N);
//   - no two tensors share a byte (empty tensors own no bytes). Gaps are tolerated.
// Containment (kIo): in a checkpoint directory, every file read (model.safetensors, the index, each
// shard) must resolve, symlinks followed, to a path inside the directory's own resolved path,
// unless `allow_links_outside` (the executor's --allow-links-outside-checkpoint, for layouts such
// as the Hub cache's snapshots/ whose files link to ../../blobs/).
// And for an index: valid JSON with a "weight_map" object of tensor -> plain file name (no path);
// every listed file exists (kIo) and holds the tensors mapped to it; no tensor is in two files.
//
// Names: a lookup first tries the name as given, then its alternate in the family's other Hub
// layout where one is set (set_alternate_names: the family table's alternate_hub_name), so a
// classic-layout llava name finds a newer-layout checkpoint and back.
class Checkpoint {
 public:
  // `path` is a checkpoint directory or a single .safetensors file. In a directory,
  // model.safetensors is preferred over model.safetensors.index.json when both exist (as
  // transformers does).
  static Checkpoint open(const std::string& path, bool allow_links_outside = false);

  Checkpoint(Checkpoint&&) noexcept;
  Checkpoint& operator=(Checkpoint&&) noexcept;
  ~Checkpoint();

  // A tensor's name in another Hub layout of the same model (nullopt: none); nullptr: no aliases.
  using AlternateNames = std::optional<std::string> (*)(const std::string& name);
  void set_alternate_names(AlternateNames alternate) { alternate_ = alternate; }

  const std::string& path() const { return path_; }
  const std::vector<std::string>& files() const { return file_paths_; }
  std::vector<std::string> tensor_names() const;  // stored names, sorted

  // The stored name a lookup for `name` resolves to, if any.
  std::optional<std::string> resolve(const std::string& name) const;
  bool contains(const std::string& name) const { return resolve(name).has_value(); }
  // Throws WeightsError(kInvalid) naming the checkpoint when the tensor is absent.
  const TensorInfo& info(const std::string& name) const;

  // Copies the hyper-rectangle [offset, offset + shape) of the row-major tensor `name` into `dst`,
  // contiguous and row-major, in the file's dtype. Only the bytes of the slice are read, as
  // contiguous runs. Example: rows [256, 512) of a [1024, 4096] BF16 tensor is one run of
  // 256 * 4096 * 2 bytes; columns [1024, 2048) of it are 1024 runs of 1024 * 2 bytes.
  // Throws WeightsError(kInvalid) when the rank differs or the slice leaves the tensor.
  void read_slice(const std::string& name, const std::vector<int64_t>& offset,
                  const std::vector<int64_t>& shape, void* dst) const;
  // The whole tensor (info(name).nbytes() bytes).
  void read(const std::string& name, void* dst) const;

  // Tensor bytes copied out of the mappings since open (or the last reset); thread-safe.
  uint64_t bytes_touched() const { return bytes_touched_->load(); }
  void reset_bytes_touched() { bytes_touched_->store(0); }

 private:
  struct Entry {
    TensorInfo info;
    const SafetensorsFile* file = nullptr;
  };

  Checkpoint() = default;
  const Entry& entry(const std::string& name) const;

  std::optional<std::string> alternate(const std::string& name) const {
    return alternate_ ? alternate_(name) : std::nullopt;
  }

  std::string path_;
  AlternateNames alternate_ = nullptr;
  std::vector<std::string> file_paths_;
  std::vector<std::unique_ptr<SafetensorsFile>> mapped_files_;
  std::map<std::string, Entry> tensors_;
  std::unique_ptr<std::atomic<uint64_t>> bytes_touched_;
};

}  // namespace shardplan
