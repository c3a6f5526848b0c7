#!/usr/bin/python3
"""What a warm spare costs to make (issue 15: `spare_start exec` or `spare_start fork`).

  exec -V      posix_spawn of `solverd-worker -V` until it has exited: the exec, the dynamic
               linker, static initialisers, exit. What every exec'd spare (and cold worker) pays.
  exec, EOF    the same, as a worker (no -V) whose stdin is at its end: it sets up as a spare
               does, finds no solve frame and exits; the row to compare with the fork server's.
  fork-server  a spare of the real fork server (`solverd-worker --fork-server`, as solverd runs
               it, DESIGN.md "Warm workers"): one request over its socket, the child cloned into
               a cgroup (CLONE_INTO_CGROUP | CLONE_PARENT: this process's child), stdin at its
               end, until it has exited. CPU includes the server's own (/proc/PID/stat). Needs
               root and a writable cgroup v2; skipped otherwise.
  fork         fork() of a process that has the worker's shared libraries loaded (this Python
               process, after dlopen of every library `ldd solverd-worker` lists), the child
               _exit()ing at once. Python's own memory makes it an upper bound.

Wall time per start and CPU per start (the child's from RUSAGE_CHILDREN plus the parent's own),
mean and p50 over N rounds, and `uptime`.

  bench/worker_start_cost.py [--worker build-release/bin/solverd-worker] [--rounds 200]
"""
import argparse
import ctypes
import os
import re
import resource
import socket
import struct
import subprocess
import sys
import time

from benchlib import cgroup2_mount, proc_cpu_ms

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cpu_ms(who):
    r = resource.getrusage(who)
    return (r.ru_utime + r.ru_stime) * 1000.0


def measure(start_one, rounds):
    walls = []
    c0, s0 = cpu_ms(resource.RUSAGE_CHILDREN), cpu_ms(resource.RUSAGE_SELF)
    for _ in range(rounds):
        t = time.monotonic()
        start_one()
        walls.append((time.monotonic() - t) * 1000.0)
    cpu = (cpu_ms(resource.RUSAGE_CHILDREN) - c0 + cpu_ms(resource.RUSAGE_SELF) - s0) / rounds
    walls.sort()
    return sum(walls) / rounds, walls[len(walls) // 2], cpu


# agent/supervise/include/tether/agent/supervise/fork_server.hpp: Request{magic, seq} with
# SCM_RIGHTS [cgroup dir, fd 0, fd 1, fd 2]; Reply{magic, seq, pid, error} with the pidfd.
FS_MAGIC = 0x74667331


def measure_fork_server(worker, rounds):
    """Mean and p50 wall ms and CPU ms per spare of the real fork server, or a reason to skip."""
    mount = cgroup2_mount()
    if mount is None or not os.access(mount, os.W_OK):
        return None, "no writable cgroup v2 (run as root)"
    cg = os.path.join(mount, f"tether-start-cost-{os.getpid()}")
    os.mkdir(cg)
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    srv = None
    try:
        # The server's end on its fd 3, as solverd puts it (dup2 leaves the copy inheritable).
        srv = subprocess.Popen([worker, "--fork-server"], close_fds=False, stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               preexec_fn=lambda: os.dup2(theirs.fileno(), 3))
        theirs.close()
        ours.settimeout(10)
        magic, seq, pid, err = struct.unpack("<IIii", ours.recv(16))
        if magic != FS_MAGIC or pid != srv.pid:
            return None, "the fork server did not announce itself"
        cg_fd = os.open(cg, os.O_RDONLY | os.O_DIRECTORY)
        null_in = os.open("/dev/null", os.O_RDONLY)
        null_out = os.open("/dev/null", os.O_WRONLY)
        state = {"seq": 0, "error": None}

        def spare_one():
            state["seq"] += 1
            socket.send_fds(ours, [struct.pack("<II", FS_MAGIC, state["seq"])], [cg_fd, null_in, null_out, null_out])
            msg, fds, _, _ = socket.recv_fds(ours, 16, 1)
            for fd in fds:
                os.close(fd)
            _, _, child, error = struct.unpack("<IIii", msg)
            if error != 0 or child <= 0:
                state["error"] = os.strerror(error)
                return
            os.waitpid(child, 0)  # CLONE_PARENT: the spare is ours

        spare_one()
        if state["error"]:
            return None, f"the fork server refused: {state['error']}"
        server_cpu0 = proc_cpu_ms(srv.pid)
        mean, p50, cpu = measure(spare_one, rounds)
        cpu += (proc_cpu_ms(srv.pid) - server_cpu0) / rounds
        for fd in (cg_fd, null_in, null_out):
            os.close(fd)
        return (mean, p50, cpu), None
    finally:
        ours.close()
        if srv is not None:
            srv.kill()
            srv.wait()
        os.rmdir(cg)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--worker", default=os.path.join(ROOT, "build-release/bin/solverd-worker"))
    ap.add_argument("--rounds", type=int, default=200)
    args = ap.parse_args()
    if not os.access(args.worker, os.X_OK):
        print(f"no solverd-worker at {args.worker}: build it or pass --worker", file=sys.stderr)
        return 1
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())

    def exec_one():
        pid = os.posix_spawn(args.worker, [args.worker, "-V"], os.environ,
                             file_actions=[(os.POSIX_SPAWN_OPEN, 1, "/dev/null", os.O_WRONLY, 0)])
        os.waitpid(pid, 0)

    def exec_eof_one():
        pid = os.posix_spawn(args.worker, [args.worker], os.environ,
                             file_actions=[(os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
                                           (os.POSIX_SPAWN_OPEN, 1, "/dev/null", os.O_WRONLY, 0),
                                           (os.POSIX_SPAWN_OPEN, 2, "/dev/null", os.O_WRONLY, 0)])
        os.waitpid(pid, 0)

    libs = []
    for line in subprocess.run(["ldd", args.worker], capture_output=True, text=True).stdout.splitlines():
        parts = line.split("=>")
        if len(parts) == 2 and parts[1].strip().startswith("/"):
            libs.append(parts[1].split()[0])
    loaded = 0
    for lib in libs:
        # A sanitizer runtime aborts when dlopen()ed into a process not started with it (a
        # sanitized tree's worker: smoke runs only, its figures mean nothing).
        if re.search(r"/lib(a|ub|l|t)san\.so", lib):
            continue
        try:
            ctypes.CDLL(lib, mode=ctypes.RTLD_GLOBAL)
            loaded += 1
        except OSError:
            pass

    def fork_one():
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)

    measure(exec_one, 5)  # page cache
    e = measure(exec_one, args.rounds)
    ee = measure(exec_eof_one, args.rounds)
    fs, why = measure_fork_server(args.worker, args.rounds)
    f = measure(fork_one, args.rounds)
    print(f"exec solverd-worker -V : wall mean {e[0]:.2f} ms p50 {e[1]:.2f} ms, CPU {e[2]:.2f} ms per start")
    print(f"exec solverd-worker, stdin at EOF: wall mean {ee[0]:.2f} ms p50 {ee[1]:.2f} ms, CPU {ee[2]:.2f} ms per start")
    if fs is None:
        print(f"fork server: skipped ({why})")
    else:
        print(f"fork server spare, stdin at EOF: wall mean {fs[0]:.2f} ms p50 {fs[1]:.2f} ms, "
              f"CPU {fs[2]:.2f} ms per start (the server's included)")
    print(f"fork ({loaded} of {len(libs)} libraries loaded): wall mean {f[0]:.2f} ms p50 {f[1]:.2f} ms, "
          f"CPU {f[2]:.2f} ms per start")
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
