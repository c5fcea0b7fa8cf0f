// Coalescing across workers (Unbound's "mesh"): one upstream query per key at a time.
//
// This holds whichever worker's clients asked: the first worker to miss leads and resolves; the
// others follow and are handed the outcome on their own loop.
#pragma once

#include <memory>
#include <mutex>
#include <string_view>
#include <vector>

#include "core/reusing_map.hpp"
#include "wire/answer.hpp"

namespace readyns::core {

// null: the resolution failed (the followers answer SERVFAIL, or stale where they may).
using Outcome = std::shared_ptr<const wire::PreparedAnswer>;

class Mesh {
 public:
  class Member {
   public:
    // Called under the mesh's lock from the leader's thread: queue it for the member's loop.
    // `key` is valid during the call only.
    virtual void post(std::string_view key, Outcome outcome) = 0;

   protected:
    ~Member() = default;
  };

  // True if `member` leads the key (it must resolve and finish() it); false if another member
  // already does, and `member` will be posted the outcome. The mesh keeps the leader's `key`
  // (not a copy) until its flight ends: the leader must keep the bytes valid until then.
  bool join(std::string_view key, Member* member);
  // Ends the flight of `key` led by `leader`, posting every follower the outcome: a shared copy
  // of `answer`, or null if `answer` is (the resolution failed). Without followers, no copy.
  void finish(std::string_view key, Member* leader, const wire::PreparedAnswer* answer);
  // A member going away: it gets no more posts; flights it led fail for their followers.
  void leave(Member* member);

 private:
  struct Flight {
    Member* leader;
    std::vector<Member*> followers;
  };
  std::mutex mutex_;
  ReusingMap<std::string_view, Flight> flights_;
};

}  // namespace readyns::core
