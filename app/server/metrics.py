"""Prometheus metrics, one registry per app so several apps (tests) never collide."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from app.core.events import Exit

LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
CPU_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
MEMORY_BUCKETS = tuple(float(mib << 20) for mib in (8, 16, 32, 48, 64, 96, 128, 192, 256, 384, 512, 1024))


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.runs = Counter("sce_runs", "Finished runs by reason", ["reason"], registry=r)
        self.errors = Counter("sce_errors", "Requests or runs ended by an error, by code", ["code"], registry=r)
        self.duration = Histogram("sce_run_duration_seconds", "Program run time", buckets=DURATION_BUCKETS, registry=r)
        self.first_output = Histogram(
            "sce_first_output_seconds",
            "From the program's delivery to its first output",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.active = Gauge("sce_active_runs", "Runs executing now", registry=r)
        self.queued = Gauge("sce_queue_length", "Runs waiting for a slot", registry=r)
        self.pool_ready = Gauge("sce_pool_ready", "Warm sandboxes ready", registry=r)
        self.websockets = Gauge("sce_open_websockets", "Open WebSocket connections", registry=r)
        self.runs_known = Gauge(
            "sce_runs_resumable", "Runs a resume or watch can reach: live, or finished and kept", registry=r
        )
        self.heap_trims = Gauge("sce_heap_trims", "Times freed heap was given back to the system", registry=r)
        self.rate_limited = Counter("sce_rate_limited", "Runs refused by their client's rate limit", registry=r)
        self.engine_errors = Counter("sce_engine_errors", "Failed calls to the sandbox engine", registry=r)
        self.engine_up = Gauge("sce_engine_up", "1 while the engine answers", ["engine"], registry=r)
        self.engine_active = Gauge("sce_engine_active_runs", "Runs on the engine now", ["engine"], registry=r)
        self.cpu = Histogram("sce_run_cpu_seconds", "CPU time a run used", ["runtime"], buckets=CPU_BUCKETS, registry=r)
        self.memory_peak = Histogram(
            "sce_run_memory_peak_bytes",
            "A run's peak memory (its sandbox's, interpreter included)",
            ["runtime"],
            buckets=MEMORY_BUCKETS,
            registry=r,
        )

    def observe_usage(self, exit_: Exit, runtime: str) -> None:
        """A finished run's CPU time and peak memory, where the engine could tell."""
        if exit_.cpu_ms is not None:
            self.cpu.labels(runtime).observe(exit_.cpu_ms / 1000)
        if exit_.memory_peak_bytes is not None:
            self.memory_peak.labels(runtime).observe(exit_.memory_peak_bytes)

    def bind(
        self, *, active: Callable[[], float], queued: Callable[[], float], pool_ready: Callable[[], float]
    ) -> None:
        self.active.set_function(active)
        self.queued.set_function(queued)
        self.pool_ready.set_function(pool_ready)
