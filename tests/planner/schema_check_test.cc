// Tests of the JSON Schema pass: the schema itself (draft-07, strict, described), valid specs that
// pass, one exact diagnostic per kind of mistake, and a golden file for a spec with many mistakes.
//
// Regenerate the golden files after an intended change of messages, then review the diff:
//   SHARDPLAN_UPDATE_GOLDEN=1 build/tests/planner/planner_spec_front_test --gtest_filter='SchemaGolden*'
#include "planner/spec/schema_check.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "planner/spec/yaml_document.h"

namespace shardplan {
namespace {

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << "cannot open " << path;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string data_path(const std::string& name) {
  return std::string(SHARDPLAN_SOURCE_DIR) + "/tests/planner/data/front/" + name;
}

const std::string& schema_text() {
  static const std::string text =
      read_text(std::string(SHARDPLAN_SOURCE_DIR) + "/schemas/spec.schema.json");
  return text;
}

// Parses and schema-checks `text`; returns the diagnostics as "FILE:L:C: error: MSG" lines.
std::string check(const std::string& text, const std::string& file = "spec.yaml") {
  Diagnostics diags;
  std::optional<YamlDocument> doc = parse_yaml_document(text, file, diags);
  EXPECT_TRUE(doc.has_value()) << "the test input must parse";
  EXPECT_TRUE(diags.all().empty()) << "the test input must have no YAML problems";
  if (doc) check_against_schema(*doc, schema_text(), file, diags);
  std::string out;
  for (const Diagnostic& d : diags.all()) out += format_diagnostic(d) + "\n";
  return out;
}

// A minimal valid spec; the cases below add one mistake to it.
const std::string kBase =
    "version: 1\n"          // 1
    "model:\n"              // 2
    "  config: c.json\n"    // 3
    "mesh:\n"               // 4
    "  dp: 2\n"             // 5
    "  tp: 4\n";            // 6

// ---- the schema file itself ----

// Every property of every object schema has a description (editors show it on hover), and every
// object with fixed properties rejects unknown keys.
void expect_described_and_strict(const nlohmann::json& node, const std::string& where) {
  if (!node.is_object()) return;
  if (node.contains("properties")) {
    EXPECT_EQ(node.value("additionalProperties", nlohmann::json(true)), false)
        << where << " must set additionalProperties: false";
    for (const auto& property : node["properties"].items()) {
      const std::string at = where + "/properties/" + property.key();
      EXPECT_TRUE(property.value().contains("description")) << at << " has no description";
      expect_described_and_strict(property.value(), at);
    }
  }
  if (node.contains("additionalProperties") && node["additionalProperties"].is_object()) {
    EXPECT_TRUE(node["additionalProperties"].contains("description"))
        << where << "/additionalProperties has no description";
    expect_described_and_strict(node["additionalProperties"], where + "/additionalProperties");
  }
  for (const char* key : {"items", "propertyNames"}) {
    if (node.contains(key)) expect_described_and_strict(node[key], where + "/" + key);
  }
  for (const char* key : {"anyOf", "oneOf", "allOf"}) {
    if (!node.contains(key)) continue;
    for (size_t i = 0; i < node[key].size(); ++i) {
      expect_described_and_strict(node[key][i], where + "/" + key + "/" + std::to_string(i));
    }
  }
  if (node.contains("definitions")) {
    for (const auto& def : node["definitions"].items()) {
      EXPECT_TRUE(def.value().contains("description")) << "definition " << def.key();
      expect_described_and_strict(def.value(), where + "/definitions/" + def.key());
    }
  }
}

TEST(SpecSchemaTest, IsDraft07StrictAndEveryPropertyIsDescribed) {
  nlohmann::json schema = nlohmann::json::parse(schema_text());
  EXPECT_EQ(schema["$schema"], "http://json-schema.org/draft-07/schema#");
  EXPECT_TRUE(schema.contains("$id"));
  EXPECT_TRUE(schema.contains("title"));
  EXPECT_EQ(schema["required"], nlohmann::json::array({"version", "model", "mesh"}));
  expect_described_and_strict(schema, "#");
  // Shapes that the semantic checker reports with better messages are left to it.
  EXPECT_FALSE(schema["properties"]["mesh"]["additionalProperties"].contains("minimum"));
  EXPECT_FALSE(schema["definitions"]["rule"]["properties"]["axes"].contains("uniqueItems"));
}

// ---- valid specs ----

TEST(SchemaCheckTest, SpecFormatExamplePasses) {
  EXPECT_EQ(check(read_text(data_path("spec_format_example.yaml"))), "");
}

TEST(SchemaCheckTest, MinimalSpecPasses) { EXPECT_EQ(check(kBase), ""); }

TEST(SchemaCheckTest, SemanticMistakesAreLeftToTheSemanticChecker) {
  // A zero-sized axis, an unknown batch axis, repeated rule axes and an empty mesh are valid as
  // far as the schema goes; spec_check reports them with the arithmetic.
  EXPECT_EQ(check("version: 1\nmodel: {config: c.json}\nmesh: {tp: 0}\nbatch_axes: [dp]\n"
                  "modules:\n  - {kind: mlp, mode: tensor, axes: [tp, tp]}\n"),
            "");
  EXPECT_EQ(check("version: 1\nmodel: {config: c.json}\nmesh: {}\n"), "");
}

// ---- one mistake, one diagnostic ----

struct Mistake {
  const char* name;
  std::string yaml;
  std::string expected;  // the one diagnostic, "LINE:COL: MESSAGE"
};

TEST(SchemaCheckTest, EachKindOfMistakeGivesExactlyOneDiagnostic) {
  const std::vector<Mistake> cases = {
      {"unknown top-level key, at the key", kBase + "workloads:\n  batch: 1\n",
       "7:1: unknown key 'workloads' (allowed: version, name, model, hardware, mesh, batch_axes, defaults, "
       "modules, workload); did you mean 'workload'?"},
      {"unknown key in a rule", kBase + "modules:\n  - kind: mlp\n    mode: tensor\n    axis: [tp]\n",
       "10:5: unknown key 'axis' in modules[0] (allowed: kind, path, mode, axes, shared_expert); did you mean 'axes'?"},
      {"unknown key in model", "version: 1\nmodel:\n  config: c.json\n  extra: 1\nmesh: {}\n",
       "4:3: unknown key 'extra' in model (allowed: config, checkpoint, dtype)"},
      {"mode not in the enum, at the value",
       kBase + "modules:\n  - {kind: mlp, mode: tensor}\n  - path: a.*\n    mode: tensr\n",
       "10:11: modules[1].mode 'tensr' is not one of replicate, tensor, data, expert; did you mean 'tensor'?"},
      {"defaults.mode not in the enum", kBase + "defaults:\n  mode: shard\n",
       "8:9: defaults.mode 'shard' is not one of replicate, tensor, data, expert"},
      {"dtype not in the enum", "version: 1\nmodel:\n  config: c.json\n  dtype: bf16\nmesh: {tp: 2}\n",
       "4:10: model.dtype 'bf16' is not one of float32, bfloat16, float16"},
      {"missing top-level key, at the root", "version: 1\nmodel:\n  config: c.json\n",
       "1:1: missing required key 'mesh'"},
      {"missing nested key, at the parent's key", "version: 1\nmodel:\n  dtype: float16\nmesh: {}\n",
       "2:1: missing required key 'config' in model"},
      {"missing rule mode, at the rule", kBase + "modules:\n  - kind: mlp\n    axes: [tp]\n",
       "8:5: missing required key 'mode' in modules[0]"},
      {"rule without kind or path", kBase + "modules:\n  - mode: tensor\n    axes: [tp]\n",
       "8:5: modules[0] needs at least one of 'kind', 'path'"},
      {"integer below its minimum", kBase + "workload:\n  batch: 0\n",
       "8:10: workload.batch must be an integer >= 1, got 0"},
      {"negative new_tokens", kBase + "workload: {new_tokens: -1}\n",
       "7:24: workload.new_tokens must be an integer >= 0, got -1"},
      {"float where an integer is needed", kBase + "workload:\n  prompt_tokens: 1.5\n",
       "8:18: workload.prompt_tokens must be an integer >= 1, got 1.5"},
      {"quoted number where an integer is needed", "version: 1\nmodel: {config: c}\nmesh:\n  tp: \"4\"\n",
       "4:7: mesh.tp must be an integer, got the string '4'"},
      {"empty value where an integer is needed", kBase + "workload:\n  images_per_request:\n",
       "8:3: workload.images_per_request must be an integer >= 0, got null"},
      {"version is not 1", "version: 2\nmodel: {config: c}\nmesh: {tp: 1}\n",
       "1:10: version must be 1, got 2"},
      {"mesh axis name, at the key", "version: 1\nmodel: {config: c}\nmesh:\n  dp: 2\n  TP: 4\n",
       "5:3: mesh axis name 'TP' must match [a-z][a-z0-9_]*"},
      {"rule axis name", kBase + "modules:\n  - {kind: mlp, mode: tensor, axes: [Tp]}\n",
       "8:38: modules[0].axes[0] must be a mesh axis name matching [a-z][a-z0-9_]*, got 'Tp'"},
      {"repeated batch axis, at the repeat", kBase + "batch_axes: [dp, tp, dp]\n",
       "7:22: batch_axes lists 'dp' more than once"},
      {"bad kind in a list, at the item", kBase + "modules:\n  - kind: [attention, mlpp]\n    mode: tensor\n",
       "8:23: modules[0].kind[1] 'mlpp' is not one of embedding, attention, cross_attention, mlp, "
       "moe, encoder, projector, lm_head; did you mean 'mlp'?"},
      {"bad single kind", kBase + "modules:\n  - kind: encodr\n    mode: data\n",
       "8:11: modules[0].kind 'encodr' is not one of embedding, attention, cross_attention, mlp, "
       "moe, encoder, projector, lm_head; did you mean 'encoder'?"},
      {"kind of the wrong type", kBase + "modules:\n  - kind: 5\n    mode: data\n",
       "8:11: modules[0].kind must be a module kind (embedding, attention, cross_attention, mlp, "
       "moe, encoder, projector, lm_head) or a non-empty list of module kinds, got 5"},
      {"empty kind list", kBase + "modules:\n  - kind: []\n    mode: data\n",
       "8:11: modules[0].kind must not be empty"},
      {"empty path", kBase + "modules:\n  - path: ''\n    mode: data\n",
       "8:11: modules[0].path must be a non-empty string, got ''"},
      {"rule that is not a mapping", kBase + "modules:\n  - tensor\n",
       "8:5: modules[0] must be a rule (a mapping), got the string 'tensor'"},
      {"name that is not a string", kBase + "name: 5\n", "7:7: name must be a string, got 5"},
      {"model that is not a mapping", "version: 1\nmodel: llama.json\nmesh: {}\n",
       "2:8: model must be a mapping, got the string 'llama.json'"},
      {"modules that is a mapping", kBase + "modules: {kind: mlp}\n",
       "7:10: modules must be a list, got a mapping"},
      {"spec that is not a mapping", "- version: 1\n", "1:1: the spec must be a mapping, got a list"},
  };
  for (const Mistake& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_EQ(check(c.yaml), "spec.yaml:" + c.expected.substr(0, c.expected.find(": ")) +
                                 ": error: " + c.expected.substr(c.expected.find(": ") + 2) +
                                 "\n");
  }
}

// ---- many mistakes: all reported, golden ----

// Compares `actual` with the golden file, or rewrites it when SHARDPLAN_UPDATE_GOLDEN is set.
void expect_golden(const std::string& actual, const std::string& golden_name) {
  const std::string path = data_path(golden_name);
  if (std::getenv("SHARDPLAN_UPDATE_GOLDEN") != nullptr) {
    std::ofstream(path) << actual;
    GTEST_SKIP() << "rewrote " << path;
  }
  EXPECT_EQ(actual, read_text(path)) << "golden file " << path
                                     << " differs; see this file's header to regenerate it";
}

TEST(SchemaGoldenTest, SpecWithManyMistakesReportsAllOfThem) {
  const std::string actual = check(read_text(data_path("many_mistakes.yaml")), "many_mistakes.yaml");
  // Not only the first: every mistake in the file (see the comments in it) is reported.
  EXPECT_EQ(std::count(actual.begin(), actual.end(), '\n'), 25);
  expect_golden(actual, "many_mistakes.expected");
}

// ---- robustness ----

TEST(SchemaCheckTest, OutputIsSortedAndRepeatable) {
  const std::string text = read_text(data_path("many_mistakes.yaml"));
  Diagnostics first, second;
  std::optional<YamlDocument> doc = parse_yaml_document(text, "m.yaml", first);
  ASSERT_TRUE(doc.has_value());
  check_against_schema(*doc, schema_text(), "m.yaml", first);
  check_against_schema(*doc, schema_text(), "m.yaml", second);
  ASSERT_EQ(first.all().size(), second.all().size());
  for (size_t i = 0; i < first.all().size(); ++i) {
    EXPECT_EQ(format_diagnostic(first.all()[i]), format_diagnostic(second.all()[i]));
    if (i > 0) {
      const SourcePos a = first.all()[i - 1].pos, b = first.all()[i].pos;
      EXPECT_TRUE(a.line < b.line || (a.line == b.line && a.column <= b.column))
          << "diagnostic " << i << " is out of order";
    }
  }
}

TEST(SchemaCheckTest, InvalidSchemaTextIsAnInternalErrorNotACrash) {
  Diagnostics diags;
  std::optional<YamlDocument> doc = parse_yaml_document(kBase, "spec.yaml", diags);
  ASSERT_TRUE(doc.has_value());
  check_against_schema(*doc, "{\"type\": ", "spec.yaml", diags);
  check_against_schema(*doc, "{\"type\": 5}", "spec.yaml", diags);
  ASSERT_EQ(diags.all().size(), 2u);
  for (const Diagnostic& d : diags.all()) {
    EXPECT_EQ(d.message.rfind("internal error: the spec schema is invalid", 0), 0u) << d.message;
  }
}

}  // namespace
}  // namespace shardplan

namespace shardplan {
namespace {

// Suggestions for misspelt names: close and unique, else nothing.
TEST(DidYouMean, SuggestsTheOneCloseName) {
  const std::vector<std::string> modes = {"replicate", "tensor", "data", "expert"};
  EXPECT_EQ(did_you_mean("tensr", modes), "; did you mean 'tensor'?");
  EXPECT_EQ(did_you_mean("Tensor", modes), "; did you mean 'tensor'?");
  EXPECT_EQ(did_you_mean("exprt", modes), "; did you mean 'expert'?");
  EXPECT_EQ(did_you_mean("pipeline", modes), "");
  EXPECT_EQ(did_you_mean("tq", {"dp", "tp"}), "; did you mean 'tp'?");
  EXPECT_EQ(did_you_mean("dp", {"tp"}), "");  // short names: the first letter must match
  EXPECT_EQ(did_you_mean("tx", {"tp", "ty"}), "");  // one edit from both: no single suggestion
  EXPECT_EQ(did_you_mean("workloads", {"version", "model", "mesh", "workload"}), "; did you mean 'workload'?");
  EXPECT_EQ(did_you_mean(std::string(100, 'a'), modes), "");
}

}  // namespace
}  // namespace shardplan
