// The request and the answer as the API's handlers see them
// (api_detail::Request, api_detail::Response), how the server fills a Request
// from the request target (DecodeUrl, ParseQuery) and how every answer is
// built (ReplyJson, ReplyError). Internal to the api library: shared by the
// server (api.cc: connections, limits, the listener) and the handlers
// (handlers.cc: routes, authentication, the endpoints); api/api.h only
// forward-declares Request and Response, so Boost.Beast stays out of it.
//
// Thread-safety: pure functions; a Request or Response belongs to one call.
#pragma once

#include <boost/beast/http/fields.hpp>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace clusterctl::api::api_detail {

// One complete request as the handlers see it.
struct Request {
  std::string method;                              // As sent: "GET", "HEAD", "POST", ...
  std::string path;                                // Percent-decoded, without the query.
  std::multimap<std::string, std::string> params;  // Decoded query ('+' is a space).
  boost::beast::http::fields headers;              // Case-insensitive lookup.
  std::string body;
  std::string remote_addr;

  bool has_header(std::string_view name) const {
    return headers.find(boost::beast::string_view(name.data(), name.size())) != headers.end();
  }
  // The first value of header `name`; "" when absent.
  std::string get_header_value(std::string_view name) const {
    auto it = headers.find(boost::beast::string_view(name.data(), name.size()));
    if (it == headers.end()) return "";
    return std::string(it->value().data(), it->value().size());
  }
};

// One answer, built by the handlers.
struct Response {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;

  void set_header(const std::string& name, const std::string& value) {
    headers.emplace_back(name, value);
  }
  void set_content(std::string content, const std::string& content_type) {
    body = std::move(content);
    set_header("Content-Type", content_type);
  }
};

// Every JSON answer goes out through here: invalid UTF-8 in a view's data
// (a service's detail text, ...) is replaced instead of throwing.
void ReplyJson(Response& res, int status, const nlohmann::json& body);

// {"error": message, "parameter": parameter (when given)}.
void ReplyError(Response& res, int status, const std::string& message,
                const std::string& parameter = "");

// The value of a hex digit; -1 for any other character.
int HexValue(char c);

// "%2B" -> '+'; with `plus_is_space`, '+' -> ' ' (query strings). A '%' not
// followed by two hex digits stays as it is.
std::string DecodeUrl(std::string_view s, bool plus_is_space);

// "a=1&b=&c" -> {a: 1, b: "", c: ""}; empty names are skipped.
std::multimap<std::string, std::string> ParseQuery(std::string_view query);

}  // namespace clusterctl::api::api_detail
