# toolchain-armhf.cmake - cross build for Debian's armhf (Wiren Board 6/7):
#   cmake -S . -B build-pkg-armhf -DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-armhf.cmake
# The compiler comes from crossbuild-essential-armhf, the libraries and their
# .pc files from the multiarch -dev packages (libsqlite3-dev:armhf ...), all
# installed by scripts/deps-cross.sh armhf.
set(WBMB_DEB_ARCH armhf)
set(WBMB_TRIPLET arm-linux-gnueabihf)
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR arm)
include(${CMAKE_CURRENT_LIST_DIR}/toolchain-common.cmake)
