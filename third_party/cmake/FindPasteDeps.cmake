# SPDX-License-Identifier: BSD-2-Clause
# Finds the Debian-packaged dependencies of libpaste-xdp through pkg-config and exposes them as one
# imported target, PasteDeps::all. No dependency source lives in this tree (see third_party/README.md).
find_package(PkgConfig REQUIRED)
pkg_check_modules(PASTE_XDP REQUIRED IMPORTED_TARGET libxdp)
pkg_check_modules(PASTE_BPF REQUIRED IMPORTED_TARGET libbpf)
pkg_check_modules(PASTE_PMEM REQUIRED IMPORTED_TARGET libpmem)
pkg_check_modules(PASTE_LWIP REQUIRED IMPORTED_TARGET lwip)
pkg_check_modules(PASTE_URING REQUIRED IMPORTED_TARGET liburing>=2.3) # the io_uring transport
find_program(PASTE_CLANG NAMES clang clang-14 REQUIRED)

if(NOT TARGET PasteDeps::all)
  add_library(PasteDeps::all INTERFACE IMPORTED)
  target_link_libraries(PasteDeps::all INTERFACE
    PkgConfig::PASTE_XDP PkgConfig::PASTE_BPF PkgConfig::PASTE_PMEM PkgConfig::PASTE_LWIP
    PkgConfig::PASTE_URING)
endif()

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(PasteDeps REQUIRED_VARS PASTE_CLANG PASTE_XDP_FOUND PASTE_LWIP_FOUND)
