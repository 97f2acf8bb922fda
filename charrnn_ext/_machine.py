"""What the machine grants a process: the memory available to a new allocation (host, cgroup, RLIMIT_AS) and the one-line out-of-memory message."""
from __future__ import annotations

import os


def cgroup_room(proc_cgroup: str = "/proc/self/cgroup",
                cgroup_root: str = "/sys/fs/cgroup") -> int | None:
    """Bytes this process may still allocate under its cgroup's memory limit
    (cgroup v2 memory.max, or v1 memory.limit_in_bytes, minus current use),
    the smallest over the cgroup and the hierarchy's root; None where there is
    no limit or no cgroup."""
    try:
        with open(proc_cgroup) as f:
            entries = [line.rstrip("\n").split(":", 2) for line in f]
    except OSError:
        return None
    candidates = []  # (directory, limit file, usage file)
    for entry in entries:
        if len(entry) != 3:
            continue
        _, controllers, rel = entry
        if controllers == "":  # v2: one unified hierarchy
            for base in (os.path.join(cgroup_root, rel.lstrip("/")), cgroup_root):
                candidates.append((base, "memory.max", "memory.current"))
        elif "memory" in controllers.split(","):  # v1: the memory controller's hierarchy
            for root in (os.path.join(cgroup_root, "memory"), cgroup_root):
                for base in (os.path.join(root, rel.lstrip("/")), root):
                    candidates.append((base, "memory.limit_in_bytes", "memory.usage_in_bytes"))
    room = None
    for base, limit_name, usage_name in candidates:
        try:
            with open(os.path.join(base, limit_name)) as f:
                text = f.read().strip()
            if text == "max":
                continue
            limit = int(text)
            if limit >= 2**60:  # v1 writes "no limit" as a huge number
                continue
            with open(os.path.join(base, usage_name)) as f:
                usage = int(f.read().strip())
        except (OSError, ValueError):
            continue
        left = max(limit - usage, 0)
        room = left if room is None else min(room, left)
    return room


def out_of_memory(exc: MemoryError) -> str:
    """One line for a MemoryError: what could not be allocated (numpy's
    message says how much, for what shape) and what this process may still
    allocate (available_memory)."""
    reason = str(exc).strip().splitlines()
    available = available_memory()
    room = f"; {available / 2**30:.1f} GiB is available to this process" if available else ""
    return (f"out of memory: {reason[0] if reason else 'an allocation failed'}{room} "
            f"(try smaller sizes or lengths)")


def rlimit_room() -> int | None:
    """Bytes this process may still map under its address-space limit
    (RLIMIT_AS, ``ulimit -v``: the soft limit less the current virtual
    size), None without a limit."""
    try:
        import resource
        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    except (ImportError, AttributeError, OSError, ValueError):   # not POSIX
        return None
    if soft == resource.RLIM_INFINITY or soft < 0:
        return None
    size = 0
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    size = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    return max(soft - size, 0)


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation: the smallest of the
    host's MemAvailable (Linux; else the physical memory), the room left
    under the cgroup's limit (containers) and under RLIMIT_AS (``ulimit
    -v``); None where none is known."""
    host = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    host = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    if host is None:
        try:
            host = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (AttributeError, ValueError, OSError):  # not POSIX
            host = None
    known = [n for n in (host, cgroup_room(), rlimit_room()) if n is not None]
    return min(known) if known else None
