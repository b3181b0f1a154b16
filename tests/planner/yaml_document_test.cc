// Tests of the YAML front end: positions, YAML 1.2 core typing, syntax errors, duplicate keys,
// empty and multi-document files; and of the Diagnostics helpers it reports through.
#include "planner/spec/yaml_document.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <sstream>

#include "planner/spec/diagnostic.h"

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

std::string pos_text(SourcePos pos) {
  return std::to_string(pos.line) + ":" + std::to_string(pos.column);
}

// All diagnostics, formatted, one per line.
std::string formatted(const Diagnostics& diags) {
  std::string out;
  for (const Diagnostic& d : diags.all()) out += format_diagnostic(d) + "\n";
  return out;
}

YamlDocument parse_ok(const std::string& text) {
  Diagnostics diags;
  std::optional<YamlDocument> doc = parse_yaml_document(text, "spec.yaml", diags);
  EXPECT_TRUE(doc.has_value()) << formatted(diags);
  EXPECT_TRUE(diags.all().empty()) << formatted(diags);
  return doc ? *doc : YamlDocument{};
}

TEST(YamlDocumentTest, PositionsOfKeysAndValuesInTheSpecFormatExample) {
  // Line numbers refer to tests/planner/data/front/spec_format_example.yaml (spec-format.md §1).
  YamlDocument doc = parse_ok(read_text(data_path("spec_format_example.yaml")));

  auto key = [&](const std::string& p) { return pos_text(doc.key_pos.at(p)); };
  auto value = [&](const std::string& p) { return pos_text(doc.value_pos.at(p)); };
  EXPECT_EQ(key("/version"), "2:1");  // line 1 is the yaml-language-server comment
  EXPECT_EQ(value("/version"), "2:10");
  EXPECT_EQ(key("/model/dtype"), "8:3");
  EXPECT_EQ(value("/model/dtype"), "8:10");
  EXPECT_EQ(value("/model"), "6:3");  // a block mapping starts at its first key
  EXPECT_EQ(key("/mesh/tp"), "12:3");
  EXPECT_EQ(value("/mesh/tp"), "12:7");
  EXPECT_EQ(value("/batch_axes"), "14:13");  // the '[' of a flow sequence
  EXPECT_EQ(value("/batch_axes/0"), "14:14");
  EXPECT_EQ(value("/modules"), "20:3");    // the first '-'
  EXPECT_EQ(value("/modules/1"), "23:5");  // a rule: its first key
  EXPECT_EQ(value("/modules/1/kind/2"), "23:28");
  EXPECT_EQ(key("/modules/2/path"), "26:5");
  EXPECT_EQ(value("/modules/2/path"), "26:11");
  EXPECT_EQ(key("/workload/images_per_request"), "33:3");
  EXPECT_EQ(value("/workload/images_per_request"), "33:23");
  EXPECT_EQ(value(""), "2:1");
  EXPECT_EQ(doc.key_pos.count("/modules/1"), 0u) << "list items have no key";

  EXPECT_EQ(doc.root["mesh"]["tp"], 4);
  EXPECT_EQ(doc.root["modules"][1]["kind"][3], "lm_head");
  EXPECT_EQ(doc.root["name"],
            "llava-1.5-7b, vision encoder data-parallel, language model tensor-parallel");
}

TEST(YamlDocumentTest, MissingPointersFallBackToTheNearestAncestor) {
  YamlDocument doc = parse_ok(
      "version: 1\n"
      "model:\n"
      "  dtype: bfloat16\n"
      "modules:\n"
      "  - kind: mlp\n");
  // value_at: the value itself, else the nearest ancestor's value.
  EXPECT_EQ(pos_text(doc.value_at("/model/dtype")), "3:10");
  EXPECT_EQ(pos_text(doc.value_at("/model/config")), "3:3");
  EXPECT_EQ(pos_text(doc.value_at("/model/config/deeper")), "3:3");
  // key_at: the key, else the value (list items), else the ancestor's key.
  EXPECT_EQ(pos_text(doc.key_at("/model/dtype")), "3:3");
  EXPECT_EQ(pos_text(doc.key_at("/model/config")), "2:1");
  EXPECT_EQ(pos_text(doc.key_at("/modules/0")), "5:5");
  EXPECT_EQ(pos_text(doc.key_at("/modules/0/mode")), "5:5");
  EXPECT_EQ(pos_text(doc.key_at("/nothing")), "1:1");
}

TEST(YamlDocumentTest, EmptyValuePointsAtItsKeyNotAtTheNextToken) {
  // yaml-cpp marks an empty value at the next token (here "mesh" on line 3).
  YamlDocument doc = parse_ok(
      "model:\n"
      "  dtype:\n"
      "mesh: {}\n"
      "nothing: ~\n");
  EXPECT_TRUE(doc.root["model"]["dtype"].is_null());
  EXPECT_EQ(pos_text(doc.value_pos.at("/model/dtype")), "2:3");
  EXPECT_TRUE(doc.root["nothing"].is_null());
  EXPECT_EQ(pos_text(doc.value_pos.at("/nothing")), "4:10");  // a written null is where it is
}

TEST(YamlDocumentTest, ScalarTypingFollowsYaml12CoreSchema) {
  YamlDocument doc = parse_ok(
      "quoted_int: \"1\"\n"
      "single_quoted: '2'\n"
      "int: 1\n"
      "negative: -3\n"
      "plus: +4\n"
      "leading_zero: 012\n"
      "hex: 0x1F\n"
      "octal: 0o17\n"
      "float: 1.5\n"
      "exponent: 1e3\n"
      "inf: -.inf\n"
      "nan: .NaN\n"
      "bool: true\n"
      "bool_caps: FALSE\n"
      "yes_is_string: yes\n"
      "on_is_string: on\n"
      "tilde: ~\n"
      "null_word: Null\n"
      "empty:\n"
      "quoted_null: \"null\"\n"
      "quoted_bool: 'true'\n"
      "underscore: 1_000\n"
      "version_like: 1.2.3\n"
      "tagged_str: !!str 7\n"
      "literal: |\n"
      "  12\n");
  const nlohmann::json& r = doc.root;
  EXPECT_TRUE(r["quoted_int"].is_string());
  EXPECT_EQ(r["quoted_int"], "1");
  EXPECT_EQ(r["single_quoted"], "2");
  EXPECT_TRUE(r["int"].is_number_integer());
  EXPECT_EQ(r["int"], 1);
  EXPECT_EQ(r["negative"], -3);
  EXPECT_EQ(r["plus"], 4);
  EXPECT_EQ(r["leading_zero"], 12);  // YAML 1.2: decimal, not octal
  EXPECT_EQ(r["hex"], 31);
  EXPECT_EQ(r["octal"], 15);
  EXPECT_TRUE(r["float"].is_number_float());
  EXPECT_DOUBLE_EQ(r["float"].get<double>(), 1.5);
  EXPECT_TRUE(r["exponent"].is_number_float());
  EXPECT_DOUBLE_EQ(r["exponent"].get<double>(), 1000.0);
  EXPECT_TRUE(std::isinf(r["inf"].get<double>()) && r["inf"].get<double>() < 0);
  EXPECT_TRUE(std::isnan(r["nan"].get<double>()));
  EXPECT_EQ(r["bool"], true);
  EXPECT_EQ(r["bool_caps"], false);
  EXPECT_EQ(r["yes_is_string"], "yes");  // YAML 1.1 booleans are strings in 1.2
  EXPECT_EQ(r["on_is_string"], "on");
  EXPECT_TRUE(r["tilde"].is_null());
  EXPECT_TRUE(r["null_word"].is_null());
  EXPECT_TRUE(r["empty"].is_null());
  EXPECT_EQ(r["quoted_null"], "null");
  EXPECT_EQ(r["quoted_bool"], "true");
  EXPECT_EQ(r["underscore"], "1_000");
  EXPECT_EQ(r["version_like"], "1.2.3");
  EXPECT_EQ(r["tagged_str"], "7");
  EXPECT_EQ(r["literal"], "12\n");
}

TEST(YamlDocumentTest, AliasesAreResolved) {
  YamlDocument doc = parse_ok(
      "axes: &tp_only [tp]\n"
      "modules:\n"
      "  - {kind: mlp, mode: tensor, axes: *tp_only}\n");
  EXPECT_EQ(doc.root["modules"][0]["axes"], nlohmann::json::array({"tp"}));
}

TEST(YamlDocumentTest, KeysInOrderKeepTheMeshOrderOfTheFile) {
  YamlDocument doc = parse_ok("mesh:\n  tp: 4\n  dp: 2\n  ep: 1\n");
  EXPECT_EQ(doc.keys_in_order("/mesh"), (std::vector<std::string>{"tp", "dp", "ep"}));
  EXPECT_EQ(doc.keys_in_order(""), (std::vector<std::string>{"mesh"}));
  EXPECT_TRUE(doc.keys_in_order("/mesh/tp").empty());
  EXPECT_TRUE(doc.keys_in_order("/absent").empty());
  EXPECT_TRUE(doc.keys_in_order("mesh").empty()) << "not a pointer: no keys, no exception";
}

TEST(YamlDocumentTest, PointersEscapeSlashAndTilde) {
  YamlDocument doc = parse_ok("a/b: 1\nc~d: {e: 2}\n");
  EXPECT_EQ(pos_text(doc.value_pos.at("/a~1b")), "1:6");
  EXPECT_EQ(pos_text(doc.key_pos.at("/c~0d/e")), "2:7");
  EXPECT_EQ(escape_pointer_token("x~/y"), "x~0~1y");
  EXPECT_EQ(split_pointer("/a~1b/c~0d/0"), (std::vector<std::string>{"a/b", "c~d", "0"}));
  EXPECT_TRUE(split_pointer("").empty());
  EXPECT_EQ(split_pointer("/"), (std::vector<std::string>{""}));
}

TEST(YamlDocumentTest, DisplayPathIsHowUsersWriteTheLocation) {
  YamlDocument doc = parse_ok(
      "modules:\n  - {kind: [mlp, moe]}\nworkload: {batch: 1}\nmesh: {\"my axis\": 2}\n");
  EXPECT_EQ(doc.display_path(""), "the spec");
  EXPECT_EQ(doc.display_path("/modules/0/kind/1"), "modules[0].kind[1]");
  EXPECT_EQ(doc.display_path("/workload/batch"), "workload.batch");
  EXPECT_EQ(doc.display_path("/mesh/my axis"), "mesh['my axis']");
  EXPECT_EQ(doc.display_path("/modules/0/mode"), "modules[0].mode");  // absent: still shown
}

TEST(YamlDocumentTest, SyntaxErrorReportsItsLineAndColumn) {
  Diagnostics diags;
  // The third line is indented less than the mapping it continues.
  std::optional<YamlDocument> doc =
      parse_yaml_document("mesh:\n  dp: 2\n tp: 4\n", "spec.yaml", diags);
  EXPECT_FALSE(doc.has_value());
  EXPECT_EQ(formatted(diags), "spec.yaml:3:2: error: YAML syntax error: end of map not found\n");

  Diagnostics flow;
  EXPECT_FALSE(parse_yaml_document("batch_axes: [dp, tp\nmesh: {}\n", "s.yaml", flow));
  ASSERT_EQ(flow.all().size(), 1u);
  EXPECT_EQ(pos_text(flow.all()[0].pos), "2:5");
  EXPECT_NE(flow.all()[0].message.find("end of sequence flow not found"), std::string::npos);
}

// yaml-cpp's message for a tab in the indentation is "illegal map value": the error says it is the tab.
TEST(YamlDocumentTest, ATabInTheIndentationIsNamed) {
  Diagnostics diags;
  EXPECT_FALSE(parse_yaml_document("version: 1\nmodel:\n\tconfig: a.json\n", "spec.yaml", diags));
  ASSERT_EQ(diags.all().size(), 1u);
  EXPECT_NE(diags.all()[0].message.find("line 3 is indented with a tab at column 1: YAML indents with spaces only"),
            std::string::npos)
      << diags.all()[0].message;
  // A tab inside a value is no indentation: no hint on other errors.
  Diagnostics other;
  EXPECT_FALSE(parse_yaml_document("mesh:\n  dp: 2\n tp: 4\t# x\n", "s.yaml", other));
  ASSERT_EQ(other.all().size(), 1u);
  EXPECT_EQ(other.all()[0].message.find("tab"), std::string::npos) << other.all()[0].message;
}

TEST(YamlDocumentTest, DuplicateKeyIsAnErrorAtTheSecondKey) {
  Diagnostics diags;
  std::optional<YamlDocument> doc = parse_yaml_document(
      "version: 1\nmesh:\n  dp: 2\n  tp: 4\n  dp: 8\nversion: 2\n", "spec.yaml", diags);
  ASSERT_TRUE(doc.has_value()) << "a duplicate key does not stop later checks";
  EXPECT_EQ(formatted(diags),
            "spec.yaml:5:3: error: duplicate key 'dp' in mesh (first at 3:3)\n"
            "spec.yaml:6:1: error: duplicate key 'version' (first at 1:1)\n");
  EXPECT_EQ(doc->root["mesh"]["dp"], 2) << "the first value is kept";
  EXPECT_EQ(pos_text(doc->value_pos.at("/mesh/dp")), "3:7");
  EXPECT_EQ(doc->root["version"], 1);
}

TEST(YamlDocumentTest, NonScalarKeyIsAnError) {
  Diagnostics diags;
  std::optional<YamlDocument> doc =
      parse_yaml_document("version: 1\n? [dp, tp]\n: 4\n", "spec.yaml", diags);
  ASSERT_TRUE(doc.has_value());
  EXPECT_EQ(formatted(diags),
            "spec.yaml:2:3: error: a mapping key must be a plain name, not a list\n");
  EXPECT_EQ(doc->root.size(), 1u);
}

TEST(YamlDocumentTest, EmptyFileIsReported) {
  for (const std::string text : {"", "\n\n", "# only a comment\n", "---\n"}) {
    SCOPED_TRACE("text: '" + text + "'");
    Diagnostics diags;
    EXPECT_FALSE(parse_yaml_document(text, "spec.yaml", diags).has_value());
    EXPECT_EQ(formatted(diags), "spec.yaml:1:1: error: the spec is empty\n");
  }
}

TEST(YamlDocumentTest, SeveralDocumentsAreAnError) {
  Diagnostics diags;
  EXPECT_FALSE(parse_yaml_document("version: 1\n---\nversion: 2\n", "spec.yaml", diags));
  EXPECT_EQ(formatted(diags),
            "spec.yaml:3:1: error: a spec is one YAML document, but a second one starts here\n");
}

// yaml-cpp 0.7's LoadAll never returns on a stray ',' at the top level (found by
// tests/fuzz/spec_fuzz): the spec is refused instead, at once.
TEST(YamlDocumentTest, StrayCommaAtTheTopLevelIsRefusedNotAHang) {
  for (const std::string text : {",", "version: 1\nmodel:\n  config: x\n,\n"}) {
    SCOPED_TRACE("text: '" + text + "'");
    Diagnostics diags;
    EXPECT_FALSE(parse_yaml_document(text, "spec.yaml", diags).has_value());
    EXPECT_TRUE(diags.has_errors());
  }
}

// A message that quotes the spec's bytes (yaml-cpp's "unknown escape character") and a file name
// that is not UTF-8 reach `check --format json` as valid UTF-8 (found by tests/fuzz/spec_fuzz).
TEST(YamlDocumentTest, DiagnosticsAreValidUtf8WhateverTheBytes) {
  Diagnostics diags;
  EXPECT_FALSE(parse_yaml_document("a: \"\\\x88\"\n", "spec\xff.yaml", diags));
  ASSERT_EQ(diags.all().size(), 1u);
  EXPECT_EQ(diags.all()[0].file, "spec\\xFF.yaml");
  EXPECT_NE(diags.all()[0].message.find("\\x88"), std::string::npos) << diags.all()[0].message;
  EXPECT_EQ(invalid_utf8_at(diags.all()[0].message), std::string::npos);
  EXPECT_EQ(escape_invalid_utf8("ok \xc3\xa9 \xc3"), "ok \xc3\xa9 \\xC3");
}

TEST(YamlDocumentTest, UnsupportedTagsAndMistypedCoreTags) {
  Diagnostics diags;
  std::optional<YamlDocument> doc =
      parse_yaml_document("a: !secret x\nb: !!int abc\nc: !!float 2\n", "spec.yaml", diags);
  ASSERT_TRUE(doc.has_value());
  EXPECT_EQ(formatted(diags),
            "spec.yaml:1:4: error: unsupported YAML tag '!secret'\n"
            "spec.yaml:2:4: error: 'abc' is not a valid !!int\n");
  EXPECT_TRUE(doc->root["c"].is_number_float());
}

TEST(DiagnosticsTest, FormatsAsFileLineColumnSeverityMessage) {
  EXPECT_EQ(format_diagnostic({"spec.yaml", {14, 11}, Severity::kError, "32 heads"}),
            "spec.yaml:14:11: error: 32 heads");
  EXPECT_EQ(format_diagnostic({"s.yaml", {3, 1}, Severity::kWarning, "rule matches nothing"}),
            "s.yaml:3:1: warning: rule matches nothing");
  EXPECT_EQ(format_diagnostic({"s.yaml", {}, Severity::kError, "cannot read"}),
            "s.yaml: error: cannot read");
}

TEST(DiagnosticsTest, SortIsByFileOfFirstAppearanceThenLineColumnMessage) {
  Diagnostics diags;
  diags.error("b.yaml", {2, 1}, "b2");
  diags.warning("a.yaml", {5, 3}, "z");
  diags.error("a.yaml", {5, 3}, "y");
  diags.error("b.yaml", {1, 9}, "b1");
  diags.error("a.yaml", {1, 1}, "a1");
  EXPECT_TRUE(diags.has_errors());
  diags.sort();
  EXPECT_EQ(formatted(diags),
            "b.yaml:1:9: error: b1\n"
            "b.yaml:2:1: error: b2\n"
            "a.yaml:1:1: error: a1\n"
            "a.yaml:5:3: error: y\n"
            "a.yaml:5:3: warning: z\n");

  Diagnostics warnings_only;
  warnings_only.warning("a.yaml", {1, 1}, "w");
  EXPECT_FALSE(warnings_only.has_errors());
}

}  // namespace
}  // namespace shardplan
