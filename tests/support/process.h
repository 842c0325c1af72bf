// Child processes for tests: start a program, signal it, wait for it. POSIX only.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace dispatch::testing {

class Process {
 public:
  // Starts argv[0] (a path) with argv; env entries "K=V" are added to the inherited environment.
  // stdout and stderr go to log_path when it is not empty (appended), else are inherited.
  Process(std::vector<std::string> argv, std::vector<std::string> env = {}, std::string log_path = {});
  ~Process();  // SIGKILL + reap if still running
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  bool running();
  void kill9();
  // Sends SIGTERM and waits up to timeout_ms; returns the exit status (or -1 on timeout / signal).
  int terminate(int timeout_ms = 10000);
  // Waits up to timeout_ms for exit; returns exit code, 128+signal, or -1 on timeout.
  int wait(int timeout_ms);

 private:
  pid_t pid_ = -1;
  int status_ = -1;
};

// A free TCP port on 127.0.0.1 (bound, then released), never one this process was given before.
int free_port();
// Polls until something accepts TCP connections on 127.0.0.1:port.
bool wait_for_port(int port, int timeout_ms);
// A fresh temporary directory, removed by the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string read_file(const std::string& path);

}  // namespace dispatch::testing
