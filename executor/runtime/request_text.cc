// The tokenizer for requests (see request_text.h).
#include "executor/runtime/request_text.h"

#include <filesystem>

#include "executor/runtime/run_error.h"
#if SHARDPLAN_WITH_REQUESTS
#include "executor/text/tokenizer.h"
#endif

namespace shardplan {
namespace {

#if SHARDPLAN_WITH_REQUESTS
class TokenizerText : public RequestText {
 public:
  explicit TokenizerText(Tokenizer tokenizer) : tokenizer_(std::move(tokenizer)) {}
  std::vector<int64_t> encode(const std::string& text) const override { return tokenizer_.encode(text, true); }
  std::string decode(const std::vector<int64_t>& ids) const override { return tokenizer_.decode(ids, true); }
  const std::vector<int64_t>& eos_token_ids() const override { return tokenizer_.eos_token_ids(); }

 private:
  Tokenizer tokenizer_;
};
#endif

}  // namespace

std::unique_ptr<RequestText> load_request_text(const std::string& model_dir, bool required) {
  std::error_code ec;
  const bool present = !model_dir.empty() && std::filesystem::exists(std::filesystem::path(model_dir) / "tokenizer.json", ec);
  if (!present) {
    if (!required) return nullptr;
    throw RunError(RunError::Code::kUsage, "--tokenizer " + model_dir + ": no tokenizer.json there");
  }
#if SHARDPLAN_WITH_REQUESTS
  return std::make_unique<TokenizerText>(Tokenizer::load(model_dir));
#else
  throw RunError(RunError::Code::kUsage,
                 "text prompts: this executor was built without tokenizers (SHARDPLAN_WITH_REQUESTS=OFF)");
#endif
}

}  // namespace shardplan
