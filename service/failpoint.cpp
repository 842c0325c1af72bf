#include "service/failpoint.h"

#ifdef DISPATCH_FAILPOINTS
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>

namespace dispatch::service {

namespace {
struct Failpoints {
  std::mutex mu;
  std::map<std::string, long, std::less<>> trigger;  // name → hit number that kills
  std::map<std::string, long, std::less<>> hits;
  Failpoints() {
    const char* spec = std::getenv("DISPATCH_FAILPOINTS");
    if (!spec) return;
    std::string s(spec);
    size_t pos = 0;
    while (pos < s.size()) {
      size_t comma = s.find(',', pos);
      std::string item = s.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
      size_t colon = item.find(':');
      if (colon != std::string::npos) trigger[item.substr(0, colon)] = std::atol(item.c_str() + colon + 1);
      if (comma == std::string::npos) break;
      pos = comma + 1;
    }
  }
};
Failpoints& failpoints() {
  static Failpoints f;
  return f;
}
}  // namespace

void failpoint_hit(std::string_view name) {
  auto& f = failpoints();
  if (f.trigger.empty()) return;
  std::lock_guard lk(f.mu);
  auto it = f.trigger.find(name);
  if (it == f.trigger.end()) return;
  long n = ++f.hits[std::string(name)];
  if (n == it->second) {
    static const char msg[] = "failpoint reached: killing the process\n";
    [[maybe_unused]] auto r = ::write(2, msg, sizeof msg - 1);
    ::kill(::getpid(), SIGKILL);
  }
}

}  // namespace dispatch::service
#endif
