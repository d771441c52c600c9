// The dashboard's static files (dashboard/*.html, *.js, *.css, *.svg),
// compiled into the binary by dashboard/embed.cmake; clusterd serves them at
// "/<name>" ("/" is index.html) without credentials: they hold no data. The
// page asks the authenticated API for everything it shows.
#pragma once

#include <string_view>
#include <vector>

namespace clusterctl::dashboard {

struct Asset {
  const char* path;               // "/index.html"
  std::string_view content_type;  // "text/html; charset=utf-8"
  std::string_view content;
};

// Every file, sorted by name. Thread-safe.
const std::vector<Asset>& All();

// The file named `name` ("index.html"), or null.
const Asset* Find(std::string_view name);

// Sent with every file: only this origin's scripts, styles and API.
inline constexpr const char* kContentSecurityPolicy =
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

}  // namespace clusterctl::dashboard
