// tokenizer.json's "post_processor" for one sequence: the special tokens encode adds around the
// ids when add_special_tokens is true (TemplateProcessing's "single" template, e.g. Llama's
// "<|begin_of_text|> $A"; RobertaProcessing's <s> $A </s>; BertProcessing's [CLS] $A [SEP]).
// ByteLevel only moves offsets and adds nothing. Sequences apply in order.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace shardplan {

class PostProcessor {
 public:
  // From the "post_processor" value (null: nothing added). Throws TokenizerError.
  static PostProcessor parse(const nlohmann::json& value, const std::string& path);

  // `ids` with the special tokens added when add_special_tokens.
  std::vector<int64_t> process(std::vector<int64_t> ids, bool add_special_tokens) const;

 private:
  // One processor: the special-token ids it puts before and after the sequence.
  struct Template {
    std::vector<int64_t> before;
    std::vector<int64_t> after;
  };
  void add(const nlohmann::json& value, const std::string& path);
  std::vector<Template> templates_;
};

}  // namespace shardplan
