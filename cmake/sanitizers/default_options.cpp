// Default options for the sanitized builds (TETHER_SANITIZE): linked into every executable, so a
// test binary, a daemon a test starts and a solver worker all halt on the first report and check
// for leaks, with or without scripts/test. ASAN_OPTIONS, LSAN_OPTIONS and UBSAN_OPTIONS in the
// environment still override each key (scripts/test adds log_path so that a report from a daemon
// cannot go unseen). TETHER_LSAN_SUPPRESSIONS is the tree's cmake/sanitizers/lsan.supp.
extern "C" {

// Called by the ASan runtime before main; the symbol is weak in the runtime.
const char* __asan_default_options() {  // NOLINT(bugprone-reserved-identifier)
  return "detect_leaks=1:halt_on_error=1:abort_on_error=0:strict_string_checks=1:"
         "check_initialization_order=1:detect_stack_use_after_return=1";
}

const char* __lsan_default_options() {  // NOLINT(bugprone-reserved-identifier)
  return "suppressions=" TETHER_LSAN_SUPPRESSIONS ":print_suppressions=0";
}

const char* __ubsan_default_options() {  // NOLINT(bugprone-reserved-identifier)
  return "halt_on_error=1:print_stacktrace=1";
}

}  // extern "C"
