// TokenizerError: the one exception type of executor/text (loading tokenizer.json, encoding,
// decoding). Exit code 1 when the content is wrong (a malformed tokenizer.json, invalid UTF-8 in
// a text to encode), 2 for I/O and for what tokenizer.json may say but we do not implement.
#pragma once

#include <string>

#include "base/error.h"

namespace shardplan {

inline constexpr int kTokenizerExitInvalid = 1;
inline constexpr int kTokenizerExitUnsupported = 2;

class TokenizerError : public Error {
 public:
  using Error::Error;
};

// A malformed tokenizer.json: `where` is the JSON path ("model.merges[12]").
[[noreturn]] inline void throw_malformed(const std::string& where, const std::string& what) {
  throw TokenizerError(kTokenizerExitInvalid, "tokenizer.json: " + where + ": " + what);
}

// A well-formed tokenizer.json that asks for something not implemented here.
[[noreturn]] inline void throw_unsupported(const std::string& where, const std::string& what) {
  throw TokenizerError(kTokenizerExitUnsupported, "tokenizer.json: " + where + ": " + what + " is not supported");
}

}  // namespace shardplan
