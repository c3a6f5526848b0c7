# solverd as a process (daemon_test) with its support library, shared with tests/e2e.
add_library(tether_solverd_test_support STATIC ${CMAKE_CURRENT_LIST_DIR}/daemon_support.cpp
  ${CMAKE_CURRENT_LIST_DIR}/chromium.cpp)
target_include_directories(tether_solverd_test_support PUBLIC ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(tether_solverd_test_support PUBLIC tether_agent tether_common GTest::gtest PRIVATE tether_warnings)
target_compile_definitions(tether_solverd_test_support PRIVATE
  TETHER_SOURCE_DIR="${PROJECT_SOURCE_DIR}" TETHER_BIN_DIR="${CMAKE_RUNTIME_OUTPUT_DIRECTORY}")

tether_add_gtest(solverd_daemon_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/daemon_test.cpp
  LIBS tether_solverd tether_solverd_test_support TIMEOUT 300 LABELS solverd)
if(TARGET solverd AND TARGET solverd-worker)
  add_dependencies(solverd_daemon_test solverd solverd-worker)
endif()

tether_add_gtest(solverd_request_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/daemon_request_test.cpp
  LIBS tether_solverd LABELS solverd)

tether_add_gtest(solverd_spare_worker_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/spare_worker_test.cpp
  LIBS tether_solverd_test_support TIMEOUT 120 LABELS solverd)
if(TARGET solverd AND TARGET solverd-worker)
  add_dependencies(solverd_spare_worker_test solverd solverd-worker)
endif()

tether_add_gtest(solverd_jobs_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/jobs_test.cpp
  LIBS tether_solverd_test_support TIMEOUT 120 LABELS solverd)
if(TARGET solverd AND TARGET solverd-worker)
  add_dependencies(solverd_jobs_test solverd solverd-worker)
endif()

tether_add_gtest(solverd_webhook_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/webhook_test.cpp
  LIBS tether_solverd_test_support PkgConfig::LIBCRYPTO TIMEOUT 120 LABELS solverd)
if(TARGET solverd AND TARGET solverd-worker)
  add_dependencies(solverd_webhook_test solverd solverd-worker)
endif()

# Headless Chromium opens the admin listener's status page (skipped without Debian's chromium).
tether_add_gtest(solverd_status_page_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/status_page_test.cpp
  LIBS tether_solverd_test_support TIMEOUT 180 LABELS "solverd;browser")
if(TARGET solverd AND TARGET solverd-worker)
  add_dependencies(solverd_status_page_test solverd solverd-worker)
endif()

# Request-Timeout: the caller's deadline caps the job's time limit (a hard model, 2 s).
tether_add_gtest(solverd_deadline_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/deadline_test.cpp
  LIBS tether_solverd_test_support TIMEOUT 60 LABELS solverd)
if(TARGET solverd AND TARGET solverd-worker)
  add_dependencies(solverd_deadline_test solverd solverd-worker)
endif()
