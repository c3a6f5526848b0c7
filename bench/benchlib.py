"""What the Python benchmarks share: a process's CPU time and where cgroup v2 is mounted."""
import os


def proc_cpu_ms(pid):
    """utime + stime of `pid` from /proc/PID/stat, in milliseconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000.0 / os.sysconf("SC_CLK_TCK")


def cgroup2_mount():
    """The cgroup v2 mount point (/sys/fs/cgroup/unified on a hybrid host), or None."""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split(" - ")
            if len(parts) == 2 and parts[1].startswith("cgroup2 "):
                return line.split()[4]
    return None
