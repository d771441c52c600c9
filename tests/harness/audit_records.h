// Reading a data directory's audit log from a test, while its owner
// (clusterctl or clusterd) may still run: a read-only (secondary) store.
// Header-only: include it from tests that link the controller library.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "audit/audit_log.h"
#include "store/store.h"

namespace clusterctl::testing {

// Every audit record of `data_dir`, oldest first.
inline std::vector<audit::AuditRecord> AuditRecordsOf(const std::string& data_dir) {
  auto store = store::Store::OpenReadOnly(data_dir);
  if (!store.ok()) return {};
  auto log = audit::AuditLog::Open(store->get());
  EXPECT_TRUE(log.ok()) << log.status().ToString();
  if (!log.ok()) return {};
  audit::AuditFilter f;
  f.limit = 0;
  f.oldest_first = true;
  auto records = (*log)->Query(f);
  EXPECT_TRUE(records.ok()) << records.status().ToString();
  return records.ok() ? *records : std::vector<audit::AuditRecord>{};
}

// Whether the audit log of `data_dir` verifies end to end.
inline bool AuditVerifies(const std::string& data_dir, std::string* reason) {
  auto store = store::Store::OpenReadOnly(data_dir);
  if (!store.ok()) return false;
  auto log = audit::AuditLog::Open(store->get());
  if (!log.ok()) return false;
  auto report = (*log)->Verify();
  if (!report.ok()) return false;
  if (reason != nullptr) *reason = report->reason;
  return report->ok;
}

}  // namespace clusterctl::testing
