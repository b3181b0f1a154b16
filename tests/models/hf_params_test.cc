// Differential test against Hugging Face transformers: for every config recorded in
// tests/data/hf_params.json (written by scripts/hf_param_dump.py on a machine with transformers),
// our num_parameters() and the full set of (Hub name, shape) pairs must equal transformers'.
// Regenerate: python3 scripts/hf_param_dump.py models/configs tests/data/hf_params.json
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/models/graph_test_util.h"

namespace shardplan {
namespace {

using Shape = std::vector<int64_t>;
using ParamShapes = std::map<std::string, Shape>;

const char kDataFile[] = "tests/data/hf_params.json";

bool replace_prefix(std::string& name, const std::string& from, const std::string& to) {
  if (name.compare(0, from.size(), from) != 0) return false;
  name = to + name.substr(from.size());
  return true;
}

// The Hub name of a transformers parameter name. transformers 5 nests llava's parts under
// "model.", drops the CLIP tower's "vision_model." level (model.vision_tower.embeddings...) and
// calls Mixtral's MoE block "mlp"; the Hub checkpoints keep the old names. Names that already
// are Hub names pass unchanged.
std::string hub_name(const std::string& family, std::string name) {
  if (family == "llava") {
    if (name == "lm_head.weight") return "language_model.lm_head.weight";
    if (replace_prefix(name, "model.vision_tower.", "vision_tower.")) {
      if (name.compare(0, 26, "vision_tower.vision_model.") != 0) {
        replace_prefix(name, "vision_tower.", "vision_tower.vision_model.");
      }
      return name;
    }
    replace_prefix(name, "model.language_model.", "language_model.model.") ||
        replace_prefix(name, "model.multi_modal_projector.", "multi_modal_projector.");
  } else if (family == "mixtral") {
    static const std::regex moe_block(R"(^(model\.layers\.\d+\.)mlp\.)");
    name = std::regex_replace(name, moe_block, "$1block_sparse_moe.");
  }
  return name;
}

bool is_expert_tensor(const std::string& name) {
  return name.find(".experts.") != std::string::npos;
}

// "model.layers.12.block_sparse_moe.experts.3.w1.weight" -> 12
int layer_of(const std::string& name) {
  static const std::regex layer(R"(^model\.layers\.(\d+)\.)");
  std::smatch match;
  return std::regex_search(name, match, layer) ? std::stoi(match[1]) : -1;
}

int64_t numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

// Lists (at most 12 of) the names in `a` missing from `b` or with another shape there.
std::string differences(const ParamShapes& a, const ParamShapes& b, const char* a_name,
                        const char* b_name) {
  std::string text;
  int shown = 0;
  for (const auto& [name, shape] : a) {
    auto it = b.find(name);
    if (it != b.end() && it->second == shape) continue;
    if (shown++ == 12) {
      text += "  ...\n";
      break;
    }
    text += "  " + name + " " + testing::shape_text(shape) + " in " + a_name + ", " +
            (it == b.end() ? std::string("absent") : testing::shape_text(it->second)) + " in " +
            b_name + "\n";
  }
  return text;
}

void compare_with_transformers(const std::string& config_file, const nlohmann::json& entry) {
  SCOPED_TRACE(config_file);
  if (entry.contains("error")) {
    ADD_FAILURE() << "transformers could not build " << config_file << ": " << entry["error"];
    return;
  }
  ModelGraph graph = testing::load_config(config_file);
  EXPECT_EQ(graph.num_parameters(), entry.at("num_parameters").get<int64_t>());

  ParamShapes ours;
  for (const Module& module : graph.modules) {
    for (const Param& param : module.params) ours[param.name] = param.shape;
  }
  ParamShapes theirs;
  for (const nlohmann::json& pair : entry.at("params")) {
    theirs[hub_name(graph.family, pair.at(0).get<std::string>())] = pair.at(1).get<Shape>();
  }

  {
    // NOTE: transformers 5 fuses each layer's experts (experts.gate_up_proj [E, 2I, H],
    // experts.down_proj [E, H, I]); the Hub keeps experts.E.w1/w2/w3 (Mixtral) or
    // experts.E.gate/up/down_proj (Qwen2-MoE). Compare the non-expert tensors by name and the
    // experts by elements per layer; mixtral_graph_test and qwen2_moe_graph_test spell out the
    // Hub layout.
    std::map<int, int64_t> our_experts, their_experts;
    for (auto* side : {&ours, &theirs}) {
      auto& totals = side == &ours ? our_experts : their_experts;
      for (auto it = side->begin(); it != side->end();) {
        if (!is_expert_tensor(it->first)) {
          ++it;
          continue;
        }
        totals[layer_of(it->first)] += numel(it->second);
        it = side->erase(it);
      }
    }
    EXPECT_EQ(our_experts, their_experts) << "expert elements per layer";
  }
  EXPECT_EQ(ours.size(), theirs.size());
  const std::string missing = differences(theirs, ours, "transformers", "ours");
  const std::string extra = differences(ours, theirs, "ours", "transformers");
  EXPECT_TRUE(missing.empty()) << "transformers' params we lack or shape differently:\n"
                               << missing;
  EXPECT_TRUE(extra.empty()) << "our params transformers lacks or shapes differently:\n" << extra;
}

TEST(HfParamsTest, EveryConfigMatchesTransformers) {
  const std::string path = testing::source_path(kDataFile);
  std::ifstream file(path);
  if (!file) {
    GTEST_SKIP() << path << " is missing; generate it where transformers is installed: "
                 << "python3 scripts/hf_param_dump.py models/configs " << kDataFile;
  }
  const nlohmann::json data = nlohmann::json::parse(file);
  std::cout << "transformers " << data.value("transformers_version", "?") << "\n";

  // Every config we ship must have been dumped: a config added later needs a re-run.
  for (const auto& item :
       std::filesystem::directory_iterator(testing::source_path("models/configs"))) {
    const std::string name = item.path().filename().string();
    if (item.path().extension() != ".json") continue;
    EXPECT_TRUE(data.contains(name)) << name << " is not in " << kDataFile << "; regenerate it";
  }
  int compared = 0;
  for (const auto& [name, entry] : data.items()) {
    if (!entry.is_object()) continue;  // "transformers_version"
    compare_with_transformers(name, entry);
    ++compared;
  }
  EXPECT_GT(compared, 0);
}

// The name mapping itself, so that a wrong mapping cannot make the comparison vacuous.
TEST(HfParamsTest, HubNamesOfTransformers5Names) {
  EXPECT_EQ(hub_name("llava", "model.language_model.layers.0.mlp.up_proj.weight"),
            "language_model.model.layers.0.mlp.up_proj.weight");
  EXPECT_EQ(hub_name("llava", "model.language_model.embed_tokens.weight"),
            "language_model.model.embed_tokens.weight");
  EXPECT_EQ(hub_name("llava", "model.vision_tower.encoder.layers.0.mlp.fc1.weight"),
            "vision_tower.vision_model.encoder.layers.0.mlp.fc1.weight");
  EXPECT_EQ(hub_name("llava", "model.vision_tower.vision_model.post_layernorm.bias"),
            "vision_tower.vision_model.post_layernorm.bias");
  EXPECT_EQ(hub_name("llava", "model.multi_modal_projector.linear_1.weight"),
            "multi_modal_projector.linear_1.weight");
  EXPECT_EQ(hub_name("llava", "lm_head.weight"), "language_model.lm_head.weight");
  EXPECT_EQ(hub_name("llava", "language_model.model.norm.weight"),
            "language_model.model.norm.weight");
  EXPECT_EQ(hub_name("mixtral", "model.layers.3.mlp.gate.weight"),
            "model.layers.3.block_sparse_moe.gate.weight");
  EXPECT_EQ(hub_name("mixtral", "model.layers.3.block_sparse_moe.gate.weight"),
            "model.layers.3.block_sparse_moe.gate.weight");
  EXPECT_EQ(hub_name("llama", "model.layers.3.mlp.up_proj.weight"),
            "model.layers.3.mlp.up_proj.weight");
  EXPECT_EQ(layer_of("model.layers.12.block_sparse_moe.experts.3.w1.weight"), 12);
}

}  // namespace
}  // namespace shardplan
