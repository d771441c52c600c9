#include "cli/remote.h"

#include <httplib.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace clusterctl::cli {

namespace {

// Where the config that named `tokenFile` came from, for error messages.
std::string ConfigName(const Globals& g) {
  return g.config.source_path.empty() ? std::string("the config")
                                      : "the config \"" + g.config.source_path + "\"";
}

// The Status code for a non-2xx answer of clusterd: what went wrong on
// whose side decides how a caller (and the user) reacts.
Code CodeForHttpStatus(int status) {
  switch (status) {
    case 400:
    case 405:
    case 411:
    case 413:
    case 415:
    case 431:
      return Code::kInvalid;  // Our request was wrong.
    case 401:
    case 403:
      return Code::kPermission;
    case 404:
      return Code::kNotFound;
    case 409:
      return Code::kConflict;
    case 408:
    case 429:
    case 503:
      return Code::kUnavailable;
    case 504:
      return Code::kTimeout;
    default:
      return status >= 500 ? Code::kInternal : Code::kInvalid;
  }
}

// What the user can do about an answer of `status`.
std::string HintForHttpStatus(int status, const Globals& g) {
  switch (status) {
    case 401:
      return "; check that tokenFile in " + ConfigName(g) +
             " holds the same token as clusterd's tokenFile";
    case 408:
    case 429:
    case 503:
      return "; clusterd is busy or cannot answer now: retry shortly, and look at its log if "
             "this persists";
    default:
      return status >= 500 ? "; this is a fault in clusterd: see its log for the detail" : "";
  }
}

}  // namespace

std::string ServerUrl(const Globals& g) {
  if (!g.server_flag.empty()) return g.server_flag;
  return "http://" + g.config.listen;
}

bool UseServer(const Globals& g) {
  if (!g.server_flag.empty()) return true;
  // A clusterd answering on the configured address owns the data directory.
  // (Probing the store's lock instead would take it, racing a starting daemon.)
  httplib::Client client(ServerUrl(g));
  client.set_connection_timeout(0, 300000);
  client.set_read_timeout(2, 0);
  auto res = client.Get("/healthz");
  return res && res->status == 200;
}

Result<std::string> ReadApiToken(const Globals& g) {
  const std::string& path = g.config.token_file;
  if (path.empty()) {
    return Status::Permission("no tokenFile in " + ConfigName(g) +
                              ": clusterd's API needs its bearer token; set tokenFile to a file "
                              "holding the token clusterd uses");
  }
  struct stat st {};
  if (stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
    return Status::Permission("cannot read the API token file \"" + path + "\" (tokenFile in " +
                              ConfigName(g) + "): it is a directory; name the file itself");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int err = errno;
    return Status::Permission("cannot read the API token file \"" + path + "\" (tokenFile in " +
                              ConfigName(g) + "): " + std::strerror(err) +
                              "; check the path and that this user may read it");
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) {
    return Status::Permission("cannot read the API token file \"" + path + "\" (tokenFile in " +
                              ConfigName(g) + "); check that this user may read it");
  }
  std::string token = text.str();
  token = token.substr(0, token.find('\n'));
  while (!token.empty() && (token.back() == '\r' || token.back() == ' ' || token.back() == '\t')) {
    token.pop_back();
  }
  if (token.empty()) {
    return Status::Permission("the API token file \"" + path + "\" (tokenFile in " + ConfigName(g) +
                              ") is empty: write clusterd's token on its first line");
  }
  return token;
}

Result<nlohmann::json> CallServer(const Globals& g, const std::string& method,
                                  const std::string& path, const nlohmann::json& body) {
  Result<std::string> token = ReadApiToken(g);
  if (!token.ok()) return token.status();
  const std::string url = ServerUrl(g);
  httplib::Client client(url);
  client.set_connection_timeout(5, 0);
  client.set_read_timeout(60, 0);
  httplib::Headers headers = {{"Authorization", "Bearer " + *token},
                              {"X-Clusterctl-Actor", CurrentActor()}};
  httplib::Result res =
      method == "POST"
          ? client.Post(path.c_str(), headers, body.is_null() ? std::string("{}") : body.dump(),
                        "application/json")
          : client.Get(path.c_str(), headers);
  if (!res) {
    return Status::Unavailable("cannot reach clusterd at " + url + ": " +
                               httplib::to_string(res.error()));
  }
  nlohmann::json j = nlohmann::json::parse(res->body, nullptr, false);
  if (res->status < 200 || res->status >= 300) {
    std::string msg;
    if (j.is_object() && j.contains("error") && j["error"].is_string()) {
      msg = j["error"].get<std::string>();
    } else {
      msg = res->body.substr(0, 200);
      if (msg.empty()) msg = "(no detail)";
    }
    return Status(CodeForHttpStatus(res->status),
                  "clusterd at " + url + " answered " + std::to_string(res->status) + " to " +
                      method + " " + path + ": " + msg + HintForHttpStatus(res->status, g));
  }
  if (j.is_discarded()) return nlohmann::json(res->body);
  return j;
}

}  // namespace clusterctl::cli
