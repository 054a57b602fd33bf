"""Small shared pieces: statistics, the server process's /proc counters, the machine's description."""

from __future__ import annotations

import math
import os
import platform
import subprocess
import time
from collections.abc import Sequence
from typing import Any

CLK_TCK = os.sysconf("SC_CLK_TCK")


def median(values: Sequence[float]) -> float:
    return percentile(values, 50)


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def summary(values: Sequence[float]) -> dict[str, Any]:
    """Median, p90, min, max and the raw samples (seconds unless the caller says otherwise)."""
    return {
        "n": len(values),
        "median": median(values),
        "p90": percentile(values, 90),
        "min": min(values) if values else math.nan,
        "max": max(values) if values else math.nan,
        "samples": [round(v, 6) for v in values],
    }


def now() -> float:
    return time.perf_counter()


def proc_cpu_s(pid: int) -> float:
    """utime + stime of one process, in seconds (clock-tick resolution)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def _cmd(args: list[str]) -> str:
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=20, check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine_info(api: Any, runtime: str) -> dict[str, Any]:
    """What the numbers were measured on."""
    mem_kb = 0
    with open("/proc/meminfo", encoding="ascii") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    cpu_model = ""
    with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    version = api.version()
    info = api.info()
    from tests.bench.baseline import host_python as _host_python

    host_python = _host_python()
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model,
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "os": _cmd(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]),
        "docker_server": version.get("Version"),
        "docker_api": version.get("ApiVersion"),
        "docker_cli": _cmd(["docker", "version", "--format", "{{.Client.Version}}"]),
        "storage_driver": info.get("Driver"),
        "cgroup_version": info.get("CgroupVersion"),
        "runtime": runtime,
        "runtimes": sorted(info.get("Runtimes", {})),
        "python_server": platform.python_version(),
        "python_host": _cmd([host_python, "-c", "import platform; print(platform.python_version())"]),
        "host_python_path": host_python,
        "loadavg_at_start": os.getloadavg(),
    }


def engine_pids() -> list[int]:
    """dockerd and containerd: the long-lived engine processes whose CPU time each run costs."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm", encoding="ascii") as f:
                    if f.read().strip() in ("dockerd", "containerd"):
                        pids.append(int(entry))
            except OSError:
                continue
    return pids


def cpu_of(pids: Sequence[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            total += proc_cpu_s(pid)
        except OSError:
            continue
    return total


def machine_cpu_s() -> float:
    """CPU seconds the whole machine has spent busy (every core, /proc/stat): the engine, runc,
    the shims, the sandboxes, the kernel, the server and the bench's own clients alike. At
    saturation a side's runs/s is the machine's cores over this per run."""
    with open("/proc/stat", encoding="ascii") as f:
        fields = [int(x) for x in f.readline().split()[1:9]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields) - idle) / os.sysconf("SC_CLK_TCK")


def balanced_order(sides: Sequence[str], i: int) -> list[str]:
    """Round ``i`` of a Williams design: every side goes first equally often and follows every
    other side equally often, over ``len(sides)`` rounds for an even count of sides and over
    twice that for an odd count (the square, then each of its rounds reversed).

    A batch's engine cost depends on what ran just before it (measured on 2026-12-01: 80 runs of SDK
    churn at c=16 cost dockerd 46 ms per run as the first batch after a warm-up, 27 ms as the
    second), so a plain rotation, where one side mostly follows the same other side, can tilt a
    few-percent comparison.
    """
    n = len(sides)
    if n < 2:
        raise ValueError(f"a design needs at least two sides, not {n}")
    first = [0]
    for k in range(1, n):
        first.append((k + 1) // 2 if k % 2 else n - k // 2)
    order = [sides[(j + i) % n] for j in first]
    return order[::-1] if n % 2 and (i // n) % 2 else order


def design_period(n: int) -> int:
    """How many rounds :func:`balanced_order` takes to balance ``n`` sides."""
    return n if n % 2 == 0 else 2 * n
