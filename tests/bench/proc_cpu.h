// The CPU time a process has used, from /proc: benchmarks report it per device next to their rates, a
// measure the shared VM's neighbours disturb far less than a rate.
#pragma once

#include <sys/types.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace dispatch::bench {

// CPU seconds (user + system) of all of the process's threads so far, from /proc/<pid>/stat; 0 when
// unreadable.
inline double cpu_seconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return 0;
  const auto close = line.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream rest(line.substr(close + 2));
  std::vector<std::string> f;
  for (std::string t; rest >> t;) f.push_back(t);
  if (f.size() < 13) return 0;
  // After the command: state(0) … utime(11) stime(12), in clock ticks.
  return (std::stod(f[11]) + std::stod(f[12])) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// Bytes the process has caused to be written to storage so far (/proc/<pid>/io write_bytes: file writes as
// they reach the page cache, e.g. SQLite's WAL frames and checkpoints); 0 when unreadable.
inline double written_bytes(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/io");
  std::string key;
  double value = 0;
  while (in >> key >> value) {
    if (key == "write_bytes:") return value;
  }
  return 0;
}

}  // namespace dispatch::bench
