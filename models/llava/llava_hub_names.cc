// The llava classic <-> newer Hub layout name table (see llava_graph.h).
#include "models/llava/llava_graph.h"

namespace shardplan {

namespace {

struct PrefixPair {
  const char* classic;
  const char* newer;
};

// No prefix here is a prefix of another, so the order of the rows does not matter.
constexpr PrefixPair kLlavaPrefixes[] = {
    {"language_model.model.", "model.language_model."},
    {"language_model.lm_head.", "lm_head."},
    {"vision_tower.", "model.vision_tower."},
    {"multi_modal_projector.", "model.multi_modal_projector."},
};

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.size() >= prefix.size() && s.compare(0, prefix.size(), prefix) == 0;
}

}  // namespace

std::optional<std::string> llava_alternate_hub_name(const std::string& name) {
  for (const PrefixPair& p : kLlavaPrefixes) {
    if (starts_with(name, p.classic)) return p.newer + name.substr(std::string(p.classic).size());
    if (starts_with(name, p.newer)) return p.classic + name.substr(std::string(p.newer).size());
  }
  return std::nullopt;
}

}  // namespace shardplan
