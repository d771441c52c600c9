// The clusterctl command-line tool: global flags, the subcommand table and
// exit codes of SPEC.md section 3. main.cc only calls Main().
#pragma once

namespace clusterctl::cli {

// Parses argv, runs one subcommand, returns the process exit code.
int Main(int argc, char** argv);

}  // namespace clusterctl::cli
