// SetSpecKey (desired-state/yaml_edit.h): the text edits behind
// clusterctl stop|start change only the lines concerned.
#include "desired-state/yaml_edit.h"

#include <gtest/gtest.h>

namespace clusterctl::desired_state {
namespace {

constexpr char kFile[] = R"(# The model server.
apiVersion: clusterctl/v1
kind: Service
metadata:
  name: model
spec:
  machines: [a, b, c]   # three boxes
  critical: true
  process:
    command: ["/bin/model"]
---
apiVersion: clusterctl/v1
kind: Service
metadata: {name: other}
spec:
  machines: [a]
  state: running  # on purpose
  stoppedOn:
    - a
  process: {command: ["/bin/other"]}
)";

TEST(YamlEditTest, AMissingKeyIsAddedAsTheFirstSpecKeyWithItsIndentation) {
  auto out = SetSpecKey("services/model.yaml", kFile, "Service", "model", "state", "stopped");
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  std::string want = kFile;
  want.insert(want.find("  machines: [a, b, c]"), "  state: stopped\n");
  EXPECT_EQ(*out, want);
}

TEST(YamlEditTest, APresentKeyIsReplacedInPlaceAndABlockListBecomesOneLine) {
  auto state = SetSpecKey("s.yaml", kFile, "Service", "other", "state", "stopped");
  ASSERT_TRUE(state.ok()) << state.status().ToString();
  std::string want = kFile;
  want.replace(want.find("  state: running  # on purpose"), 30, "  state: stopped");
  EXPECT_EQ(*state, want);

  auto list = SetSpecKey("s.yaml", kFile, "Service", "other", "stoppedOn", "[a, b]");
  ASSERT_TRUE(list.ok()) << list.status().ToString();
  want = kFile;
  const std::string block = "  stoppedOn:\n    - a\n";
  want.replace(want.find(block), block.size(), "  stoppedOn: [a, b]\n");
  EXPECT_EQ(*list, want);
}

TEST(YamlEditTest, RemovingAKeyDropsAllItsLinesAndAnAbsentKeyIsANoOp) {
  auto out = SetSpecKey("s.yaml", kFile, "Service", "other", "stoppedOn", std::nullopt);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  std::string want = kFile;
  const std::string block = "  stoppedOn:\n    - a\n";
  want.erase(want.find(block), block.size());
  EXPECT_EQ(*out, want);
  auto same = SetSpecKey("s.yaml", kFile, "Service", "model", "stoppedOn", std::nullopt);
  ASSERT_TRUE(same.ok());
  EXPECT_EQ(*same, kFile);
}

TEST(YamlEditTest, FlowStyleSpecsUnknownDocumentsAndBadYamlAreRefused) {
  auto flow = SetSpecKey("c.yaml", "kind: Cluster\nmetadata: {name: c}\nspec: {state: running}\n",
                         "Cluster", "c", "state", "stopped");
  EXPECT_EQ(flow.status().code(), Code::kInvalid);
  EXPECT_NE(flow.status().message().find("by hand"), std::string::npos);
  EXPECT_EQ(SetSpecKey("s.yaml", kFile, "Service", "nope", "state", "stopped").status().code(),
            Code::kNotFound);
  EXPECT_EQ(SetSpecKey("s.yaml", "a: [\n", "Service", "model", "state", "stopped").status().code(),
            Code::kInvalid);
}

}  // namespace
}  // namespace clusterctl::desired_state
