# solverd-worker (DESIGN.md "Worker protocol"): the solver backends behind solverd, as the
# library tether_solverd_worker (tests and the fuzz target link it) and a thin main.
file(GLOB TETHER_SOLVERD_WORKER_SOURCES CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/worker/src/*.cpp)
add_library(tether_solverd_worker STATIC ${TETHER_SOLVERD_WORKER_SOURCES})
target_include_directories(tether_solverd_worker PUBLIC ${CMAKE_CURRENT_LIST_DIR}/worker/include)
# tether_protocol for the frame codec and the worker protocol: nothing of supervision.
target_link_libraries(tether_solverd_worker
  PUBLIC tether_common tether_protocol nlohmann_json::nlohmann_json Threads::Threads
  PRIVATE PkgConfig::COIN_CBC PkgConfig::COIN_OSICLP PkgConfig::COIN_CLP tether_glpk tether_warnings)

add_executable(solverd-worker ${CMAKE_CURRENT_LIST_DIR}/worker/main.cpp)
target_link_libraries(solverd-worker PRIVATE tether_solverd_worker tether_warnings)
