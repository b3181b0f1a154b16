// The one base of the project's exception types (ConfigError, BindError, RenderError,
// WeightsError, CommError, LaunchError, RunError): each carries the exit code its CLI exits with
// (spec-format.md §4 and §6): 1 the input's content is wrong (an invalid spec, corrupt weights),
// 2 usage, I/O, the environment, or what is not supported yet, 3 the ranks of a run could not
// finish together (a rank killed, stopped or never started, a collective or the rendezvous failed
// or timed out). A CLI catches `Error`, prints its message and exits with `exit_code()`; an
// interrupted CLI exits 128 + the signal, as shells report it.
#pragma once

#include <stdexcept>
#include <string>

namespace shardplan {

constexpr int kExitOk = 0;
constexpr int kExitInvalid = 1;   // the input's content is wrong; a failed --verify
constexpr int kExitUsage = 2;     // usage, I/O, the environment, not supported
constexpr int kExitRunFault = 3;  // a rank or the communication between ranks failed

class Error : public std::runtime_error {
 public:
  Error(int exit_code, const std::string& message) : std::runtime_error(message), exit_code_(exit_code) {}
  int exit_code() const { return exit_code_; }

 private:
  int exit_code_;
};

}  // namespace shardplan
