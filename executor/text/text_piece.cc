// Splitting a text piece by pattern spans (see text_piece.h).
#include "executor/text/text_piece.h"

#include <algorithm>

#include "executor/text/tokenizer_error.h"

namespace shardplan {

SplitBehavior parse_split_behavior(const std::string& name, const std::string& where) {
  if (name == "Removed") return SplitBehavior::kRemoved;
  if (name == "Isolated") return SplitBehavior::kIsolated;
  if (name == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (name == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (name == "Contiguous") return SplitBehavior::kContiguous;
  throw_malformed(where, "unknown split behavior '" + name +
                             "' (known: Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous)");
}

void split_piece(TextPiece&& piece, const std::vector<PatternSpan>& spans, SplitBehavior behavior,
                 std::vector<TextPiece>& out) {
  // The ranges to keep, as tokenizers' NormalizedString::split computes them.
  thread_local std::vector<std::pair<size_t, size_t>> ranges;
  ranges.clear();
  switch (behavior) {
    case SplitBehavior::kIsolated:
      for (const PatternSpan& s : spans) ranges.emplace_back(s.start, s.end);
      break;
    case SplitBehavior::kRemoved:
      for (const PatternSpan& s : spans) {
        if (!s.is_match) ranges.emplace_back(s.start, s.end);
      }
      break;
    case SplitBehavior::kContiguous: {
      bool previous_match = false;
      for (const PatternSpan& s : spans) {
        if (s.is_match == previous_match && !ranges.empty()) {
          ranges.back().second = s.end;
        } else {
          ranges.emplace_back(s.start, s.end);
        }
        previous_match = s.is_match;
      }
      break;
    }
    case SplitBehavior::kMergedWithPrevious: {
      bool previous_match = false;
      for (const PatternSpan& s : spans) {
        if (s.is_match && !previous_match && !ranges.empty()) {
          ranges.back().second = s.end;
        } else {
          ranges.emplace_back(s.start, s.end);
        }
        previous_match = s.is_match;
      }
      break;
    }
    case SplitBehavior::kMergedWithNext: {
      bool previous_match = false;
      for (size_t i = spans.size(); i-- > 0;) {
        const PatternSpan& s = spans[i];
        if (s.is_match && !previous_match && !ranges.empty()) {
          ranges.back().first = s.start;
        } else {
          ranges.emplace_back(s.start, s.end);
        }
        previous_match = s.is_match;
      }
      std::reverse(ranges.begin(), ranges.end());
      break;
    }
  }
  // NOTE: the common case, one range over the whole piece, moves the text instead of copying it.
  if (ranges.size() == 1 && ranges[0].first == 0 && ranges[0].second == piece.text.size()) {
    if (!piece.text.empty()) out.push_back(std::move(piece));
    return;
  }
  for (const auto& [start, end] : ranges) {
    if (start == end) continue;
    TextPiece sub;
    sub.text.assign(piece.text, start, end - start);
    sub.at_input_start = piece.at_input_start && start == 0;
    out.push_back(std::move(sub));
  }
}

}  // namespace shardplan
