// The Unicode properties and transformations tokenizer.json's components use, all through
// utf8proc (no tables of our own): Rust's char::is_whitespace / is_numeric, punctuation and
// mark categories, NFC/NFD/NFKC/NFKD and lowercasing. Input is valid UTF-8.
#pragma once

#include <string>
#include <string_view>

namespace shardplan {

// Rust's char::is_whitespace: the White_Space property (Zs, Zl, Zp, U+0009..U+000D, U+0085).
bool is_white_space(char32_t c);
// Rust's char::is_numeric: general categories Nd, Nl, No.
bool is_numeric(char32_t c);
// The Punctuation pre-tokenizer's test: ASCII punctuation or a P* general category.
bool is_punctuation(char32_t c);
// General category M* (Mn, Mc, Me).
bool is_mark(char32_t c);
// General category Mn.
bool is_nonspacing_mark(char32_t c);
// General categories Cc, Cf, Cs, Co: BertNormalizer's "control" (the unicode_categories crate's
// is_other, which leaves out unassigned code points, Cn).
bool is_other(char32_t c);

enum class NormalForm { kNfc, kNfd, kNfkc, kNfkd };

// `text` in the normal form (utf8proc_map). Throws TokenizerError if utf8proc fails.
std::string normalize_unicode(std::string_view text, NormalForm form);

// Rust's char::to_lowercase applied to every character (no context: a final sigma stays σ).
std::string to_lowercase(std::string_view text);

}  // namespace shardplan
