"""``python -m tests.security.report`` (``make security-report``): prove the sandbox, write it down.

Runs the whole hostile-program corpus against real servers under runc and under runsc, takes
a few measurements with one run at a time (time to ``oom``, wall-clock overshoot, the fork bomb's
outcome, hello-world latency), reads the sandbox containers' configuration from the engine, and
regenerates docs/SECURITY_NOTES.md from those results: the threat model, each protection with
the tests that prove it and its measured figure, the seed's experiments with their real output,
every difference between the two runtimes, and the known gaps.

Options: ``--runtimes runc,runsc`` (default both), ``--output PATH``, ``--repeat N`` (measurements).
Exit status 1 if any corpus case failed (the document is written anyway, failures included).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import httpx

from app.sandbox.docker.engine import LABEL_MANAGED, LABEL_OWNER, LABEL_POOL, SECCOMP_OPT, owner_id
from app.sandbox.runtimes import RUNSC_PIDS_HEADROOM
from tests.conftest import ROOT, ServerProcess
from tests.security.corpus import (
    CLASS_DOCS,
    CLASSES,
    CORPUS,
    PRELUDE,
    SANDBOX_CRASH_GAP,
    TIMEOUT_S,
    Case,
    Ctx,
    Outcome,
    Verdict,
    by_class,
    corpus_server_env,
    execute,
    execute_all,
    judge,
    make_ctx,
    new_canary,
)

RUNTIMES = ("runc", "runsc")
DEFAULT_OUTPUT = ROOT / "docs" / "SECURITY_NOTES.md"
CASES = {case.key: case for case in CORPUS}


# --- collecting ------------------------------------------------------------------------------------------


@dataclass
class RuntimeResults:
    runtime: str
    ctx: Ctx
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    verdicts: dict[str, Verdict] = field(default_factory=dict)
    corpus_s: float = 0.0
    measures: dict[str, list[Any]] = field(default_factory=dict)
    host_config: dict[str, Any] = field(default_factory=dict)
    still_serves: bool = False
    surfaces: dict[str, tuple[str, float, str]] = field(default_factory=dict)  # test -> (outcome, s, message)
    surface_out: dict[str, str] = field(default_factory=dict)  # test -> what it printed (its measurements)
    run_log_line: str = ""  # one of the server's per-run log lines, as written

    def out(self, key: str) -> Outcome | None:
        return self.outcomes.get(key)


def log(message: str) -> None:
    print(f"[security-report {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def sandbox_config(owner: str) -> dict[str, Any]:
    """HostConfig of one of the server's own warm sandboxes, as the engine sees it."""
    client = docker.from_env(timeout=20)
    try:
        found = client.api.containers(
            filters={"label": [f"{LABEL_MANAGED}=true", f"{LABEL_OWNER}={owner}", f"{LABEL_POOL}=true"]}
        )
        if not found:
            return {}
        info = client.api.inspect_container(found[0]["Id"])
    finally:
        client.close()
    host, config = info["HostConfig"], info["Config"]
    return {
        "Runtime": host.get("Runtime"),
        "User": config.get("User"),
        "NetworkMode": host.get("NetworkMode"),
        "NetworkDisabled": config.get("NetworkDisabled"),
        "ReadonlyRootfs": host.get("ReadonlyRootfs"),
        "Privileged": host.get("Privileged"),
        "CapDrop": host.get("CapDrop"),
        "CapAdd": host.get("CapAdd"),
        "SecurityOpt": [shown_security_opt(o) for o in host.get("SecurityOpt") or []],
        "Memory": host.get("Memory"),
        "MemorySwap": host.get("MemorySwap"),
        "PidsLimit": host.get("PidsLimit"),
        "NanoCpus": host.get("NanoCpus"),
        "Ulimits": host.get("Ulimits"),
        "Tmpfs": host.get("Tmpfs"),
        "ShmSize": host.get("ShmSize"),
        "IpcMode": host.get("IpcMode"),
        "Init": host.get("Init"),
        "Devices": host.get("Devices"),
        "Binds": host.get("Binds"),
        "Mounts": info.get("Mounts"),
        "Env": config.get("Env"),
    }


def shown_security_opt(option: str) -> str:
    """The seccomp profile travels inline (14 kB of JSON): named, not printed."""
    if not option.startswith("seccomp="):
        return option
    ours = "app/sandbox/docker/seccomp.json" if option == SECCOMP_OPT else "ANOTHER PROFILE"
    rules = len(json.loads(option.removeprefix("seccomp=")).get("syscalls", []))
    return f"seccomp=<{ours}: {rules} rules>"


SURFACE_FILES = ("tests/security/test_surfaces.py", "tests/security/test_session_surfaces.py")
SURFACES = "`, `".join(SURFACE_FILES)  # shown between backticks


def run_surfaces(runtime: str) -> tuple[dict[str, tuple[str, float, str]], dict[str, str]]:
    """The server-level attacks (tokens, watchers, forwarded headers, rate limits, engines, OOM under load;
    sessions and MCP) as pytest runs them, under ``runtime``: test name -> (passed/failed/skipped, seconds,
    message), and test name -> what the test printed (its measurements)."""
    with tempfile.TemporaryDirectory() as tmp:
        junit = Path(tmp) / "surfaces.xml"
        env = {k: v for k, v in os.environ.items() if not k.startswith("SCE_")} | {"SCE_RUNTIME": runtime}
        subprocess.run(
            [
                *(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "junit_logging=system-out"),
                *SURFACE_FILES,
                f"--junitxml={junit}",
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            timeout=3600,
        )
        if not junit.exists():
            return {}, {}
        found: dict[str, tuple[str, float, str]] = {}
        printed: dict[str, str] = {}
        for case in ET.parse(junit).getroot().iter("testcase"):
            problem = case.find("failure")
            problem = case.find("error") if problem is None else problem
            skipped = case.find("skipped")
            status = "failed" if problem is not None else "skipped" if skipped is not None else "passed"
            message = (problem.get("message") if problem is not None else "") or ""
            name = case.get("name", "?")
            found[name] = (status, float(case.get("time", 0)), message[:300])
            out = case.find("system-out")
            printed[name] = (out.text or "") if out is not None else ""
        return found, printed


def _case(key: str, **changes: Any) -> Case:
    from dataclasses import replace

    return replace(CASES[key], **changes)


async def measure(server: ServerProcess, ctx: Ctx, repeat: int) -> dict[str, list[Any]]:
    """One run at a time, so the figures are the sandbox's and not the corpus's contention."""
    m: dict[str, list[Any]] = {}

    async def sample(name: str, case: Case, n: int, pick: Callable[[Outcome], Any]) -> None:
        for _ in range(n):
            out = await execute(server.ws_url, case, ctx)
            m.setdefault(name, []).append(pick(out))

    def duration(out: Outcome) -> Any:
        e = out.exit or {}
        return {
            "reason": e.get("reason"),
            "code": e.get("exit_code"),
            "ms": e.get("duration_ms"),
            "client_s": out.elapsed_s,
        }

    await sample("hello", _case("exit/zero", code="print('hello world')\n"), repeat * 2, duration)
    await sample("oom_instant", CASES["memory/instant"], repeat, duration)
    await sample("oom_gradual", CASES["memory/gradual"], max(2, repeat // 2), duration)
    await sample("timeout_busy", CASES["cpu/busy_loop"], repeat, duration)
    await sample("timeout_sleep", CASES["cpu/sleep_forever"], max(2, repeat // 2), duration)
    await sample("fork_bomb", CASES["bombs/fork_until_refused"], 2, lambda o: {**duration(o), "out": o.stdout[-120:]})
    await sample("classic_fork_bomb", CASES["bombs/classic_fork_bomb"], 2, duration)
    await sample("output_cap", CASES["output/many_lines"], 2, lambda o: {**duration(o), "exit": o.exit})
    await sample(
        "python",
        _case("exit/zero", code="import sys, platform\nprint(sys.version.split()[0], platform.release())\n"),
        1,
        lambda o: o.stdout.strip(),
    )
    return m


async def collect_runtime(runtime: str, repeat: int) -> RuntimeResults:
    canary = new_canary()
    env = corpus_server_env(canary)
    env["SCE_RUNTIME"] = runtime
    server = ServerProcess(env)
    try:
        ctx = make_ctx(runtime, server.port, canary)
        results = RuntimeResults(runtime, ctx)
        results.host_config = sandbox_config(owner_id(server.proc.pid))
        for name in CLASSES:
            started = time.monotonic()
            results.outcomes.update(await execute_all(server.ws_url, by_class(name), ctx, concurrency=4))
            results.corpus_s += time.monotonic() - started
            log(f"{runtime}: {name} done ({time.monotonic() - started:.1f} s)")
        for case in CORPUS:
            results.verdicts[case.key] = judge(case, results.outcomes[case.key], ctx)
        log(f"{runtime}: corpus {results.corpus_s:.0f} s; measuring")
        results.measures = await measure(server, ctx, repeat)
        hello = await execute(server.ws_url, _case("exit/zero", code="print('hello world')\n"), ctx)
        results.still_serves = hello.stdout == "hello world\n" and server.proc.poll() is None
        async with httpx.AsyncClient(timeout=10) as http:
            health = await http.get(server.url + "/healthz")
        results.still_serves = results.still_serves and health.status_code == 200
    finally:
        server.stop()
    results.run_log_line = next((line for line in server.log().splitlines() if '"event": "run"' in line), "")
    log(f"{runtime}: server-level attacks ({SURFACES})")
    results.surfaces, results.surface_out = run_surfaces(runtime)
    if canary in server.log():
        results.verdicts["~server-log"] = Verdict("fail", ("the canary reached the server's log",))
    return results


# --- figures -----------------------------------------------------------------------------------------------


def fmt_s(values: list[float]) -> str:
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{values[0]:.2f} s"
    return f"median {statistics.median(values):.2f} s (max {max(values):.2f} s, n={len(values)})"


def reasons(samples: list[dict[str, Any]]) -> str:
    counts: dict[str, int] = {}
    for s in samples:
        key = s["reason"] if s["reason"] != "exit" else f"exit {s['code']}"
        counts[key] = counts.get(key, 0) + 1
    return ", ".join(f"{k} ×{v}" for k, v in sorted(counts.items()))


def oom_figure(r: RuntimeResults, name: str = "oom_instant") -> str:
    samples = r.measures.get(name, [])
    times = [s["ms"] / 1000 for s in samples if s["reason"] == "oom"]
    return f"start → oom {fmt_s(times)}; outcomes: {reasons(samples)}"


def overshoot_figure(r: RuntimeResults, name: str = "timeout_busy") -> str:
    samples = r.measures.get(name, [])
    server = [s["ms"] / 1000 - TIMEOUT_S for s in samples if s["reason"] == "timeout"]
    client = [s["client_s"] - TIMEOUT_S for s in samples if s["reason"] == "timeout"]
    return (
        f"{TIMEOUT_S:g} s limit: duration_ms overshoot {fmt_s(server)}; seen by the client "
        f"(started → exit frame) {fmt_s(client)}; outcomes: {reasons(samples)}"
    )


def line_of(out: Outcome | None, prefix: str) -> str:
    if out is None:
        return "not run"
    for line in out.stdout.splitlines():
        if line.startswith(prefix):
            return line.strip()
    e = out.exit or out.error or {}
    return f"no `{prefix}` line ({e.get('reason', e.get('code'))} {e.get('exit_code', '')})".strip()


def outcome_short(out: Outcome | None) -> str:
    if out is None:
        return "not run"
    if out.error:
        return f"error `{out.error['code']}` (close {out.close_code})"
    e = out.exit
    if e is None:
        return f"no exit ({out.client_error})"
    if e["reason"] == "exit":
        sig = f" {e['signal']}" if e["signal"] else ""
        return f"exit {e['exit_code']}{sig}"
    extra = " truncated" if e["truncated"] else ""
    return f"{e['reason']}{extra}"


def denials(out: Outcome | None) -> str:
    if out is None:
        return "not run"
    found = [line.split(None, 1)[1] for line in out.stdout.splitlines() if line.startswith(("DENIED", "ALLOWED"))]
    allowed = [line for line in out.stdout.splitlines() if line.startswith("ALLOWED")]
    text = "; ".join(found) if found else outcome_short(out)
    return ("ALLOWED: " + "; ".join(a[8:] for a in allowed) + " | ") * bool(allowed) + text


def fork_figure(r: RuntimeResults) -> str:
    samples = r.measures.get("fork_bomb", [])
    parts = []
    for s in samples:
        limit = re.search(r"LIMIT (\d+) (\w+)", s.get("out", ""))
        parts.append(
            f"{limit.group(2)} after {limit.group(1)} children"
            if limit and s["reason"] == "exit"
            else f"{s['reason']} {s['code'] if s['code'] is not None else ''} in {s['ms'] / 1000:.2f} s".strip()
        )
    classic = r.measures.get("classic_fork_bomb", [])
    return "handled bomb: " + "; ".join(parts) + f" — classic bomb: {reasons(classic)}"


def surface(r: RuntimeResults, *names: str) -> str:
    """How the named ``test_surfaces.py`` tests went under this runtime."""
    if not r.surfaces:
        return "(server-level tests not run)"
    parts = []
    for name in names:
        status, secs, message = r.surfaces.get(name, ("not run", 0.0, ""))
        mark = {"passed": "✓", "failed": "**FAILED**"}.get(status, status)
        parts.append(
            f"{mark} {name.removeprefix('test_').replace('_', ' ')} ({secs:.0f} s)"
            + (f": {message}" if message else "")
        )
    return "; ".join(parts)


def surface_family(r: RuntimeResults, base: str, *prefixes: str) -> str:
    """A parametrized surface test's variants: how many passed, and the measurement lines they printed
    (those starting with one of ``prefixes``)."""
    if not r.surfaces:
        return "(server-level tests not run)"
    names = [n for n in r.surfaces if n == base or n.startswith(base + "[")]
    if not names:
        return f"{base.removeprefix('test_').replace('_', ' ')}: not run"
    passed = sum(1 for n in names if r.surfaces[n][0] == "passed")
    failed = [n for n in names if r.surfaces[n][0] == "failed"]
    secs = sum(r.surfaces[n][1] for n in names)
    head = f"{'✓' if passed == len(names) else '**FAILED**'} {passed}/{len(names)} ({secs:.0f} s)"
    if failed:
        head += ": " + "; ".join(f"{n}: {r.surfaces[n][2]}" for n in failed)
    lines = [
        line.strip()
        for n in names
        for line in r.surface_out.get(n, "").splitlines()
        if prefixes and line.strip().startswith(prefixes)
    ]
    return head + ("; " + "; ".join(lines) if lines else "")


def mcp_argument_sets(r: RuntimeResults) -> int:
    printed = r.surface_out.get("test_hostile_mcp_tool_arguments_are_clear_refusals", "")
    return sum(1 for line in printed.splitlines() if line.startswith("MCPARG"))


def frame_count(out: Outcome | None) -> int:
    return len(out.frames) if out is not None else 0


def count_outcomes(r: RuntimeResults, cls: str) -> str:
    """``N refused with bad_message, M exit 0 …`` over a class's cases, and how many passed."""
    counts: dict[str, int] = {}
    passed = 0
    cases = by_class(cls)
    for case in cases:
        counts[outcome_short(r.out(case.key))] = counts.get(outcome_short(r.out(case.key)), 0) + 1
        passed += r.verdicts.get(case.key, Verdict("fail")).status == "pass"
    shown = ", ".join(f"{v}× {k}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))
    return f"{passed}/{len(cases)} as expected ({shown})"


def rich_bytes(out: Outcome | None, kind: str) -> str:
    if out is None:
        return "not run"
    frames = out.of(kind)
    sent = sum(len(f.get("data", "")) * 3 // 4 for f in frames if "data" in f)
    omitted = sum(1 for f in frames if "omitted" in f)
    return f"{len(frames) - omitted} {kind}s sent ({sent / 1048576:.2f} MiB), {omitted} omitted"


def protection_rows(
    res: dict[str, RuntimeResults],
) -> list[tuple[str, str, list[str], Callable[[RuntimeResults], str]]]:
    """(protection, mechanism, proving tests, figure) for the table."""

    def cfg(r: RuntimeResults, *keys: str) -> str:
        return "engine: " + ", ".join(f"{k}={json.dumps(r.host_config.get(k))}" for k in keys)

    return [
        (
            "Wall-clock limit",
            "the supervisor kills the container (SIGKILL, whole cgroup) at the run's timeout",
            ["cpu/busy_loop", "cpu/busy_loop_ignoring_signals", "cpu/select_forever", "stdin/read_with_no_eof"],
            overshoot_figure,
        ),
        (
            "Memory limit, no swap",
            "cgroup memory = memory+swap = 128 MiB; the kernel's OOM killer; reported as `oom`: the engine's "
            "`OOMKilled`, or where it is unset (the engine's relay loses some under load, gVisor's more): on cgroup "
            "v1 the kernel's OOM events on the server's own eventfd, under runc and runsc; a gVisor sentry that "
            "failed an allocation at the limit (exit 2, no OOM kill for the kernel to count): the sandbox's parent "
            "cgroup peaked at the limit",
            [
                "memory/instant",
                "memory/gradual",
                "memory/tmpfs_then_heap",
                "secrets/cgroup_limits",
                "test_surfaces.py::test_every_oom_is_reported_as_oom_under_load",
            ],
            lambda r: (
                oom_figure(r)
                + "; gradual: "
                + oom_figure(r, "oom_gradual").split(";")[0]
                + "; inside: "
                + line_of(r.out("secrets/cgroup_limits"), "MEM")
                + "; "
                + cfg(r, "Memory", "MemorySwap")
                + "; 6 at once ×3: "
                + surface(r, "test_every_oom_is_reported_as_oom_under_load")
            ),
        ),
        (
            "Process/thread limit",
            f"cgroup pids.max = 64; under runsc 64 + {RUNSC_PIDS_HEADROOM} (gVisor's own threads count there), "
            "and `started.limits.pids` says so: the guest's processes are then bounded by memory and the wall clock",
            [
                "bombs/fork_until_refused",
                "bombs/thread_until_refused",
                "bombs/classic_fork_bomb",
                "test_surfaces.py::test_the_stated_pids_limit_is_the_one_enforced",
            ],
            lambda r: (
                fork_figure(r)
                + "; "
                + cfg(r, "PidsLimit")
                + "; stated: "
                + str((r.out("exit/zero") or Outcome()).limits.get("pids"))
            ),
        ),
        (
            "Open-file limit",
            "RLIMIT_NOFILE 256 (soft = hard)",
            ["fds/open_files", "fds/sockets", "fds/raise_the_limit"],
            lambda r: (
                line_of(r.out("fds/open_files"), "EMFILE")
                + " open fds; "
                + line_of(r.out("fds/raise_the_limit"), "REFUSED")
            ),
        ),
        (
            "Bounded writable space",
            "/tmp and /dev/shm are 16 MiB tmpfs (nosuid, nodev, noexec), charged to the memory cgroup",
            ["memory/tmp_fill", "memory/devshm_fill", "disk/many_small_files", "disk/exec_from_tmp"],
            lambda r: (
                "/tmp: "
                + line_of(r.out("memory/tmp_fill"), "FULL")
                + "; /dev/shm: "
                + line_of(r.out("memory/devshm_fill"), "FULL")
                + "; exec: "
                + denials(r.out("disk/exec_from_tmp"))
            ),
        ),
        (
            "Read-only root filesystem",
            "ReadonlyRootfs; the image's files (interpreter, stdlib, /etc) cannot change between runs",
            ["disk/write_root", "disk/write_etc", "disk/write_usr", "disk/write_home_and_friends"],
            lambda r: denials(r.out("disk/write_root")) + "; " + denials(r.out("disk/write_usr")),
        ),
        (
            "Unprivileged user, no capabilities",
            "a UID:GID of its own per sandbox (random in SCE_SANDBOX_UID_BASE's range, never one of the server's "
            "live sandboxes: per-user kernel limits are per run), cap_drop ALL, no-new-privileges; setuid binaries "
            "do not elevate",
            [
                "secrets/identity_and_capabilities",
                "privilege/setuid_root",
                "privilege/capabilities",
                "privilege/setuid_binaries",
            ],
            lambda r: (
                line_of(r.out("secrets/identity_and_capabilities"), "IDS")
                + "; "
                + line_of(r.out("secrets/identity_and_capabilities"), "CapEff")
                + "; "
                + line_of(r.out("secrets/identity_and_capabilities"), "Seccomp")
            ),
        ),
        (
            "Per-user kernel limits are per run (issue 30, finding 4)",
            "no two live sandboxes of a server share a UID (`SCE_SANDBOX_UID_BASE` 100000, `SCE_SANDBOX_UID_COUNT` "
            "1,000,000, picked at random, released on removal), so inotify instances, pipe-buffer and mqueue "
            "allowances are one run's; servers sharing one engine keep their own sets: a collision needs the same "
            "pick, 1 in 1,000,000 per pair of live sandboxes",
            ["test_surfaces.py::test_one_run_exhausting_inotify_leaves_another_clients_run_its_own"],
            lambda r: surface_family(r, "test_one_run_exhausting_inotify_leaves_another_clients_run_its_own", "run A"),
        ),
        (
            "Kernel attack surface",
            "our seccomp profile (runc; Docker's default minus ptrace, process_vm_*, kcmp, userfaultfd, io_uring) or "
            "gVisor's own kernel (runsc: the container's profile does not apply to the guest) plus no capabilities",
            [
                "privilege/mount",
                "privilege/unshare_namespaces",
                "privilege/user_namespace",
                "privilege/keyctl_and_keys",
                "privilege/bpf_and_perf",
                "privilege/kernel_modules_and_reboot",
                "privilege/open_by_handle_shocker",
            ],
            lambda r: (
                "keyctl: "
                + denials(r.out("privilege/keyctl_and_keys")).split(";")[0]
                + "; bpf: "
                + denials(r.out("privilege/bpf_and_perf")).split(";")[0]
                + "; user ns: "
                + denials(r.out("privilege/user_namespace")).split(";")[0]
            ),
        ),
        (
            "Seccomp profile of our own",
            "scripts/seccomp-profile: Docker's current default (moby/profiles/seccomp v0.2.3: socket() refuses "
            "AF_VSOCK and AF_ALG) minus ptrace, process_vm_readv/writev, kcmp, userfaultfd, io_uring_*; checked in "
            "as app/sandbox/docker/seccomp.json, passed inline under runc",
            [
                "tamper/ptrace_attach_init",
                "tamper/ptrace_freeze_init",
                "seccomp/ptrace_own_child",
                "seccomp/process_vm_of_own_child",
                "seccomp/userfaultfd_and_io_uring",
                "seccomp/threads",
                "seccomp/subprocess",
                "seccomp/asyncio",
                "seccomp/multiprocessing",
                "seccomp/numpy_scientific",
            ],
            lambda r: (
                "init: "
                + line_of(r.out("tamper/ptrace_attach_init"), "ATTACH")
                + " ("
                + outcome_short(r.out("tamper/ptrace_freeze_init"))
                + f" in {(r.out('tamper/ptrace_freeze_init') or Outcome()).elapsed_s:.1f} s); child: "
                + denials(r.out("seccomp/ptrace_own_child"))
                + "; "
                + denials(r.out("seccomp/process_vm_of_own_child"))
                + "; "
                + denials(r.out("seccomp/userfaultfd_and_io_uring"))
                + "; ordinary programs: "
                + ", ".join(
                    f"{k}: {outcome_short(r.out('seccomp/' + k))}"
                    for k in ("threads", "subprocess", "asyncio", "multiprocessing", "numpy_scientific")
                )
            ),
        ),
        (
            "No network",
            "networking disabled (network mode none, and no engine network at all): a private network "
            "namespace with only `lo`",
            [
                "network/interfaces",
                "network/routes",
                "network/connect_host_server_port",
                "network/raw_and_packet_sockets",
            ],
            lambda r: (
                line_of(r.out("network/interfaces"), "IF")
                + "; "
                + line_of(r.out("network/routes"), "ROUTES")
                + "; host port: "
                + denials(r.out("network/connect_host_server_port"))
            ),
        ),
        (
            "Filesystem isolation",
            "the image's own root; only Docker's standard mounts; no host directory, no engine socket",
            [
                "secrets/host_mounts",
                "secrets/server_files_invisible",
                "secrets/docker_socket",
                "secrets/etc_passwd_is_the_images",
            ],
            lambda r: (
                f"{len(mount_points(r.out('secrets/host_mounts')))} mount points, all standard; "
                + line_of(r.out("secrets/server_files_invisible"), "ABSENT /work")
            ),
        ),
        (
            "Secrets stay with the server",
            "a fixed sandbox environment; the server's variables never reach a container",
            [
                "secrets/environment",
                "secrets/proc1_environ",
                "secrets/all_process_environments",
                "secrets/filesystem_canary_scan",
            ],
            lambda r: (
                line_of(r.out("secrets/filesystem_canary_scan"), "SCAN DONE")
                + "; the canary in any of "
                + f"{len(r.outcomes)} outputs: "
                + ("**YES**" if any(r.ctx.canary in o.output for o in r.outcomes.values()) else "no")
            ),
        ),
        (
            "Process isolation",
            "a private PID namespace: only docker-init and the program's own processes",
            ["secrets/process_table", "secrets/kill_everything", "tamper/sigkill_pid1"],
            lambda r: f"{len((r.out('secrets/process_table') or Outcome()).stdout.splitlines())} processes visible",
        ),
        (
            "Output cap",
            "the reader cuts at exactly output_bytes (here 65 536) and kills the run: `output_limit`; output that is "
            "mostly JSON escapes (NUL, invalid UTF-8: six bytes as sent each) ends earlier, at the frame budget",
            ["output/many_lines", "output/one_endless_line", "output/binary", "output/exactly_the_cap"],
            lambda r: "; ".join(
                f"{k.split('/')[1]}: {output_bytes(r.out(k))} B {outcome_short(r.out(k))}"
                for k in ("output/many_lines", "output/interleaved_flood", "output/exactly_the_cap")
            ),
        ),
        (
            "Run lifetime = the program's",
            "docker-init as PID 1: when the program exits the container ends, children included",
            ["survivors/daemon_child", "survivors/double_fork_setsid", "survivors/close_streams_and_run_on"],
            lambda r: (
                "daemon child: "
                + f"{(r.out('survivors/daemon_child') or Outcome()).elapsed_s:.2f} s, "
                + outcome_short(r.out("survivors/daemon_child"))
                + "; closed streams: "
                + outcome_short(r.out("survivors/close_streams_and_run_on"))
            ),
        ),
        (
            "Protocol integrity",
            "program output is data: it cannot forge frames, switch streams, or fake its status",
            ["tamper/fake_protocol_frames", "tamper/patch_exit_functions", "exit/os_exit_137_is_not_oom"],
            lambda r: (
                "a forged exit frame and a forged stderr header arrived as stdout data; "
                + f"{len((r.out('tamper/fake_protocol_frames') or Outcome()).of('exit'))} exit frame, "
                + outcome_short(r.out("tamper/fake_protocol_frames"))
                + "; os._exit(137): "
                + outcome_short(r.out("exit/os_exit_137_is_not_oom"))
            ),
        ),
        (
            "Files in",
            "paths checked before any sandbox is used (relative, no '..', '.', empty part, NUL, backslash, "
            "NAME_MAX); count, per-file and total sizes; strict base64; written with O_EXCL|O_NOFOLLOW under the "
            "working directory",
            [*[f"files_in/{c.id}" for c in by_class("files_in")][:6], "…"],
            lambda r: (
                count_outcomes(r, "files_in")
                + "; gzip bomb: "
                + line_of(r.out("files_in/gzip_bomb_to_disk"), "FULL")
                + " / "
                + outcome_short(r.out("files_in/gzip_bomb_to_memory"))
            ),
        ),
        (
            "Files out",
            "walked with lstat and O_NOFOLLOW (links, FIFOs, sockets, devices never read), non-UTF-8 names "
            "skipped, size checked before reading, entry/depth/count limits, the run's budget; the server re-checks "
            "every record (path as files in, sizes, budget)",
            [*[f"files_out/{c.id}" for c in by_class("files_out")][:6], "…"],
            lambda r: (
                count_outcomes(r, "files_out")
                + "; forged records: "
                + outcome_short(r.out("files_out/forged_records"))
                + ", "
                + rich_bytes(r.out("files_out/forged_records"), "file")
                + "; budget: "
                + rich_bytes(r.out("files_out/budget_of_files"), "file")
            ),
        ),
        (
            "Images",
            "PNG only (a forged SVG, a document that can run script, is dropped), size from its own header, "
            "per-image and per-run byte budgets (omitted past them)",
            [
                "images/pil_flood",
                "images/mpl_flood_after_the_budget",
                "images/huge_figure",
                "images/forged_image_with_the_real_nonce",
            ],
            lambda r: (
                "3,000 images: "
                + rich_bytes(r.out("images/pil_flood"), "image")
                + ", "
                + outcome_short(r.out("images/pil_flood"))
                + "; huge figure: "
                + outcome_short(r.out("images/huge_figure"))
            ),
        ),
        (
            "The scientific runtime",
            "the same lockdown with its own memory (512 MiB) and tmpfs; BLAS/OpenMP single-threaded",
            [f"scientific/{c.id}" for c in by_class("scientific")],
            lambda r: count_outcomes(r, "scientific"),
        ),
        (
            "Resume and watch tokens",
            "192-bit random tokens compared in constant time; one `not_found` for every wrong part; a finished run "
            "forgotten after the grace; one driver at a time",
            [
                "test_surfaces.py::test_guessed_tokens_and_ids_open_nothing",
                "test_this_runs_token_does_not_open_another_run",
                "test_a_finished_runs_token_expires_with_its_grace",
                "test_a_takeover_race_leaves_exactly_one_driver",
            ],
            lambda r: surface(
                r,
                "test_guessed_tokens_and_ids_open_nothing",
                "test_this_runs_token_does_not_open_another_run",
                "test_a_finished_runs_token_expires_with_its_grace",
                "test_a_takeover_race_leaves_exactly_one_driver",
            ),
        ),
        (
            "Slow readers",
            "each connection pumps the run's kept frames itself; a send that takes longer than send_timeout_s "
            "drops that connection only",
            ["test_surfaces.py::test_a_watcher_that_never_reads_stalls_neither_the_run_nor_its_driver"],
            lambda r: surface(r, "test_a_watcher_that_never_reads_stalls_neither_the_run_nor_its_driver"),
        ),
        (
            "Rate limits and client identity",
            "per client (the token's hash; else the browser's signed cookie under its address's ceiling; else the "
            "address, the real one only behind SCE_TRUSTED_PROXIES, from X-Forwarded-For, never a client's own "
            "Forwarded): runs and code bytes per minute (token buckets); past them `busy` with Retry-After; health "
            "probes exempt",
            [
                "test_surfaces.py::test_forwarded_headers_from_an_untrusted_peer_change_nothing",
                "test_behind_a_trusted_proxy_each_real_client_has_its_own_allowance",
                "test_code_bytes_per_minute",
                "tests/unit/test_ratelimit.py",
            ],
            lambda r: surface(
                r,
                "test_forwarded_headers_from_an_untrusted_peer_change_nothing",
                "test_behind_a_trusted_proxy_each_real_client_has_its_own_allowance",
                "test_code_bytes_per_minute",
                "test_a_clients_forwarded_header_does_not_pick_its_rate_limit_key",
            ),
        ),
        (
            "A class behind one address",
            "`/ui` gives each browser a signed (HMAC-SHA256), HTTP-only, SameSite=Lax cookie; shares (2 at once) and "
            "rate limits (30 a minute) count by it, the address's by SCE_PER_ADDRESS_RUNS (60) and "
            "SCE_RATE_ADDRESS_RUNS_PER_MINUTE (300); a cookie-less client is its address, with its own share",
            [
                "test_surfaces.py::test_a_class_behind_one_address_is_served_by_cookie",
                "tests/unit/test_admission.py",
                "tests/unit/test_ratelimit.py",
            ],
            lambda r: surface(r, "test_a_class_behind_one_address_is_served_by_cookie"),
        ),
        (
            "Frames as sent, one budget a run",
            "every frame a run causes (any type, omitted images included) counts its JSON size as sent "
            "against SCE_FRAMES_MAX_BYTES (2 x output_bytes); image and file data count against rich_output_bytes "
            "instead; past it the run ends as `output_limit`, truncated, and nothing more is kept",
            [
                "images/omitted_record_loop",
                "images/show_loop",
                "images/pil_flood",
                "test_surfaces.py::test_binary_output_is_kept_within_its_frame_budget_as_sent",
            ],
            lambda r: (
                "forged omitted records in a loop: "
                + outcome_short(r.out("images/omitted_record_loop"))
                + f" after {frame_count(r.out('images/omitted_record_loop'))} frames"
                + "; `while True: im.show()`: "
                + outcome_short(r.out("images/show_loop"))
                + f" after {frame_count(r.out('images/show_loop'))} frames; "
                + surface(r, "test_binary_output_is_kept_within_its_frame_budget_as_sent")
            ),
        ),
        (
            "Pages: CSP, no framing, no sniffing",
            "every answer: `Content-Security-Policy` (default-src 'none'; script-src 'self'; img-src 'self' blob: "
            "data:; connect-src 'self'; frame-ancestors 'none'; …), X-Frame-Options DENY, nosniff; images raster only",
            [
                "test_surfaces.py::test_every_answer_carries_the_security_headers",
                "images/svg_is_never_sent",
                "tests/ui/test_ui_csp.py",
            ],
            lambda r: (
                surface(r, "test_every_answer_carries_the_security_headers")
                + "; forged SVG: "
                + outcome_short(r.out("images/svg_is_never_sent"))
                + f", {len((r.out('images/svg_is_never_sent') or Outcome()).of('image'))} image frames sent"
            ),
        ),
        (
            "Host names (DNS rebinding)",
            "the Host of every request and WebSocket upgrade must be one of SCE_ALLOWED_HOSTS (default the loopback "
            "names and SCE_BIND's host), else 400",
            ["test_surfaces.py::test_dns_rebinding_a_foreign_host_name_is_refused", "tests/unit/test_guards.py"],
            lambda r: surface(r, "test_dns_rebinding_a_foreign_host_name_is_refused"),
        ),
        (
            "Operator details",
            'the public `/healthz` is `{"status"}` alone; details, `/metrics` and `?deep=1` need SCE_ADMIN_TOKEN '
            "(an API token is not enough), or without one a loopback caller with no forwarding header",
            [
                "test_surfaces.py::test_health_details_metrics_and_deep_probes_need_the_admin_token",
                "test_without_an_admin_token_only_direct_local_callers_see_details",
            ],
            lambda r: surface(
                r,
                "test_health_details_metrics_and_deep_probes_need_the_admin_token",
                "test_without_an_admin_token_only_direct_local_callers_see_details",
            ),
        ),
        (
            "Configuration that would fail open",
            'SCE_API_TOKENS set but naming no token (`" , "`) stops the server at start, saying why',
            ["test_surfaces.py::test_a_token_list_that_holds_no_token_refuses_to_start", "tests/unit/test_guards.py"],
            lambda r: surface(r, "test_a_token_list_that_holds_no_token_refuses_to_start"),
        ),
        (
            "Engines that cannot be reached",
            "engine failures become `unavailable` (1011/503), never `internal`; a failed engine among several is "
            "left out until it answers",
            [
                "test_surfaces.py::test_an_unreachable_engine_url_is_unavailable_never_internal",
                "test_one_unreachable_engine_among_several_is_routed_around",
            ],
            lambda r: surface(
                r,
                "test_an_unreachable_engine_url_is_unavailable_never_internal",
                "test_one_unreachable_engine_among_several_is_routed_around",
            ),
        ),
        (
            "Sessions: state and tokens",
            "a session is its own sandbox, found by its id (the server's name + 128 random bits) and its token (192 "
            "bits, `secrets`), compared with `hmac.compare_digest`; an unknown id, an ended session and a wrong "
            "token get one answer (404 / `not_found`, 1008); the token is a bearer capability, like a run's",
            [
                "test_session_surfaces.py::test_a_sessions_state_is_not_readable_by_another_client_session_or_run",
                "test_session_ids_and_tokens_are_long_random_and_an_ended_session_is_not_found",
                "test_the_token_comparison_is_constant_time",
            ],
            lambda r: surface(
                r,
                "test_a_sessions_state_is_not_readable_by_another_client_session_or_run",
                "test_session_ids_and_tokens_are_long_random_and_an_ended_session_is_not_found",
                "test_the_token_comparison_is_constant_time",
            ),
        ),
        (
            "Sessions: a program that ignores the interrupt",
            "a timeout, kill or output cap interrupts the session's program (KeyboardInterrupt); past the 2 s grace "
            "the sandbox is killed: `session_alive` false, the session not_found, its sandbox removed",
            ["test_session_surfaces.py::test_a_program_that_ignores_the_interrupt_ends_its_session[*]"],
            lambda r: surface_family(r, "test_a_program_that_ignores_the_interrupt_ends_its_session", "STUCK"),
        ),
        (
            "Sessions: a program that tampers with its session",
            "records are re-checked and charged to the run's frame budget; an interrupt waits for the record being "
            "written (a cut one hid the end records); the control channel is a pipe the program cannot write; what "
            "threads print between runs is kept up to 1 MiB; forged `begin` records only end that part early (the "
            "rest counts against the next run's output cap)",
            [
                "test_session_surfaces.py::test_forged_records_stay_in_their_run_and_an_interrupt_never_cuts_one",
                "test_fake_control_frames_on_stdout_are_data",
                "test_a_forged_exception_record_is_cut_or_dropped[*]",
                "test_what_threads_print_between_runs_is_bounded[*]",
            ],
            lambda r: (
                surface_family(r, "test_forged_records_stay_in_their_run_and_an_interrupt_never_cuts_one", "FORGED")
                + "; control frames: "
                + surface_family(r, "test_fake_control_frames_on_stdout_are_data", "CONTROL")
                + "; forged exception records: "
                + surface_family(r, "test_a_forged_exception_record_is_cut_or_dropped", "EXCEPTION")
                + "; between runs: "
                + surface_family(r, "test_what_threads_print_between_runs_is_bounded", "CARRIED")
            ),
        ),
        (
            "Sessions: bombs, limits",
            "a session's sandbox has a run's limits; an OOM (or a sandbox killed after its grace) ends the session; "
            "sessions hold run slots (SCE_SESSIONS_PER_CLIENT, SCE_SESSIONS_MAX), so sessions and runs never "
            "exceed SCE_MAX_CONCURRENT_RUNS sandboxes",
            [
                "test_session_surfaces.py::test_a_bomb_in_one_session_leaves_another_alone[*]",
                "test_session_and_run_limits_hold_per_client_and_per_server",
                "tests/integration/test_sessions.py::test_an_idle_session_expires_and_its_sandbox_goes",
            ],
            lambda r: (
                surface_family(r, "test_a_bomb_in_one_session_leaves_another_alone", "BOMB")
                + "; "
                + surface(r, "test_session_and_run_limits_hold_per_client_and_per_server")
            ),
        ),
        (
            "MCP: tool arguments, session ids, vanished agents",
            "run_python's arguments go through POST /run's parser (isError with the protocol's code and message); "
            "other arguments are ignored (no session can be named); bodies over max_message_bytes get 413; an MCP "
            "session belongs to the client key that opened it (404 for any other); runs count against the "
            "client's share and rate as /run's; an agent that leaves ends its run",
            [
                "test_session_surfaces.py::test_hostile_mcp_tool_arguments_are_clear_refusals",
                "test_an_mcp_session_id_reused_by_another_client_is_refused",
                "test_session_and_run_limits_hold_per_client_and_per_server",
                "test_a_vanished_agent_does_not_hold_a_sandbox[*]",
            ],
            lambda r: (
                surface_family(r, "test_hostile_mcp_tool_arguments_are_clear_refusals", "MCPARG body")
                + f" ({mcp_argument_sets(r)} hostile argument sets refused); "
                + surface(r, "test_an_mcp_session_id_reused_by_another_client_is_refused")
                + "; "
                + surface_family(r, "test_a_vanished_agent_does_not_hold_a_sandbox", "VANISHED")
            ),
        ),
        (
            "Input limits",
            "code ≤ 65 536 UTF-8 bytes (inclusive); frames ≤ max_message_bytes; malformed input → documented errors",
            ["code/at_the_size_limit", "code/one_byte_over", "code/multibyte_over", "test_fuzz.py"],
            lambda r: (
                "at limit: "
                + outcome_short(r.out("code/at_the_size_limit"))
                + "; +1 byte: "
                + outcome_short(r.out("code/one_byte_over"))
            ),
        ),
    ]


def output_bytes(out: Outcome | None) -> int:
    e = (out.exit if out is not None else None) or {}
    return int(e.get("stdout_bytes", 0)) + int(e.get("stderr_bytes", 0))


def mount_points(out: Outcome | None) -> list[str]:
    if out is None:
        return []
    points = []
    for line in out.stdout.splitlines():
        fields = line.split()
        if len(fields) > 4 and fields[0].isdigit():
            points.append(fields[4])
    return points


# --- the document --------------------------------------------------------------------------------------------


def versions() -> dict[str, str]:
    def run(cmd: list[str]) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=20).stdout.strip().splitlines()[0]
        except (OSError, IndexError, subprocess.SubprocessError):
            return "unknown"

    return {
        "host kernel": platform.release(),
        "docker engine": run(["docker", "version", "--format", "{{.Server.Version}}"]),
        "runsc": run(["runsc", "--version"]),
        "sandbox image": run(
            ["docker", "image", "inspect", "--format", "{{.Id}} (created {{.Created}})", "sce-sandbox:bookworm"]
        ),
        "CPUs": str(os.cpu_count()),
    }


THREAT_MODEL = """\
**Who attacks.** Anyone who can reach `/run` sends arbitrary Python. The program is hostile: it
will try to read the server's secrets, reach the host or the network, escape the container,
exhaust the machine (CPU, memory, processes, disk, descriptors, output), outlive its run, lie
about its outcome, or break the protocol for other users. Clients are hostile too: they send
malformed, oversized or endless frames and vanish mid-run.

**What is protected.** The host and its kernel; the server process, its environment and files;
the Docker engine (its socket is root on the host); other users' runs; the service's availability.

**Trust boundary.** Everything inside the sandbox container is untrusted, including PID 1 and the
bootstrap that loads the program (it runs in the program's own process). The server trusts only
what the engine reports (exit status, OOM flag), the counters of the parent cgroup it made for
the sandbox, and the bytes it reads from the attach stream, which it treats as data (images and
files on the side channel included: the program can forge those, so each is checked again).
Two runtimes are supported: `runc` (Linux namespaces, cgroups, our seccomp profile, no
capabilities) and `runsc` (gVisor: the program talks to a user-space kernel, not the host's).
Clients are identified by token hash, else by the signed cookie `/ui` gives each browser (with
their address as a ceiling), else by address (the real one only behind trusted proxies: the
rightmost X-Forwarded-For entry that is not one of them), for admission and rate limits alike.
Only the configured host names are served (DNS rebinding); pages carry a strict CSP; the public
`/healthz` says ok or not and nothing more.

**Out of scope.** Kernel or runtime zero-days beyond what these layers mitigate; side channels
(Spectre-class, timing); denial of service at the network level in front of the server; the
information that any container sees about the machine (CPU model, kernel version under runc,
overlay layer paths in `/proc/self/mountinfo` under runc) is accepted and listed below."""


def doc(res: dict[str, RuntimeResults], elapsed_s: float) -> str:
    runs = [res[r] for r in RUNTIMES if r in res]
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines: list[str] = []
    add = lines.append
    add("# Security notes")
    add("")
    add(
        "<!-- Generated by `make security-report` (python -m tests.security.report). Do not edit by hand:"
        " change the corpus or the report and regenerate. -->"
    )
    add("")
    add(
        f"Generated {now} in {elapsed_s / 60:.1f} min by running the hostile-program corpus "
        f"({len(CORPUS)} programs in {len(CLASSES)} classes, `tests/security/corpus.py`) through real servers "
        f"over the WebSocket protocol, under {' and '.join(r.runtime for r in runs)}. Every figure below was "
        "measured in that run; figures drift between runs and machines, so compare them as ratios."
    )
    add("")
    for k, v in versions().items():
        add(f"- {k}: {v}")
    for r in runs:
        py = (r.measures.get("python") or ["?"])[0]
        add(f"- {r.runtime}: Python and kernel as the program sees them: `{py}`")
    add("")
    add("## Summary")
    add("")
    add("| runtime | corpus wall time | pass | known gap (xfail) | fail | hello world afterwards |")
    add("| --- | --- | --- | --- | --- | --- |")
    for r in runs:
        counts = {s: sum(1 for v in r.verdicts.values() if v.status == s) for s in ("pass", "gap", "fail", "fixed")}
        add(
            f"| {r.runtime} | {r.corpus_s:.0f} s | {counts['pass']} | {counts['gap']} | "
            f"{counts['fail'] + counts['fixed']} | {'yes' if r.still_serves else '**NO**'} |"
        )
    add("")
    for r in runs:
        tally = {k: sum(1 for v in r.surfaces.values() if v[0] == k) for k in ("passed", "failed", "skipped")}
        add(
            f"- {r.runtime}: server-level attacks (`{SURFACES}`): {tally['passed']} passed, "
            f"{tally['failed']} failed" + (f", {tally['skipped']} skipped" if tally["skipped"] else "")
        )
    for r in runs:
        hello = [s["client_s"] for s in r.measures.get("hello", []) if s["reason"] == "exit"]
        add(f"- {r.runtime}: hello world, `started` → `exit` seen by the client: {fmt_s(hello)}")
    add("")
    add("## Threat model")
    add("")
    add(THREAT_MODEL)
    add("")
    add("## Protections, the tests that prove them, and what was measured")
    add("")
    add("Test ids are `tests/security/test_corpus.py::test_corpus[<class>/<id>]` unless named otherwise.")
    add("")
    header = "| protection | mechanism | proved by | " + " | ".join(r.runtime for r in runs) + " |"
    add(header)
    add("|" + " --- |" * (3 + len(runs)))
    for name, mechanism, tests, figure in protection_rows(res):
        figures = " | ".join(cell(safe_figure(figure, r)) for r in runs)
        add(f"| {name} | {mechanism} | {', '.join(f'`{t}`' for t in tests)} | {figures} |")
    add("")
    add("Beyond the corpus (not re-run by this report; run with `pytest -m security`):")
    add("")
    add(
        "- `tests/security/test_faults.py::test_vanishing_clients_leave_no_container`: 200 clients vanish "
        "(abrupt TCP close or close frame; before `started`, after it, after output); each round's sandboxes "
        "must be gone within 2 s, with nothing beyond the warm pool left at the end."
    )
    add(
        "- `test_killed_server_orphans_are_reaped`: a server SIGKILLed during 10 runs leaves its containers; the "
        "next server removes every one (by the `sce.owner` label of the dead process) before it serves."
    )
    add("- `test_two_hundred_clients_at_once`: every client gets its run's `exit` or `busy` (1013), nothing else.")
    add(
        "- `test_engine_stop_and_restart` (`-m engine_restart`): dockerd stopped mid-run → that run ends with "
        "`error` `unavailable` (1011), /healthz answers 503, new runs get `unavailable`; after `.ci/engine-up` "
        "the service resumes."
    )
    add(
        "- `tests/security/test_fuzz.py`: hypothesis-generated frames and bodies (random JSON, wrong types, "
        "binary, oversized, NaN) get only documented answers, never `internal`/500."
    )
    add(
        f"- `{SURFACES}` (run by this report under each runtime; the table above shows each test's outcome): "
        "resume/watch tokens (guessing, another run's id, expiry, a takeover race), a watcher that never reads, "
        "forwarded headers from an untrusted peer, rate limits over both transports, unreachable engines, "
        "six OOMs at once three times, the stated pids limit; and over sessions and MCP: state and tokens, "
        "programs that ignore the interrupt, forged records, bombs in a session, session limits, hostile MCP "
        "arguments and session ids, vanished agents."
    )
    add("")
    add(log_section(runs))
    add("### The sandbox container as the engine reports it")
    add("")
    for r in runs:
        add(f"{r.runtime}:")
        add("")
        add("```json")
        add(json.dumps(r.host_config, indent=1, sort_keys=True, default=str))
        add("```")
        add("")
    add(seed_section(res))
    add(differences_section(res))
    add(gaps_section(res))
    add(corpus_section(res))
    add("## Regenerating")
    add("")
    add(
        "`make security-report` (or `python -m tests.security.report [--runtimes runc,runsc] [--repeat N]`) "
        "needs the engine, the sandbox image and the runsc runtime; it starts its own servers on free "
        "loopback ports and takes a few minutes. The same corpus runs as tests: `pytest -m security` "
        "(runc) and `SCE_RUNTIME=runsc pytest -m security` (gVisor)."
    )
    add("")
    return "\n".join(line.rstrip() for line in "\n".join(lines).splitlines()) + "\n"


def log_section(runs: list[RuntimeResults]) -> str:
    """What the server writes about each run, with a line from this report's own servers."""
    parts = ["### What is logged for each run", ""]
    parts.append(
        "One JSON line per finished run (logger `sce.run`, written by `LiveRun.record()`): its id, transport, "
        "client key, runtime, reason, exit code and signal, duration, output byte counts, truncation, CPU time and "
        "peak memory. The program's text is not logged unless `SCE_LOG_CODE` is set; its output and files never "
        "are. The client key is `addr:` and the client's address (the real one only behind `SCE_TRUSTED_PROXIES`) "
        "or, where API tokens are in use, `token:` and the first 12 hex digits of the token's SHA-256: no token, "
        "run token or watch token appears in any log. The canary planted in each report server's environment was "
        "checked absent from its whole log."
    )
    parts.append("")
    for r in runs:
        parts.append(
            f"- {r.runtime}: {surface(r, 'test_the_log_holds_no_secret_and_no_code')} (an API token, a run's token "
            "and watch token and the program's text searched for in the server's whole log)"
        )
    parts.append("")
    for r in runs:
        if r.run_log_line:
            line = r.run_log_line.split(" sce.run ", 1)[-1]
            parts.append(f"A line from the {r.runtime} server of this run:")
            parts.append("")
            parts.append("```json")
            parts.append(line)
            parts.append("```")
            parts.append("")
    return "\n".join(parts)


def safe_figure(figure: Callable[[RuntimeResults], str], r: RuntimeResults) -> str:
    try:
        return figure(r)
    except Exception as exc:  # a figure must never stop the report
        return f"(no figure: {type(exc).__name__})"


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ").replace("\t", " ")


def program_summary(case: Case, limit: int = 90) -> str:
    """The program in one line (without the probe prelude), for the corpus tables."""
    code = case.code.replace(PRELUDE, "") if case.build is None else f"(built: {len(case.code)} chars template)"
    if case.build is not None:
        code = {
            "at_the_size_limit": "print('AT LIMIT OK') + '#' padding to exactly code_max_bytes",
            "one_byte_over": "the same, one byte longer",
            "multibyte_over": "'#' + 'é' * (code_max_bytes // 2): fewer characters than bytes",
        }.get(case.id, code)
    text = " ⏎ ".join(line.strip() for line in code.strip().splitlines() if line.strip())
    text = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def excerpt(out: Outcome | None, limit: int = 1600) -> str:
    if out is None:
        return "(not run)"
    text = out.output
    if len(text) > limit:
        text = text[: limit // 2] + f"\n... [{len(text) - limit} characters] ...\n" + text[-limit // 2 :]
    return text.rstrip("\n") + f"\n--> {outcome_short(out)}, {out.elapsed_s:.2f} s from started to the end"


def seed_section(res: dict[str, RuntimeResults]) -> str:
    runc = res.get("runc") or next(iter(res.values()))
    parts = ["## The seed's experiments, re-run", ""]

    def block(title: str, key: str, note: str = "", render: Callable[[Outcome | None], str] = excerpt) -> None:
        parts.append(f"### {title}")
        parts.append("")
        if note:
            parts.append(note)
            parts.append("")
        for r in res.values():
            case = CASES[key]
            parts.append(f"`{key}` under {r.runtime}:")
            parts.append("")
            parts.append("```text")
            parts.append(render(r.out(key)))
            parts.append("```")
            parts.append("")
            if r.runtime == "runsc" and case.runsc is not None:
                parts.append(f"(gVisor differs here, harmlessly: {case.differs})")
                parts.append("")

    host_only = sorted(runc.ctx.host_only_users)
    block(
        "Reading /etc/passwd",
        "secrets/etc_passwd_is_the_images",
        "The file is the image's own: it has the image's `runner` (10001) and none of the host's "
        f"{len(host_only)} users beyond Debian's base set ({', '.join(host_only) or 'none on this host'}).",
    )
    block("Memory bomb", "memory/instant", "`b'x' * (512 << 20)` against the 128 MiB limit. " + oom_figure(runc) + ".")
    block("Infinite loop", "cpu/busy_loop", "`while True: pass` with a 2 s timeout. " + overshoot_figure(runc) + ".")
    block("Write attack on the read-only root", "disk/write_etc")
    block("Network isolation: interfaces", "network/interfaces")
    block("Network isolation: routes", "network/routes")
    block(
        "Network isolation: the server's own port on 127.0.0.1",
        "network/connect_host_server_port",
        "The test server listens on the host's 127.0.0.1; inside the sandbox 127.0.0.1 is the sandbox's "
        "own loopback, so the connection is refused. (Only 127.0.0.1 is ever contacted.)",
    )
    block(
        "Filesystem isolation: what is mounted",
        "secrets/host_mounts",
        "From `/proc/self/mountinfo`: mount point, filesystem type, and for file systems of the host's disk the "
        "path on that disk (only Docker's own per-container files and docker-init are bound in).",
        render=mount_table,
    )
    block("Filesystem isolation: the server's files", "secrets/server_files_invisible")
    return "\n".join(parts)


def mount_table(out: Outcome | None) -> str:
    if out is None:
        return "(not run)"
    rows = []
    for line in out.stdout.splitlines():
        fields = line.split()
        if len(fields) > 4 and fields[0].isdigit() and "-" in fields:
            fstype = fields[fields.index("-") + 1]
            source = fields[3] if fields[3] != "/" else ""
            rows.append(f"{fields[4]:<28} {fstype:<8} {source}".rstrip())
    return "\n".join(rows) + f"\n--> {outcome_short(out)}"


def observation(out: Outcome | None, port: int) -> str:
    """What a case did, normalised for comparison across runtimes (the server's port varies by run)."""
    if out is None:
        return "not run"
    probes = []
    for line in out.stdout.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] in ("DENIED", "ALLOWED", "SKIPPED"):
            label = fields[1].replace(str(port), "PORT")
            probes.append(
                f"{label} {fields[2]}" if fields[0] == "DENIED" and len(fields) > 2 else f"{label} {fields[0]}"
            )
    return outcome_short(out) + (" — " + "; ".join(probes) if probes else "")


def short_gap(note: str) -> str:
    for needle, short in (
        ("gVisor sandbox crashed", "known gap: gVisor sandbox crash at the pids limit (exit 2)"),
        ("under gVisor the pids cgroup", "known gap: gVisor sandbox crash at the pids limit (exit 2)"),
        ("oom reported as exit 137", "known gap: oom reported as exit 137"),
        ("compile() errors", "known gap: bootstrap frames in the traceback"),
    ):
        if needle in note:
            return short
    return note


def differences_section(res: dict[str, RuntimeResults]) -> str:
    parts = ["## runc and runsc: every difference", ""]
    if not {"runc", "runsc"} <= set(res):
        return "\n".join([*parts, "(one runtime only in this run)", ""])
    runc, runsc = res["runc"], res["runsc"]
    parts.append(
        "Cases whose outcome or probe results differ between the runtimes in this run. *Expected* "
        "differences are written into the corpus (`runsc=` with the reason); the others are the known "
        "gaps below or noise (timing)."
    )
    parts.append("")
    parts.append("| case | runc | runsc | expected difference? |")
    parts.append("| --- | --- | --- | --- |")
    for case in CORPUS:
        a, b = observation(runc.out(case.key), runc.ctx.port), observation(runsc.out(case.key), runsc.ctx.port)
        if a == b:
            continue
        verdicts = (runc.verdicts[case.key].status, runsc.verdicts[case.key].status)
        if case.runsc is not None:
            why = "yes: " + case.differs
        elif runsc.verdicts[case.key].status == "gap":
            why = short_gap(runsc.verdicts[case.key].note)
        elif verdicts == ("pass", "pass"):
            why = "harmless: the same outcome, another errno or detail; the case passes on both"
        else:
            why = "**unexpected**"
        parts.append(f"| `{case.key}` | {cell(a)} | {cell(b)} | {cell(why)} |")
    parts.append("")
    return "\n".join(parts)


FIXED_SERVER_BUGS = [
    "a huge integer `timeout` (400 digits) crashed the parser into `internal`/500: now `bad_message` "
    "(`test_fuzz.py::test_huge_integer_timeout_*`)",
    "a client vanishing right after `started` could leave its program running to the timeout "
    "(`asyncio.wait_for` swallowed the cancellation on 3.11): now `asyncio.timeout` and the tasks are awaited "
    "(`test_faults.py::test_vanishing_clients_leave_no_container`, strict)",
    "compile-time MemoryError/RecursionError showed the bootstrap's frames (`code/deep_unary`, "
    "`code/long_binop_chain`)",
    "under runsc, the pids cgroup (64) counted gVisor's own threads, so ordinary programs (`su`, a double fork) "
    "crashed the sandbox with exit 2: runsc now gets `RUNSC_PIDS_HEADROOM` (`privilege/setuid_binaries`)",
    "runc: a program could ptrace docker-init and leave it stopped, so the container outlived the program until "
    "the wall clock (Docker's default profile allows ptrace on kernels ≥ 4.8): our seccomp profile has no ptrace "
    "(`tamper/ptrace_freeze_init` now ends at once with EPERM)",
    "runsc: an OOM was reported as `exit` 137 when gVisor left `OOMKilled` unset (several OOMs at once), and a "
    "sentry that died at the limit as `exit` 2: both are `oom` now, from the parent cgroup "
    "(`test_surfaces.py::test_every_oom_is_reported_as_oom_under_load`: 18 of 18)",
    "runc, in CI under load: one OOM of 18 came back as `exit` 137. The engine's `OOMKilled` is containerd "
    "relaying the kernel's OOM event, and on cgroup v1 containerd drops the event of a cgroup already gone. The "
    "server now registers its own eventfd on each runc sandbox's `memory.oom_control`: the kernel signals it once "
    "for the OOM and once for the cgroup's removal (measured: 2 for an OOM, 1 for `os._exit(137)` at 60 of 64 MiB); "
    "`test_sandbox.py::test_an_oom_is_told_when_the_engines_flag_never_comes` hides the flag entirely (without the "
    "eventfd: `exit` 137; with it: `oom`). The peak is still no verdict under runc (finding 7)",
    "runsc (finding 7): a program that filled its memory to within 1 MiB of the limit and called `os._exit(137)` "
    "was reported as `oom` (the peak settled a 137 without the engine's flag). The kernel's eventfd works for "
    "gVisor's sandbox too (measured: 2 for an OOM, 1 for `os._exit(137)` at 100 MiB and at the limit), so a 137 is "
    "settled by it under both runtimes (`test_resources.py::test_a_program_at_its_limit_that_exits_by_itself_is_"
    "no_oom[137]`, steered to the limit by the reported peak; it failed before with `oom` at 134,217,728 bytes)",
    "sessions, in CI: a thread's flood between runs reached the next run past the 1 MiB kept (1,380,352 bytes): "
    "output still on its way when the run started counted as the run's own. The session bootstrap now writes a "
    "`begin` record on stdout and stderr as each program starts, and only what precedes it is carried, 1 MiB in "
    "all (`test_session_surfaces.py::test_what_threads_print_between_runs_is_bounded`, its runsc xfail gone)",
    "runsc: `started.limits.pids` said 64 while the sandbox's cgroup allowed 256: it states the enforced limit now",
    "sessions: an interrupt that landed while the bootstrap wrote a record (a forged 1 MiB result, an image) cut "
    "it, the rest of the stream (the end records) became its data, and the session was killed after its grace "
    "(4 of 9 runs of that test here): the interrupt now waits for the record's end "
    "(`test_session_surfaces.py::test_forged_records_stay_in_their_run_and_an_interrupt_never_cuts_one`, 3 of 3)",
    "sessions: a forged exception record's `line` of 10**30 reached the `exit` frame (no client holds that number "
    "exactly): lines past 2**31-1 make the record ill-formed (`test_a_forged_exception_record_is_cut_or_dropped`)",
    "files out: a record's path was only checked for a leading '/': a forged record could name "
    "`../../etc/cron.d/x` for a client to join under its download folder; the server now applies the files-in "
    "rules (`files_out/forged_records`, `tests/unit/test_rich.py`)",
]

KNOWN_SERVER_BUGS = [
    (
        "Engine stopped mid-run reported as the program's exit 143",
        "`tests/security/test_faults.py::test_engine_stop_and_restart` (xfail when seen)",
        "A graceful dockerd stop SIGTERMs the containers first; when the wait returns 143 before the API goes away "
        "the run ends as `exit` 143 SIGTERM instead of `error` `unavailable` (seen in 1 of 3 stops here; the other "
        "times the API dropped first and the run ended with `unavailable`). The server never sends SIGTERM itself: "
        "a 143 it did not ask for while the engine stops (a `kill` event with signal 15, or a failing ping just "
        "after) means the sandbox failed.",
    ),
    (
        "A gVisor sentry's exit 2 at the limit is judged by the peak; a remote engine has only its flag",
        "`memory/*`, `test_resources.py::test_a_program_at_its_limit_that_exits_by_itself_is_no_oom[2]` (xfail)",
        "Under runsc, when gVisor's own kernel (the sentry) fails an allocation at the memory limit it exits 2 and "
        "the host kernel kills nothing, so its eventfd counts no OOM (measured: `memory/gradual`, "
        "`memory/string_doubling`, `scientific/memory_through_threads` and others, 1 to 5 of 16 memory cases a run): "
        "the server calls an exit 2 `oom` when the sandbox's parent cgroup peaked at the limit. A program that fills "
        "its memory to the limit and calls `os._exit(2)` is therefore reported as `oom` under runsc (a 137 is "
        "not: the kernel's count settles it). With a remote engine (no cgroup tree in sight) only the engine's "
        "flag is left, and gVisor's missing flag shows again as `exit` 137.",
    ),
    (
        "Rate limits are per server process, and a browser's cookie is free to get",
        "`test_surfaces.py` rate-limit tests; `app/server/ratelimit.py`",
        "Behind a balancer with N servers a client gets N times the allowance (no shared store). Browsers behind "
        "one NAT are told apart by the cookie `/ui` issues, but anyone can fetch new cookies: the address's ceiling "
        "(SCE_PER_ADDRESS_RUNS, SCE_RATE_ADDRESS_*) is then the real limit, and an IPv6 client can rotate addresses "
        "within its prefix (the key is the whole address). A refused attempt spends nothing, so hammering does not "
        "lock a client out for longer.",
    ),
    (
        "The program can reach the bootstrap's side channel",
        "`files_out/forged_records`, `images/forged_image_with_the_real_nonce`",
        "The bootstrap runs in the program's own process, so the run's nonce is the program's to read: it can "
        "forge image and file records, and records of kinds the server does not know. The server re-checks every "
        "record (paths as files in, PNG size from the PNG, mime list, budgets), so a forgery can only add images "
        "or files to its own run. Since the server ends a run on the bootstrap's own end-of-run record (status on "
        "stdout, a marker on stderr) without waiting for the engine, a forged record can also choose the program's "
        "own exit status (`files_out/forged_records` saw 0 instead of 3 once under runsc: the server keeps the first "
        "status record it reads): no more than `os._exit(N)` allows, never `oom`, `timeout` or another run's status.",
    ),
    (
        "runsc: a bomb can still exhaust the pids cgroup and kill the gVisor sandbox",
        "`bombs/*`, `cpu/cpu_*`, `survivors/*` under runsc",
        SANDBOX_CRASH_GAP,
    ),
]


def gaps_section(res: dict[str, RuntimeResults]) -> str:
    parts = ["## Known gaps and server bugs", ""]
    parts.append(
        "Found by this suite; each is asserted by a test that passes as xfail while the gap reproduces and "
        "never excuses a broken security property (a case's `safe` expectation is checked first)."
    )
    parts.append("")
    parts.append("| gap | where it shows | details |")
    parts.append("| --- | --- | --- |")
    for title, where, details in KNOWN_SERVER_BUGS:
        parts.append(f"| {cell(title)} | {cell(where)} | {cell(details)} |")
    parts.append("")
    parts.append("Found by this suite and fixed (their tests now hold strictly):")
    parts.append("")
    parts.extend(f"- {line}" for line in FIXED_SERVER_BUGS)
    parts.append("")
    parts.append("Seen in this run:")
    parts.append("")
    groups: dict[tuple[str, str, str], list[str]] = {}
    for r in res.values():
        for key, verdict in r.verdicts.items():
            if verdict.status in ("gap", "fixed", "fail"):
                label = {"gap": "known gap", "fixed": "GAP NO LONGER SEEN", "fail": "**FAIL**"}[verdict.status]
                note = verdict.note or "; ".join(verdict.problems)
                detail = "; ".join(verdict.problems)
                groups.setdefault((r.runtime, label, note), []).append(f"`{key}` ({detail[:200]})")
    for (runtime, label, note), keys in groups.items():
        parts.append(f"- {runtime}, {label}: {cell(note)}")
        parts.extend(f"  - {cell(k)}" for k in keys)
    if not groups:
        parts.append("- none")
    parts.append("")
    parts.append("Information a program can see (accepted, listed for completeness):")
    parts.append("")
    parts.append(
        "- runc: the host's kernel release (`uname`), the engine's overlay layer paths under /var/lib/docker in "
        "`/proc/self/mountinfo`, the container id in `/proc/self/cgroup`; `/etc/resolv.conf` names the host's "
        "resolver (unreachable: no route)."
    )
    parts.append(
        "- runsc: the container's seccomp profile is not applied to the guest (gVisor implements ptrace, "
        "process_vm_* and io_uring in its own kernel, among the program's own processes; the host's filter "
        "around the sentry is gVisor's): `seccomp/*` shows what the guest may do there."
    )
    parts.append(
        "- runsc: the program may stop its init with SIGSTOP (`tamper/sigstop_pid1`) or kill it "
        "(`tamper/sigkill_pid1`): the run ends by the wall clock or at once; nothing escapes."
    )
    parts.append("")
    return "\n".join(parts)


def corpus_section(res: dict[str, RuntimeResults]) -> str:
    parts = ["## The corpus, case by case", ""]
    runtimes = [r for r in RUNTIMES if r in res]
    for name in CLASSES:
        cases = by_class(name)
        parts.append(f"### {name} ({len(cases)}): {CLASS_DOCS[name]}")
        parts.append("")
        parts.append("| case | program | proves | " + " | ".join(runtimes) + " |")
        parts.append("|" + " --- |" * (3 + len(runtimes)))
        for case in cases:
            cells = []
            for rt in runtimes:
                r = res[rt]
                verdict = r.verdicts[case.key]
                mark = {"pass": "✓", "gap": "gap", "fail": "**FAIL**", "fixed": "**fixed?**"}[verdict.status]
                out = r.out(case.key)
                secs = f", {out.elapsed_s:.1f} s" if out else ""
                cells.append(f"{mark} {outcome_short(out)}{secs}")
            program = cell(program_summary(case)).replace("`", "'")
            row = f"| `{case.id}` | `{program}` | {cell(case.proves)} | " + " | ".join(cell(c) for c in cells) + " |"
            parts.append(row)
        parts.append("")
    return "\n".join(parts)


# --- main ----------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.security.report", description=__doc__.splitlines()[0])
    parser.add_argument("--runtimes", default=",".join(RUNTIMES), help="comma-separated: runc,runsc")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--repeat", type=int, default=5, help="samples per measurement")
    args = parser.parse_args(argv)
    runtimes = [r.strip() for r in args.runtimes.split(",") if r.strip()]
    started = time.monotonic()
    results: dict[str, RuntimeResults] = {}
    for runtime in runtimes:
        log(f"{runtime}: starting")
        results[runtime] = asyncio.run(collect_runtime(runtime, args.repeat))
    text = doc(results, time.monotonic() - started)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    failed = [
        f"{r.runtime} {k}" for r in results.values() for k, v in r.verdicts.items() if v.status in ("fail", "fixed")
    ]
    log(f"wrote {args.output} in {time.monotonic() - started:.0f} s; failures: {failed or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
