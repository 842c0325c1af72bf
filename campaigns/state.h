// The campaign state machine of PROTOCOL §4, as a pure function over (state, operator action).
//
//   created --start--> scheduled --(scheduler: window open)--> running
//   scheduled | running --pause--> paused_by_user
//   paused_by_user | paused_by_workflow --resume--> running (the engine turns it into scheduled when the
//                                                   window has not opened yet)
//   any non-terminal --terminate--> terminated_by_user
//   delete: allowed on created and on terminal states; the state does not change.
// The scheduler (engine.h) adds running -> paused_by_workflow | completed | aborted and
// scheduled -> paused_by_workflow (window closed before it opened).
#pragma once

#include <optional>
#include <string_view>

#include "protocol/core/result.h"

namespace dispatch::campaigns {

enum class State {
  created,
  scheduled,
  running,
  paused_by_user,
  paused_by_workflow,
  completed,
  aborted,
  terminated_by_user,
};

enum class Action { start, pause, resume, terminate, remove };

std::string_view to_string(State s);
std::string_view to_string(Action a);  // "start", "pause", "resume", "terminate", "delete"
std::optional<State> state_from_string(std::string_view s);
std::optional<Action> action_from_string(std::string_view s);

// completed, aborted, terminated_by_user.
bool is_terminal(State s);

// The state after `action`, or ErrorCode::conflict with the message
// "cannot <action> a campaign that is <state>" (e.g. "cannot pause a campaign that is completed").
core::Result<State> apply(State state, Action action);

}  // namespace dispatch::campaigns
