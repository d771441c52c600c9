// Quoting for POSIX shells.
//
// Everything that comes from the desired state (commands, arguments,
// environment values, paths) reaches a remote shell only through these
// functions, so no value can inject shell syntax:
//
//   std::string cmd = "exec " + ShellJoin(service.command);  // never concatenate raw
//
// ShellQuote produces single-quote style: a word made only of characters
// that no shell treats specially ([A-Za-z0-9_@+:,./-]) is returned as is;
// anything else is wrapped in single quotes, with each ' written as '\''.
// The empty string becomes ''. The result is one word for sh, dash and bash.
//
// NUL bytes cannot be passed to a program through a command line; callers
// reject them before building a command (SshPool::Run refuses scripts with
// NUL).
//
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace clusterctl::reconcilers {

// `s` as one shell word: "a b" -> 'a b', "it's" -> 'it'\''s', "" -> ''.
std::string ShellQuote(std::string_view s);

// Every element quoted with ShellQuote, joined by single spaces: the shell
// sees exactly argv. An empty argv gives "".
std::string ShellJoin(const std::vector<std::string>& argv);

}  // namespace clusterctl::reconcilers
