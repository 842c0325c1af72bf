// Test helpers for the campaign engine: deterministic command ids, a fake device directory and a way
// to commit a TickResult into a snapshot the way the storage layer would.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "campaigns/engine.h"

namespace dispatch::campaigns::testing {

class CountingIds final : public IdGenerator {
 public:
  std::string next_command_id() override { return "cmd-" + std::to_string(++n_); }

 private:
  int n_ = 0;
};

class FakeDirectory final : public MemberLookup {
 public:
  void add(const std::string& hw, std::vector<std::string> tags = {}) {
    devices_.insert(hw);
    for (auto& t : tags) tags_[t].push_back(hw);
  }
  bool device_exists(const std::string& hw) const override { return devices_.count(hw) > 0; }
  std::vector<std::string> devices_with_tag(const std::string& tag) const override {
    auto it = tags_.find(tag);
    return it == tags_.end() ? std::vector<std::string>{} : it->second;
  }

 private:
  std::set<std::string> devices_;
  std::map<std::string, std::vector<std::string>> tags_;
};

// Commits `r` into `s`: the progress row and each changed execution row (matched by hardware id).
inline void commit(CampaignSnapshot& s, const TickResult& r) {
  if (r.progress) s.progress = *r.progress;
  for (const auto& c : r.changes) {
    for (auto& e : s.executions) {
      if (e.hardware_id == c.hardware_id) e = c;
    }
  }
}

inline const Execution& exec_of(const CampaignSnapshot& s, const std::string& hw) {
  for (const auto& e : s.executions) {
    if (e.hardware_id == hw) return e;
  }
  static const Execution none;
  return none;
}

// A document with `sizes.size()` groups of explicit ids "g<G>-d<N>" (N from 1), fast defaults.
inline CampaignDocument doc_with_groups(const std::vector<int>& sizes) {
  CampaignDocument d;
  d.name = "test";
  d.type = CampaignType::reboot;
  d.success.threshold_percent = 95;
  for (std::size_t g = 0; g < sizes.size(); ++g) {
    GroupSpec spec;
    for (int n = 1; n <= sizes[g]; ++n) {
      spec.hardware_ids.push_back("g" + std::to_string(g + 1) + "-d" + std::to_string(n));
    }
    d.groups.push_back(spec);
  }
  return d;
}

// A started snapshot (state scheduled) whose members are every id of the document.
inline CampaignSnapshot started(const CampaignDocument& d) {
  FakeDirectory dir;
  for (const auto& g : d.groups) {
    for (const auto& hw : g.hardware_ids) dir.add(hw);
  }
  CampaignSnapshot s;
  s.id = "camp-1";
  s.doc = d;
  s.created_at = 0;
  s.progress.state = State::scheduled;
  Expansion x = expand(d, dir);
  s.executions = x.executions;
  s.missing_per_group = x.missing_per_group;
  return s;
}

inline int count_state(const CampaignSnapshot& s, ExecState st) {
  int n = 0;
  for (const auto& e : s.executions) n += e.state == st ? 1 : 0;
  return n;
}

}  // namespace dispatch::campaigns::testing
