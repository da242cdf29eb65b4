# toolchain-amd64.cmake - cross build for Debian's amd64 (x86-64 PCs, the
# Docker image) from another host (an arm64 one, say); on an amd64 host
# scripts/package.sh --arch amd64 is the native build and does not use it.
#   cmake -S . -B build-pkg-amd64 -DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-amd64.cmake
# The compiler comes from crossbuild-essential-amd64, the libraries and their
# .pc files from the multiarch -dev packages (libsqlite3-dev:amd64 ...), all
# installed by scripts/deps-cross.sh amd64.
set(WBMB_DEB_ARCH amd64)
set(WBMB_TRIPLET x86_64-linux-gnu)
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR x86_64)
include(${CMAKE_CURRENT_LIST_DIR}/toolchain-common.cmake)
