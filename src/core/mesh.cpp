// Coalescing across workers.
#include "core/mesh.hpp"

#include <algorithm>

namespace readyns::core {

bool Mesh::join(std::string_view key, Member* member) {
  std::lock_guard lock(mutex_);
  auto [it, fresh] = flights_.try_insert(key);
  if (fresh) {
    it->second.leader = member;
    it->second.followers.clear();
    return true;
  }
  auto& f = it->second.followers;
  if (it->second.leader != member && std::find(f.begin(), f.end(), member) == f.end()) {
    f.push_back(member);
  }
  return false;
}

void Mesh::finish(std::string_view key, Member* leader, const wire::PreparedAnswer* answer) {
  std::lock_guard lock(mutex_);
  auto it = flights_.find(key);
  if (it == flights_.end() || it->second.leader != leader) return;
  if (!it->second.followers.empty()) {
    Outcome outcome = answer ? std::make_shared<const wire::PreparedAnswer>(*answer) : nullptr;
    for (Member* m : it->second.followers) m->post(key, outcome);
  }
  flights_.erase(it);
}

void Mesh::leave(Member* member) {
  std::lock_guard lock(mutex_);
  for (auto it = flights_.begin(); it != flights_.end();) {
    Flight& f = it->second;
    f.followers.erase(std::remove(f.followers.begin(), f.followers.end(), member),
                      f.followers.end());
    if (f.leader == member) {
      for (Member* m : f.followers) m->post(it->first, nullptr);
      it = flights_.erase(it);
    } else {
      ++it;
    }
  }
}

}  // namespace readyns::core
