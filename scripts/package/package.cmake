# package.cmake - install rules and the Debian package (CPack DEB), included
# from the root CMakeLists.txt.
#
# Why CPack and not a debian/ folder: the repository's top level is fixed
# (no debian/ directory allowed), and CPack keeps one build system: the
# same CMake targets and install() rules make the build, the .deb
# (scripts/package.sh) and the Docker image's install tree (docker/build.sh,
# `cmake --install` with DESTDIR). Maintainer scripts, the conffiles list and
# the man page live beside this file in scripts/package/.
#
# Layout (FHS / Debian): /usr/bin/wb-mqtt-bridge, /etc/wb-mqtt-bridge.yaml
# (conffile), /lib/systemd/system/wb-mqtt-bridge.service,
# /var/lib/wb-mqtt-bridge/ (the database), /usr/share/man/man8/*.8.gz,
# /usr/share/wb-mqtt-confed/schemas/wb-mqtt-bridge.schema.json,
# /usr/share/doc/wb-mqtt-bridge/.

include(GNUInstallDirs)
set(WBMB_PKG_DIR ${CMAKE_SOURCE_DIR}/scripts/package)

install(TARGETS wb-mqtt-bridge RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(FILES ${WBMB_PKG_DIR}/wb-mqtt-bridge.yaml DESTINATION /etc)
# Wiren Board: keep the config and the database across firmware updates.
install(FILES ${WBMB_PKG_DIR}/wb-mqtt-bridge.wbconfigs DESTINATION /etc/wb-configs.d
        RENAME 22wb-mqtt-bridge)
install(FILES ${CMAKE_SOURCE_DIR}/config/systemd/wb-mqtt-bridge.service
        DESTINATION /lib/systemd/system)
install(DIRECTORY DESTINATION /var/lib/wb-mqtt-bridge
        DIRECTORY_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE)
install(FILES ${CMAKE_SOURCE_DIR}/config/wb-mqtt-bridge.schema.json
        DESTINATION ${CMAKE_INSTALL_DATADIR}/wb-mqtt-confed/schemas)
install(FILES ${CMAKE_SOURCE_DIR}/config/example.yaml ${CMAKE_SOURCE_DIR}/README.md
        DESTINATION ${CMAKE_INSTALL_DOCDIR})

# The man page is written in roff (scripts/package/wb-mqtt-bridge.8) and
# gzipped here (-n: no time stamp, so the package is reproducible).
find_program(GZIP_EXECUTABLE gzip REQUIRED)
configure_file(${WBMB_PKG_DIR}/wb-mqtt-bridge.8 ${CMAKE_BINARY_DIR}/man/wb-mqtt-bridge.8 @ONLY)
add_custom_command(OUTPUT ${CMAKE_BINARY_DIR}/man/wb-mqtt-bridge.8.gz
  COMMAND ${GZIP_EXECUTABLE} -9nf -k ${CMAKE_BINARY_DIR}/man/wb-mqtt-bridge.8
  DEPENDS ${CMAKE_BINARY_DIR}/man/wb-mqtt-bridge.8
  COMMENT "gzip wb-mqtt-bridge.8")
add_custom_target(wbmb_manpage ALL DEPENDS ${CMAKE_BINARY_DIR}/man/wb-mqtt-bridge.8.gz)
install(FILES ${CMAKE_BINARY_DIR}/man/wb-mqtt-bridge.8.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man8)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME wb-mqtt-bridge)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "wb-mqtt-bridge maintainers <wb-mqtt-bridge@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "MQTT device state bridge with SQLite persistence for Wiren Board")
# The long description (dpkg shows the summary above it).
set(CPACK_PACKAGE_DESCRIPTION "wb-mqtt-bridge turns MQTT messages of devices into validated device states,
persists every transition to SQLite with group commit, restores them at
start-up, mirrors devices as Wiren Board virtual devices, runs actions and
scenarios, and serves an HTTP API. Runs as a systemd notify service.")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
# A cross build (cmake/toolchain-<arch>.cmake sets WBMB_DEB_ARCH) packages
# for its target: without this CPack would write dpkg's own (host) arch.
if(WBMB_DEB_ARCH)
  set(CPACK_DEBIAN_PACKAGE_ARCHITECTURE ${WBMB_DEB_ARCH})
elseif(CMAKE_CROSSCOMPILING)
  message(FATAL_ERROR "cross build without WBMB_DEB_ARCH: use cmake/toolchain-<arch>.cmake")
endif()
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE "https://github.com/wirenboard")
# Runtime libraries only, computed by dpkg-shlibdeps from the linked .so
# files (libsqlite3-0, libjson-c5, libyaml-0-2, libuuid1, libc6; checked
# with dpkg -S). libpaho-mqtt1.3, libmicrohttpd12 and libpq5 are loaded with
# dlopen() (src/mqtt/paho_api.h, src/http/mhd_api.h, src/store/pq_api.h), so dpkg-shlibdeps
# cannot see them: they are named here.
# Without dpkg-shlibdeps, the whole list unversioned.
find_program(DPKG_SHLIBDEPS dpkg-shlibdeps)
if(DPKG_SHLIBDEPS)
  set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
  set(CPACK_DEBIAN_PACKAGE_DEPENDS "libpaho-mqtt1.3, libmicrohttpd12, libpq5")
else()
  set(CPACK_DEBIAN_PACKAGE_DEPENDS
      "libc6, libpaho-mqtt1.3, libsqlite3-0, libjson-c5, libyaml-0-2, libmicrohttpd12, libpq5, libuuid1")
endif()
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "mosquitto, mosquitto-clients, sqlite3")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${WBMB_PKG_DIR}/conffiles ${WBMB_PKG_DIR}/postinst ${WBMB_PKG_DIR}/prerm
    ${WBMB_PKG_DIR}/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
