// Coalescing across workers (Unbound's "mesh"): one upstream query per key at a time, whichever
// worker's clients asked. The first worker to miss leads and resolves; the others follow and are
// handed the outcome on their own loop.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "wire/answer.hpp"

namespace readyns::core {

// null: the resolution failed (the followers answer SERVFAIL).
using Outcome = std::shared_ptr<const wire::PreparedAnswer>;

class Mesh {
 public:
  class Member {
   public:
    // Called under the mesh's lock from the leader's thread: queue it for the member's loop.
    virtual void post(const std::string& key, Outcome outcome) = 0;

   protected:
    ~Member() = default;
  };

  // True if `member` leads the key (it must resolve and finish() it); false if another member
  // already does, and `member` will be posted the outcome.
  bool join(const std::string& key, Member* member);
  // Ends the flight of `key` led by `leader`, posting the outcome to every follower.
  void finish(const std::string& key, Member* leader, const Outcome& outcome);
  // A member going away: it gets no more posts; flights it led fail for their followers.
  void leave(Member* member);

 private:
  struct Flight {
    Member* leader;
    std::vector<Member*> followers;
  };
  std::mutex mutex_;
  std::unordered_map<std::string, Flight> flights_;
};

}  // namespace readyns::core
