// The one exception type of executor/media: a request's image or audio file that cannot be read or
// turned into model inputs. Exit code 1 when the file's content is wrong (corrupt, truncated, too
// many pixels, too long), 2 when it cannot be read or is of a kind that is not supported (a FIFO, a
// GIF, a processor option we do not implement) — spec-format.md's two codes (base/error.h).
#pragma once

#include <string>

#include "base/error.h"

namespace shardplan {

class MediaError : public Error {
 public:
  static constexpr int kBadContent = 1;
  static constexpr int kUnreadable = 2;
  MediaError(int exit_code, const std::string& message) : Error(exit_code, message) {}
};

}  // namespace shardplan
