// One error base type: every exception type of the project is a shardplan::Error carrying the
// exit code its CLI exits with.
#include <type_traits>

#include <gtest/gtest.h>

#include "base/error.h"
#include "executor/comm/communicator.h"
#include "executor/comm/launcher.h"
#include "executor/runtime/run_error.h"
#include "executor/weights/weights_error.h"
#include "models/graph/model_graph.h"
#include "planner/plan/binding.h"
#include "planner/render/render_error.h"

namespace shardplan {
namespace {

TEST(ErrorBase, EveryExceptionTypeCarriesItsExitCode) {
  static_assert(std::is_base_of_v<Error, ConfigError> && std::is_base_of_v<Error, BindError> &&
                std::is_base_of_v<Error, RenderError> && std::is_base_of_v<Error, WeightsError> &&
                std::is_base_of_v<Error, CommError> && std::is_base_of_v<Error, LaunchError> &&
                std::is_base_of_v<Error, RunError>);
  EXPECT_EQ(ConfigError("x").exit_code(), 2);
  EXPECT_EQ(BindError("x", "m").exit_code(), 1);
  EXPECT_EQ(RenderError("x").exit_code(), 2);
  EXPECT_EQ(WeightsError(WeightsError::Code::kInvalid, "x").exit_code(), 1);
  EXPECT_EQ(WeightsError(WeightsError::Code::kIo, "x").exit_code(), 2);
  EXPECT_EQ(CommError("x").exit_code(), kExitRunFault);  // a fault of the run: 3
  EXPECT_EQ(CommError("x", kExitUsage).exit_code(), 2);
  EXPECT_EQ(LaunchError("x").exit_code(), 2);
  EXPECT_EQ(RunError(RunError::Code::kInvalid, "x").exit_code(), 1);
  EXPECT_EQ(unsupported("a thing").exit_code(), 2);
  // A CLI catches the base and keeps the code and the message.
  try {
    throw WeightsError(WeightsError::Code::kInvalid, "bad header");
  } catch (const Error& e) {
    EXPECT_EQ(e.exit_code(), 1);
    EXPECT_STREQ(e.what(), "bad header");
  }
}

}  // namespace
}  // namespace shardplan
