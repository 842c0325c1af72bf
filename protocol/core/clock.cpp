#include "protocol/core/clock.h"

#include <chrono>

namespace dispatch::core {

TimeMs SystemClock::now_ms() const {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

}  // namespace dispatch::core
