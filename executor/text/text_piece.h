// TextPiece: one piece of the text being encoded, as it moves from the added-token split through
// normalization and pre-tokenization to the model (tokenizers' Split of a PreTokenizedString,
// without the alignments: only what changes token ids is kept).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "executor/text/regex.h"

namespace shardplan {

struct TextPiece {
  std::string text;       // normalized (and pre-tokenized) text
  int64_t token_id = -1;  // an added token's id: the piece is done; -1 otherwise
  // Whether the piece starts at offset 0 of the original input (tokenizers'
  // `offsets_original().0 == 0`), which Metaspace's prepend_scheme "first" asks.
  bool at_input_start = false;
};

// What becomes of the matched spans when a piece is split (tokenizers' SplitDelimiterBehavior),
// for "The-final--countdown" split on "-":
//   kRemoved            The | final | countdown
//   kIsolated           The | - | final | - | - | countdown
//   kMergedWithPrevious The- | final- | - | countdown
//   kMergedWithNext     The | -final | - | -countdown
//   kContiguous         The | - | final | -- | countdown
enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

// Parses "Removed", "Isolated", ... (throws TokenizerError naming `where`).
SplitBehavior parse_split_behavior(const std::string& name, const std::string& where);

// Splits `piece` by `spans` (covering its text, see PatternSpan) into `out`: non-empty pieces
// only; the one at offset 0 keeps at_input_start. NOTE: tokenizers would also give a piece at a
// later offset an original offset of 0 when all its characters were inserted at the start (a
// Prepend normalizer followed by a split inside the prefix); no real tokenizer.json does that.
void split_piece(TextPiece&& piece, const std::vector<PatternSpan>& spans, SplitBehavior behavior,
                 std::vector<TextPiece>& out);

}  // namespace shardplan
