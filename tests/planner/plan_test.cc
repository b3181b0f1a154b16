// Plans of the shipped specs: the collectives the plan issue names, JSON valid against
// schemas/plan.schema.json, and golden text and JSON plans for every spec in specs/.
// Regenerate the golden plans with: SHARDPLAN_UPDATE_GOLDEN=1 ctest -R PlanGolden (review the diff).
#include <gtest/gtest.h>

#include <valijson/adapters/nlohmann_json_adapter.hpp>
#include <valijson/schema.hpp>
#include <valijson/schema_parser.hpp>
#include <valijson/validator.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "planner/plan/plan.h"
#include "planner/plan/plan_json.h"
#include "planner/plan/plan_text.h"

namespace shardplan {
namespace {

namespace fs = std::filesystem;

std::unique_ptr<Plan> plan_of(const std::string& spec_file) {
  Diagnostics diags;
  CheckedSpec checked;
  const CheckOutcome o = check_spec_file(spec_file, diags, &checked);
  std::string text;
  for (const auto& d : diags.all()) text += format_diagnostic(d) + "\n";
  EXPECT_EQ(o, CheckOutcome::kValid) << text;
  if (o != CheckOutcome::kValid) return nullptr;
  return build_plan(std::move(checked));
}

// Writes a temporary spec next to the shipped ones (config paths are relative to it).
std::string temp_spec(const std::string& name, const std::string& text) {
  const std::string path = "specs/.test-" + name + ".yaml";
  std::ofstream(path) << text;
  return path;
}

int count_op(const Plan& p, CollectiveOp op) {
  return static_cast<int>(std::count_if(p.comms.begin(), p.comms.end(),
                                        [&](const Collective& c) { return c.op == op; }));
}

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

TEST(PlanCollectives, Llama3_8B_TensorOver4Has66) {
  auto plan = plan_of("specs/llama-3-8b-tp4.yaml");
  ASSERT_TRUE(plan);
  ASSERT_EQ(plan->comms.size(), 66u);
  // all_reduce after the embedding, after every attention and every MLP; all_gather of logits.
  EXPECT_EQ(plan->comms[0].after, "model.embed_tokens");
  EXPECT_EQ(plan->comms[0].op, CollectiveOp::kAllReduce);
  for (int l = 0; l < 32; ++l) {
    const Collective& attn = plan->comms[1 + 2 * l];
    const Collective& mlp = plan->comms[2 + 2 * l];
    EXPECT_EQ(attn.after, "model.layers." + std::to_string(l) + ".self_attn");
    EXPECT_EQ(attn.op, CollectiveOp::kAllReduce);
    EXPECT_EQ(mlp.after, "model.layers." + std::to_string(l) + ".mlp");
    EXPECT_EQ(mlp.op, CollectiveOp::kAllReduce);
  }
  const Collective& last = plan->comms.back();
  EXPECT_EQ(last.after, "lm_head");
  EXPECT_EQ(last.op, CollectiveOp::kAllGather);
  EXPECT_EQ(last.before, "output");
  for (const auto& c : plan->comms) {
    EXPECT_EQ(c.axes, std::vector<std::string>{"tp"});
    EXPECT_EQ(c.groups, (std::vector<RankGroup>{{0, 1, 2, 3}}));
  }
  // Bytes: 16 requests x 512 tokens x 4096 x 2 B = 64 MiB per rank; a ring all_reduce over 4
  // sends 2 * 3/4 of it. One decode step: 16 tokens.
  EXPECT_EQ(plan->comms[0].bytes_prefill, 2 * 3 * (int64_t{16} * 512 * 4096 * 2) / 4);
  EXPECT_EQ(plan->comms[0].bytes_decode, 2 * 3 * (int64_t{16} * 4096 * 2) / 4);
  // Logits: last position only in prefill; each rank holds 128256/4 of the vocabulary.
  EXPECT_EQ(last.bytes_decode, 3 * (int64_t{16} * (128256 / 4) * 2));
  EXPECT_EQ(last.bytes_prefill, last.bytes_decode);
}

TEST(PlanCollectives, LlavaDataParallelTowerGathersFeaturesOnce) {
  auto plan = plan_of("specs/llava-1.5-7b-vision-dp-tp4.yaml");
  ASSERT_TRUE(plan);
  // No collective inside the tower.
  for (const auto& c : plan->comms) {
    EXPECT_FALSE(starts_with(c.after, "vision_tower")) << c.after;
  }
  // One all_gather of the image features before the language model.
  const Collective& first = plan->comms.front();
  EXPECT_EQ(first.op, CollectiveOp::kAllGather);
  EXPECT_EQ(first.after, "multi_modal_projector");
  EXPECT_EQ(first.stream, Stream::kImage);
  EXPECT_EQ(first.axes, std::vector<std::string>{"tp"});
  EXPECT_EQ(first.bytes_decode, 0);
  // 16 images over 4 ranks, 576 tokens of 4096 each, bf16: each rank sends its 4 images to 3.
  EXPECT_EQ(first.bytes_prefill, 3 * int64_t{4} * 576 * 4096 * 2);
  int image_comms = 0;
  for (const auto& c : plan->comms) image_comms += c.stream == Stream::kImage;
  EXPECT_EQ(image_comms, 1);
  // Then the language model's: embedding, 32 x (attention, mlp), logits.
  ASSERT_EQ(plan->comms.size(), 1u + 66u);
  EXPECT_EQ(plan->comms[1].after, "language_model.model.embed_tokens");
  EXPECT_EQ(count_op(*plan, CollectiveOp::kAllReduce), 65);
}

TEST(PlanCollectives, MixtralTensorAttentionExpertMoeAllReduces) {
  auto plan = plan_of("specs/mixtral-8x7b-ep8.yaml");
  ASSERT_TRUE(plan);
  EXPECT_EQ(count_op(*plan, CollectiveOp::kAllToAll), 0);
  for (int l = 0; l < 32; ++l) {
    for (const std::string m : {"self_attn", "block_sparse_moe"}) {
      const std::string path = "model.layers." + std::to_string(l) + "." + m;
      auto it = std::find_if(plan->comms.begin(), plan->comms.end(),
                             [&](const Collective& c) { return c.after == path; });
      ASSERT_NE(it, plan->comms.end()) << path;
      EXPECT_EQ(it->op, CollectiveOp::kAllReduce) << path;
      EXPECT_EQ(it->groups, (std::vector<RankGroup>{{0, 1, 2, 3, 4, 5, 6, 7}}));
    }
  }
}

TEST(PlanCollectives, MixtralDataAttentionExpertMoeAllToAlls) {
  auto plan = plan_of("specs/mixtral-8x7b-attn-dp8-ep8.yaml");
  ASSERT_TRUE(plan);
  for (const auto& c : plan->comms) {
    if (c.after.find(".layers.") == std::string::npos) continue;
    EXPECT_NE(c.op, CollectiveOp::kAllReduce) << "all_reduce in the layers after " << c.after;
  }
  ASSERT_EQ(count_op(*plan, CollectiveOp::kAllToAll), 64);
  for (int l = 0; l < 32; ++l) {
    const std::string moe = "model.layers." + std::to_string(l) + ".block_sparse_moe";
    const Collective& dispatch = plan->comms[2 * l];
    const Collective& combine = plan->comms[2 * l + 1];
    EXPECT_EQ(dispatch.purpose, CollectivePurpose::kMoeDispatch);
    EXPECT_EQ(dispatch.before, moe);
    EXPECT_EQ(dispatch.after, "model.layers." + std::to_string(l) + ".self_attn");
    EXPECT_EQ(combine.purpose, CollectivePurpose::kMoeCombine);
    EXPECT_EQ(combine.after, moe);
  }
  // 32 requests over 8 ranks, 1024 tokens, each to 2 experts, 7/8 of them leave the rank.
  EXPECT_EQ(plan->comms[0].bytes_prefill, int64_t{4} * 1024 * 2 * 4096 * 2 * 7 / 8);
}

TEST(PlanCollectives, BatchAxesKeepEveryCollectiveInsideATpGroup) {
  auto plan = plan_of("specs/llama-3-8b-dp2-tp4.yaml");
  ASSERT_TRUE(plan);
  ASSERT_EQ(plan->comms.size(), 66u);
  const std::set<RankGroup> tp_groups = {{0, 1, 2, 3}, {4, 5, 6, 7}};
  for (const auto& c : plan->comms) {
    EXPECT_EQ(c.axes, std::vector<std::string>{"tp"});
    EXPECT_EQ(std::set<RankGroup>(c.groups.begin(), c.groups.end()), tp_groups);
  }
}

TEST(PlanCollectives, WhisperCrossAttentionReadsTheEncoderOnce) {
  auto plan = plan_of("specs/whisper-large-v3-tp2.yaml");
  ASSERT_TRUE(plan);
  // Encoder tensor-parallel: an all_reduce after every inner block (2 x 32); its output is whole
  // after the last one, so the 32 cross-attentions need nothing more on the audio stream.
  int audio = 0;
  for (const auto& c : plan->comms) audio += c.stream == Stream::kAudio;
  EXPECT_EQ(audio, 64);
  // Decoder: embedding, 32 x (self, cross, mlp), logits.
  EXPECT_EQ(plan->comms.size(), 64u + 1 + 96 + 1);
}

TEST(PlanCollectives, PartialIntoDataIsAReduceScatter) {
  const std::string spec = temp_spec("rs", R"(version: 1
model:
  config: ../models/configs/tiny-llama.json
mesh:
  tp: 2
modules:
  - kind: embedding
    mode: tensor
    axes: [tp]
  - kind: [attention, mlp]
    mode: data
    axes: [tp]
workload:
  batch: 4
  prompt_tokens: 8
  new_tokens: 2
)");
  auto plan = plan_of(spec);
  fs::remove(spec);
  ASSERT_TRUE(plan);
  // embedding partial -> data attention: reduce_scatter; no collective between data layers;
  // replicate lm_head keeps the batch split; the end needs nothing more.
  ASSERT_EQ(plan->comms.size(), 1u);
  EXPECT_EQ(plan->comms[0].op, CollectiveOp::kReduceScatter);
  EXPECT_EQ(plan->comms[0].after, "model.embed_tokens");
  EXPECT_EQ(plan->comms[0].before, "model.layers.0.self_attn");
}

TEST(PlanCollectives, DataIntoTensorIsAnAllGather) {
  const std::string spec = temp_spec("ag", R"(version: 1
model:
  config: ../models/configs/tiny-llama.json
mesh:
  tp: 2
modules:
  - kind: attention
    mode: data
    axes: [tp]
  - kind: mlp
    mode: tensor
    axes: [tp]
workload:
  batch: 4
)");
  auto plan = plan_of(spec);
  fs::remove(spec);
  ASSERT_TRUE(plan);
  // Per layer (4): all_gather (batch -> replicated) before the MLP; its partial output goes
  // straight back to batch-split for the next data-parallel attention: a reduce_scatter. The
  // last MLP feeds the replicated lm_head: an all_reduce.
  ASSERT_EQ(plan->comms.size(), 8u);
  EXPECT_EQ(plan->comms[0].op, CollectiveOp::kAllGather);
  EXPECT_EQ(plan->comms[0].after, "model.layers.0.self_attn");
  EXPECT_EQ(plan->comms[1].op, CollectiveOp::kReduceScatter);
  EXPECT_EQ(plan->comms[1].after, "model.layers.0.mlp");
  EXPECT_EQ(plan->comms[1].before, "model.layers.1.self_attn");
  EXPECT_EQ(plan->comms[7].op, CollectiveOp::kAllReduce);
  EXPECT_EQ(plan->comms[7].before, "lm_head");
}

// ---- JSON schema and golden plans ----

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

std::vector<std::string> validate(const nlohmann::json& doc, const nlohmann::json& schema_doc) {
  valijson::Schema schema;
  valijson::SchemaParser parser;
  valijson::adapters::NlohmannJsonAdapter schema_adapter(schema_doc);
  parser.populateSchema(schema_adapter, schema);
  valijson::Validator validator;
  valijson::ValidationResults results;
  valijson::adapters::NlohmannJsonAdapter adapter(doc);
  std::vector<std::string> errors;
  if (!validator.validate(schema, adapter, &results)) {
    valijson::ValidationResults::Error e;
    while (results.popError(e)) {
      std::string where;
      for (const auto& c : e.context) where += c;
      errors.push_back(where + ": " + e.description);
    }
  }
  return errors;
}

std::vector<std::string> shipped_specs() {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator("specs")) {
    const std::string name = e.path().filename().string();
    if (e.path().extension() == ".yaml" && name[0] != '.') out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Golden JSON: top-level arrays one element per line, so a diff shows which tensor changed.
std::string golden_json(const nlohmann::json& j) {
  std::string out = "{\n";
  size_t i = 0;
  for (auto it = j.begin(); it != j.end(); ++it, ++i) {
    out += "  " + nlohmann::json(it.key()).dump() + ": ";
    if (it->is_array() && !it->empty() && it->front().is_object()) {
      out += "[\n";
      for (size_t k = 0; k < it->size(); ++k) {
        out += "    " + (*it)[k].dump() + (k + 1 < it->size() ? ",\n" : "\n");
      }
      out += "  ]";
    } else {
      out += it->dump();
    }
    out += i + 1 < j.size() ? ",\n" : "\n";
  }
  return out + "}\n";
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(PlanGolden, EveryShippedSpec) {
  const bool update = std::getenv("SHARDPLAN_UPDATE_GOLDEN") != nullptr;
  const nlohmann::json schema = read_json("schemas/plan.schema.json");
  const auto specs = shipped_specs();
  ASSERT_GE(specs.size(), 5u);
  for (const auto& spec : specs) {
    auto plan = plan_of(spec);
    ASSERT_TRUE(plan) << spec;
    const nlohmann::json j = plan_to_json(*plan);
    const auto errors = validate(j, schema);
    EXPECT_TRUE(errors.empty()) << spec << ": " << (errors.empty() ? "" : errors.front());
    const std::string stem = "tests/golden/plans/" + fs::path(spec).stem().string();
    const std::string text = plan_to_text(*plan);
    const std::string json = golden_json(j);
    if (update) {
      std::ofstream(stem + ".txt") << text;
      std::ofstream(stem + ".json") << json;
      continue;
    }
    EXPECT_EQ(read_text(stem + ".txt"), text) << "stale golden " << stem << ".txt";
    EXPECT_EQ(read_text(stem + ".json"), json) << "stale golden " << stem << ".json";
  }
}

TEST(PlanJson, HasTheContractKeysAndOneShardPerRank) {
  auto plan = plan_of("specs/llama-3-8b-dp2-tp4.yaml");
  ASSERT_TRUE(plan);
  const nlohmann::json j = plan_to_json(*plan);
  EXPECT_EQ(j["world_size"], 8);
  EXPECT_EQ(j["mesh"], nlohmann::json::parse(R"([{"name":"dp","size":2},{"name":"tp","size":4}])"));
  const auto& params = j["params"];
  ASSERT_EQ(params.size(), 291u);
  for (const auto& p : params) {
    ASSERT_EQ(p["shards"].size(), 8u);
    for (int r = 0; r < 8; ++r) EXPECT_EQ(p["shards"][r]["rank"], r);
  }
  // k_proj [1024, 4096], 8 KV heads over tp 4: two heads (256 rows) per rank, dp replicas alike.
  auto k = std::find_if(params.begin(), params.end(), [](const nlohmann::json& p) {
    return p["name"] == "model.layers.0.self_attn.k_proj.weight";
  });
  ASSERT_NE(k, params.end());
  EXPECT_EQ((*k)["layout"], nlohmann::json::parse(R"([["tp"], []])"));
  for (int r = 0; r < 8; ++r) {
    EXPECT_EQ((*k)["shards"][r]["offset"], nlohmann::json::array({256 * (r % 4), 0}));
    EXPECT_EQ((*k)["shards"][r]["shape"], nlohmann::json::array({256, 4096}));
  }
  EXPECT_EQ(j["memory"]["weight_bytes"].size(), 8u);
  EXPECT_EQ(j["memory"]["kv_cache_bytes"].size(), 8u);
  EXPECT_EQ(j["modules"][1]["rule_line"], 16);
}

TEST(PlanShards, ReplicatedKvHeadsShareOffsets) {
  const std::string spec = temp_spec("kv", R"(version: 1
model:
  config: ../models/configs/llama-3-8b.json
mesh:
  tp: 16
modules:
  - kind: attention
    mode: tensor
    axes: [tp]
)");
  auto plan = plan_of(spec);
  fs::remove(spec);
  ASSERT_TRUE(plan);
  // 8 KV heads of 128 rows over 16 ranks: group rank r holds head r / 2.
  const ParamPlan* k = nullptr;
  for (const auto& p : plan->params) {
    if (p.param->name == "model.layers.0.self_attn.k_proj.weight") k = &p;
  }
  ASSERT_NE(k, nullptr);
  for (int r = 0; r < 16; ++r) {
    const ShardSlice s = shard_for_rank(*k, plan->mesh, r);
    EXPECT_EQ(s.offset[0], 128 * (r / 2)) << r;
    EXPECT_EQ(s.shape[0], 128) << r;
  }
  // q_proj splits its 32 heads: two per rank.
  for (const auto& p : plan->params) {
    if (p.param->name != "model.layers.0.self_attn.q_proj.weight") continue;
    EXPECT_EQ(shard_for_rank(p, plan->mesh, 5).offset[0], 5 * 256);
  }
  // KV cache counts the replicated heads: one head per rank per layer.
  EXPECT_EQ(plan->ranks[0].kv_cache_bytes,
            int64_t{32} * 2 * 1 * 128 * plan->spec().workload.batch *
                (plan->spec().workload.prompt_tokens + plan->spec().workload.new_tokens) * 2);
}

TEST(PlanShards, ExpertsGoToRanksInContiguousBlocks) {
  const std::string spec = temp_spec("ep", R"(version: 1
model:
  config: ../models/configs/mixtral-8x7b.json
mesh:
  ep: 4
modules:
  - kind: moe
    mode: expert
    axes: [ep]
)");
  auto plan = plan_of(spec);
  fs::remove(spec);
  ASSERT_TRUE(plan);
  // 8 experts over 4 ranks: rank r owns experts 2r and 2r+1; the router is everywhere.
  for (const auto& p : plan->params) {
    if (p.param->name.rfind("model.layers.0.block_sparse_moe.", 0) != 0) continue;
    for (int r = 0; r < 4; ++r) {
      const ShardSlice s = shard_for_rank(p, plan->mesh, r);
      const bool holds = s.numel() > 0;
      if (p.param->expert < 0) {
        EXPECT_TRUE(holds) << p.param->name;
      } else {
        EXPECT_EQ(holds, p.param->expert / 2 == r) << p.param->name << " rank " << r;
      }
    }
  }
}

}  // namespace
}  // namespace shardplan
