// The one exception type of the executor's weights layer (safetensors reading, checkpoint writing),
// with the exit code the CLIs turn it into.
#pragma once

#include <string>

#include "base/error.h"

namespace shardplan {

// Exit codes follow the executor's contract (spec-format.md §6, as planner's):
//   kIo (2):      a file or directory is missing, unreadable or unwritable; nothing was wrong with
//                 the data that could be read. Rerunning with the right path can fix it.
//   kInvalid (1): the files are there but their content is wrong: a malformed or inconsistent
//                 safetensors file or index, or a checkpoint that contradicts the model config.
// NOTE: a bad checkpoint is "invalid input" (1) rather than an I/O error (2), so that a script can
// tell "wrong path" from "corrupt or mismatched weights".
class WeightsError : public Error {
 public:
  enum class Code { kInvalid = 1, kIo = 2 };

  WeightsError(Code code, const std::string& message) : Error(static_cast<int>(code), message), code_(code) {}

  Code code() const { return code_; }

 private:
  Code code_;
};

}  // namespace shardplan
