// A private mosquitto on a free loopback port, started by the test and killed by its destructor.
#pragma once

#include <memory>
#include <string>

#include "tests/support/process.h"

namespace dispatch::testing {

class Broker {
 public:
  // extra_config lines are appended to the generated mosquitto.conf.
  explicit Broker(std::string extra_config = {});
  ~Broker();

  int port() const { return port_; }
  std::string uri() const { return "tcp://127.0.0.1:" + std::to_string(port_); }
  // Kills the broker (SIGKILL) and starts it again on the same port.
  void restart();
  void stop();
  void start();
  std::string log() const;
  // The mosquitto process id (benchmarks read its CPU time from /proc); -1 when stopped.
  pid_t pid() const { return proc_ ? proc_->pid() : -1; }

 private:
  TempDir dir_;
  int port_;
  std::string conf_path_;
  std::unique_ptr<Process> proc_;
};

}  // namespace dispatch::testing
