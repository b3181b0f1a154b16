// A tiny logging facade for code that includes torch. Such files must not include spdlog: torch
// 2.11 ships fmt 12 headers that clash with the system's fmt 9 (docs/executor-design.md, Logging).
// log.cc implements these with spdlog and includes no torch.
#pragma once

#include <string>

namespace shardplan {

void log_info(const std::string& message);
void log_warn(const std::string& message);
void log_error(const std::string& message);

}  // namespace shardplan
