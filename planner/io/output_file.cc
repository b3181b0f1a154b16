// Output files that never replace a symlink, FIFO or device (see output_file.h).
#include "planner/io/output_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <random>

namespace shardplan {
namespace {

// Writes all of `bytes` to `fd`; "" or the reason.
std::string write_all(int fd, std::string_view bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return std::strerror(errno);
    }
    done += static_cast<size_t>(n);
  }
  return "";
}

// The folder part of a path, for the temporary file beside it: "a/b.svg" -> "a/", "b.svg" -> "".
std::string folder_of(const std::string& path) {
  const auto slash = path.find_last_of('/');
  return slash == std::string::npos ? "" : path.substr(0, slash + 1);
}

// Temporary file + rename. `mode` is the permission of the file it replaces, or 0 for a new file
// (then 0666 less the umask, as open(2) gives).
std::string replace_atomically(const std::string& path, std::string_view bytes, mode_t mode) {
  std::random_device entropy;
  const std::string tmp = folder_of(path) + ".shardplan-" + std::to_string(::getpid()) + "-" +
                          std::to_string(entropy()) + ".tmp";
  // NOTE: O_EXCL | O_NOFOLLOW: a file or link someone planted under the temporary name is an
  // error, never followed.
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
  if (fd < 0) return std::strerror(errno);
  std::string failure = write_all(fd, bytes);
  if (failure.empty() && mode != 0 && ::fchmod(fd, mode & 07777) != 0) failure = std::strerror(errno);
  if (::close(fd) != 0 && failure.empty()) failure = std::strerror(errno);
  if (failure.empty() && std::rename(tmp.c_str(), path.c_str()) != 0) failure = std::strerror(errno);
  if (!failure.empty()) ::unlink(tmp.c_str());
  return failure;
}

// Opens what `path` names (following links) and writes into it, as `cat > PATH` does.
std::string write_through(const std::string& path, std::string_view bytes) {
  // NOTE: no O_CREAT: a dangling link is refused rather than creating its target somewhere.
  const int fd = ::open(path.c_str(), O_WRONLY | O_TRUNC | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return "it is a symbolic link to a file that does not exist";
    return std::strerror(errno);
  }
  std::string failure = write_all(fd, bytes);
  if (::close(fd) != 0 && failure.empty()) failure = std::strerror(errno);
  return failure;
}

}  // namespace

std::string write_output_file(const std::string& path, std::string_view bytes,
                              const std::vector<std::string>& inputs) {
  if (path.empty()) return "empty file name";
  struct stat target {};
  const bool exists = ::stat(path.c_str(), &target) == 0;
  if (!exists && errno != ENOENT) return std::strerror(errno);
  if (exists) {
    if (S_ISDIR(target.st_mode)) return "it is a directory";
    for (const std::string& input : inputs) {
      struct stat in {};
      if (::stat(input.c_str(), &in) == 0 && in.st_dev == target.st_dev && in.st_ino == target.st_ino) {
        return "it is the input file '" + input + "', which is never overwritten";
      }
    }
  }
  struct stat link {};
  const bool is_link = ::lstat(path.c_str(), &link) == 0 && S_ISLNK(link.st_mode);
  if (is_link || (exists && !S_ISREG(target.st_mode))) return write_through(path, bytes);
  return replace_atomically(path, bytes, exists ? target.st_mode : 0);
}

}  // namespace shardplan
