# Install layout and the Debian package (CPack DEB). Included at the end of the top-level CMakeLists.txt.
#
#   cmake --install build --prefix /usr      binaries, systemd unit, sysusers file, sample config, docs
#   scripts/package [--check]                a Release build in build-package/ and its .deb (CPack)
#
# With the prefix /usr the sample config goes to /etc/dispatch/dispatchd.toml; with any other prefix
# (also `cmake --install --prefix DIR`) to <prefix>/etc/dispatch/.
include(GNUInstallDirs)
if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  set(dispatch_config_dir /etc/dispatch)
else()
  set(dispatch_config_dir ${CMAKE_INSTALL_SYSCONFDIR}/dispatch)
endif()

foreach(program dispatchd dispatchctl dispatch-sim)
  if(TARGET ${program})
    install(TARGETS ${program} RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
  endif()
endforeach()

set(dispatch_packaging_dir ${PROJECT_SOURCE_DIR}/packaging)
install(FILES ${dispatch_packaging_dir}/dispatchd.service DESTINATION lib/systemd/system)
install(FILES ${dispatch_packaging_dir}/sysusers.conf DESTINATION lib/sysusers.d
        RENAME dispatch.conf)
# The commented sample: what `dispatchd --print-config` prints for the packaged storage paths
# (tests/service/config_test.cpp checks that it is).
install(FILES ${dispatch_packaging_dir}/dispatchd.toml DESTINATION ${dispatch_config_dir})
install(FILES ${PROJECT_SOURCE_DIR}/README.md ${PROJECT_SOURCE_DIR}/docs/configuration.md
              ${PROJECT_SOURCE_DIR}/docs/deployment.md ${PROJECT_SOURCE_DIR}/docs/security.md
              ${PROJECT_SOURCE_DIR}/docs/protocol.md
        DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(FILES ${PROJECT_SOURCE_DIR}/LICENSE DESTINATION ${CMAKE_INSTALL_DOCDIR} RENAME copyright)

# ---- the .deb -------------------------------------------------------------------------------------
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME dispatch)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "dispatch maintainers <dispatch@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "MQTT command and campaign service for IoT fleets")
set(CPACK_PACKAGE_DESCRIPTION
    "dispatchd sends commands and phased rollout campaigns to esthesis-compatible devices over MQTT,\n"
    "records their replies and serves signed package downloads. Includes dispatchctl (operator CLI)\n"
    "and dispatch-sim (fleet simulator).")
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# Depends from the binaries' shared libraries (dpkg-shlibdeps): Paho C and C++, OpenSSL, fmt, spdlog,
# SQLite (SQLiteCpp is linked statically), libstdc++, libc.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "mosquitto")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "mosquitto-clients")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${dispatch_packaging_dir}/debian/conffiles ${dispatch_packaging_dir}/debian/postinst
    ${dispatch_packaging_dir}/debian/prerm ${dispatch_packaging_dir}/debian/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)

# ---- the package test (only for a .deb that exists: scripts/package --check passes it) -------------
set(DISPATCH_CHECK_DEB "" CACHE FILEPATH "A built .deb to check in the ctest test package:check-deb")
if(BUILD_TESTING AND DISPATCH_CHECK_DEB)
  add_test(NAME "package:check-deb" COMMAND ${PROJECT_SOURCE_DIR}/tests/package/check-deb ${DISPATCH_CHECK_DEB})
  set_tests_properties("package:check-deb" PROPERTIES TIMEOUT 300)
endif()
