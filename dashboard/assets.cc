#include "dashboard/assets.h"

namespace clusterctl::dashboard {

const Asset* Find(std::string_view name) {
  for (const Asset& a : All()) {
    if (std::string_view(a.path).substr(1) == name) return &a;
  }
  return nullptr;
}

}  // namespace clusterctl::dashboard
