# toolchain-arm64.cmake - cross build for Debian's arm64 (Wiren Board 8):
#   cmake -S . -B build-pkg-arm64 -DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-arm64.cmake
# The compiler comes from crossbuild-essential-arm64, the libraries and their
# .pc files from the multiarch -dev packages (libsqlite3-dev:arm64 ...), all
# installed by scripts/deps-cross.sh arm64.
set(WBMB_DEB_ARCH arm64)
set(WBMB_TRIPLET aarch64-linux-gnu)
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
include(${CMAKE_CURRENT_LIST_DIR}/toolchain-common.cmake)
