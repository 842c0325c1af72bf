#include "tests/support/broker.h"

#include <fstream>
#include <stdexcept>

namespace dispatch::testing {

Broker::Broker(std::string extra_config) : port_(free_port()) {
  conf_path_ = dir_.path() + "/mosquitto.conf";
  std::ofstream conf(conf_path_);
  conf << "listener " << port_ << " 127.0.0.1\n"
       << "allow_anonymous true\n"
       << "persistence false\n"
       << "set_tcp_nodelay true\n"
       << "max_queued_messages 60000\n"
       << "max_inflight_messages 20\n"
       << "log_dest stderr\n"
       << extra_config << "\n";
  conf.close();
  start();
}

Broker::~Broker() { stop(); }

void Broker::start() {
  proc_ = std::make_unique<Process>(std::vector<std::string>{"/usr/sbin/mosquitto", "-c", conf_path_},
                                    std::vector<std::string>{}, dir_.path() + "/mosquitto.log");
  if (!wait_for_port(port_, 10000)) throw std::runtime_error("mosquitto did not start: " + log());
}

void Broker::stop() {
  if (proc_) proc_->kill9();
  proc_.reset();
}

void Broker::restart() {
  stop();
  start();
}

std::string Broker::log() const { return read_file(dir_.path() + "/mosquitto.log"); }

}  // namespace dispatch::testing
