// Safetensors reading: header and index validation, mmap, and slice copies that count their bytes.
#include "executor/weights/safetensors.h"

#include "base/input_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <utility>

#include <fmt/format.h>
#include <nlohmann/json.hpp>


namespace shardplan {

namespace fs = std::filesystem;
using Code = WeightsError::Code;

namespace {

struct DTypeName {
  SafetensorsDType dtype;
  const char* name;
  int bytes;
};

constexpr DTypeName kDTypeNames[] = {
    {SafetensorsDType::kF64, "F64", 8},         {SafetensorsDType::kF32, "F32", 4},
    {SafetensorsDType::kF16, "F16", 2},         {SafetensorsDType::kBF16, "BF16", 2},
    {SafetensorsDType::kI64, "I64", 8},         {SafetensorsDType::kI32, "I32", 4},
    {SafetensorsDType::kI16, "I16", 2},         {SafetensorsDType::kI8, "I8", 1},
    {SafetensorsDType::kU8, "U8", 1},           {SafetensorsDType::kBool, "BOOL", 1},
    {SafetensorsDType::kF8E4M3, "F8_E4M3", 1},  {SafetensorsDType::kF8E5M2, "F8_E5M2", 1},
};


std::string known_dtypes() {
  std::string out;
  for (const DTypeName& d : kDTypeNames) {
    if (!out.empty()) out += ", ";
    out += d.name;
  }
  return out;
}

// Reads a JSON value that must be a non-negative integer no larger than `max`.
// Returns an error phrase ("is negative (-3)") or an empty string.
std::string read_count(const nlohmann::json& v, uint64_t max, uint64_t* out) {
  if (v.is_number_unsigned()) {
    uint64_t x = v.get<uint64_t>();
    if (x > max) return fmt::format("is too large ({} > {})", x, max);
    *out = x;
    return "";
  }
  if (v.is_number_integer()) return fmt::format("is negative ({})", v.get<int64_t>());
  return fmt::format("is not an integer ({})", v.dump());
}

[[noreturn]] void throw_shorter_than_length_field(const std::string& path, uint64_t size) {
  throw WeightsError(Code::kInvalid, fmt::format("{}: file is {} bytes, shorter than the 8-byte header length "
                                                 "(truncated or not a safetensors file)",
                                                 path, size));
}

}  // namespace

const char* to_string(SafetensorsDType dtype) {
  for (const DTypeName& d : kDTypeNames) {
    if (d.dtype == dtype) return d.name;
  }
  return "?";
}

std::optional<SafetensorsDType> parse_safetensors_dtype(const std::string& text) {
  for (const DTypeName& d : kDTypeNames) {
    if (text == d.name) return d.dtype;
  }
  return std::nullopt;
}

std::string shape_to_string(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) out += ", ";
    out += std::to_string(shape[i]);
  }
  return out + "]";
}

int element_bytes(SafetensorsDType dtype) {
  for (const DTypeName& d : kDTypeNames) {
    if (d.dtype == dtype) return d.bytes;
  }
  return 0;
}

int64_t TensorInfo::numel() const {
  // NOTE: 0 as soon as a dimension is: the others may multiply past int64 ([2^40, 2^40, 0] is a
  // valid empty tensor); without a zero the product is bounded by the validated byte count.
  if (std::find(shape.begin(), shape.end(), 0) != shape.end()) return 0;
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

namespace {

// The tensors of a header's JSON text, validated against a data area of `data_size` bytes.
std::map<std::string, TensorInfo> parse_header_json(const std::string& text, uint64_t data_size,
                                                    const std::string& path) {
  std::map<std::string, TensorInfo> tensors;
  nlohmann::json header;
  try {
    header = parse_json_limited(text);
  } catch (const std::exception& e) {
    throw WeightsError(Code::kInvalid,
                       fmt::format("{}: header ({} bytes) is not valid JSON: {}", path, text.size(), e.what()));
  }
  if (!header.is_object()) {
    throw WeightsError(Code::kInvalid,
                       fmt::format("{}: header is JSON {}, expected an object", path, header.type_name()));
  }

  for (const auto& [name, value] : header.items()) {
    if (name == "__metadata__") {
      if (!value.is_object()) {
        throw WeightsError(Code::kInvalid,
                           fmt::format("{}: __metadata__ is {}, expected an object of strings", path, value.type_name()));
      }
      for (const auto& [key, item] : value.items()) {
        if (!item.is_string()) {
          throw WeightsError(Code::kInvalid, fmt::format("{}: __metadata__ '{}' is {}, expected a string",
                                                         path, key, item.type_name()));
        }
      }
      continue;
    }
    const std::string where = fmt::format("{}: tensor '{}'", path, name);
    if (!value.is_object()) {
      throw WeightsError(Code::kInvalid, fmt::format("{}: entry is {}, expected an object", where, value.type_name()));
    }
    for (const char* key : {"dtype", "shape", "data_offsets"}) {
      if (!value.contains(key)) {
        throw WeightsError(Code::kInvalid, fmt::format("{}: missing '{}'", where, key));
      }
    }
    TensorInfo info;
    info.name = name;
    info.file = path;

    const nlohmann::json& dtype = value["dtype"];
    std::optional<SafetensorsDType> parsed =
        dtype.is_string() ? parse_safetensors_dtype(dtype.get<std::string>()) : std::nullopt;
    if (!parsed) {
      throw WeightsError(Code::kInvalid, fmt::format("{}: unknown dtype {} (known: {})", where,
                                                     dtype.dump(), known_dtypes()));
    }
    info.dtype = *parsed;

    const nlohmann::json& shape = value["shape"];
    if (!shape.is_array()) {
      throw WeightsError(Code::kInvalid, fmt::format("{}: shape is {}, expected an array", where, shape.dump()));
    }
    for (size_t i = 0; i < shape.size(); ++i) {
      uint64_t dim = 0;
      std::string problem = read_count(shape[i], static_cast<uint64_t>(std::numeric_limits<int64_t>::max()), &dim);
      if (!problem.empty()) {
        throw WeightsError(Code::kInvalid,
                           fmt::format("{}: shape {} entry {} {}", where, shape.dump(), i, problem));
      }
      info.shape.push_back(static_cast<int64_t>(dim));
    }
    // NOTE: the byte count is multiplied out in unsigned 64 bits with an overflow check per factor,
    // so a hostile shape like [2^40, 2^40] is an error, not a wrapped small number matching a range.
    uint64_t nbytes = 0;
    if (std::none_of(info.shape.begin(), info.shape.end(), [](int64_t d) { return d == 0; })) {
      nbytes = static_cast<uint64_t>(element_bytes(info.dtype));
      for (int64_t d : info.shape) {
        const uint64_t dim = static_cast<uint64_t>(d);
        if (nbytes > std::numeric_limits<uint64_t>::max() / dim) {
          throw WeightsError(Code::kInvalid, fmt::format("{}: shape {} of {} has more than 2^64 bytes", where,
                                                         shape_to_string(info.shape), to_string(info.dtype)));
        }
        nbytes *= dim;
      }
    }

    const nlohmann::json& offsets = value["data_offsets"];
    if (!offsets.is_array() || offsets.size() != 2) {
      throw WeightsError(Code::kInvalid,
                         fmt::format("{}: data_offsets is {}, expected [begin, end]", where, offsets.dump()));
    }
    for (size_t i = 0; i < 2; ++i) {
      uint64_t v = 0;
      std::string problem = read_count(offsets[i], std::numeric_limits<uint64_t>::max(), &v);
      if (!problem.empty()) {
        throw WeightsError(Code::kInvalid, fmt::format("{}: data_offsets {} {} {}", where, offsets.dump(),
                                                       i == 0 ? "begin" : "end", problem));
      }
      (i == 0 ? info.data_begin : info.data_end) = v;
    }
    if (info.data_begin > info.data_end) {
      throw WeightsError(Code::kInvalid, fmt::format("{}: data_offsets [{}, {}] begin after end", where,
                                                     info.data_begin, info.data_end));
    }
    if (info.data_end - info.data_begin != nbytes) {
      throw WeightsError(Code::kInvalid,
                         fmt::format("{}: shape {} x {} ({} bytes each) = {} bytes, but data_offsets "
                                     "[{}, {}] span {} bytes",
                                     where, shape_to_string(info.shape), to_string(info.dtype),
                                     element_bytes(info.dtype), nbytes, info.data_begin, info.data_end,
                                     info.data_end - info.data_begin));
    }
    if (info.data_end > data_size) {
      throw WeightsError(Code::kInvalid,
                         fmt::format("{}: data_offsets [{}, {}] end beyond the data area of {} bytes "
                                     "(file truncated?)",
                                     where, info.data_begin, info.data_end, data_size));
    }
    tensors.emplace(name, std::move(info));
  }

  // Overlaps: sorted by begin, each non-empty range must start at or after the previous one's end.
  std::vector<const TensorInfo*> by_offset;
  for (const auto& [name, info] : tensors) {
    if (info.nbytes() > 0) by_offset.push_back(&info);
  }
  std::sort(by_offset.begin(), by_offset.end(), [](const TensorInfo* a, const TensorInfo* b) {
    return a->data_begin != b->data_begin ? a->data_begin < b->data_begin : a->name < b->name;
  });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const TensorInfo& prev = *by_offset[i - 1];
    const TensorInfo& cur = *by_offset[i];
    if (cur.data_begin < prev.data_end) {
      throw WeightsError(Code::kInvalid,
                         fmt::format("{}: tensors '{}' [{}, {}] and '{}' [{}, {}] overlap", path, prev.name,
                                     prev.data_begin, prev.data_end, cur.name, cur.data_begin, cur.data_end));
    }
  }
  return tensors;
}

}  // namespace

SafetensorsHeader parse_safetensors_header(const uint8_t* bytes, uint64_t size, const std::string& path) {
  if (size < 8) throw_shorter_than_length_field(path, size);
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | bytes[i];  // little-endian
  if (header_len > size - 8) {
    // NOTE: the length is printed only when it is plausible (a truncated file): for any other file
    // it is just the file's first 8 bytes, which a message must not disclose.
    const std::string length =
        header_len <= kMaxSafetensorsHeaderBytes ? fmt::format("header length {}", header_len) : "the header length";
    throw WeightsError(Code::kInvalid,
                       fmt::format("{}: {} exceeds the {} bytes after the 8-byte "
                                   "length field (file size {}; truncated or not a safetensors file)",
                                   path, length, size - 8, size));
  }
  if (header_len > kMaxSafetensorsHeaderBytes) {
    throw WeightsError(Code::kInvalid, fmt::format("{}: the header length exceeds the limit of {} bytes "
                                                   "(not a safetensors file?)",
                                                   path, kMaxSafetensorsHeaderBytes));
  }
  SafetensorsHeader header;
  header.data_start = 8 + header_len;
  header.tensors = parse_header_json(std::string(reinterpret_cast<const char*>(bytes + 8), header_len),
                                     size - 8 - header_len, path);
  return header;
}

// One mapped .safetensors file with its validated header.
class SafetensorsFile {
 public:
  // Checks: see Checkpoint in the header.
  static std::unique_ptr<SafetensorsFile> open(const std::string& path);
  ~SafetensorsFile() {
    if (map_ != nullptr) munmap(map_, map_size_);
  }
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const std::map<std::string, TensorInfo>& tensors() const { return tensors_; }
  const uint8_t* data() const { return static_cast<const uint8_t*>(map_) + data_start_; }

 private:
  SafetensorsFile() = default;

  std::string path_;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  uint64_t data_start_ = 0;
  std::map<std::string, TensorInfo> tensors_;
};

std::unique_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  std::unique_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->path_ = path;

  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    throw WeightsError(Code::kIo, fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
  }
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    throw WeightsError(Code::kIo, fmt::format("{}: cannot stat: {}", path, std::strerror(err)));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw WeightsError(Code::kIo, fmt::format("{}: not a regular file", path));
  }
  const uint64_t file_size = static_cast<uint64_t>(st.st_size);
  if (file_size < 8) {
    ::close(fd);
    throw_shorter_than_length_field(path, file_size);  // NOTE: before mmap, which refuses 0 bytes
  }
  void* map = mmap(nullptr, file_size, PROT_READ, MAP_PRIVATE, fd, 0);
  int map_errno = errno;
  ::close(fd);  // the mapping keeps the file alive
  if (map == MAP_FAILED) {
    throw WeightsError(Code::kIo, fmt::format("{}: cannot map {} bytes: {}", path, file_size,
                                              std::strerror(map_errno)));
  }
  file->map_ = map;
  file->map_size_ = file_size;

  SafetensorsHeader header = parse_safetensors_header(static_cast<const uint8_t*>(map), file_size, path);
  file->data_start_ = header.data_start;
  file->tensors_ = std::move(header.tensors);
  return file;
}

Checkpoint::Checkpoint(Checkpoint&&) noexcept = default;
Checkpoint& Checkpoint::operator=(Checkpoint&&) noexcept = default;
Checkpoint::~Checkpoint() = default;

namespace {

// Reads an index file's text whole; files over the header limit are refused before reading.
std::string read_index(const std::string& path) {
  std::error_code ec;
  uint64_t size = fs::file_size(path, ec);
  if (ec) throw WeightsError(Code::kIo, fmt::format("{}: cannot read: {}", path, ec.message()));
  if (size > kMaxSafetensorsHeaderBytes) {
    throw WeightsError(Code::kInvalid, fmt::format("{}: {} bytes, over the limit of {} bytes for an index",
                                                   path, size, kMaxSafetensorsHeaderBytes));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw WeightsError(Code::kIo, fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
  std::stringstream text;
  text << in.rdbuf();
  if (in.bad()) throw WeightsError(Code::kIo, fmt::format("{}: read error", path));
  return text.str();
}

}  // namespace

std::map<std::string, std::vector<std::string>> parse_safetensors_index(const std::string& text,
                                                                        const std::string& path) {
  nlohmann::json index;
  try {
    index = parse_json_limited(text);
  } catch (const std::exception& e) {
    throw WeightsError(Code::kInvalid, fmt::format("{}: not valid JSON: {}", path, e.what()));
  }
  if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object()) {
    throw WeightsError(Code::kInvalid, fmt::format("{}: expected an object with a \"weight_map\" object", path));
  }
  std::map<std::string, std::vector<std::string>> files;
  for (const auto& [tensor, file] : index["weight_map"].items()) {
    if (!file.is_string()) {
      throw WeightsError(Code::kInvalid, fmt::format("{}: weight_map '{}' is {}, expected a file name", path,
                                                     tensor, file.dump()));
    }
    const std::string name = file.get<std::string>();
    // NOTE: plain names only, so an index cannot point outside its checkpoint directory.
    if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos ||
        name.find('\\') != std::string::npos) {
      throw WeightsError(Code::kInvalid, fmt::format("{}: weight_map '{}' names file '{}', expected a "
                                                     "plain file name in the same directory",
                                                     path, tensor, name));
    }
    files[name].push_back(tensor);
  }
  return files;
}

namespace {

// Refuses `file` (kIo) when, symlinks followed, it resolves outside `root` (a resolved directory).
void check_inside(const std::string& file, const fs::path& root) {
  std::error_code ec;
  const fs::path real = fs::canonical(file, ec);
  if (ec) return;  // missing or unreadable: opening it reports that, with the OS's reason
  const auto [root_end, real_it] = std::mismatch(root.begin(), root.end(), real.begin(), real.end());
  if (root_end == root.end()) return;
  throw WeightsError(Code::kIo, fmt::format("{}: resolves to {}, outside the checkpoint directory {}; refused "
                                            "(--allow-links-outside-checkpoint reads it)",
                                            file, real.string(), root.string()));
}

}  // namespace

Checkpoint Checkpoint::open(const std::string& path, bool allow_links_outside) {
  Checkpoint ckpt;
  ckpt.path_ = path;
  ckpt.bytes_touched_ = std::make_unique<std::atomic<uint64_t>>(0);

  std::error_code ec;
  fs::file_status status = fs::status(path, ec);
  if (ec || !fs::exists(status)) {
    throw WeightsError(Code::kIo, fmt::format("checkpoint '{}' does not exist", path));
  }

  // file name -> tensors the index maps to it (empty without an index)
  std::map<std::string, std::vector<std::string>> wanted;
  std::vector<std::string> files;
  if (fs::is_regular_file(status)) {
    files.push_back(path);
  } else if (fs::is_directory(status)) {
    const fs::path dir(path);
    fs::path root;
    if (!allow_links_outside) {
      root = fs::canonical(dir, ec);
      if (ec) throw WeightsError(Code::kIo, fmt::format("checkpoint '{}': cannot resolve: {}", path, ec.message()));
    }
    const auto contained = [&](const std::string& file) {
      if (!allow_links_outside) check_inside(file, root);
      return file;
    };
    if (fs::exists(dir / kSafetensorsSingleFile)) {
      files.push_back(contained((dir / kSafetensorsSingleFile).string()));
    } else if (fs::exists(dir / kSafetensorsIndexFile)) {
      const std::string index_path = contained((dir / kSafetensorsIndexFile).string());
      wanted = parse_safetensors_index(read_index(index_path), index_path);
      for (const auto& entry : wanted) files.push_back(contained((dir / entry.first).string()));
    } else {
      throw WeightsError(Code::kIo, fmt::format("checkpoint directory '{}' has neither {} nor {}", path,
                                                kSafetensorsSingleFile, kSafetensorsIndexFile));
    }
  } else {
    throw WeightsError(Code::kIo, fmt::format("checkpoint '{}' is neither a directory nor a file", path));
  }

  for (const std::string& file_path : files) {
    std::unique_ptr<SafetensorsFile> file;
    try {
      file = SafetensorsFile::open(file_path);
    } catch (const WeightsError& e) {
      if (wanted.empty()) throw;
      throw WeightsError(e.code(), fmt::format("{} (listed in {})", e.what(), kSafetensorsIndexFile));
    }
    const std::string file_name = fs::path(file_path).filename().string();
    auto wanted_it = wanted.find(file_name);
    if (wanted_it != wanted.end()) {
      for (const std::string& tensor : wanted_it->second) {
        if (file->tensors().count(tensor) == 0) {
          throw WeightsError(Code::kInvalid,
                             fmt::format("{}: {} maps tensor '{}' to this file, which does not hold it",
                                         file_path, kSafetensorsIndexFile, tensor));
        }
      }
    }
    for (const auto& [name, info] : file->tensors()) {
      auto [it, inserted] = ckpt.tensors_.emplace(name, Entry{info, file.get()});
      if (!inserted) {
        throw WeightsError(Code::kInvalid, fmt::format("checkpoint '{}': tensor '{}' is in both {} and {}",
                                                       path, name, it->second.info.file, file_path));
      }
    }
    ckpt.file_paths_.push_back(file_path);
    ckpt.mapped_files_.push_back(std::move(file));
  }
  return ckpt;
}

std::vector<std::string> Checkpoint::tensor_names() const {
  std::vector<std::string> names;
  names.reserve(tensors_.size());
  for (const auto& [name, entry] : tensors_) names.push_back(name);
  return names;
}

std::optional<std::string> Checkpoint::resolve(const std::string& name) const {
  if (tensors_.count(name) > 0) return name;
  std::optional<std::string> alternate = this->alternate(name);
  if (alternate && tensors_.count(*alternate) > 0) return alternate;
  return std::nullopt;
}

const Checkpoint::Entry& Checkpoint::entry(const std::string& name) const {
  std::optional<std::string> stored = resolve(name);
  if (!stored) {
    std::optional<std::string> alternate = this->alternate(name);
    throw WeightsError(Code::kInvalid,
                       fmt::format("checkpoint '{}' has no tensor '{}'{}", path_, name,
                                   alternate ? fmt::format(" (nor '{}')", *alternate) : std::string()));
  }
  return tensors_.at(*stored);
}

const TensorInfo& Checkpoint::info(const std::string& name) const { return entry(name).info; }

void Checkpoint::read_slice(const std::string& name, const std::vector<int64_t>& offset,
                            const std::vector<int64_t>& shape, void* dst) const {
  const Entry& e = entry(name);
  const std::vector<int64_t>& dims = e.info.shape;
  const size_t rank = dims.size();
  if (offset.size() != rank || shape.size() != rank) {
    throw WeightsError(Code::kInvalid,
                       fmt::format("slice offset {} shape {} of tensor '{}' does not match its rank {} (shape {})",
                                   shape_to_string(offset), shape_to_string(shape), e.info.name, rank,
                                   shape_to_string(dims)));
  }
  for (size_t d = 0; d < rank; ++d) {
    if (offset[d] < 0 || shape[d] < 0 || offset[d] > dims[d] || shape[d] > dims[d] - offset[d]) {
      throw WeightsError(Code::kInvalid,
                         fmt::format("slice offset {} shape {} leaves tensor '{}' of shape {} in dimension {}",
                                     shape_to_string(offset), shape_to_string(shape), e.info.name,
                                     shape_to_string(dims), d));
    }
    if (shape[d] == 0) return;
  }

  const uint64_t elt = static_cast<uint64_t>(element_bytes(e.info.dtype));
  const uint8_t* src = e.file->data() + e.info.data_begin;
  uint8_t* out = static_cast<uint8_t*>(dst);
  if (rank == 0) {
    std::memcpy(out, src, elt);
    bytes_touched_->fetch_add(elt);
    return;
  }

  // Row-major strides in elements.
  std::vector<uint64_t> stride(rank, 1);
  for (size_t d = rank - 1; d > 0; --d) stride[d - 1] = stride[d] * static_cast<uint64_t>(dims[d]);

  // The contiguous run: dimension `inner` and every full dimension after it. E.g. slice [256:512, :]
  // of [1024, 4096]: dimension 1 is full, so inner = 0 and one run of 256 * 4096 elements.
  size_t inner = rank - 1;
  while (inner > 0 && shape[inner] == dims[inner]) --inner;
  const uint64_t run_bytes = static_cast<uint64_t>(shape[inner]) * stride[inner] * elt;
  const uint64_t inner_start = static_cast<uint64_t>(offset[inner]) * stride[inner];

  // Odometer over the dimensions before `inner`.
  std::vector<int64_t> index(inner, 0);
  uint64_t copied = 0;
  while (true) {
    uint64_t start = inner_start;
    for (size_t d = 0; d < inner; ++d) start += static_cast<uint64_t>(offset[d] + index[d]) * stride[d];
    std::memcpy(out + copied, src + start * elt, run_bytes);
    copied += run_bytes;

    bool done = true;
    for (size_t d = inner; d > 0; --d) {
      if (++index[d - 1] < shape[d - 1]) {
        done = false;
        break;
      }
      index[d - 1] = 0;
    }
    if (done) break;
  }
  bytes_touched_->fetch_add(copied);
}

void Checkpoint::read(const std::string& name, void* dst) const {
  const TensorInfo& i = info(name);
  read_slice(name, std::vector<int64_t>(i.shape.size(), 0), i.shape, dst);
}

}  // namespace shardplan
