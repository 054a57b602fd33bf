"""A real peer: epicbox (PyPI ``epicbox``), one container per run through the Docker SDK.

Its sequence per run: create (``/bin/sh -c CMD``, stdin open, memory = memory+swap, pids,
ulimits, no network, logging off), put the program with ``put_archive``, attach, start, read
the stream to its end, inspect, remove (force). Run here on the same image, as the same user,
with the same memory and pids limits; it cannot have a read-only root (the file is put into the
container's own layer), and has no init, no dropped capabilities, no no-new-privileges, no
tmpfs and no CPU quota. Its containers get the bench's labels, so they are removed by label
whatever happens.

epicbox 1.1 (2019) builds its HTTP retries with ``Retry(method_whitelist=...)``, a keyword
urllib3 2 renamed to ``allowed_methods``: the shim below translates it.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tests.bench.baseline import BENCH_LABELS
from tests.bench.common import now

PROFILE = "sce-bench-python"
_LOCK = threading.Lock()
_configured: set[str] = set()


def _shim() -> Any:
    import docker.models.containers
    import epicbox  # type: ignore[import-untyped]
    import epicbox.utils  # type: ignore[import-untyped]
    from urllib3.util.retry import Retry

    class _Retry(Retry):
        def __init__(self, *args: Any, method_whitelist: Any = None, **kwargs: Any) -> None:
            if method_whitelist is not None:
                kwargs.setdefault("allowed_methods", method_whitelist)
            super().__init__(*args, **kwargs)

    epicbox.utils.Retry = _Retry
    logging.getLogger("epicbox").setLevel(logging.WARNING)  # its per-call info lines, unprinted
    collection = docker.models.containers.ContainerCollection
    if not getattr(collection.create, "_sce_labels", False):
        original = collection.create

        def create(self: Any, image: Any, command: Any = None, **kwargs: Any) -> Any:
            if str(kwargs.get("name", "")).startswith("epicbox-"):
                kwargs["labels"] = {**(kwargs.get("labels") or {}), **BENCH_LABELS}
            return original(self, image, command, **kwargs)

        create._sce_labels = True  # type: ignore[attr-defined]
        collection.create = create
    return epicbox


class Epicbox:
    """``epicbox.run`` of ``python3 main.py`` with the program as its file, ``c`` threads at a time."""

    def __init__(self, image: str, user: str, memory_mb: int, pids: int) -> None:
        with _LOCK:
            self.epicbox = _shim()
            import epicbox.config  # type: ignore[import-untyped]

            epicbox.config.DOCKER_WORKDIR = "/tmp"  # in the image already: /sandbox would not exist yet
            if PROFILE not in _configured:
                self.epicbox.configure(
                    profiles=[self.epicbox.Profile(PROFILE, image, user=user, read_only=False, network_disabled=True)]
                )
                _configured.add(PROFILE)
        self.limits = {"cputime": 5, "realtime": 30, "memory": memory_mb, "processes": pids}

    def one(self, code: str) -> tuple[float, dict[str, Any]]:
        t0 = now()
        result: dict[str, Any] = self.epicbox.run(
            PROFILE, "python3 main.py", files=[{"name": "main.py", "content": code.encode()}], limits=self.limits
        )
        return now() - t0, result

    def batch(self, code: str, total: int, concurrency: int, expect: bytes) -> dict[str, Any]:
        """``total`` runs, ``concurrency`` at a time: wall time and each run's latency."""
        remaining = [total]
        lock = threading.Lock()
        latencies: list[float] = []
        failures: list[str] = []

        def worker() -> None:
            while True:
                with lock:
                    if remaining[0] <= 0:
                        return
                    remaining[0] -= 1
                try:
                    took, result = self.one(code)
                except Exception as exc:  # counted, as for the service
                    failures.append(f"{type(exc).__name__}: {exc}")
                    continue
                if result.get("exit_code") != 0 or result.get("stdout") != expect:
                    failures.append(repr(result)[:300])
                    continue
                latencies.append(took)

        t0 = now()
        with ThreadPoolExecutor(concurrency, thread_name_prefix="bench-epicbox") as pool:
            for future in [pool.submit(worker) for _ in range(concurrency)]:
                future.result()
        return {"seconds": now() - t0, "latencies": latencies, "failures": failures}
