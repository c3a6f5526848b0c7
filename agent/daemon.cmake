# tether-agent and tether-run: the daemon for existing services and its registration wrapper.
# The daemon's code lives in a library of its own (tests link it); the mains are one line each.
add_library(tether_agent_daemon STATIC
  ${CMAKE_CURRENT_LIST_DIR}/src/daemon/config_schema.cpp
  ${CMAKE_CURRENT_LIST_DIR}/src/daemon/settings.cpp
  ${CMAKE_CURRENT_LIST_DIR}/src/daemon/webhook.cpp
  ${CMAKE_CURRENT_LIST_DIR}/src/daemon/agent.cpp
  ${CMAKE_CURRENT_LIST_DIR}/src/daemon/agent_main.cpp
  ${CMAKE_CURRENT_LIST_DIR}/src/daemon/tether_run.cpp)
target_include_directories(tether_agent_daemon PUBLIC ${CMAKE_CURRENT_LIST_DIR}/src)
target_link_libraries(tether_agent_daemon PUBLIC tether_control tether_supervise tether_common PRIVATE tether_warnings)
if(TARGET tether_config)
  target_link_libraries(tether_agent_daemon PUBLIC tether_config)
endif()

add_executable(tether-agent ${CMAKE_CURRENT_LIST_DIR}/main_agent.cpp)
target_link_libraries(tether-agent PRIVATE tether_agent_daemon tether_warnings)

# tether-run links the same library but uses only the blocking control connection and
# config::defaultRuntimeDir(); the linker drops the rest.
add_executable(tether-run ${CMAKE_CURRENT_LIST_DIR}/main_run.cpp)
target_link_libraries(tether-run PRIVATE tether_agent_daemon tether_warnings)
