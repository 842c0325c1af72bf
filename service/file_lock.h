// FileLock: the advisory lock (flock) a dispatchd on SQLite holds on its database file for its whole
// life, so that `dispatchd --migrate-to` (and a second dispatchd on the same file) can tell that the file
// is in use by a running instance. The kernel releases it when the process ends, kill -9 included.
//
// flock locks are independent of the POSIX (fcntl) locks SQLite takes on the same file, but closing any
// descriptor of a file drops every POSIX lock the process holds on it: a FileLock must therefore outlive
// every SQLite connection of the process to the file (declare it before the Database).
#pragma once

#include <memory>
#include <string>

#include "protocol/core/result.h"

namespace dispatch::service {

class FileLock {
 public:
  // Opens path (creating an empty file when missing, mode 0644 less the umask, as SQLite would) and
  // takes an exclusive flock without waiting. Errors: conflict "<path> is in use by a running dispatchd"
  // when another process holds it; unavailable "cannot open <path>: <strerror>" otherwise.
  static core::Result<std::unique_ptr<FileLock>> acquire(const std::string& path);
  ~FileLock();
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

 private:
  explicit FileLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace dispatch::service
