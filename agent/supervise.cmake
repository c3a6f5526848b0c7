# Process supervision (cgroup v2 per target, pidfds, the interrupt-then-kill ladder, tombstones),
# part of tether_agent: used by tether-agent and by solverd.
target_sources(tether_agent PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/src/supervise/cgroup.cpp
  ${CMAKE_CURRENT_LIST_DIR}/src/supervise/spawn.cpp
  ${CMAKE_CURRENT_LIST_DIR}/src/supervise/supervisor.cpp
  ${CMAKE_CURRENT_LIST_DIR}/src/supervise/sys.cpp
  ${CMAKE_CURRENT_LIST_DIR}/src/supervise/target.cpp
  ${CMAKE_CURRENT_LIST_DIR}/src/supervise/tombstones.cpp)
