// The one exception type of the executor's runtime, with the exit code `executor run` turns it
// into (spec-format.md §6: exit codes as planner's).
#pragma once

#include <string>

#include "base/error.h"

namespace shardplan {

// kInvalid (1): an input whose content is wrong (a checkpoint tensor in a dtype the run cannot read).
// kUsage (2):   usage, I/O and environment problems, and what the executor does not support yet
//               (a model family, a layout change it cannot bind, float16 on the CPU).
class RunError : public Error {
 public:
  enum class Code { kInvalid = 1, kUsage = 2 };

  RunError(Code code, const std::string& message) : Error(static_cast<int>(code), message), code_(code) {}

  Code code() const { return code_; }

 private:
  Code code_;
};

// "... is not supported by the executor yet": exit code 2 (an honest limitation, never a fallback).
inline RunError unsupported(const std::string& what) {
  return RunError(RunError::Code::kUsage, what + " is not supported by the executor yet");
}

}  // namespace shardplan
