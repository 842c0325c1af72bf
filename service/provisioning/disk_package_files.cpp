#include "service/provisioning/disk_package_files.h"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "protocol/core/secrets.h"
#include "protocol/ids.h"
#include "service/failpoint.h"

namespace dispatch::service::provisioning {

using core::ErrorCode;
using core::make_error;
using core::Result;
using core::Status;

namespace {

constexpr std::size_t k_hash_block = 1 << 20;

// A file descriptor closed on scope exit.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  bool ok() const { return fd_ >= 0; }

 private:
  int fd_;
};

// Logs the path (for the operator) and answers without it (for the caller).
core::Error failed(std::string_view operation, const std::string& path) {
  const int err = errno;
  spdlog::error("package storage: cannot {} {}: {}", operation, path, std::strerror(err));
  return file_error(operation, err);
}

Status fsync_dir(const std::string& dir) {
  Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.ok()) return failed("open directory", dir);
  if (::fsync(fd.get()) != 0) return failed("fsync directory", dir);
  return {};
}

}  // namespace

core::Error file_error(std::string_view operation, int err) {
  if (err == ENOSPC || err == EDQUOT) return make_error(ErrorCode::unavailable, "package storage is full");
  return make_error(ErrorCode::unavailable,
                    fmt::format("package storage failed: {}: {}", operation, std::strerror(err)));
}

std::string DiskPackageFiles::path(const std::string& id, Kind kind) const {
  return dir_ + "/" + id + (kind == Kind::part ? ".part" : ".bin");
}

Status DiskPackageFiles::open() {
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  if (ec) {
    spdlog::error("package storage: cannot create directory {}: {}", dir_, ec.message());
    return file_error("create directory", ec.value());
  }
  return {};
}

Status DiskPackageFiles::write_chunk(const std::string& id, std::int64_t offset, std::string_view bytes) {
  const std::string part = path(id, Kind::part);
  Fd fd(::open(part.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
  if (!fd.ok()) return failed("open", part);
  std::size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n =
        ::pwrite(fd.get(), bytes.data() + done, bytes.size() - done, offset + static_cast<off_t>(done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return failed("write", part);
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd.get()) != 0) return failed("fsync", part);
  return {};
}

Status DiskPackageFiles::publish(const std::string& id, std::int64_t size, const std::string& sha256) {
  const std::string part = path(id, Kind::part);
  if (size == 0) {
    Fd create(::open(part.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
    if (!create.ok()) return failed("create", part);
  }
  std::string digest;
  std::int64_t file_size = 0;
  {
    Fd fd(::open(part.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.ok()) return failed("open", part);
    struct stat sb {};
    if (::fstat(fd.get(), &sb) != 0) return failed("stat", part);
    file_size = sb.st_size;
    core::Sha256 hasher;
    std::string block(k_hash_block, '\0');
    for (off_t at = 0;;) {
      ssize_t n = ::pread(fd.get(), block.data(), block.size(), at);
      if (n < 0) {
        if (errno == EINTR) continue;
        return failed("read", part);
      }
      if (n == 0) break;
      hasher.update(std::string_view(block.data(), static_cast<std::size_t>(n)));
      at += n;
    }
    digest = hasher.final_hex();
  }
  // Digests are not secret, but a comparison whose time leaks nothing costs nothing here.
  if (file_size != size || !core::constant_time_equal(digest, sha256)) {
    ::unlink(part.c_str());
    return make_error(
        ErrorCode::bad_request,
        fmt::format("upload does not match the package: got {} bytes with sha256 {}, expected {} "
                    "bytes with sha256 {}; the upload was discarded",
                    file_size, digest, size, sha256));
  }
  const std::string bin = path(id, Kind::bin);
  DISPATCH_FAILPOINT("before_package_rename");
  if (::rename(part.c_str(), bin.c_str()) != 0) return failed("rename", part);
  if (auto st = fsync_dir(dir_); !st) return st;
  DISPATCH_FAILPOINT("after_package_rename");
  return {};
}

Result<std::string> DiskPackageFiles::read(const std::string& id, std::int64_t offset, std::int64_t length) {
  const std::string bin = path(id, Kind::bin);
  std::string bytes(static_cast<std::size_t>(length), '\0');
  if (length == 0) return bytes;
  Fd fd(::open(bin.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.ok()) return failed("open", bin);
  std::size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n =
        ::pread(fd.get(), bytes.data() + done, bytes.size() - done, offset + static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n == 0) errno = EIO;  // shorter than its recorded size
    if (n <= 0) return failed("read", bin);
    done += static_cast<std::size_t>(n);
  }
  return bytes;
}

Status DiskPackageFiles::unpublish(const std::string& id) {
  const std::string bin = path(id, Kind::bin);
  if (::rename(bin.c_str(), path(id, Kind::part).c_str()) != 0) {
    if (errno == ENOENT) return {};
    return failed("rename", bin);
  }
  return fsync_dir(dir_);
}

Status DiskPackageFiles::remove(const std::string& id, Kind kind) {
  const std::string p = path(id, kind);
  if (::unlink(p.c_str()) != 0 && errno != ENOENT) return failed("remove", p);
  return {};
}

Result<std::vector<PackageFiles::Entry>> DiskPackageFiles::scan() {
  std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(dir_.c_str()), ::closedir);
  if (!d) return failed("list", dir_);
  std::vector<Entry> out;
  errno = 0;
  while (const dirent* e = ::readdir(d.get())) {
    const std::string_view name = e->d_name;
    for (Kind kind : {Kind::part, Kind::bin}) {
      const std::string_view ext = kind == Kind::part ? ".part" : ".bin";
      if (name.size() <= ext.size() || name.substr(name.size() - ext.size()) != ext) continue;
      const std::string_view id = name.substr(0, name.size() - ext.size());
      if (protocol::valid_object_id(id)) out.push_back(Entry{std::string(id), kind});
    }
  }
  if (errno != 0) return failed("list", dir_);
  return out;
}

}  // namespace dispatch::service::provisioning
