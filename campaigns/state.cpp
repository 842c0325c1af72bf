#include "campaigns/state.h"

#include <string>

namespace dispatch::campaigns {

namespace {
constexpr State k_states[] = {State::created,        State::scheduled,          State::running,
                              State::paused_by_user, State::paused_by_workflow, State::completed,
                              State::aborted,        State::terminated_by_user};
constexpr Action k_actions[] = {Action::start, Action::pause, Action::resume, Action::terminate,
                                Action::remove};
}  // namespace

std::string_view to_string(State s) {
  switch (s) {
    case State::created:
      return "created";
    case State::scheduled:
      return "scheduled";
    case State::running:
      return "running";
    case State::paused_by_user:
      return "paused_by_user";
    case State::paused_by_workflow:
      return "paused_by_workflow";
    case State::completed:
      return "completed";
    case State::aborted:
      return "aborted";
    case State::terminated_by_user:
      return "terminated_by_user";
  }
  return "created";
}

std::string_view to_string(Action a) {
  switch (a) {
    case Action::start:
      return "start";
    case Action::pause:
      return "pause";
    case Action::resume:
      return "resume";
    case Action::terminate:
      return "terminate";
    case Action::remove:
      return "delete";
  }
  return "start";
}

std::optional<State> state_from_string(std::string_view s) {
  for (State st : k_states) {
    if (to_string(st) == s) return st;
  }
  return std::nullopt;
}

std::optional<Action> action_from_string(std::string_view s) {
  for (Action a : k_actions) {
    if (to_string(a) == s) return a;
  }
  return std::nullopt;
}

bool is_terminal(State s) {
  return s == State::completed || s == State::aborted || s == State::terminated_by_user;
}

core::Result<State> apply(State state, Action action) {
  std::optional<State> next;
  switch (action) {
    case Action::start:
      if (state == State::created) next = State::scheduled;
      break;
    case Action::pause:
      if (state == State::scheduled || state == State::running) next = State::paused_by_user;
      break;
    case Action::resume:
      if (state == State::paused_by_user || state == State::paused_by_workflow) next = State::running;
      break;
    case Action::terminate:
      if (!is_terminal(state)) next = State::terminated_by_user;
      break;
    case Action::remove:
      if (state == State::created || is_terminal(state)) next = state;
      break;
  }
  if (!next) {
    return core::make_error(
        core::ErrorCode::conflict,
        "cannot " + std::string(to_string(action)) + " a campaign that is " + std::string(to_string(state)));
  }
  return *next;
}

}  // namespace dispatch::campaigns
