#include "campaigns/state.h"

#include <catch2/catch.hpp>

using dispatch::campaigns::Action;
using dispatch::campaigns::apply;
using dispatch::campaigns::State;
using dispatch::core::ErrorCode;

TEST_CASE("every (state, action) pair is legal or a conflict as the state machine says") {
  using S = State;
  using A = Action;
  const auto conflict = std::optional<State>{};
  struct {
    const char* rule;
    State from;
    Action action;
    std::optional<State> to;  // nullopt: conflict
  } cases[] = {
      {"start a created campaign schedules it", S::created, A::start, S::scheduled},
      {"start twice is a conflict", S::scheduled, A::start, conflict},
      {"start a running campaign is a conflict", S::running, A::start, conflict},
      {"start a paused campaign is a conflict", S::paused_by_user, A::start, conflict},
      {"start a workflow-paused campaign is a conflict", S::paused_by_workflow, A::start, conflict},
      {"start a completed campaign is a conflict", S::completed, A::start, conflict},
      {"start an aborted campaign is a conflict", S::aborted, A::start, conflict},
      {"start a terminated campaign is a conflict", S::terminated_by_user, A::start, conflict},
      {"pause a created campaign is a conflict", S::created, A::pause, conflict},
      {"pause a scheduled campaign", S::scheduled, A::pause, S::paused_by_user},
      {"pause a running campaign", S::running, A::pause, S::paused_by_user},
      {"pause twice is a conflict", S::paused_by_user, A::pause, conflict},
      {"pause a workflow-paused campaign is a conflict", S::paused_by_workflow, A::pause, conflict},
      {"pause a completed campaign is a conflict", S::completed, A::pause, conflict},
      {"pause an aborted campaign is a conflict", S::aborted, A::pause, conflict},
      {"pause a terminated campaign is a conflict", S::terminated_by_user, A::pause, conflict},
      {"resume a created campaign is a conflict", S::created, A::resume, conflict},
      {"resume a scheduled campaign is a conflict", S::scheduled, A::resume, conflict},
      {"resume a running campaign is a conflict", S::running, A::resume, conflict},
      {"resume a user-paused campaign", S::paused_by_user, A::resume, S::running},
      {"resume a workflow-paused campaign", S::paused_by_workflow, A::resume, S::running},
      {"resume a completed campaign is a conflict", S::completed, A::resume, conflict},
      {"resume an aborted campaign is a conflict", S::aborted, A::resume, conflict},
      {"resume a terminated campaign is a conflict", S::terminated_by_user, A::resume, conflict},
      {"terminate a created campaign", S::created, A::terminate, S::terminated_by_user},
      {"terminate a scheduled campaign", S::scheduled, A::terminate, S::terminated_by_user},
      {"terminate a running campaign", S::running, A::terminate, S::terminated_by_user},
      {"terminate a user-paused campaign", S::paused_by_user, A::terminate, S::terminated_by_user},
      {"terminate a workflow-paused campaign", S::paused_by_workflow, A::terminate, S::terminated_by_user},
      {"terminate a completed campaign is a conflict", S::completed, A::terminate, conflict},
      {"terminate an aborted campaign is a conflict", S::aborted, A::terminate, conflict},
      {"terminate twice is a conflict", S::terminated_by_user, A::terminate, conflict},
      {"delete a created campaign", S::created, A::remove, S::created},
      {"delete a scheduled campaign is a conflict", S::scheduled, A::remove, conflict},
      {"delete a running campaign is a conflict", S::running, A::remove, conflict},
      {"delete a user-paused campaign is a conflict", S::paused_by_user, A::remove, conflict},
      {"delete a workflow-paused campaign is a conflict", S::paused_by_workflow, A::remove, conflict},
      {"delete a completed campaign", S::completed, A::remove, S::completed},
      {"delete an aborted campaign", S::aborted, A::remove, S::aborted},
      {"delete a terminated campaign", S::terminated_by_user, A::remove, S::terminated_by_user},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    auto r = apply(c.from, c.action);
    if (c.to) {
      REQUIRE(r.ok());
      CHECK(r.value() == *c.to);
    } else {
      REQUIRE_FALSE(r.ok());
      CHECK(r.error().code == ErrorCode::conflict);
    }
  }
}

TEST_CASE("a refused action names the action and the state") {
  struct {
    const char* rule;
    State from;
    Action action;
    const char* message;
  } cases[] = {
      {"pause after completion", State::completed, Action::pause,
       "cannot pause a campaign that is completed"},
      {"delete while running", State::running, Action::remove, "cannot delete a campaign that is running"},
      {"start twice", State::scheduled, Action::start, "cannot start a campaign that is scheduled"},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    auto r = apply(c.from, c.action);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message == c.message);
  }
}

TEST_CASE("state and action names round-trip") {
  for (auto s : {State::created, State::scheduled, State::running, State::paused_by_user,
                 State::paused_by_workflow, State::completed, State::aborted, State::terminated_by_user}) {
    CHECK(dispatch::campaigns::state_from_string(dispatch::campaigns::to_string(s)) == s);
  }
  CHECK(dispatch::campaigns::action_from_string("delete") == Action::remove);
  CHECK_FALSE(dispatch::campaigns::state_from_string("TERMINATED_BY_WORKFLOW").has_value());
}
