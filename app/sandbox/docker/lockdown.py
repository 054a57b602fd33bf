"""The ``Lockdown`` contract and a spec's limits, as the body of Docker's ``POST /containers/create``.

Built here, field by field, from the engine API's documented names (not through docker-py's
helpers), so the container the engine makes is exactly the one tests/security checks.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from app.sandbox.interface import Lockdown, SandboxSpec

MIB = 1024 * 1024
# Docker's default seccomp profile minus ptrace, process_vm_*, kcmp, userfaultfd and io_uring
# (scripts/seccomp-profile generates seccomp.json and says why). Under runc only: runsc does not
# apply a container's seccomp profile to the guest (it implements those calls in its own kernel,
# which the host's filter around the sentry confines). Package data: read from an installed wheel too.
SECCOMP_RESOURCE = resources.files("app.sandbox.docker").joinpath("seccomp.json")


def seccomp_profile() -> dict[str, Any]:
    """The profile as the engine takes it (the file's ``comment`` is for people only)."""
    profile: dict[str, Any] = json.loads(SECCOMP_RESOURCE.read_text(encoding="utf-8"))
    return {k: v for k, v in profile.items() if k != "comment"}


SECCOMP_OPT = "seccomp=" + json.dumps(seccomp_profile(), separators=(",", ":"))


def security_options(lockdown: Lockdown) -> list[str]:
    options = ["no-new-privileges"] if lockdown.no_new_privileges else []
    if lockdown.syscall_filter == "project":
        options.append(SECCOMP_OPT)
    return options


def create_body(
    spec: SandboxSpec,
    *,
    runtime: str,
    labels: dict[str, str],
    cgroup_parent: str | None = None,
    user: str | None = None,
) -> dict[str, Any]:
    """The container for ``spec``: its limits and its lockdown, attached stdin that closes once;
    ``user`` (the engine's pick for this sandbox) replaces the lockdown's default UID:GID."""
    lock = spec.lockdown
    memory = spec.memory_mb * MIB
    host_config: dict[str, Any] = {
        "Memory": memory,
        "MemorySwap": memory if lock.no_swap else -1,
        "PidsLimit": spec.pids,  # under runsc with RUNSC_PIDS_HEADROOM already (app/sandbox/runtimes.py)
        "NanoCpus": int(spec.cpus * 1e9),
        "Ulimits": [{"Name": "nofile", "Soft": spec.nofile, "Hard": spec.nofile}],
        "ReadonlyRootfs": lock.read_only_root,
        "Tmpfs": {"/tmp": f"rw,nosuid,nodev,size={spec.tmpfs_mb}m"},
        "ShmSize": spec.tmpfs_mb * MIB,
        "IpcMode": "private" if lock.private_ipc else "",
        "NetworkMode": lock.network,
        "CapDrop": ["ALL"] if lock.drop_all_capabilities else [],
        "SecurityOpt": security_options(lock),
        "Init": lock.init,
        "LogConfig": {"Type": "none" if lock.no_logs else "json-file", "Config": {}},
        "Runtime": runtime,
    }
    if cgroup_parent:
        host_config["CgroupParent"] = f"/{cgroup_parent}"
    return {
        "Image": spec.image,
        "Cmd": list(spec.command),
        # No networking at all, not even the engine's "none" network: the runtime still gives the
        # sandbox a namespace of its own with only `lo` (tests/security), but the engine skips
        # making, bind-mounting and tearing down a network sandbox for it, which cost ~110 ms of CPU
        # per container here and capped runs/s (docs/PERFORMANCE.md).
        "NetworkDisabled": lock.network == "none",
        "User": user or lock.user,
        "WorkingDir": lock.working_dir,
        "Env": [f"{k}={v}" for k, v in {**dict(lock.environment), **dict(spec.environment)}.items()],
        # attached stdin that closes once: the program sees EOF when the server half-closes, and
        # its output keeps flowing (without StdinOnce the output streams would end too)
        "OpenStdin": True,
        "StdinOnce": True,
        "AttachStdin": True,
        "AttachStdout": True,
        "AttachStderr": True,
        "Tty": False,
        "Labels": labels,
        "HostConfig": host_config,
    }


def encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()
