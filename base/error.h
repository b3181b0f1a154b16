// The one base of the project's exception types (ConfigError, BindError, RenderError,
// WeightsError, CommError, LaunchError, RunError): each carries the exit code its CLI exits with
// (spec-format.md §4 and §6): 1 the input's content is wrong (an invalid spec, corrupt weights),
// 2 usage, I/O, the environment, or what is not supported yet. A CLI catches `Error`, prints its
// message and exits with `exit_code()`.
#pragma once

#include <stdexcept>
#include <string>

namespace shardplan {

class Error : public std::runtime_error {
 public:
  Error(int exit_code, const std::string& message) : std::runtime_error(message), exit_code_(exit_code) {}
  int exit_code() const { return exit_code_; }

 private:
  int exit_code_;
};

}  // namespace shardplan
