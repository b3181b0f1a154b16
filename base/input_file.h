// Reading a whole input file the user named (a spec, a config.json, a hardware file) without
// hanging or running out of memory: what is not a regular file is refused before it is opened
// (a FIFO blocks until a writer comes, /dev/zero never ends), and so is a file above the limit
// for its kind (docs/reliability.md lists them). Header-only: the planner, the models' graph and
// the executor share it.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

namespace shardplan {

// The limits on input sizes, in bytes.
inline constexpr int64_t kMaxSpecBytes = int64_t{1} << 20;     // a spec: 1 MiB
inline constexpr int64_t kMaxConfigBytes = int64_t{16} << 20;  // a config.json: 16 MiB
inline constexpr int kMaxJsonDepth = 64;                       // nesting of a config.json

inline std::string describe_file_type(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

// The file's bytes, or nullopt with `error` set to why not ("No such file or directory", "a FIFO,
// not a regular file", "2.0 MiB, more than the 1.0 MiB a spec may have").
inline std::optional<std::string> read_input_file(const std::string& path, int64_t max_bytes, const char* kind,
                                                  std::string* error) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    *error = std::strerror(errno);
    return std::nullopt;
  }
  if (!S_ISREG(st.st_mode)) {
    *error = describe_file_type(st.st_mode) + ", not a regular file";
    return std::nullopt;
  }
  const auto mib = [](int64_t bytes) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(bytes) / (1 << 20));
    return std::string(buf);
  };
  if (st.st_size > max_bytes) {
    *error = mib(st.st_size) + ", more than the " + mib(max_bytes) + " " + kind + " may have";
    return std::nullopt;
  }
  // NOTE: O_NONBLOCK: should the path have become a FIFO since the stat, the open does not wait.
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    *error = std::strerror(errno);
    return std::nullopt;
  }
  std::string bytes;
  char buf[1 << 16];
  while (true) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      *error = std::strerror(errno);
      ::close(fd);
      return std::nullopt;
    }
    if (n == 0) break;
    bytes.append(buf, static_cast<size_t>(n));
    if (static_cast<int64_t>(bytes.size()) > max_bytes) {
      *error = "more than the " + mib(max_bytes) + " " + kind + " may have";
      ::close(fd);
      return std::nullopt;
    }
  }
  ::close(fd);
  return bytes;
}

// JSON text parsed with its nesting limited to `max_depth` (a deeper document would cost a
// recursion per level wherever it is copied or freed). Throws std::runtime_error: the parser's
// message (with its byte position), or the depth reached.
inline nlohmann::json parse_json_limited(const std::string& text, int max_depth = kMaxJsonDepth) {
  const nlohmann::json::parser_callback_t limit = [max_depth](int depth, nlohmann::json::parse_event_t event,
                                                               nlohmann::json&) {
    if ((event == nlohmann::json::parse_event_t::object_start || event == nlohmann::json::parse_event_t::array_start) &&
        depth >= max_depth) {
      throw std::runtime_error("nests deeper than " + std::to_string(max_depth) + " levels");
    }
    return true;
  };
  try {
    return nlohmann::json::parse(text, limit);
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(e.what());
  }
}

}  // namespace shardplan
