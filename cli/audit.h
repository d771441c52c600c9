// clusterctl audit: query, follow, verify, export and show the audit log
// (SPEC.md sections 3 and 5; the log itself is audit/audit_log.h).
//
//   clusterctl audit [--since T] [--until T] [--service S] [--machine M]
//                    [--action A] [--result R] [--revision SHA] [--actor WHO]
//                    [--trigger T] [--limit N] [--reverse] [--follow]
//   clusterctl audit verify
//   clusterctl audit export [filters]     JSON lines, oldest first, no limit
//   clusterctl audit show SEQ
//
// The data directory is opened read-only (a RocksDB secondary), so every
// form works while clusterd runs and on a copy of a data directory.
//
// Exit codes: 0 (also when nothing matches), 1 on an error or an invalid
// filter; `audit verify` 0 intact, 1 broken.
#pragma once

#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "cli/context.h"

namespace clusterctl::cli {

// Registers the flags and subcommands of `audit` on `sub`; the returned
// function runs whichever form was given. `g` must outlive the function.
CommandFn SetupAudit(CLI::App* sub, Globals* g);

}  // namespace clusterctl::cli
