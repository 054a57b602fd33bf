"""One typed settings object, read once from ``SCE_*`` environment variables and passed down.

Every limit the service enforces is named here with a default. Nothing else in the package
reads the environment: the app factory, the runner and the pool all take a ``Settings``.
"""

from __future__ import annotations

import ipaddress
import os
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class Settings(BaseSettings):
    """Everything configurable, with the defaults a public playground would want."""

    model_config = SettingsConfigDict(env_prefix="SCE_", extra="forbid", frozen=True)

    # --- serving -------------------------------------------------------------------------
    bind: str = Field("127.0.0.1:5000", description="host:port hypercorn listens on")
    allowed_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="extra browser origins allowed besides the server's own (comma-separated)",
    )
    api_tokens: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="if set, every run needs one of these bearer tokens"
    )
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="addresses/networks whose X-Forwarded-For or Forwarded header is believed (comma-separated)",
    )
    shutdown_grace_s: float = Field(10.0, ge=0, description="runs may finish this long on shutdown")
    drain_notice_s: float = Field(
        0.0, ge=0, description="on SIGTERM, /healthz says draining this long before new runs are refused"
    )
    ws_compression: bool = Field(False, description="negotiate permessage-deflate with clients that offer it")
    event_loop: Literal["asyncio", "uvloop"] = Field(
        "asyncio",
        description="the server's event loop: asyncio's own, or uvloop (~9% less server CPU per run, "
        "about twice the p90 lag while output streams)",
    )
    log_code: bool = Field(False, description="include program text in the per-run log line")

    # --- the sandbox image and engine -----------------------------------------------------
    image: str = Field("sce-sandbox:bookworm", description="the sandbox image's tag")
    runtime: Literal["runc", "runsc"] = Field("runc", description="OCI runtime for sandboxes")
    docker_host: str | None = Field(None, description="engine URL; default: DOCKER_HOST or the local socket")
    docker_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="several engines for one server (comma-separated URLs); overrides SCE_DOCKER_HOST",
    )
    docker_tls_dir: str | None = Field(
        None, description="directory with ca.pem, cert.pem, key.pem: mutual TLS for tcp:// engines"
    )
    engine_wire: bool = Field(
        True,
        description="a local engine's per-run calls (create, attach, start, remove) on the event loop "
        "instead of docker-py in threads (less server CPU per run); off: docker-py for everything",
    )
    engine_capacity: int | None = Field(
        None, ge=1, description="runs one engine carries at once; default: SCE_MAX_CONCURRENT_RUNS"
    )
    executor_threads: int | None = Field(
        None,
        ge=4,
        le=1024,
        description="threads for short blocking engine calls; default: from the concurrency settings",
    )
    image_mirror: str | None = Field(
        None, description="Debian mirror for building the image; default: the host's apt sources"
    )
    image_suite: str = Field("bookworm", description="Debian suite the image is built from")

    # --- per-run limits --------------------------------------------------------------------
    timeout_s: float = Field(10.0, gt=0, description="wall-clock limit when the client names none")
    timeout_max_s: float = Field(60.0, gt=0, description="largest wall-clock limit a client may ask for")
    memory_mb: int = Field(128, ge=16, description="memory limit (memory+swap equal: no swap)")
    pids: int = Field(64, ge=8, description="process/thread limit")
    cpus: float = Field(1.0, gt=0, description="CPU share")
    nofile: int = Field(256, ge=16, description="open-files limit")
    tmpfs_mb: int = Field(16, ge=1, description="size of the writable /tmp")
    output_bytes: int = Field(1_000_000, ge=1024, description="total stdout+stderr before the run is killed")
    max_line_chars: int = Field(16_384, ge=80, description="a partial line longer than this is sent in pieces")
    # 2 ms, not 25: the sandbox already batches its writes (a flusher every 10 ms), so a frame that
    # ends mid-line is a prompt or progress text to show now, or a long line cut by a full buffer
    # whose rest follows within microseconds; a prompt waited 25 ms more here (measured 2026-12-03)
    flush_interval_ms: int = Field(
        2, ge=1, le=100, description="longest a partial line (no newline yet) is held before it is sent"
    )
    image_max_bytes: int = Field(1_048_576, ge=1024, description="largest image a program may show, in bytes")
    files_out_max_count: int = Field(20, ge=0, description="most files a run sends back; past it: files_truncated")
    file_out_max_bytes: int = Field(1_048_576, ge=0, description="largest file a run sends back, in bytes")
    rich_output_bytes: int = Field(
        4 * 1_048_576, ge=0, description="images and files out together, per run; past it: omitted"
    )
    code_max_bytes: int = Field(65_536, ge=1, description="largest program, in UTF-8 bytes")
    max_message_bytes: int = Field(1_048_576, ge=1024, le=8 * 1024 * 1024, description="largest frame or body")
    stdin_max_bytes: int = Field(
        8 * 1_048_576, ge=1024, description="standard input one run accepts in all (kept to echo it: `input` frames)"
    )
    send_timeout_s: float = Field(30.0, gt=0, description="a client that takes longer to accept one frame is dropped")
    run_frame_timeout_s: float = Field(5.0, gt=0, description="the run frame must arrive this soon")
    files_in_max_count: int = Field(20, ge=0, description="most files a run may send in")
    files_in_max_bytes: int = Field(716_800, ge=0, description="largest file sent in, in bytes (decoded)")
    files_in_total_bytes: int = Field(
        716_800, ge=0, description="all files sent in, in bytes (decoded); their base64 must also fit in a message"
    )

    # --- admission ---------------------------------------------------------------------------
    max_concurrent_runs: int = Field(4, ge=1, description="runs executing at once")
    queue_size: int = Field(16, ge=0, description="runs waiting for a slot; past this: busy")
    per_client_runs: int = Field(2, ge=1, description="running+waiting runs one client may hold")
    retry_after_s: int = Field(2, ge=1, description="Retry-After sent with HTTP 503 busy")
    rate_runs_per_minute: int = Field(
        30, ge=0, description="runs one client may start a minute (a minute's worth at once, then steadily); 0 = off"
    )
    rate_code_bytes_per_minute: int = Field(
        1_048_576, ge=0, description="bytes of code one client may send a minute (as runs per minute); 0 = off"
    )

    # --- runs that outlive their connection ---------------------------------------------------
    resume_grace_s: float = Field(
        15.0, ge=0, description="a dropped run waits this long to be resumed; a finished one stays this long"
    )
    watchers_max: int = Field(8, ge=0, description="watch connections one run may have at once")
    health_probe_interval_s: float = Field(
        5.0, gt=0, description="deep health probes share one result for this long (one probe sandbox at most)"
    )

    # --- warm pool -----------------------------------------------------------------------------
    pool_size: int = Field(2, ge=0, le=64, description="started sandboxes waiting for a program; 0 = off")
    pool_idle_max_s: float = Field(300.0, gt=0, description="a pooled sandbox older than this is replaced")
    pool_max: int = Field(
        0,
        ge=0,
        le=256,
        description="the default runtime's pool grows to this after bursts of runs; <= pool size: no growth",
    )
    pool_burst_s: float = Field(2.0, gt=0, description="runs started within this many seconds count as one burst")
    pool_window_s: float = Field(
        600.0, gt=0, description="a burst is remembered this long (the pool stays as large), then the pool shrinks back"
    )
    pool_memory_mb: int = Field(
        4096, ge=0, description="a grown pool's sandboxes together, counted at their memory limit, stay under this"
    )

    # --- the scientific runtime (numpy, pandas, matplotlib, Pillow) --------------------------
    scientific_image: str = Field("sce-sandbox-scientific:bookworm", description="the scientific runtime's image tag")
    scientific_memory_mb: int = Field(
        512, ge=128, description="memory limit of the scientific runtime (its imports alone peak near 90 MiB)"
    )
    scientific_tmpfs_mb: int = Field(64, ge=1, description="size of the scientific runtime's writable /tmp")
    scientific_pool_size: int = Field(1, ge=0, le=64, description="started scientific sandboxes waiting; 0 = off")

    def engine_threads(self) -> int:
        """Threads for one engine's blocking calls: a kill for every run at once, plus the pool's
        starts and removals (in threads where the engine wire is off or cannot serve: remote
        engines), so a timeout's kill never queues behind other calls."""
        if self.executor_threads is not None:
            return self.executor_threads
        return min(1024, self.max_concurrent_runs + 2 * max(self.pool_size, self.pool_max) + 8)

    @field_validator("allowed_origins", "api_tokens", "docker_hosts", "trusted_proxies", mode="before")
    @classmethod
    def _csv(cls, value: object) -> object:
        return _split_csv(value)

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        unknown = unknown_settings()
        if unknown:
            raise ValueError(f"unknown setting(s): {', '.join(unknown)}")
        if self.timeout_s > self.timeout_max_s:
            raise ValueError("SCE_TIMEOUT_S must not exceed SCE_TIMEOUT_MAX_S")
        if self.code_max_bytes >= self.max_message_bytes:
            raise ValueError("SCE_CODE_MAX_BYTES must be below SCE_MAX_MESSAGE_BYTES")
        if self.executor_threads is not None and self.executor_threads < self.max_concurrent_runs + 2:
            raise ValueError(
                f"SCE_EXECUTOR_THREADS ({self.executor_threads}) must be at least SCE_MAX_CONCURRENT_RUNS + 2 "
                f"({self.max_concurrent_runs + 2}): every live run may need a thread for its kill at once"
            )
        for proxy in self.trusted_proxies:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                raise ValueError(f"SCE_TRUSTED_PROXIES: {proxy!r} is not an address or network") from None
        if ":" not in self.bind:
            raise ValueError("SCE_BIND must be HOST:PORT")
        return self


def unknown_settings() -> list[str]:
    """``SCE_`` variables in the environment that name no setting (a typo, a removed setting).

    Also called on its own when a value is bad: the check above runs only once every value parses,
    and a user should hear of both problems at once.
    """
    return sorted(
        name
        for name in os.environ
        if name.upper().startswith("SCE_") and name.upper()[4:].lower() not in Settings.model_fields
    )
