# Tests of the protocol module (agent/protocol).
tether_add_gtest(agent_control_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/control_frame_test.cpp
          ${CMAKE_CURRENT_LIST_DIR}/control_server_test.cpp
          ${CMAKE_CURRENT_LIST_DIR}/control_client_test.cpp
  LIBS tether_control)

# The frame decoder's libFuzzer target is declared in agent/protocol/CMakeLists.txt, so that it builds with
# -DTETHER_BUILD_TESTS=OFF too; its seed corpus is tests/agent/fuzz-corpus-frames/.

# The request-id rule and the cancel vocabulary of the protocol module.
tether_add_gtest(agent_protocol_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/request_id_test.cpp ${CMAKE_CURRENT_LIST_DIR}/vocabulary_test.cpp
  LIBS tether_protocol)
