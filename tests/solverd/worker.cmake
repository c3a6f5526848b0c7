# solverd-worker tests: the real binary over pipes (corpus, protocol), the readers in-process,
# and a libFuzzer target for the readers.
add_library(tether_worker_test_harness STATIC ${CMAKE_CURRENT_LIST_DIR}/worker_harness.cpp)
target_include_directories(tether_worker_test_harness PUBLIC ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(tether_worker_test_harness PUBLIC nlohmann_json::nlohmann_json PRIVATE tether_warnings)
target_compile_definitions(tether_worker_test_harness PRIVATE
  TETHER_SOURCE_DIR="${PROJECT_SOURCE_DIR}" TETHER_BIN_DIR="${CMAKE_RUNTIME_OUTPUT_DIRECTORY}")

foreach(name corpus protocol)
  tether_add_gtest(solverd_worker_${name}_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/worker_${name}_test.cpp
    LIBS tether_worker_test_harness TIMEOUT 120 LABELS solverd)
  add_dependencies(solverd_worker_${name}_test solverd-worker)
endforeach()

tether_add_gtest(solverd_worker_reader_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/worker_reader_test.cpp
  LIBS tether_solverd_worker tether_worker_test_harness LABELS solverd)

# Built only with -DTETHER_FUZZ=ON and clang; run: bin/solverd_worker_reader_fuzz DIR SEEDS
tether_fuzz_target(solverd_worker_reader_fuzz SOURCES ${CMAKE_CURRENT_LIST_DIR}/worker_fuzz_readers.cpp
  LIBS tether_solverd_worker)
if(TARGET solverd_worker_reader_fuzz)
  # A short smoke run when the fuzzer was built: the seeds, then a fixed number of mutations
  # from a fixed seed, so that the run is the same every time. New inputs and artifacts go to a
  # scratch directory in the build tree (libFuzzer writes to its first corpus directory).
  # Leak detection is off: CoinLpIO leaks what it allocated when it throws on a bad model
  # (harmless in the worker, a process per solve).
  set(scratch ${CMAKE_CURRENT_BINARY_DIR}/worker_fuzz_scratch)
  file(MAKE_DIRECTORY ${scratch})
  add_test(NAME solverd_worker_reader_fuzz_smoke
    COMMAND solverd_worker_reader_fuzz -seed=1 -runs=20000 -timeout=10 -detect_leaks=0
            -artifact_prefix=${scratch}/ ${scratch} ${CMAKE_CURRENT_LIST_DIR}/worker_fuzz_corpus)
  set_tests_properties(solverd_worker_reader_fuzz_smoke PROPERTIES LABELS "solverd;fuzz" TIMEOUT 60)
endif()
