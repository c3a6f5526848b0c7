# solverd: the daemon as a library (tests link it) plus a thin main. The worker binary
# (solverd-worker, worker.cmake) lands in the same bin/ directory, where solverd looks for it.
file(GLOB TETHER_SOLVERD_SOURCES CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/src/*.cpp)
add_library(tether_solverd STATIC ${TETHER_SOLVERD_SOURCES})
target_include_directories(tether_solverd PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/include)
target_link_libraries(tether_solverd PUBLIC tether_control tether_supervise tether_common tether_config PRIVATE PkgConfig::LIBCRYPTO tether_warnings)

if(EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/main.cpp)
  add_executable(solverd ${CMAKE_CURRENT_SOURCE_DIR}/main.cpp)
  target_link_libraries(solverd PRIVATE tether_solverd tether_warnings)
  # solverd spawns solverd-worker from beside itself: build them together.
  if(TARGET solverd-worker)
    add_dependencies(solverd solverd-worker)
  endif()
endif()
