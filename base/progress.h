// Progress of long work on stderr: a bar redrawn in place on a terminal, a line per tenth
// otherwise (logs, CI), so that neither floods the output. Header-only and torch-free.
//   Progress loading("loading weights", total_bytes, "bytes");
//   loading.update(done_bytes);  ...  loading.done();
#pragma once

#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <string>

namespace shardplan {

class Progress {
 public:
  // `unit` "bytes" shows GB, anything else counts (e.g. "steps", "candidates checked").
  // `enabled` false: silent (ranks other than 0, tests).
  Progress(std::string label, int64_t total, std::string unit, bool enabled = true)
      : label_(std::move(label)), unit_(std::move(unit)), total_(std::max<int64_t>(total, 1)),
        enabled_(enabled), tty_(::isatty(STDERR_FILENO) != 0) {}

  void update(int64_t done) {
    if (!enabled_) return;
    done = std::min(done, total_);
    if (tty_) {
      constexpr int kWidth = 30;
      const int filled = static_cast<int>(kWidth * done / total_);
      std::cerr << "\r" << label_ << " [" << std::string(filled, '#') << std::string(kWidth - filled, ' ') << "] "
                << amount(done) << (done == total_ ? "\n" : "") << std::flush;
    } else if (done * 10 / total_ != last_tenth_) {
      last_tenth_ = done * 10 / total_;
      std::cerr << label_ << ": " << amount(done) << "\n";
    }
  }
  void done() { update(total_); }

 private:
  std::string amount(int64_t done) const {
    char buf[96];
    if (unit_ == "bytes") {
      std::snprintf(buf, sizeof buf, "%.2f / %.2f GB", done / 1e9, total_ / 1e9);
    } else {
      std::snprintf(buf, sizeof buf, "%lld / %lld %s", static_cast<long long>(done), static_cast<long long>(total_),
                    unit_.c_str());
    }
    return buf;
  }

  std::string label_, unit_;
  int64_t total_;
  bool enabled_, tty_;
  int64_t last_tenth_ = -1;
};

}  // namespace shardplan
