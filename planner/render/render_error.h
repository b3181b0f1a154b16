// The one exception type of the render layer: a picture that cannot be made (an option that does
// not fit the plan, DOT text Graphviz rejects, a format this build cannot write). The CLI prints
// it as "planner: error: MESSAGE" and exits 2.
#pragma once

#include <string>

#include "base/error.h"

namespace shardplan {

class RenderError : public Error {
 public:
  explicit RenderError(const std::string& message) : Error(2, message) {}
};

}  // namespace shardplan
