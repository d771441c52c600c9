# How each dependency is found on Debian 12 (see docs/dependencies.md).
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)
find_package(yaml-cpp CONFIG REQUIRED)          # target: yaml-cpp
find_package(nlohmann_json CONFIG REQUIRED)     # nlohmann_json::nlohmann_json
find_package(valijson CONFIG REQUIRED)          # valijson
find_package(spdlog CONFIG REQUIRED)            # spdlog::spdlog
find_package(fmt CONFIG REQUIRED)               # fmt::fmt
find_package(CLI11 CONFIG REQUIRED)             # CLI11::CLI11
find_package(libssh CONFIG REQUIRED)            # ssh
find_package(RocksDB CONFIG REQUIRED)           # RocksDB::rocksdb-shared
find_package(OpenSSL REQUIRED)                  # OpenSSL::Crypto (SHA-256, HMAC)
find_package(GTest CONFIG REQUIRED)             # GTest::gtest, GTest::gmock
find_package(Boost 1.74 CONFIG REQUIRED)        # Boost::headers (Beast, Asio: the API server)
find_package(date CONFIG REQUIRED)              # date::date-tz (time zones of sync windows)
pkg_check_modules(LIBGIT2 REQUIRED IMPORTED_TARGET libgit2)
pkg_check_modules(HIREDIS REQUIRED IMPORTED_TARGET hiredis)
pkg_check_modules(HTTPLIB REQUIRED IMPORTED_TARGET cpp-httplib)
if(CLUSTERCTL_BENCH)
  find_package(benchmark CONFIG REQUIRED)       # benchmark::benchmark
endif()

# clusterctl_library(NAME DIR [PUBLIC deps...] [PRIVATE deps...]) builds every
# .cc in DIR (except main.cc) into a static library. PUBLIC lists what the
# library's headers include (the libraries below it and header-only types they
# expose); PRIVATE what only its .cc files use, so a library above cannot
# include, say, RocksDB or libssh headers by accident: the layering of
# docs/architecture.md is enforced by the compiler's include path.
# Globbing lets parallel work add files without editing this list;
# CONFIGURE_DEPENDS re-globs on every build.
function(clusterctl_library name dir)
  file(GLOB srcs CONFIGURE_DEPENDS ${dir}/*.cc)
  list(FILTER srcs EXCLUDE REGEX ".*/main\\.cc$")
  add_library(${name} STATIC ${srcs})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR})
  target_link_libraries(${name} ${ARGN})
endfunction()
