# Warnings for our own targets only: the generated llhttp sources and the COIN-OR headers
# are third-party code that we do not hold to our warning level.
add_library(tether_warnings INTERFACE)
target_compile_options(tether_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wnon-virtual-dtor
  $<$<CXX_COMPILER_ID:GNU>:-Wshadow=local> $<$<CXX_COMPILER_ID:Clang>:-Wshadow-uncaptured-local> -Wcast-align
  -Wnull-dereference -Wdouble-promotion -Wformat=2 -Wimplicit-fallthrough
  $<$<COMPILE_LANGUAGE:CXX>:-Wold-style-cast -Woverloaded-virtual>)
if(TETHER_WERROR)
  target_compile_options(tether_warnings INTERFACE -Werror)
endif()

if(TETHER_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=address,undefined)
  # Every executable links the default options (halt on error, leak checks, our suppressions),
  # so a daemon started by a test is held to the same rules as the test binary.
  add_library(tether_sanitizer_defaults OBJECT ${CMAKE_CURRENT_LIST_DIR}/sanitizers/default_options.cpp)
  target_compile_definitions(tether_sanitizer_defaults PRIVATE
    TETHER_LSAN_SUPPRESSIONS="${CMAKE_CURRENT_LIST_DIR}/sanitizers/lsan.supp")
  link_libraries(tether_sanitizer_defaults)
endif()

# ThreadSanitizer, for the one multi-threaded part (solverd-worker: its reader thread sets the flag
# the solver's callback polls). Exclusive with TETHER_SANITIZE; scripts/test builds only the
# worker's protocol and interrupt tests with it.
if(TETHER_TSAN)
  if(TETHER_SANITIZE OR TETHER_FUZZ)
    message(FATAL_ERROR "TETHER_TSAN cannot be combined with TETHER_SANITIZE or TETHER_FUZZ")
  endif()
  add_compile_options(-fsanitize=thread -fno-omit-frame-pointer)
  add_link_options(-fsanitize=thread)
endif()

if(TETHER_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "TETHER_FUZZ needs clang: configure with -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++")
  endif()
  # Every object is built with coverage instrumentation; only the fuzz targets link the libFuzzer main.
  add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
endif()

# tether_fuzz_target(NAME SOURCES... LIBS ...): a libFuzzer binary, built only with TETHER_FUZZ.
function(tether_fuzz_target name)
  cmake_parse_arguments(F "" "" "SOURCES;LIBS" ${ARGN})
  if(TETHER_FUZZ)
    add_executable(${name} ${F_SOURCES})
    target_link_libraries(${name} PRIVATE ${F_LIBS} tether_warnings)
    target_link_options(${name} PRIVATE -fsanitize=fuzzer)
  endif()
endfunction()
