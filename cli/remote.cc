#include "cli/remote.h"

#include <httplib.h>

#include <fstream>

namespace clusterctl::cli {

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

Result<nlohmann::json> CallServer(const Globals& g, const std::string& method,
                                  const std::string& path, const nlohmann::json& body) {
  std::string token;
  if (!g.config.token_file.empty()) {
    std::ifstream in(g.config.token_file);
    std::getline(in, token);
    while (!token.empty() && (token.back() == '\r' || token.back() == ' ')) token.pop_back();
  }
  const std::string url = ServerUrl(g);
  httplib::Client client(url);
  client.set_connection_timeout(5, 0);
  client.set_read_timeout(60, 0);
  httplib::Headers headers = {{"Authorization", "Bearer " + token},
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
    std::string msg = j.is_object() && j.contains("error") ? j["error"].dump() : res->body;
    Code code = res->status == 401   ? Code::kPermission
                : res->status == 404 ? Code::kNotFound
                                     : Code::kInvalid;
    return Status(code,
                  "clusterd at " + url + " answered " + std::to_string(res->status) + ": " + msg);
  }
  if (j.is_discarded()) return nlohmann::json(res->body);
  return j;
}

}  // namespace clusterctl::cli
