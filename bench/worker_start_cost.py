#!/usr/bin/python3
"""What a warm spare costs to make, two ways (issue 15: exec'd spares or a fork server).

  exec   posix_spawn of `solverd-worker -V` until it has exited: the exec, the dynamic linker
         (solverd-worker links some 35 shared libraries), static initialisers, exit. This is
         what every exec'd spare (and every cold worker) pays.
  fork   fork() of a process that has the worker's shared libraries loaded (this Python process,
         after dlopen of every library `ldd solverd-worker` lists), the child _exit()ing at once:
         what a fork server would pay per spare. Python's own memory makes it an upper bound.

Wall time per start and CPU per start (the child's from RUSAGE_CHILDREN plus the parent's own),
mean and p50 over N rounds, and `uptime`.

  bench/worker_start_cost.py [--worker build-release/bin/solverd-worker] [--rounds 200]
"""
import argparse
import ctypes
import os
import resource
import subprocess
import sys
import time

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

    libs = []
    for line in subprocess.run(["ldd", args.worker], capture_output=True, text=True).stdout.splitlines():
        parts = line.split("=>")
        if len(parts) == 2 and parts[1].strip().startswith("/"):
            libs.append(parts[1].split()[0])
    loaded = 0
    for lib in libs:
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
    f = measure(fork_one, args.rounds)
    print(f"exec solverd-worker -V : wall mean {e[0]:.2f} ms p50 {e[1]:.2f} ms, CPU {e[2]:.2f} ms per start")
    print(f"fork ({loaded} of {len(libs)} libraries loaded): wall mean {f[0]:.2f} ms p50 {f[1]:.2f} ms, "
          f"CPU {f[2]:.2f} ms per start")
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
