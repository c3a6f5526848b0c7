# Tests of the supervision library (agent/supervise): real processes in real cgroups.
add_executable(supervise_fixture ${CMAKE_CURRENT_LIST_DIR}/fixtures_supervise/supervise_fixture.cpp)
# tether_supervise for its fork-server mode.
target_link_libraries(supervise_fixture PRIVATE tether_supervise tether_warnings)

tether_add_gtest(supervise_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/supervise_test.cpp
  LIBS tether_supervise
  TIMEOUT 120
  LABELS agent)
add_dependencies(supervise_test supervise_fixture)
# The tests reach the private spawn header to force the fork fallback path.
target_include_directories(supervise_test PRIVATE ${PROJECT_SOURCE_DIR}/agent/supervise/src)
