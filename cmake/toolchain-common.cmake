# toolchain-common.cmake - the part of cmake/toolchain-<arch>.cmake (arm64,
# armhf, amd64) that is the same for all; each sets WBMB_DEB_ARCH
# (Debian's name: arm64, armhf, amd64), WBMB_TRIPLET (the GNU/multiarch triplet),
# CMAKE_SYSTEM_NAME and CMAKE_SYSTEM_PROCESSOR, then include this file.
#
# Debian multiarch, no separate sysroot: the cross compiler
# (<triplet>-gcc from crossbuild-essential-<arch>) already searches
# /usr/include/<triplet>, /usr/include and /usr/lib/<triplet>, where the
# -dev packages of the foreign architecture (libsqlite3-dev:<arch> ...)
# put their headers and libraries.

set(CMAKE_C_COMPILER ${WBMB_TRIPLET}-gcc)
set(CMAKE_CXX_COMPILER ${WBMB_TRIPLET}-g++)
# find_library() looks in <prefix>/lib/<triplet> first: the foreign
# architecture's multiarch folder, never the host's /usr/lib/x86_64-linux-gnu.
set(CMAKE_LIBRARY_ARCHITECTURE ${WBMB_TRIPLET})
set(CMAKE_FIND_ROOT_PATH /usr/${WBMB_TRIPLET} /)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# pkg-config reads only the foreign architecture's .pc files (and the
# architecture-independent ones), never the host's.
set(ENV{PKG_CONFIG_LIBDIR} "/usr/lib/${WBMB_TRIPLET}/pkgconfig:/usr/share/pkgconfig")
set(ENV{PKG_CONFIG_PATH} "")
set(ENV{PKG_CONFIG_SYSROOT_DIR} "")

# Tests (ctest) and anything CMake runs of the target's programs go through
# qemu-user (qemu-user-static). The programs' dynamic loader
# (/lib/ld-linux-aarch64.so.1, /lib/ld-linux-armhf.so.3) and libraries are
# those of the multiarch packages (libc6:<arch> ...), at their usual paths,
# so no -L sysroot is needed.
if(WBMB_DEB_ARCH STREQUAL "arm64")
  set(WBMB_QEMU_NAME qemu-aarch64-static)
elseif(WBMB_DEB_ARCH STREQUAL "armhf")
  set(WBMB_QEMU_NAME qemu-arm-static)
else()
  set(WBMB_QEMU_NAME qemu-x86_64-static)
endif()
if(NOT CMAKE_CROSSCOMPILING_EMULATOR)
  find_program(WBMB_QEMU ${WBMB_QEMU_NAME})
  if(WBMB_QEMU)
    set(CMAKE_CROSSCOMPILING_EMULATOR ${WBMB_QEMU})
  endif()
endif()
