// DiskPackageFiles on a real directory; /dev/full stands in for a full disk.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <set>

#include "protocol/core/secrets.h"
#include "service/provisioning/disk_package_files.h"
#include "tests/support/process.h"

using namespace dispatch;
using core::ErrorCode;
using service::provisioning::DiskPackageFiles;
using Kind = service::provisioning::PackageFiles::Kind;

namespace {

void write_file(const std::string& path, const std::string& bytes) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  REQUIRE(f);
  std::fwrite(bytes.data(), 1, bytes.size(), f);
  std::fclose(f);
}

}  // namespace

TEST_CASE("disk files: chunks in any order, verified, published, read back", "[provisioning][files]") {
  testing::TempDir dir;
  DiskPackageFiles files(dir.path() + "/pkgs");
  REQUIRE(files.open().ok());
  REQUIRE(files.write_chunk("01A", 4, "efgh").ok());
  REQUIRE(files.write_chunk("01A", 0, "abcd").ok());
  REQUIRE(files.publish("01A", 8, core::sha256_hex("abcdefgh")).ok());
  CHECK_FALSE(std::filesystem::exists(files.path("01A", Kind::part)));
  CHECK(testing::read_file(files.path("01A", Kind::bin)) == "abcdefgh");
  CHECK(*files.read("01A", 2, 4) == "cdef");
  CHECK(*files.read("01A", 8, 0) == "");

  auto short_read = files.read("01A", 6, 4);
  REQUIRE_FALSE(short_read.ok());
  CHECK(short_read.error().code == ErrorCode::unavailable);
  CHECK(short_read.error().message.find(dir.path()) == std::string::npos);

  REQUIRE(files.unpublish("01A").ok());
  CHECK(testing::read_file(files.path("01A", Kind::part)) == "abcdefgh");
  CHECK(files.unpublish("01A").ok());  // nothing published: fine
  REQUIRE(files.remove_all("01A").ok());
  CHECK_FALSE(std::filesystem::exists(files.path("01A", Kind::part)));
}

TEST_CASE("disk files: an empty package publishes an empty file", "[provisioning][files]") {
  testing::TempDir dir;
  DiskPackageFiles files(dir.path());
  REQUIRE(files.publish("01E", 0, core::sha256_hex("")).ok());
  CHECK(std::filesystem::file_size(files.path("01E", Kind::bin)) == 0);
}

TEST_CASE("disk files: a size or digest mismatch discards the upload", "[provisioning][files]") {
  testing::TempDir dir;
  DiskPackageFiles files(dir.path());
  struct {
    const char* rule;
    std::int64_t size;
    std::string sha;
  } cases[] = {
      {"wrong digest", 4, core::sha256_hex("abcX")},
      {"wrong size", 5, core::sha256_hex("abcd")},
  };
  for (const auto& c : cases) {
    SECTION(c.rule) {
      REQUIRE(files.write_chunk("01B", 0, "abcd").ok());
      auto st = files.publish("01B", c.size, c.sha);
      REQUIRE_FALSE(st.ok());
      CHECK(st.error().code == ErrorCode::bad_request);
      CHECK(st.error().message.rfind(
                "upload does not match the package: got 4 bytes with sha256 " + core::sha256_hex("abcd"),
                0) == 0);
      CHECK_FALSE(std::filesystem::exists(files.path("01B", Kind::part)));
      CHECK_FALSE(std::filesystem::exists(files.path("01B", Kind::bin)));
    }
  }
}

TEST_CASE("disk files: a full disk is unavailable 'package storage is full'", "[provisioning][files]") {
  REQUIRE(std::filesystem::exists("/dev/full"));
  testing::TempDir dir;
  DiskPackageFiles files(dir.path());
  REQUIRE(::symlink("/dev/full", files.path("01F", Kind::part).c_str()) == 0);
  auto st = files.write_chunk("01F", 0, "abcd");
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().code == ErrorCode::unavailable);
  CHECK(st.error().message == "package storage is full");
}

TEST_CASE("disk files: an unwritable directory is unavailable and names no path", "[provisioning][files]") {
  testing::TempDir dir;
  DiskPackageFiles files(dir.path() + "/missing");  // never opened: the directory does not exist
  auto st = files.write_chunk("01G", 0, "abcd");
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().code == ErrorCode::unavailable);
  CHECK(st.error().message == "package storage failed: open: No such file or directory");
}

TEST_CASE("disk files: scan lists only <object id>.part and <object id>.bin", "[provisioning][files]") {
  testing::TempDir dir;
  DiskPackageFiles files(dir.path());
  for (const char* name : {"01A.part", "01B.bin", "notes.txt", "has space.bin", ".bin", "01C.bin.tmp"}) {
    write_file(dir.path() + "/" + name, "x");
  }
  auto entries = files.scan();
  REQUIRE(entries.ok());
  std::set<std::pair<std::string, Kind>> got;
  for (const auto& e : *entries) got.emplace(e.id, e.kind);
  CHECK(got == std::set<std::pair<std::string, Kind>>{{"01A", Kind::part}, {"01B", Kind::bin}});
}
