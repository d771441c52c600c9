// UTF-8: checking text read from files and machines, and replacing what is
// not UTF-8 before it goes into JSON or the audit log.
//
// Thread-safety: pure functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace clusterctl {

// Length (1-4) of the well-formed UTF-8 sequence starting at s[i], or 0 when
// there is none: a stray continuation byte, a truncated sequence, an overlong
// form, a surrogate or a code point above U+10FFFF. Requires i < s.size().
size_t Utf8SequenceLength(std::string_view s, size_t i);

// Whether all of `s` is well-formed UTF-8.
bool IsValidUtf8(std::string_view s);

// Replaces every byte that does not start a well-formed sequence with U+FFFD.
// Valid text (the usual case) is left untouched without a copy.
void SanitizeUtf8(std::string* s);

// Appends code point `cp` (<= U+10FFFF) encoded as UTF-8.
void AppendUtf8(std::string* out, uint32_t cp);

// Untrusted text (a service's log line) made safe to write to a terminal:
// every control character but tab becomes a visible escape, so no escape
// sequence, carriage return or backspace reaches the terminal raw. C0
// controls and DEL become "\x1b", "\x0d", "\x7f"; C1 controls (U+0080 to
// U+009F, which some terminals obey) "\u009b"; a byte that starts no
// well-formed UTF-8 sequence "\xff". Everything else, backslashes
// included, is kept as it is: printable text reads as the service wrote it.
std::string EscapeForTerminal(std::string_view s);

}  // namespace clusterctl
