// A hash map that reuses the nodes of the entries it erases for later inserts.
//
// Kept nodes mean that a map whose size comes and goes (flights in progress) allocates nothing in
// steady state.
#pragma once

#include <unordered_map>
#include <utility>
#include <vector>

namespace readyns::core {

template <class Key, class Value, class Hash = std::hash<Key>>
class ReusingMap {
 public:
  using Map = std::unordered_map<Key, Value, Hash>;
  using iterator = typename Map::iterator;

  // Inserts `key` if it is absent; returns its entry and whether it is new. A new entry's value
  // is what an erased one left there (its vectors keep their capacity): the caller resets it.
  std::pair<iterator, bool> try_insert(const Key& key) {
    if (auto it = map_.find(key); it != map_.end()) return {it, false};
    if (spare_.empty()) return map_.try_emplace(key);
    typename Map::node_type node = std::move(spare_.back());
    spare_.pop_back();
    node.key() = key;
    return {map_.insert(std::move(node)).position, true};
  }
  // Erases the entry, keeping its node for a later insert.
  iterator erase(iterator it) {
    iterator next = std::next(it);
    spare_.push_back(map_.extract(it));
    return next;
  }

  iterator find(const Key& key) { return map_.find(key); }
  iterator begin() { return map_.begin(); }
  iterator end() { return map_.end(); }
  size_t size() const { return map_.size(); }

 private:
  Map map_;
  // As many as the map held at most at once, less what it holds now.
  std::vector<typename Map::node_type> spare_;
};

}  // namespace readyns::core
