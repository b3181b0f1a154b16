// spdlog behind executor/log/log.h; this file must never include torch (see log.h).
#include "executor/log/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <mutex>

namespace shardplan {
namespace {

// The process's default logger, moved to stderr when nobody configured one (spdlog's own default
// writes to stdout, which carries the run's report: rank 0's stdout passes through the launcher).
spdlog::logger& logger() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (spdlog::default_logger()->name().empty()) spdlog::set_default_logger(spdlog::stderr_color_mt("shardplan"));
  });
  return *spdlog::default_logger_raw();
}

}  // namespace

void log_info(const std::string& message) { logger().info("{}", message); }
void log_warn(const std::string& message) { logger().warn("{}", message); }
void log_error(const std::string& message) { logger().error("{}", message); }

}  // namespace shardplan
