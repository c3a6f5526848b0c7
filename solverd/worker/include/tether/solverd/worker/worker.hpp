#pragma once
// solverd-worker's life: read one solve frame, solve while a reader thread watches for an
// interrupt, write log / incumbent frames as they come and one result (or error) frame.
//
// The interrupt flag is set by, whichever comes first: an {"type":"interrupt"} frame, the end
// of stdin (solverd is gone or gave up on us), an unreadable frame (the stream cannot be trusted
// any more), a failed write of our stdout, and SIGTERM (read from a signalfd, so no handler runs
// inside the solver). SIGINT is left alone: CBC and CLP install their own handlers for it.
//
// Exit codes (DESIGN.md): 0 a result was written (including an interrupted solve), 1 invalid
// input (an error frame first: invalid_model with the reader's message, bad_message,
// unknown_solver, unknown_option, invalid_option), 2 solver error (an error frame
// solver_error), 3 the time limit was reached (the result frame, status time_limit, is written
// first, with the best incumbent).
namespace tether::solverd::worker {

inline constexpr int kExitSuccess = 0;
inline constexpr int kExitInvalidInput = 1;
inline constexpr int kExitSolverError = 2;
inline constexpr int kExitTimeout = 3;

// Speaks the protocol on `in_fd` / `out_fd` (blocking fds, owned by the caller). SIGTERM must be
// blocked in every thread of the process before this is called (runWorkerOnStdio does it).
int runWorker(int in_fd, int out_fd);

// What main() calls: blocks SIGTERM, ignores SIGPIPE, moves the protocol off fds 0 and 1 (stray
// printf output of a solver library must not corrupt the frames: fd 1 becomes a copy of stderr,
// fd 0 /dev/null) and runs the worker.
int runWorkerOnStdio();

}  // namespace tether::solverd::worker
