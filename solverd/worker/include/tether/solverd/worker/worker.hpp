#pragma once
// solverd-worker's life: read one solve frame, solve while a reader thread watches for an
// interrupt, write log / incumbent frames as they come and one result (or error) frame.
//
// The interrupt flag is set by, whichever comes first: an {"type":"interrupt"} frame, the end
// of stdin (solverd is gone or gave up on us), an unreadable frame (the stream cannot be trusted
// any more), a failed write of our stdout, and SIGTERM (read from a signalfd, so no handler runs
// inside the solver). SIGINT is left alone: CBC and CLP install their own handlers for it.
//
// Exit codes: the worker protocol's (tether/solverd/worker/protocol.hpp, kExit*).
#include "tether/solverd/worker/protocol.hpp"

namespace tether::solverd::worker {

// Speaks the protocol on `in_fd` / `out_fd` (blocking fds, owned by the caller). SIGTERM must be
// blocked in every thread of the process before this is called (runWorkerOnStdio does it).
int runWorker(int in_fd, int out_fd);

// What main() calls: blocks SIGTERM, ignores SIGPIPE, moves the protocol off fds 0 and 1 (stray
// printf output of a solver library must not corrupt the frames: fd 1 becomes a copy of stderr,
// fd 0 /dev/null) and runs the worker.
int runWorkerOnStdio();

}  // namespace tether::solverd::worker
