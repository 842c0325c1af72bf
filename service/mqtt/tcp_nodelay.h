// TCP_NODELAY for Paho's sockets (stack.md P4): Paho does not expose its socket, so the MQTT link and
// the client set it on every connected TCP socket of the process after each connect.
#pragma once

namespace dispatch::service {

// Forces TCP_NODELAY on every connected TCP socket of this process; returns how many were changed.
int force_tcp_nodelay_all();

}  // namespace dispatch::service
