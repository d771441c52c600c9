#include "desired-state/yaml_reader.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <string>
#include <thread>
#include <vector>

#include "tests/harness/paths.h"
#include "tests/harness/temp_dir.h"

namespace clusterctl::desired_state {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using Json = nlohmann::json;

constexpr char kFile[] = "f.yaml";

}  // namespace

// Lets GoogleTest print a Location readably.
void PrintTo(const Location& l, std::ostream* os) { *os << l.ToString(); }

namespace {

struct Result {
  std::vector<YamlDocument> docs;
  Diagnostics diags;

  // Every diagnostic as "file:line:col: error: message; hint", sorted.
  std::vector<std::string> Errors() const {
    std::vector<std::string> out;
    for (const Diagnostic& d : diags.Sorted()) out.push_back(d.ToString());
    return out;
  }
};

Result Read(std::string_view text, const YamlLimits& limits = {}) {
  Result r;
  ReadYaml(kFile, text, limits, &r.docs, &r.diags);
  return r;
}

// Runs Read on a std::thread (default stack, 8 MiB here), as the controller
// does.
Result ReadOnThread(std::string_view text, const YamlLimits& limits = {}) {
  Result r;
  std::thread t([&] { r = Read(text, limits); });
  t.join();
  return r;
}

std::string Err(int line, int col, const std::string& rest) {
  return std::string(kFile) + ":" + std::to_string(line) + ":" + std::to_string(col) +
         ": error: " + rest;
}

constexpr char kAnchorError[] =
    "YAML anchors and aliases are not supported; write the value out in full";
constexpr char kSyntaxHint[] = "; check indentation and quoting";

template <typename F>
double Seconds(F&& f) {
  auto start = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// ---------------------------------------------------------------------------
// Documents, values and places.

TEST(YamlReaderTest, ParsesEveryDocumentWithThePlacesOfItsKeys) {
  Result r = Read(
      "# leading comment\n"
      "apiVersion: v1\n"
      "kind: Service\n"
      "metadata:\n"
      "  name: web\n"
      "spec:\n"
      "  ports: [80, 443]\n"
      "---\n"
      "apiVersion: v1\n"
      "kind: Host\n"
      "metadata:\n"
      "  name: \"node-1\"\n"
      "spec:\n"
      "  tags:\n"
      "    - a\n"
      "    - {x: 1}\n");
  ASSERT_THAT(r.Errors(), IsEmpty());
  ASSERT_EQ(r.docs.size(), 2u);

  const YamlDocument& web = r.docs[0];
  EXPECT_EQ(web.value, Json::parse(R"({"apiVersion": "v1", "kind": "Service",
      "metadata": {"name": "web"}, "spec": {"ports": [80, 443]}})"));
  EXPECT_EQ(web.where, (Location{kFile, 2, 1}));
  EXPECT_EQ(web.Locate("/kind"), (Location{kFile, 3, 1}));
  EXPECT_EQ(web.Locate("/metadata/name"), (Location{kFile, 5, 3}));
  EXPECT_EQ(web.Locate("/spec/ports"), (Location{kFile, 7, 3}));
  EXPECT_EQ(web.Locate("/spec/ports/0"), (Location{kFile, 7, 11}));
  EXPECT_EQ(web.Locate("/spec/ports/1"), (Location{kFile, 7, 15}));

  const YamlDocument& host = r.docs[1];
  EXPECT_EQ(host.value["metadata"]["name"], "node-1");
  EXPECT_EQ(host.where, (Location{kFile, 8, 1}));
  EXPECT_EQ(host.Locate("/metadata/name"), (Location{kFile, 12, 3}));
  EXPECT_EQ(host.Locate("/spec/tags/0"), (Location{kFile, 15, 7}));
  EXPECT_EQ(host.Locate("/spec/tags/1"), (Location{kFile, 16, 7}));
  EXPECT_EQ(host.Locate("/spec/tags/1/x"), (Location{kFile, 16, 8}));
}

TEST(YamlReaderTest, LocateFallsBackToTheNearestAncestorThenTheDocument) {
  Result r = Read("a:\n  b:\n    c: 1\n");
  ASSERT_THAT(r.Errors(), IsEmpty());
  const YamlDocument& doc = r.docs.at(0);
  EXPECT_EQ(doc.Locate("/a/b/c"), (Location{kFile, 3, 5}));
  EXPECT_EQ(doc.Locate("/a/b/c/d/e"), (Location{kFile, 3, 5}));
  EXPECT_EQ(doc.Locate("/a/missing"), (Location{kFile, 1, 1}));
  EXPECT_EQ(doc.Locate("/nothing"), doc.where);
  EXPECT_EQ(doc.Locate(""), doc.where);
  EXPECT_EQ(doc.Locate("garbage"), doc.where);
}

TEST(YamlReaderTest, PlacesFindExactPointersAndListTheNodesUnderOne) {
  // "/a/b" and "/a/bc" share a prefix: only "/a/b"'s own children are under it.
  Result r = Read("a:\n  b:\n    - 1\n    - x: 2\n  bc: 3\nz: 4\n");
  ASSERT_THAT(r.Errors(), IsEmpty());
  const YamlDocument::Places& places = r.docs.at(0).places;
  EXPECT_EQ(places.size(), 8u);  // "", /a, /a/b, /a/b/0, /a/b/1, /a/b/1/x, /a/bc, /z
  ASSERT_NE(places.Find("/a/bc"), nullptr);
  EXPECT_EQ(places.Find("/a/bc")->line, 5);
  EXPECT_EQ(places.Find("/a/bc")->column, 3);
  EXPECT_EQ(places.Find("/a/b/1/x")->line, 4);
  EXPECT_EQ(places.Find("/a/b/"), nullptr);
  EXPECT_EQ(places.Find("/a/b/1/x/y"), nullptr);
  std::vector<std::string> under;
  for (const auto& [pointer, at] : places.Under("/a/b")) {
    under.push_back(std::string(pointer) + "@" + std::to_string(at.line));
  }
  EXPECT_THAT(under, ElementsAre("/a/b/0@3", "/a/b/1@4", "/a/b/1/x@4"));
  EXPECT_THAT(places.Under("/z"), IsEmpty());
}

TEST(YamlReaderTest, EscapesKeysInPointers) {
  EXPECT_EQ(JsonPointerEscape("a/b~c"), "a~1b~0c");
  EXPECT_EQ(JsonPointerEscape("~1"), "~01");
  EXPECT_EQ(JsonPointerEscape(""), "");
  Result r = Read("labels:\n  app.kubernetes.io/name: x\n  \"~\": y\n");
  ASSERT_THAT(r.Errors(), IsEmpty());
  EXPECT_EQ(r.docs.at(0).Locate("/labels/app.kubernetes.io~1name"), (Location{kFile, 2, 3}));
  EXPECT_EQ(r.docs.at(0).Locate("/labels/~0"), (Location{kFile, 3, 3}));
}

TEST(YamlReaderTest, ResolvesPlainScalarsByTheCoreSchema) {
  Result r = Read(
      "nulls: [~, null, Null, NULL, ]\n"
      "empty:\n"
      "bools: [true, True, TRUE, false, False, FALSE]\n"
      "not_bools: [yes, no, on, off, tRUE]\n"
      "ints: [0, -7, +12, 0755, 0x1F, 0o17, 9223372036854775807, -9223372036854775808,"
      " 18446744073709551615]\n"
      "floats: [1.5, -0.5, .5, 1., 1e3, 2.5E-1, +.inf, -.Inf, .INF]\n"
      "nan: .nan\n"
      "strings: [1.10.0, 0x, 0o8, 1_000, '', \"\", abc, 1h, -, .]\n");
  ASSERT_THAT(r.Errors(), IsEmpty());
  const Json& v = r.docs.at(0).value;
  EXPECT_EQ(v["nulls"], Json::parse("[null, null, null, null]"));
  EXPECT_TRUE(v["empty"].is_null());
  EXPECT_EQ(v["bools"], Json::parse("[true, true, true, false, false, false]"));
  EXPECT_EQ(v["not_bools"], Json::parse(R"(["yes", "no", "on", "off", "tRUE"])"));
  EXPECT_EQ(v["ints"], Json::parse("[0, -7, 12, 755, 31, 15, 9223372036854775807,"
                                   " -9223372036854775808, 18446744073709551615]"));
  EXPECT_TRUE(v["ints"][3].is_number_integer());
  EXPECT_TRUE(v["ints"][8].is_number_unsigned());
  const Json& f = v["floats"];
  ASSERT_EQ(f.size(), 9u);
  for (const Json& x : f) EXPECT_TRUE(x.is_number_float()) << x;
  EXPECT_EQ(f[0].get<double>(), 1.5);
  EXPECT_EQ(f[1].get<double>(), -0.5);
  EXPECT_EQ(f[2].get<double>(), 0.5);
  EXPECT_EQ(f[3].get<double>(), 1.0);
  EXPECT_EQ(f[4].get<double>(), 1000.0);
  EXPECT_EQ(f[5].get<double>(), 0.25);
  EXPECT_EQ(f[6].get<double>(), INFINITY);
  EXPECT_EQ(f[7].get<double>(), -INFINITY);
  EXPECT_EQ(f[8].get<double>(), INFINITY);
  EXPECT_TRUE(std::isnan(v["nan"].get<double>()));
  EXPECT_EQ(v["strings"],
            Json::parse(R"(["1.10.0", "0x", "0o8", "1_000", "", "", "abc", "1h", "-", "."])"));
}

TEST(YamlReaderTest, KeepsQuotedScalarsAsStrings) {
  Result r = Read(
      "mode: '0755'\n"
      "plain_mode: 0755\n"
      "t: \"true\"\n"
      "n: 'null'\n"
      "i: \"12\"\n"
      "tilde: \"~\"\n"
      "literal: |\n"
      "  42\n"
      "folded: >-\n"
      "  true\n"
      "escaped: \"a\\tb\\u00e9\"\n");
  ASSERT_THAT(r.Errors(), IsEmpty());
  const Json& v = r.docs.at(0).value;
  EXPECT_EQ(v["mode"], "0755");
  EXPECT_EQ(v["plain_mode"], 755);  // YAML 1.2: a leading zero is not octal.
  EXPECT_EQ(v["t"], "true");
  EXPECT_EQ(v["n"], "null");
  EXPECT_EQ(v["i"], "12");
  EXPECT_EQ(v["tilde"], "~");
  EXPECT_EQ(v["literal"], "42\n");
  EXPECT_EQ(v["folded"], "true");
  EXPECT_EQ(v["escaped"], "a\tb\xC3\xA9");
}

TEST(YamlReaderTest, KeysAreAlwaysStrings) {
  Result r = Read("1: a\ntrue: b\n'x': c\nnull_word: d\n");
  ASSERT_THAT(r.Errors(), IsEmpty());
  EXPECT_EQ(r.docs.at(0).value, Json::parse(R"({"1": "a", "true": "b", "x": "c",
      "null_word": "d"})"));
}

TEST(YamlReaderTest, HonoursStandardTags) {
  Result r = Read(
      "s: !!str 123\n"
      "sn: !!str null\n"
      "se: !!str\n"
      "i: !!int \"12\"\n"
      "h: !!int 0x10\n"
      "f: !!float 3\n"
      "b: !!bool \"false\"\n"
      "z: !!null ''\n"
      "ns: ! 42\n"
      "m: !!map {a: 1}\n"
      "q: !!seq [1]\n"
      "!!str k: v\n");
  ASSERT_THAT(r.Errors(), IsEmpty());
  const Json& v = r.docs.at(0).value;
  EXPECT_EQ(v["s"], "123");
  EXPECT_EQ(v["sn"], "null");
  EXPECT_EQ(v["se"], "");
  EXPECT_EQ(v["i"], 12);
  EXPECT_EQ(v["h"], 16);
  EXPECT_TRUE(v["f"].is_number_float());
  EXPECT_EQ(v["f"].get<double>(), 3.0);
  EXPECT_EQ(v["b"], false);
  EXPECT_TRUE(v["z"].is_null());
  EXPECT_EQ(v["ns"], "42");
  EXPECT_EQ(v["m"], Json::parse(R"({"a": 1})"));
  EXPECT_EQ(v["q"], Json::parse("[1]"));
  EXPECT_EQ(v["k"], "v");
}

TEST(YamlReaderTest, RejectsOtherTags) {
  Result r = Read(
      "a: !foo x\n"
      "b: !!binary aGk=\n"
      "c: !<tag:example.com,2024:x> y\n"
      "d: !!set {x: null}\n"
      "e: !!str [1]\n"
      "f: !!map x\n"
      "!custom g: 1\n");
  EXPECT_THAT(r.Errors(),
              ElementsAre(Err(1, 4, "YAML tag \"!foo\" is not supported; remove the tag"),
                          Err(2, 4, "YAML tag \"!!binary\" is not supported; remove the tag"),
                          Err(3, 4,
                              "YAML tag \"tag:example.com,2024:x\" is not supported; "
                              "remove the tag"),
                          Err(4, 4, "YAML tag \"!!set\" is not supported; remove the tag"),
                          Err(5, 4, "YAML tag \"!!str\" does not fit a sequence; remove the tag"),
                          Err(6, 4, "YAML tag \"!!map\" does not fit a scalar; remove the tag"),
                          Err(7, 1, "YAML tag \"!custom\" is not supported; remove the tag")));
  EXPECT_THAT(r.docs, IsEmpty());
}

TEST(YamlReaderTest, RejectsValuesThatDoNotFitTheirTag) {
  Result r = Read("a: !!int abc\nb: !!bool yes\nc: !!null 0\nd: !!float x1\n");
  EXPECT_THAT(
      r.Errors(),
      ElementsAre(Err(1, 4, "\"abc\" is not a valid !!int; fix the value or remove the tag"),
                  Err(2, 4, "\"yes\" is not a valid !!bool; fix the value or remove the tag"),
                  Err(3, 4, "\"0\" is not a valid !!null; fix the value or remove the tag"),
                  Err(4, 4, "\"x1\" is not a valid !!float; fix the value or remove the tag")));
}

TEST(YamlReaderTest, RejectsNumbersOutOfRange) {
  Result r = Read("a: 18446744073709551616\nb: -9223372036854775809\nc: 1e999\n");
  EXPECT_THAT(
      r.Errors(),
      ElementsAre(Err(1, 4,
                      "integer \"18446744073709551616\" is out of range; "
                      "quote it to make it a string"),
                  Err(2, 4,
                      "integer \"-9223372036854775809\" is out of range; "
                      "quote it to make it a string"),
                  Err(3, 4, "number \"1e999\" is out of range; quote it to make it a string")));
}

// ---------------------------------------------------------------------------
// Keys.

TEST(YamlReaderTest, RejectsDuplicateKeysAtTheSecondKey) {
  Result r = Read(
      "apiVersion: v1\n"
      "spec:\n"
      "  image: a\n"
      "  other: 1\n"
      "  image: b\n"
      "  \"image\": c\n"
      "apiVersion: v2\n");
  EXPECT_THAT(
      r.Errors(),
      ElementsAre(Err(5, 3, "duplicate key \"image\" (first at line 3); remove one of them"),
                  Err(6, 3, "duplicate key \"image\" (first at line 3); remove one of them"),
                  Err(7, 1,
                      "duplicate key \"apiVersion\" (first at line 1); "
                      "remove one of them")));
  EXPECT_THAT(r.docs, IsEmpty());
}

TEST(YamlReaderTest, SameKeyInDifferentMapsIsNotADuplicate) {
  Result r = Read("a: {name: x}\nb: {name: y}\nlist:\n  - name: 1\n  - name: 2\n");
  EXPECT_THAT(r.Errors(), IsEmpty());
  EXPECT_EQ(r.docs.size(), 1u);
}

TEST(YamlReaderTest, RejectsKeysThatAreNotScalars) {
  Result r = Read("[a, b]: 1\n? {x: 1}\n: 2\n~: 3\nok: 4\n");
  EXPECT_THAT(
      r.Errors(),
      ElementsAre(Err(1, 1,
                      "map keys must be plain strings; write the key as a string, not a list, map "
                      "or null"),
                  Err(2, 3,
                      "map keys must be plain strings; write the key as a string, not a list, map "
                      "or null"),
                  Err(4, 1,
                      "map keys must be plain strings; write the key as a string, not a list, map "
                      "or null")));
  EXPECT_THAT(r.docs, IsEmpty());
}

// ---------------------------------------------------------------------------
// Anchors and aliases.

TEST(YamlReaderTest, RejectsAnchorsAndAliases) {
  EXPECT_THAT(Read("a: &x 1\n").Errors(), ElementsAre(Err(1, 4, kAnchorError)));
  // yaml-cpp rejects an unknown alias before the handler sees it.
  EXPECT_THAT(Read("a: 1\nb: *x\n").Errors(),
              ElementsAre(Err(2, 4,
                              "YAML syntax error: the referenced anchor is not defined" +
                                  std::string(kSyntaxHint))));
  EXPECT_THAT(Read("base: &b {x: 1}\nother:\n  <<: *b\n").Errors(),
              ElementsAre(Err(1, 7, kAnchorError)));
  EXPECT_THAT(Read("&k key: v\n").Errors(), ElementsAre(Err(1, 1, kAnchorError)));
}

TEST(YamlReaderTest, RejectsCyclicAlias) {
  Result r = Read("a: &a [*a]\n");
  EXPECT_THAT(r.Errors(), ElementsAre(Err(1, 4, kAnchorError)));
  EXPECT_THAT(r.docs, IsEmpty());
}

TEST(YamlReaderTest, RejectsBillionLaughsWithoutExpandingIt) {
  std::string text = "l0: &l0 \"lol\"\n";
  for (int level = 1; level <= 9; ++level) {
    std::string ref = "*l" + std::to_string(level - 1);
    text += "l" + std::to_string(level) + ": &l" + std::to_string(level) + " [";
    for (int i = 0; i < 9; ++i) text += (i ? ", " : "") + ref;
    text += "]\n";
  }
  Result r;
  double seconds = Seconds([&] { r = Read(text); });
  EXPECT_THAT(r.Errors(), ElementsAre(Err(1, 5, kAnchorError)));
  EXPECT_THAT(r.docs, IsEmpty());
  EXPECT_LT(seconds, 1.0);
}

// ---------------------------------------------------------------------------
// Nesting.

TEST(YamlReaderTest, AcceptsNestingUpToTheLimit) {
  // The root mapping is level 1; 63 more flow sequences make 64.
  std::string text = "a: " + std::string(63, '[') + std::string(63, ']') + "\n";
  Result r = Read(text);
  EXPECT_THAT(r.Errors(), IsEmpty());
  EXPECT_EQ(r.docs.size(), 1u);
}

TEST(YamlReaderTest, RejectsBlockAndFlowNestingOverTheLimit) {
  // 64 flow levels pass the text check; with the root mapping they are 65.
  std::string text = "a: " + std::string(64, '[') + std::string(64, ']') + "\n";
  EXPECT_THAT(Read(text).Errors(),
              ElementsAre(Err(1, 67, "nesting deeper than 64 levels; reduce the nesting")));
}

TEST(YamlReaderTest, Rejects200000NestedBracketsBeforeParsing) {
  std::string text(200000, '[');
  for (const char* what : {"main thread", "std::thread"}) {
    SCOPED_TRACE(what);
    Result r;
    double seconds =
        Seconds([&] { r = std::string(what) == "main thread" ? Read(text) : ReadOnThread(text); });
    EXPECT_THAT(r.Errors(),
                ElementsAre(Err(1, 65, "nesting deeper than 64 levels; reduce the nesting")));
    EXPECT_THAT(r.docs, IsEmpty());
    EXPECT_LT(seconds, 2.0);
  }
  std::string braces = "a: ";
  for (int i = 0; i < 100000; ++i) braces += "{b: ";
  EXPECT_THAT(ReadOnThread(braces).Errors(),
              ElementsAre(Err(1, 4 + 4 * 64, "nesting deeper than 64 levels; reduce the nesting")));
}

TEST(YamlReaderTest, IgnoresBracketsInQuotesAndComments) {
  std::string many(100, '[');
  std::string text = "a: \"" + many + "\"\nb: '" + many + "'\n# " + many + "\nc: x # " + many +
                     "\nd: \"it's \\\" " + many + "\"\n";
  Result r = Read(text);
  EXPECT_THAT(r.Errors(), IsEmpty());
  EXPECT_EQ(r.docs.at(0).value["a"], many);
}

TEST(YamlReaderTest, BracketsInsidePlainScalarsDoNotCountAsNesting) {
  std::string text;
  for (int i = 0; i < 100; ++i) text += "k" + std::to_string(i) + ": press [ or { to open\n";
  text += "script: |\n  if [[ -f x ]]; then echo '[[[[['; fi\ntail: x\n";
  Result r = Read(text);
  EXPECT_THAT(r.Errors(), IsEmpty());
  EXPECT_EQ(r.docs.at(0).value["k99"], "press [ or { to open");
}

TEST(YamlReaderTest, CountsFlowNestingAfterTagsAnchorsAndDocumentStarts) {
  std::string deep(70, '[');
  const std::string kTooDeep = "nesting deeper than 64 levels; reduce the nesting";
  EXPECT_THAT(Read("a: !!seq " + deep).Errors(), ElementsAre(Err(1, 10 + 64, kTooDeep)));
  EXPECT_THAT(Read("a: &x " + deep).Errors(), ElementsAre(Err(1, 7 + 64, kTooDeep)));
  EXPECT_THAT(Read("--- " + deep).Errors(), ElementsAre(Err(1, 5 + 64, kTooDeep)));
  EXPECT_THAT(Read("- - " + deep).Errors(), ElementsAre(Err(1, 5 + 64, kTooDeep)));
  EXPECT_THAT(Read("? " + deep).Errors(), ElementsAre(Err(1, 3 + 64, kTooDeep)));
  EXPECT_THAT(Read("a:\n  " + deep).Errors(), ElementsAre(Err(2, 3 + 64, kTooDeep)));
  EXPECT_THAT(Read("a: [\"x\", 'y', [b, {c: " + deep).Errors(),
              ElementsAre(Err(1, 23 + 61, kTooDeep)));
}

TEST(YamlReaderTest, Rejects200000CompactBlockSequencesOnAThread) {
  std::string text;
  for (int i = 0; i < 200000; ++i) text += "- ";
  text += "x\n";
  for (const char* what : {"main thread", "std::thread"}) {
    SCOPED_TRACE(what);
    Result r;
    double seconds =
        Seconds([&] { r = std::string(what) == "main thread" ? Read(text) : ReadOnThread(text); });
    EXPECT_THAT(r.Errors(),
                ElementsAre(Err(1, 129, "nesting deeper than 64 levels; reduce the nesting")));
    EXPECT_THAT(r.docs, IsEmpty());
    EXPECT_LT(seconds, 2.0);
  }
}

TEST(YamlReaderTest, RejectsDeepIndentedBlockNestingOnAThread) {
  // One "- " per line, each indented two more: 600 levels, about 360 KB.
  std::string seqs;
  for (int i = 0; i < 600; ++i) seqs += std::string(2 * i, ' ') + "-\n";
  // "a:\n b:\n  c:" ... 600 levels of mappings.
  std::string maps;
  for (int i = 0; i < 600; ++i) maps += std::string(i, ' ') + "k:\n";
  Result r1 = ReadOnThread(seqs);
  EXPECT_THAT(r1.Errors(),
              ElementsAre(Err(65, 129, "nesting deeper than 64 levels; reduce the nesting")));
  Result r2 = ReadOnThread(maps);
  EXPECT_THAT(r2.Errors(),
              ElementsAre(Err(65, 65, "nesting deeper than 64 levels; reduce the nesting")));
}

TEST(YamlReaderTest, HonoursALowerDepthLimit) {
  YamlLimits limits;
  limits.max_depth = 3;
  EXPECT_THAT(Read("a: {b: {c: 1}}\n", limits).Errors(), IsEmpty());
  EXPECT_THAT(Read("a: {b: {c: {d: 1}}}\n", limits).Errors(),
              ElementsAre(Err(1, 12, "nesting deeper than 3 levels; reduce the nesting")));
  EXPECT_THAT(Read("a:\n  b:\n    c:\n      d: 1\n", limits).Errors(),
              ElementsAre(Err(4, 7, "nesting deeper than 3 levels; reduce the nesting")));
}

// ---------------------------------------------------------------------------
// Garbage that makes yaml-cpp loop, and empty documents.

TEST(YamlReaderTest, StrayCommaFileTerminatesWithAnError) {
  Result r;
  double seconds = Seconds([&] { r = ReadOnThread(","); });
  EXPECT_THAT(
      r.Errors(),
      ElementsAre(Err(1, 1, "could not parse YAML near line 1" + std::string(kSyntaxHint))));
  EXPECT_THAT(r.docs, IsEmpty());
  EXPECT_LT(seconds, 1.0);
}

TEST(YamlReaderTest, StrayFlowIndicatorsAreErrors) {
  EXPECT_THAT(
      Read("a: 1\n---\n,\nb: 2\n").Errors(),
      ElementsAre(Err(3, 1, "could not parse YAML near line 3" + std::string(kSyntaxHint))));
  EXPECT_THAT(
      Read("a: 1\n,\n").Errors(),
      ElementsAre(Err(2, 1, "YAML syntax error: end of map not found" + std::string(kSyntaxHint))));
  EXPECT_THAT(
      Read("]\n").Errors(),
      ElementsAre(Err(1, 1, "YAML syntax error: illegal flow end" + std::string(kSyntaxHint))));
  EXPECT_THAT(Read(",\n,\n,\n}").docs, IsEmpty());
}

TEST(YamlReaderTest, ReportsSyntaxErrorsAtTheirPlace) {
  Result r = Read("apiVersion: v1\nkind: [Service\n");
  ASSERT_EQ(r.Errors().size(), 1u);
  EXPECT_THAT(r.Errors()[0], ::testing::StartsWith(std::string(kFile) + ":"));
  EXPECT_THAT(r.Errors()[0], ::testing::HasSubstr(": error: YAML syntax error: "));
  EXPECT_THAT(r.docs, IsEmpty());
  EXPECT_THAT(
      Read("a: b: c\n").Errors(),
      ElementsAre(Err(1, 5, "YAML syntax error: illegal map value" + std::string(kSyntaxHint))));
}

constexpr char kEmptyDocument[] =
    "empty YAML document; remove the stray \"---\" or give the document content";

TEST(YamlReaderTest, RejectsEmptyDocumentsBetweenSeparators) {
  EXPECT_THAT(Read("---\n---\n").Errors(), ElementsAre(Err(1, 1, kEmptyDocument)));
  Result r = Read("a: 1\n---\n---\nb: 2\n");
  EXPECT_THAT(r.Errors(), ElementsAre(Err(2, 1, kEmptyDocument)));
  EXPECT_THAT(r.docs, IsEmpty());
}

TEST(YamlReaderTest, RejectsDocumentEndMarkersWithoutContent) {
  EXPECT_THAT(Read("...\n...").Errors(), ElementsAre(Err(1, 1, kEmptyDocument)));
}

TEST(YamlReaderTest, RejectsATrailingSeparator) {
  EXPECT_THAT(Read("a: 1\n---\n").Errors(), ElementsAre(Err(2, 1, kEmptyDocument)));
  EXPECT_THAT(Read("a: 1\n--- # nothing\n# more nothing\n").Errors(),
              ElementsAre(Err(2, 1, kEmptyDocument)));
}

TEST(YamlReaderTest, RejectsAnExplicitNullDocument) {
  EXPECT_THAT(Read("--- ~\n").Errors(), ElementsAre(Err(1, 1, kEmptyDocument)));
}

TEST(YamlReaderTest, RejectsFilesWithoutDocuments) {
  const std::string kNoDocument =
      std::string(kFile) +
      ": error: file has no YAML document; give it a mapping with apiVersion, kind, metadata and "
      "spec, or delete it";
  EXPECT_THAT(Read("# only\n# comments\n").Errors(), ElementsAre(kNoDocument));
  EXPECT_THAT(Read("").Errors(), ElementsAre(kNoDocument));
  EXPECT_THAT(Read("\n  \n\t\n").Errors(), ElementsAre(kNoDocument));
}

TEST(YamlReaderTest, RejectsRootsThatAreNotMappings) {
  const std::string kMessage =
      "a document must be a mapping with apiVersion, kind, metadata and spec";
  EXPECT_THAT(Read("- a\n- b\n").Errors(), ElementsAre(Err(1, 1, kMessage)));
  EXPECT_THAT(Read("hello\n").Errors(), ElementsAre(Err(1, 1, kMessage)));
  Result r = Read("a: 1\n--- 42\n---\nb: 2\n");
  EXPECT_THAT(r.Errors(), ElementsAre(Err(2, 5, kMessage)));
  EXPECT_THAT(r.docs, IsEmpty());
}

// ---------------------------------------------------------------------------
// Bytes.

TEST(YamlReaderTest, RejectsInvalidUtf8AtTheFirstBadByte) {
  EXPECT_THAT(Read("a: b\nname: caf\xE9\n").Errors(),
              ElementsAre(Err(2, 10, "invalid UTF-8 byte 0xE9; save the file as UTF-8")));
  EXPECT_THAT(Read("a: \xC0\xAF\n").Errors(),  // Overlong "/".
              ElementsAre(Err(1, 4, "invalid UTF-8 byte 0xC0; save the file as UTF-8")));
  EXPECT_THAT(Read("a: \xED\xA0\x80\n").Errors(),  // Surrogate U+D800.
              ElementsAre(Err(1, 4, "invalid UTF-8 byte 0xED; save the file as UTF-8")));
  EXPECT_THAT(Read("a: \xE2\x82").Errors(),  // Cut short at the end.
              ElementsAre(Err(1, 4, "invalid UTF-8 byte 0xE2; save the file as UTF-8")));
  Result ok = Read("name: \"caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80\"\n");
  EXPECT_THAT(ok.Errors(), IsEmpty());
}

TEST(YamlReaderTest, RejectsUtf16AndUtf32ByteOrderMarks) {
  const std::string kMessage =
      "file starts with a UTF-16 or UTF-32 byte-order mark; save the file as UTF-8";
  EXPECT_THAT(Read(std::string("\xFF\xFE"
                               "a\0:\0 \0b\0",
                               10))
                  .Errors(),
              ElementsAre(Err(1, 1, kMessage)));
  EXPECT_THAT(Read(std::string("\xFE\xFF\0a\0:", 6)).Errors(), ElementsAre(Err(1, 1, kMessage)));
  EXPECT_THAT(Read(std::string("\0\0\xFE\xFF", 4)).Errors(), ElementsAre(Err(1, 1, kMessage)));
}

TEST(YamlReaderTest, AcceptsAUtf8ByteOrderMark) {
  Result r = Read(
      "\xEF\xBB\xBF"
      "a: 1\nb: 2\n");
  ASSERT_THAT(r.Errors(), IsEmpty());
  EXPECT_EQ(r.docs.at(0).value, Json::parse(R"({"a": 1, "b": 2})"));
  EXPECT_EQ(r.docs.at(0).Locate("/a"), (Location{kFile, 1, 1}));
}

TEST(YamlReaderTest, RejectsNulBytesEvenInQuotedScalars) {
  EXPECT_THAT(Read(std::string("a: \"x\0y\"\n", 9)).Errors(),
              ElementsAre(Err(1, 6, "control character 0x00 is not allowed in YAML; remove it")));
  EXPECT_THAT(Read("a: \"x\\0y\"\n").Errors(),
              ElementsAre(Err(1, 4, "string contains a NUL character; remove it")));
  EXPECT_THAT(Read("a: \"x\\x00y\"\n").Errors(),
              ElementsAre(Err(1, 4, "string contains a NUL character; remove it")));
}

TEST(YamlReaderTest, RejectsControlCharactersButNotTabsAndLineEnds) {
  EXPECT_THAT(Read("a: 1\nb: x\x1B[0m\n").Errors(),
              ElementsAre(Err(2, 5, "control character 0x1B is not allowed in YAML; remove it")));
  EXPECT_THAT(Read("a: x\x7F\n").Errors(),
              ElementsAre(Err(1, 5, "control character 0x7F is not allowed in YAML; remove it")));
  Result r = Read("a: \"x\ty\"\r\nb: 2\r\n");
  EXPECT_THAT(r.Errors(), IsEmpty());
  EXPECT_EQ(r.docs.at(0).value["a"], "x\ty");
  EXPECT_EQ(r.docs.at(0).Locate("/b"), (Location{kFile, 2, 1}));
}

// ---------------------------------------------------------------------------
// Limits.

TEST(YamlReaderTest, RejectsFilesOverTheSizeLimitWithoutParsing) {
  std::string text = "a: \"" + std::string(2 << 20, 'x') + "\"\n";
  Result r;
  double seconds = Seconds([&] { r = Read(text); });
  EXPECT_THAT(r.Errors(),
              ElementsAre(std::string(kFile) + ": error: file is 2097158 bytes, over the limit of "
                                               "1048576 bytes; split it into smaller files"));
  EXPECT_LT(seconds, 0.5);
  YamlLimits limits;
  limits.max_file_bytes = 10;
  EXPECT_THAT(Read("a: 123456\n", limits).Errors(), IsEmpty());  // Exactly 10 bytes.
  EXPECT_THAT(Read("a: 1234567\n", limits).Errors(), ::testing::SizeIs(1));
}

TEST(YamlReaderTest, RejectsMoreDocumentsThanTheLimit) {
  YamlLimits limits;
  limits.max_documents = 3;
  std::string three = "a: 1\n---\na: 2\n---\na: 3\n";
  EXPECT_EQ(Read(three, limits).docs.size(), 3u);
  Result r = Read(three + "---\na: 4\n---\na: 5\n", limits);
  EXPECT_THAT(r.Errors(), ElementsAre(Err(6, 1,
                                          "file has more than 3 YAML documents; split it into "
                                          "smaller files")));
  EXPECT_THAT(r.docs, IsEmpty());
}

TEST(YamlReaderTest, RejectsMoreNodesThanTheLimit) {
  YamlLimits limits;
  limits.max_nodes = 7;  // The root, 3 keys and 3 values.
  EXPECT_THAT(Read("a: 1\nb: 2\nc: 3\n", limits).Errors(), IsEmpty());
  EXPECT_THAT(
      Read("a: 1\nb: 2\nc: 3\nd: 4\n", limits).Errors(),
      ElementsAre(Err(4, 1, "file has more than 7 YAML nodes; split it into smaller files")));
}

TEST(YamlReaderTest, StopsAfterAHundredErrors) {
  std::string text;
  for (int i = 0; i < 500; ++i) text += "a: " + std::to_string(i) + "\n";
  Result r = Read(text);
  std::vector<std::string> errors = r.Errors();
  ASSERT_EQ(errors.size(), 101u);
  EXPECT_EQ(
      errors.back(),
      Err(101, 1, "too many errors (100); stopped reading this file; fix the errors above first"));
}

// ---------------------------------------------------------------------------
// All or nothing per file, and output handling.

TEST(YamlReaderTest, AFileWithAnyErrorYieldsNoDocuments) {
  Result r = Read("a: 1\n---\nb: 2\n---\nc: 3\nc: 4\n");
  EXPECT_THAT(r.Errors(),
              ElementsAre(Err(6, 1, "duplicate key \"c\" (first at line 5); remove one of them")));
  EXPECT_THAT(r.docs, IsEmpty());
}

TEST(YamlReaderTest, AppendsToWhatIsAlreadyInTheOutputs) {
  std::vector<YamlDocument> docs(1);
  Diagnostics diags;
  diags.Add(Location{"other.yaml", 1, 1}, "earlier");
  ReadYaml("a.yaml", "x: 1\n", {}, &docs, &diags);
  EXPECT_EQ(docs.size(), 2u);
  EXPECT_EQ(diags.size(), 1u);
  ReadYaml("b.yaml", "x: 1\nx: 2\n", {}, &docs, &diags);
  EXPECT_EQ(docs.size(), 2u);
  EXPECT_EQ(diags.size(), 2u);
  EXPECT_EQ(diags.Sorted()[0].ToString(),
            "b.yaml:2:1: error: duplicate key \"x\" (first at line 1); remove one of them");
}

TEST(YamlReaderTest, ReadsManyDocumentsInLinearTime) {
  std::string text;
  for (int i = 0; i < 2000; ++i) {
    text += "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: s" + std::to_string(i) +
            "\nspec:\n  command: [/bin/run, --port, \"80\"]\n  env: {A: 1, B: two}\n";
  }
  Result r;
  double seconds = Seconds([&] { r = Read(text); });
  ASSERT_THAT(r.Errors(), IsEmpty());
  ASSERT_EQ(r.docs.size(), 2000u);
  EXPECT_EQ(r.docs.back().value["metadata"]["name"], "s1999");
  EXPECT_EQ(r.docs.back().Locate("/spec/command/2"), (Location{kFile, 1999 * 8 + 7, 31}));
  EXPECT_LT(seconds, 3.0);  // Debug build; about 0.1 s optimised.
}

// ---------------------------------------------------------------------------
// The hazard fixtures in tests/testdata/yaml.

TEST(YamlReaderTest, HazardFixturesGiveTheirDiagnostics) {
  struct Case {
    std::string file;
    std::vector<std::string> errors;  // With "FILE" for the path.
  };
  const std::vector<Case> cases = {
      {"billion_laughs.yaml", {"FILE:8:6: error: " + std::string(kAnchorError)}},
      {"cyclic_alias.yaml", {"FILE:3:4: error: " + std::string(kAnchorError)}},
      {"duplicate_keys.yaml",
       {"FILE:9:3: error: duplicate key \"image\" (first at line 8); remove one of them"}},
      {"stray_comma.yaml",
       {"FILE:1:1: error: could not parse YAML near line 1" + std::string(kSyntaxHint)}},
      {"empty_documents.yaml", {"FILE:1:1: error: " + std::string(kEmptyDocument)}},
      {"document_end_markers.yaml", {"FILE:1:1: error: " + std::string(kEmptyDocument)}},
      {"multi_document.yaml", {}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.file);
    std::string path = "tests/testdata/yaml/" + c.file;
    std::string text = clusterctl::testing::ReadFile(clusterctl::testing::SourceDir() + "/" + path);
    ASSERT_FALSE(text.empty());
    std::vector<YamlDocument> docs;
    Diagnostics diags;
    ReadYaml(path, text, {}, &docs, &diags);
    std::vector<std::string> want;
    for (std::string e : c.errors) want.push_back(e.replace(0, 4, path));
    std::vector<std::string> got;
    for (const Diagnostic& d : diags.Sorted()) got.push_back(d.ToString());
    EXPECT_EQ(got, want);
    EXPECT_EQ(docs.empty(), !want.empty());
  }
}

TEST(YamlReaderTest, MultiDocumentFixtureKeepsQuotedModesAsStrings) {
  std::string path = "tests/testdata/yaml/multi_document.yaml";
  std::string text = clusterctl::testing::ReadFile(clusterctl::testing::SourceDir() + "/" + path);
  std::vector<YamlDocument> docs;
  Diagnostics diags;
  ReadYaml(path, text, {}, &docs, &diags);
  ASSERT_TRUE(diags.empty()) << diags.ToString();
  ASSERT_EQ(docs.size(), 2u);
  EXPECT_EQ(docs[0].where, (Location{path, 2, 1}));
  EXPECT_EQ(docs[0].value["spec"]["ports"], Json::parse("[80, 443]"));
  EXPECT_EQ(docs[1].where, (Location{path, 8, 1}));
  EXPECT_EQ(docs[1].value["spec"]["mode"], "0755");
  EXPECT_EQ(docs[1].value["spec"]["replicas"], 755);
  EXPECT_EQ(docs[1].Locate("/spec/mode"), (Location{path, 14, 3}));
}

}  // namespace
}  // namespace clusterctl::desired_state
