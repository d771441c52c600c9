// The field reference in docs/ is generated from schemas/ and must match it.
// Regenerate with CLUSTERCTL_UPDATE_GOLDEN=1 after changing a schema.
#include <gtest/gtest.h>

#include <cstdlib>

#include "desired-state/schema_doc.h"
#include "tests/harness/paths.h"
#include "tests/harness/temp_dir.h"

namespace clusterctl::desired_state {
namespace {

void ExpectGeneratedSectionCurrent(const std::string& doc_path,
                                   const std::vector<std::string>& schemas) {
  const std::string path = testing::SourceDir() + "/" + doc_path;
  const std::string current = testing::ReadFile(path);
  ASSERT_NE(current.find("<!-- BEGIN GENERATED REFERENCE -->"), std::string::npos) << path;
  const std::string wanted = ReplaceGeneratedSection(current, SchemaReference(schemas));
  if (std::getenv("CLUSTERCTL_UPDATE_GOLDEN") != nullptr) testing::WriteFile(path, wanted);
  EXPECT_EQ(current, wanted) << doc_path
                             << " is out of date with schemas/: run the docs test with "
                                "CLUSTERCTL_UPDATE_GOLDEN=1";
}

TEST(DocsTest, DesiredStateGuideMatchesTheSchemas) {
  ExpectGeneratedSectionCurrent("docs/desired-state.md",
                                {"document", "cluster", "machine", "service", "profile"});
}

TEST(DocsTest, ConfigurationGuideMatchesTheSchema) {
  ExpectGeneratedSectionCurrent("docs/configuration.md", {"config"});
}

TEST(DocsTest, ReferenceListsEveryFieldWithItsDefault) {
  const std::string ref = SchemaReference({"service"});
  EXPECT_NE(ref.find("| `stopTimeoutSeconds` | integer | `15` |"), std::string::npos) << ref;
  EXPECT_NE(ref.find("| `readiness.startTimeoutSeconds` | integer | `60` |"), std::string::npos);
  EXPECT_NE(ref.find("| `dependsOn[].condition` | ready \\| started | `\"ready\"` |"),
            std::string::npos);
  EXPECT_NE(ref.find("| `process.command` | list of string | required |"), std::string::npos);
}

}  // namespace
}  // namespace clusterctl::desired_state
