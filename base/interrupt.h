// Interrupts of long work that must clean up after itself (make-checkpoint's temporary files).
// While an InterruptGuard lives, SIGINT, SIGTERM and SIGHUP are recorded instead of ending the
// process; the work calls throw_if_interrupted() at its natural steps, so that the exception
// unwinds through the destructors that remove what was left unfinished, and the CLI exits with
// 128 + the signal, as a shell reports a process the signal ended. The same signal a second
// time ends the process at once (the handler resets itself); a signal the process was started
// ignoring (nohup's SIGHUP) stays ignored.
//
//   InterruptGuard guard;
//   for (...) { throw_if_interrupted(); write_chunk(); }
#pragma once

#include <signal.h>

#include <csignal>
#include <string>

#include "base/error.h"

namespace shardplan {

class Interrupted : public Error {
 public:
  explicit Interrupted(int sig)
      : Error(128 + sig, "interrupted (signal " + std::to_string(sig) + "); what was unfinished is removed") {}
};

namespace detail {
inline volatile std::sig_atomic_t g_interrupt_signal = 0;
inline void record_interrupt(int sig) { g_interrupt_signal = sig; }
}  // namespace detail

class InterruptGuard {
 public:
  InterruptGuard() {
    detail::g_interrupt_signal = 0;
    struct sigaction action {};
    action.sa_handler = detail::record_interrupt;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESETHAND;  // a second signal takes the default action
    for (int i = 0; i < kSignals; ++i) {
      sigaction(kHandled[i], nullptr, &saved_[i]);
      // NOTE: a signal the process was started ignoring stays ignored (nohup's SIGHUP).
      if (saved_[i].sa_handler != SIG_IGN) sigaction(kHandled[i], &action, nullptr);
    }
  }
  ~InterruptGuard() {
    for (int i = 0; i < kSignals; ++i) sigaction(kHandled[i], &saved_[i], nullptr);
  }
  InterruptGuard(const InterruptGuard&) = delete;
  InterruptGuard& operator=(const InterruptGuard&) = delete;

 private:
  static constexpr int kSignals = 3;
  static constexpr int kHandled[kSignals] = {SIGINT, SIGTERM, SIGHUP};
  struct sigaction saved_[kSignals] {};
};

// Throws Interrupted when a signal arrived under an InterruptGuard.
inline void throw_if_interrupted() {
  const int sig = detail::g_interrupt_signal;
  if (sig != 0) throw Interrupted(sig);
}

}  // namespace shardplan
