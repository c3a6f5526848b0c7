# Every dependency comes from Debian 12. When one is missing we stop with the package to install;
# scripts/setup-deps installs them all.
find_package(PkgConfig QUIET)
if(NOT PkgConfig_FOUND)
  message(FATAL_ERROR "pkg-config not found: apt-get install pkg-config (or run scripts/setup-deps)")
endif()

function(tether_require_pkg target module debian_package)
  pkg_check_modules(${target} QUIET IMPORTED_TARGET GLOBAL ${module})
  if(NOT ${target}_FOUND)
    message(FATAL_ERROR "${module} not found: apt-get install ${debian_package} (or run scripts/setup-deps)")
  endif()
endfunction()

tether_require_pkg(LIBUV libuv libuv1-dev)
tether_require_pkg(LIBSYSTEMD libsystemd libsystemd-dev)
# Outbound HTTP (solverd's webhooks): libcurl's multi interface on the libuv loop; the webhook
# signature's HMAC-SHA256 from OpenSSL's libcrypto.
tether_require_pkg(LIBCURL libcurl libcurl4-openssl-dev)
tether_require_pkg(LIBCRYPTO libcrypto libssl-dev)
# HTTP/2 framing, HPACK and flow control for tether-proxy (h2c downstream, grpc_pass upstream).
tether_require_pkg(LIBNGHTTP2 libnghttp2 libnghttp2-dev)
tether_require_pkg(COIN_CBC cbc coinor-libcbc-dev)
tether_require_pkg(COIN_CLP clp coinor-libclp-dev)
tether_require_pkg(COIN_OSICLP osi-clp coinor-libosi-dev)

find_package(spdlog CONFIG QUIET)
if(NOT spdlog_FOUND)
  message(FATAL_ERROR "spdlog not found: apt-get install libspdlog-dev (or run scripts/setup-deps)")
endif()
find_package(nlohmann_json CONFIG QUIET)
if(NOT nlohmann_json_FOUND)
  message(FATAL_ERROR "nlohmann_json not found: apt-get install nlohmann-json3-dev (or run scripts/setup-deps)")
endif()

find_path(GLPK_INCLUDE_DIR glpk.h)
find_library(GLPK_LIBRARY glpk)
if(NOT GLPK_INCLUDE_DIR OR NOT GLPK_LIBRARY)
  message(FATAL_ERROR "glpk not found: apt-get install libglpk-dev (or run scripts/setup-deps)")
endif()
add_library(tether_glpk INTERFACE)
target_include_directories(tether_glpk SYSTEM INTERFACE ${GLPK_INCLUDE_DIR})
target_link_libraries(tether_glpk INTERFACE ${GLPK_LIBRARY})

# llhttp: Debian's node-llhttp ships the generated C sources, not a library; we build them here.
set(LLHTTP_SOURCE_DIR /usr/share/llhttp CACHE PATH "where node-llhttp's generated C sources are")
set(LLHTTP_INCLUDE_DIR /usr/share/include/llhttp CACHE PATH "where llhttp.h is")
if(NOT EXISTS ${LLHTTP_SOURCE_DIR}/llhttp.c OR NOT EXISTS ${LLHTTP_INCLUDE_DIR}/llhttp.h)
  message(FATAL_ERROR "llhttp sources not found in ${LLHTTP_SOURCE_DIR}: apt-get install node-llhttp (or run scripts/setup-deps)")
endif()
add_library(llhttp STATIC ${LLHTTP_SOURCE_DIR}/llhttp.c ${LLHTTP_SOURCE_DIR}/api.c ${LLHTTP_SOURCE_DIR}/http.c)
target_include_directories(llhttp SYSTEM PUBLIC ${LLHTTP_INCLUDE_DIR})
set_target_properties(llhttp PROPERTIES POSITION_INDEPENDENT_CODE ON C_STANDARD 99)
target_compile_options(llhttp PRIVATE -w)

if(TETHER_BUILD_TESTS)
  find_package(GTest CONFIG QUIET)
  if(NOT GTest_FOUND)
    find_package(GTest QUIET)
  endif()
  if(NOT GTest_FOUND)
    message(FATAL_ERROR "GoogleTest not found: apt-get install googletest libgtest-dev libgmock-dev (or run scripts/setup-deps)")
  endif()
  # tests/systemd boots the units under systemd in a container; without nspawn it skips, so this
  # is said at configure time rather than refused.
  find_program(TETHER_SYSTEMD_NSPAWN systemd-nspawn)
  if(NOT TETHER_SYSTEMD_NSPAWN)
    message(STATUS "systemd-nspawn not found: tests/systemd will skip (apt-get install systemd-container, or run scripts/setup-deps)")
  endif()
endif()

find_package(Threads REQUIRED)

# Tools the packaging tests run (tests/packaging): lintian on the .deb, man for the manual pages,
# Debian's prometheus package for promtool and the server. Without one, its test skips and says so.
foreach(tool lintian man promtool prometheus)
  find_program(TETHER_TOOL_${tool} ${tool})
  if(NOT TETHER_TOOL_${tool})
    message(STATUS "${tool} not found: its packaging test will skip (scripts/setup-deps installs it)")
  endif()
endforeach()

# tests/http2 and bench/h2_*: Debian's python3-h2 and python3-grpcio (modules of /usr/bin/python3)
# and h2load (nghttp2-client). Without one, the test that needs it skips and says why.
if(TETHER_BUILD_TESTS)
  foreach(pair "h2:python3-h2" "grpc:python3-grpcio")
    string(REPLACE ":" ";" pair ${pair})
    list(GET pair 0 module)
    list(GET pair 1 package)
    execute_process(COMMAND /usr/bin/python3 -c "import ${module}" RESULT_VARIABLE missing OUTPUT_QUIET ERROR_QUIET)
    if(NOT missing EQUAL 0)
      message(STATUS "python3 module ${module} not found: tests/http2 will skip (apt-get install ${package}, or run scripts/setup-deps)")
    endif()
  endforeach()
  find_program(TETHER_TOOL_h2load h2load)
  if(NOT TETHER_TOOL_h2load)
    message(STATUS "h2load not found: bench/h2_compare.sh needs it (apt-get install nghttp2-client, or run scripts/setup-deps)")
  endif()
endif()
