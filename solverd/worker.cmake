# solverd-worker (DESIGN.md "Worker protocol"): the solver backends behind solverd, as the
# library tether_solverd_worker (tests and the fuzz target link it) and a thin main.
file(GLOB TETHER_SOLVERD_WORKER_SOURCES CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/worker/src/*.cpp)
add_library(tether_solverd_worker STATIC ${TETHER_SOLVERD_WORKER_SOURCES})
target_include_directories(tether_solverd_worker PUBLIC ${CMAKE_CURRENT_LIST_DIR}/worker/include)
# tether_protocol for the frame codec and the worker protocol: nothing of supervision.
target_link_libraries(tether_solverd_worker
  PUBLIC tether_common tether_protocol nlohmann_json::nlohmann_json Threads::Threads
  PRIVATE tether_glpk tether_warnings)

# COIN-OR linked statically where Debian ships the archives (its -dev packages do): a worker
# starts for every job (or spare), and resolving the shared COIN libraries' symbols was most of
# its start, 10.4 ms of CPU against 3.8 ms linked statically (`perf stat solverd-worker -V`).
# Sanitized and fuzzing trees keep the shared libraries: LeakSanitizer's suppressions
# (cmake/sanitizers/lsan.supp) name them.
option(TETHER_STATIC_COIN "link COIN-OR statically into solverd-worker (not in sanitized trees)" ON)
set(tether_coin_archives "")
if(TETHER_STATIC_COIN AND NOT TETHER_SANITIZE AND NOT TETHER_TSAN AND NOT TETHER_FUZZ)
  # pkg-config --static --libs cbc's order.
  foreach(lib CbcSolver Cbc Cgl OsiClp ClpSolver Clp Osi CoinUtils)
    find_library(TETHER_COIN_${lib}_ARCHIVE NAMES lib${lib}.a)
    if(NOT TETHER_COIN_${lib}_ARCHIVE)
      set(tether_coin_archives "")
      break()
    endif()
    list(APPEND tether_coin_archives ${TETHER_COIN_${lib}_ARCHIVE})
  endforeach()
endif()
if(tether_coin_archives)
  target_include_directories(tether_solverd_worker SYSTEM PRIVATE
    ${COIN_CBC_INCLUDE_DIRS} ${COIN_OSICLP_INCLUDE_DIRS} ${COIN_CLP_INCLUDE_DIRS})
  target_compile_options(tether_solverd_worker PRIVATE
    ${COIN_CBC_CFLAGS_OTHER} ${COIN_OSICLP_CFLAGS_OTHER} ${COIN_CLP_CFLAGS_OTHER})
  target_link_libraries(tether_solverd_worker PRIVATE ${tether_coin_archives} bz2 z lapack blas m)
  message(STATUS "solverd-worker: COIN-OR linked statically")
else()
  target_link_libraries(tether_solverd_worker PRIVATE PkgConfig::COIN_CBC PkgConfig::COIN_OSICLP PkgConfig::COIN_CLP)
endif()

add_executable(solverd-worker ${CMAKE_CURRENT_LIST_DIR}/worker/main.cpp)
# tether_supervise for the fork server (--fork-server: clone3 into a cgroup, fork_server.hpp).
target_link_libraries(solverd-worker PRIVATE tether_solverd_worker tether_supervise tether_warnings)
