"""One typed settings object, read once from ``SCE_*`` environment variables and passed down.

Every limit the service enforces is named here with a default. Nothing else in the package
reads the environment: the app factory, the runner and the pool all take a ``Settings``.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


@dataclass(frozen=True)
class DockerSettings:
    """The Docker backend's group of settings."""

    host: str | None  # SCE_DOCKER_HOST (None: DOCKER_HOST or the local socket)
    hosts: tuple[str | None, ...]  # SCE_DOCKER_HOSTS, else (host,)
    tls_dir: str | None  # SCE_DOCKER_TLS_DIR
    runtime: str  # SCE_RUNTIME
    capacity: int  # SCE_ENGINE_CAPACITY, else SCE_MAX_CONCURRENT_RUNS
    uid_base: int  # SCE_SANDBOX_UID_BASE
    uid_count: int  # SCE_SANDBOX_UID_COUNT


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def host_of(value: str) -> str:
    """``Host``-style ``name[:port]`` -> ``name`` in lower case (``[v6]`` keeps its brackets)."""
    value = value.strip().lower()
    if value.startswith("["):
        return value.split("]", 1)[0] + "]"
    if value.count(":") > 1:  # a bare IPv6 address (SCE_ALLOWED_HOSTS=::1)
        return f"[{value}]"
    return value.split(":", 1)[0]


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
        description="addresses/networks whose X-Forwarded-For is believed: the client is the rightmost entry "
        "that is not one of them (comma-separated; a client's own Forwarded header is never read)",
    )
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Host header names served, port optional (comma-separated; `*`: any); default: localhost, "
        "127.0.0.1, [::1] and SCE_BIND's host. Others get 400 (DNS rebinding)",
    )
    admin_token: str | None = Field(
        None,
        description="bearer token for /metrics, /healthz details and ?deep=1; unset: only loopback callers "
        "with no forwarding header get them",
    )
    client_cookie_key: str | None = Field(
        None,
        description="key that signs the browser cookie shares and rate limits are counted by; unset: random "
        "per start (give every server behind a balancer the same one)",
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

    # --- the sandbox backend: which one, and the Docker engine's settings (``Settings.docker()``) ---
    backend: Literal["docker"] = Field("docker", description="the sandbox backend (one so far)")
    image: str = Field("sce-sandbox:bookworm", description="the sandbox image's tag")
    runtime: Literal["runc", "runsc"] = Field("runc", description="OCI runtime for sandboxes")
    docker_host: str | None = Field(None, description="engine URL; default: DOCKER_HOST or the local socket")
    docker_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="several engines for one server (comma-separated URLs); overrides SCE_DOCKER_HOST",
    )
    docker_tls_dir: str | None = Field(
        None,
        description="directory with ca.pem, cert.pem, key.pem: mutual TLS for tcp:// engines "
        "(the only CA trusted for them, whatever REQUESTS_CA_BUNDLE and the like say)",
    )
    engine_capacity: int | None = Field(
        None, ge=1, description="runs one engine carries at once; default: SCE_MAX_CONCURRENT_RUNS"
    )
    sandbox_uid_base: int = Field(
        100_000, ge=1000, description="lowest UID:GID a sandbox runs as (each sandbox gets its own)"
    )
    sandbox_uid_count: int = Field(
        1_000_000, ge=16, description="how many UIDs from SCE_SANDBOX_UID_BASE sandboxes are picked from at random"
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
    frames_max_bytes: int | None = Field(
        None,
        ge=1024,
        description="a run's frames as sent (JSON), image and file data aside (rich_output_bytes counts it); "
        "past it: output_limit. Default: 2 x SCE_OUTPUT_BYTES",
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
    per_address_runs: int = Field(
        60, ge=1, description="running+waiting runs from one address, all its browsers (cookies) together"
    )
    retry_after_s: int = Field(2, ge=1, description="Retry-After sent with HTTP 503 busy")
    rate_runs_per_minute: int = Field(
        30, ge=0, description="runs one client may start a minute (a minute's worth at once, then steadily); 0 = off"
    )
    rate_code_bytes_per_minute: int = Field(
        1_048_576, ge=0, description="bytes of code one client may send a minute (as runs per minute); 0 = off"
    )
    rate_address_runs_per_minute: int = Field(
        300, ge=0, description="runs one address may start a minute, all its browsers (cookies) together; 0 = off"
    )
    rate_address_code_bytes_per_minute: int = Field(
        10_485_760, ge=0, description="bytes of code one address may send a minute, all its browsers together; 0 = off"
    )

    # --- runs that outlive their connection ---------------------------------------------------
    resume_grace_s: float = Field(
        15.0, ge=0, description="a dropped run waits this long to be resumed; a finished one stays this long"
    )
    watchers_max: int = Field(8, ge=0, description="watch connections one run may have at once")
    health_probe_interval_s: float = Field(
        5.0, gt=0, description="deep health probes share one result for this long (one probe sandbox at most)"
    )

    # --- MCP (/mcp, v3) ------------------------------------------------------------------------
    mcp_enabled: bool = Field(True, description="serve the Model Context Protocol at /mcp")
    mcp_idle_timeout_s: float = Field(
        1800.0, gt=0, description="an MCP session with no request for this long ends (and its kept state with it)"
    )
    mcp_max_sessions: int = Field(1000, ge=1, description="MCP sessions open at once; past it a new one gets 503")

    # --- sessions (v3): one sandbox kept for a sequence of runs --------------------------------
    session_idle_timeout_s: float = Field(600.0, gt=0, description="a session unused this long ends")
    session_max_lifetime_s: float = Field(3600.0, gt=0, description="a session ends this long after it was made")
    sessions_per_client: int = Field(2, ge=0, description="sessions one client may hold at once")
    sessions_max: int = Field(
        2, ge=0, description="sessions this server holds at once (each keeps a sandbox: counted with the runs)"
    )
    server_name: str | None = Field(
        None,
        pattern=r"^[a-z0-9-]{1,32}$",
        description="begins every session id, so a balancer can route to this server; unset: the host name",
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
    pool_refill_delay_ms: int = Field(
        50,
        ge=0,
        le=10_000,
        description="a sandbox taken from the pool is replaced this long after, so that starting its "
        "replacement does not hold up the run's first output",
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

    def docker(self) -> DockerSettings:
        """The Docker backend's settings as one group (their variables keep their SCE_ names)."""
        hosts: tuple[str | None, ...] = tuple(self.docker_hosts) or (self.docker_host,)
        return DockerSettings(
            host=self.docker_host,
            hosts=hosts,
            tls_dir=self.docker_tls_dir,
            runtime=self.runtime,
            capacity=self.engine_capacity or self.max_concurrent_runs,
            uid_base=self.sandbox_uid_base,
            uid_count=self.sandbox_uid_count,
        )

    @field_validator("allowed_origins", "docker_hosts", "trusted_proxies", "allowed_hosts", mode="before")
    @classmethod
    def _csv(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("api_tokens", mode="before")
    @classmethod
    def _tokens(cls, value: object) -> object:
        """A list that is set but holds no token (``" , "``) would turn authentication off unseen."""
        tokens = _split_csv(value)
        if isinstance(value, str) and value and not tokens:
            raise ValueError(
                f"SCE_API_TOKENS is set ({value!r}) but holds no token: name at least one, or unset it "
                "(an empty value) to run without tokens"
            )
        return tokens

    def host_names(self) -> frozenset[str] | None:
        """The Host names this server answers to, lower case, without ports; None: any (``*``)."""
        if "*" in self.allowed_hosts:
            return None
        if self.allowed_hosts:
            return frozenset(host_of(h) for h in self.allowed_hosts)
        names = {"localhost", "127.0.0.1", "[::1]"}
        bound = host_of(self.bind)
        if bound not in ("0.0.0.0", "[::]", ""):
            names.add(bound)
        return frozenset(names)

    def frame_budget_bytes(self) -> int:
        return self.frames_max_bytes if self.frames_max_bytes is not None else 2 * self.output_bytes

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        unknown = unknown_settings()
        if unknown:
            raise ValueError(f"unknown setting(s): {', '.join(unknown)}")
        if self.timeout_s > self.timeout_max_s:
            raise ValueError("SCE_TIMEOUT_S must not exceed SCE_TIMEOUT_MAX_S")
        if self.code_max_bytes >= self.max_message_bytes:
            raise ValueError("SCE_CODE_MAX_BYTES must be below SCE_MAX_MESSAGE_BYTES")
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
