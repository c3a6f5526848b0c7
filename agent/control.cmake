# The control protocol v1: frames, messages, the daemons' server, the proxy's client, and a
# blocking connection for tether-run and tests.
target_sources(tether_agent PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/src/control/frame.cpp
  ${CMAKE_CURRENT_LIST_DIR}/src/control/message.cpp
  ${CMAKE_CURRENT_LIST_DIR}/src/control/server.cpp
  ${CMAKE_CURRENT_LIST_DIR}/src/control/client.cpp
  ${CMAKE_CURRENT_LIST_DIR}/src/control/blocking_client.cpp
  ${CMAKE_CURRENT_LIST_DIR}/src/control/config.cpp)

# libFuzzer target for the frame decoder and message parser (only with -DTETHER_FUZZ=ON and clang).
# Seed corpus: tests/agent/fuzz-corpus-frames/.
tether_fuzz_target(agent_control_fuzz_frames
  SOURCES ${PROJECT_SOURCE_DIR}/tests/agent/control_fuzz_frames.cpp
  LIBS tether_agent)
