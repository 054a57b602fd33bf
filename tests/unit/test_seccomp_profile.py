"""The checked-in seccomp profile: Docker's default without what a sandboxed program never needs."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
from pathlib import Path

from app.sandbox.docker.engine import SECCOMP_OPT, SECCOMP_PROFILE_PATH

ROOT = Path(__file__).resolve().parents[2]


def _generator() -> object:
    path = ROOT / "scripts" / "seccomp-profile"
    loader = importlib.machinery.SourceFileLoader("seccomp_profile", str(path))
    spec = importlib.util.spec_from_loader("seccomp_profile", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def _allowed(profile: dict[str, object]) -> set[str]:
    rules = profile["syscalls"]
    assert isinstance(rules, list)
    return {name for rule in rules if rule["action"] == "SCMP_ACT_ALLOW" for name in rule["names"]}


def test_no_rule_allows_what_we_removed() -> None:
    profile = json.loads(SECCOMP_PROFILE_PATH.read_text())
    removed = set(_generator().REMOVED)  # type: ignore[attr-defined]
    assert {"ptrace", "process_vm_readv", "process_vm_writev"} <= removed
    assert not removed & _allowed(profile)
    assert profile["defaultAction"] == "SCMP_ACT_ERRNO"


def test_what_ordinary_programs_need_is_still_there() -> None:
    allowed = _allowed(json.loads(SECCOMP_PROFILE_PATH.read_text()))
    needed = {"read", "write", "openat", "mmap", "clone", "clone3", "execve", "futex", "epoll_wait", "wait4"}
    assert needed <= allowed


def test_the_engine_sends_the_profile_compact_and_without_its_comment() -> None:
    assert SECCOMP_OPT.startswith("seccomp={")
    sent = json.loads(SECCOMP_OPT.removeprefix("seccomp="))
    on_disk = json.loads(SECCOMP_PROFILE_PATH.read_text())
    assert "comment" not in sent and sent == {k: v for k, v in on_disk.items() if k != "comment"}
    assert "\n" not in SECCOMP_OPT


def test_the_generator_drops_only_the_removed_names() -> None:
    gen = _generator()
    source = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "archMap": [],
        "syscalls": [
            {"names": ["read", "ptrace"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "4.8"}},
        ],
    }
    out = gen.generate(source, "0" * 64)  # type: ignore[attr-defined]
    assert out["syscalls"] == [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]
