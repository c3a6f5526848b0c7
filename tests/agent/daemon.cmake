# Tests of tether-agent and tether-run (agent/daemon.cmake): the real binaries, a real Python
# service running cbc under tether-run, and (end to end) the real tether-proxy.
tether_add_gtest(agent_daemon_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/daemon_agent_test.cpp
  LIBS tether_agent_daemon
  TIMEOUT 120)
add_dependencies(agent_daemon_test tether-agent tether-run)

tether_add_gtest(agent_e2e_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/e2e_agent_test.cpp
  LIBS tether_agent_daemon
  TIMEOUT 120)
add_dependencies(agent_e2e_test tether-agent tether-run)
if(TARGET tether-proxy)
  add_dependencies(agent_e2e_test tether-proxy)
endif()

# The webhook client in process, against a real TCP listener (no daemon).
tether_add_gtest(agent_daemon_webhook_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/daemon_webhook_test.cpp
  LIBS tether_agent_daemon
  TIMEOUT 60)
