// BatchEffects: what the handlers of one batch committed, for the work that must wait until the batch's
// transaction is really committed (handlers run as savepoints inside it). Today that work is the
// durability failpoints of the test builds (after_delivery_commit, after_reply_commit, …): a module
// notes the boundary it crossed, and App fires each noted failpoint once after the commit. Domain code
// keeps no flags for it.
#pragma once

#include <algorithm>
#include <string_view>
#include <vector>

#include "service/failpoint.h"

namespace dispatch::service {

class BatchEffects {
 public:
  // name must be a string literal (it is kept as a view).
  void note(std::string_view name) {
    if (std::find(noted_.begin(), noted_.end(), name) == noted_.end()) noted_.push_back(name);
  }
  // Fires every noted failpoint once, in the order first noted, and forgets them.
  void after_commit() {
#ifdef DISPATCH_FAILPOINTS
    for (auto name : noted_) failpoint_hit(name);
#endif
    noted_.clear();
  }
  // A module's own transaction just ended: when it was nested in the batch's (a savepoint of an API
  // request), name is noted for after the batch's commit; when it was a real commit (a timer's work),
  // name fires now.
  void committed(std::string_view name, bool nested) {
    if (nested) {
      note(name);
      return;
    }
#ifdef DISPATCH_FAILPOINTS
    failpoint_hit(name);
#endif
  }
  bool noted(std::string_view name) const {
    return std::find(noted_.begin(), noted_.end(), name) != noted_.end();
  }

 private:
  std::vector<std::string_view> noted_;
};

}  // namespace dispatch::service
