"""``python -m tests.bench [--quick] [--out DIR] [--phases a,b] [--merge|--render JSON]``: measure, write up.

A full run (``make bench``) writes docs/perf.json, docs/PERFORMANCE.md and docs/images/perf-*.png;
``--quick`` is a short smoke run written under .bench/ unless ``--out`` says otherwise; ``--render
perf.json`` redraws the table, charts and doc from numbers already measured; ``--phases sessions
--merge docs/perf.json`` measures the sessions alone and adds them to the last full run's write-up.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import docker

from app.settings import Settings
from tests.bench import programs as P
from tests.bench.baseline import BENCH_OWNER, docker_run_args, engine_config, remove_bench_containers
from tests.bench.client import ws_run
from tests.bench.common import machine_info, now, summary
from tests.bench.phases import PHASES, Bench, Plan
from tests.bench.profiler import profile
from tests.bench.server import BenchServer
from tests.bench.targets import Target, evaluate

ROOT = Path(__file__).resolve().parents[2]

SERVER_ENV = {
    "SCE_OUTPUT_BYTES": "20000000",  # the 10 MiB flood must not hit the output cap
    "SCE_RUN_FRAME_TIMEOUT_S": "120",  # idle sockets stay open while they are counted
    "SCE_MAX_CONCURRENT_RUNS": "16",  # concurrency 16 runs at once, not queued
    "SCE_PER_CLIENT_RUNS": "256",  # every bench client is 127.0.0.1
    "SCE_QUEUE_SIZE": "256",  # 200 clients at once: queued, not refused
    "SCE_SCIENTIFIC_POOL_SIZE": "0",  # the default runtime is measured: no scientific sandboxes waiting
}


def log(msg: str) -> None:
    print(msg, flush=True)


def _sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


async def _profile_misses(bench: Bench, misses: list[Target], force: bool) -> dict[str, Any]:
    """Repeat the workload behind each missed target under py-spy."""
    server = bench.server
    keys = [t.key for t in misses] if not force else ["first_byte", "runs_per_s_c4", "lines_100k"]
    keys = ["runs_per_s_c4" if k.startswith(("epicbox_", "runs_per_s_")) else k for k in dict.fromkeys(keys)]
    keys = ["first_byte" if k.startswith(("first_byte", "exit_")) else k for k in keys]
    keys = list(dict.fromkeys(keys))

    async def hello_seq() -> None:
        for _ in range(15):
            server.settle(ask_server=False)
            await ws_run(server.ws_url, P.HELLO)

    async def c4() -> None:
        await bench.ws_batch(24, 4)

    async def lines() -> None:
        for _ in range(3):
            server.settle(ask_server=False)
            await ws_run(server.ws_url, P.LINES)

    workloads = {"first_byte": hello_seq, "runs_per_s_c4": c4, "lines_100k": lines}
    profiles: dict[str, Any] = {}
    for key in [k for k in keys if k in workloads]:  # a timeout's overshoot is waiting: see kill_anatomy
        log(f"profiling the server for {key} ...")
        server.settle()
        profiles[key] = await profile(server.pid, workloads[key](), ROOT / ".bench" / f"profile-{key}.txt")
    return profiles


async def main_async(args: argparse.Namespace) -> int:
    plan = Plan.quick() if args.quick else Plan.full()
    phases = args.phases.split(",") if args.phases else list(PHASES)
    unknown = set(phases) - set(PHASES)
    if unknown:
        raise SystemExit(f"unknown phases: {sorted(unknown)}; known: {list(PHASES)}")
    env = dict(SERVER_ENV)
    if os.environ.get("SCE_RUNTIME"):  # SCE_RUNTIME=runsc python -m tests.bench: every side under gVisor
        env["SCE_RUNTIME"] = os.environ["SCE_RUNTIME"]
    if args.pool_size is not None:
        env["SCE_POOL_SIZE"] = str(args.pool_size)
    if args.pool_max is not None:
        env["SCE_POOL_MAX"] = str(args.pool_max)
    settings = Settings.model_validate({k.removeprefix("SCE_").lower(): v for k, v in env.items()})
    api = docker.APIClient(timeout=120, max_pool_size=32)
    config = engine_config(settings)
    machine = machine_info(api, settings.runtime)
    started = time.time()
    t_start = now()
    log(
        f"machine: {machine['nproc']} cpus, {machine['memory_gib']} GiB, kernel {machine['kernel']}, "
        f"docker {machine['docker_server']}, runtime {settings.runtime}"
    )
    server: BenchServer | None = None
    try:
        server = BenchServer(env, settings.pool_size)
        server.settle()
        rss_start = server.rss_kb()
        bench = Bench(server, config, api, plan, log)
        phase_s: dict[str, float] = {}
        for name in phases:
            log(f"phase {name} ...")
            t0 = now()
            await PHASES[name](bench)
            phase_s[name] = round(now() - t0, 1)
            log(f"phase {name}: {phase_s[name]} s")
        results = bench.results
        results["wrong_results"] = bench.failures
        results["cpu_per_run_ms"] = {
            workload: {
                side: {who: summary([x * 1000 for x in xs]) for who, xs in acc.items()} for side, acc in sides.items()
            }
            for workload, sides in bench.cpu.items()
        }
        server.settle()
        rss_end = server.rss_kb()
        results["server_rss"] = {
            "start_kb": rss_start,
            "end_kb": rss_end,
            "runs": bench.ws_runs,
            "growth_kb_per_run": (rss_end - rss_start) / max(1, bench.ws_runs),
        }
        targets = evaluate(results)
        misses = [t for t in targets if not t.passed]
        if (misses and not args.no_profile) or args.profile:
            t0 = now()
            results["profiles"] = await _profile_misses(bench, misses, args.profile)
            phase_s["profiles"] = round(now() - t0, 1)
        results["phase_seconds"] = phase_s
    finally:
        if server is not None:
            server.stop()
            remove_bench_containers(api, server.owner)
        removed = remove_bench_containers(api, BENCH_OWNER)
        if removed:
            log(f"removed {removed} leftover bench container(s)")
    doc = {
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "wall_s": round(now() - t_start, 1),
        "quick": args.quick,
        "machine": machine,
        "settings": {
            "server_env": env,
            "pool_size": settings.pool_size,
            "memory_mb": settings.memory_mb,
            "cpus": settings.cpus,
            "pids": settings.pids,
            "image": settings.image,
        },
        "seed_command": docker_run_args(config, ["python3", "-c", "CODE"]),
        "plan": plan.__dict__,
        "results": results,
        "targets": [t.to_json() for t in targets],
    }
    from tests.bench import report

    if args.merge:
        return merge(doc, Path(args.merge))
    out_dir = Path(args.out) if args.out else (ROOT / ".bench" if args.quick else ROOT / "docs")
    report.print_table(doc)
    report.write_all(doc, out_dir)
    log(f"wrote perf.json, PERFORMANCE.md and images/perf-*.png under {out_dir} ({doc['wall_s']} s)")
    return 0


MERGED_PHASES = ("sessions",)  # phases whose results stand alone (their own ratios, their own note)


def merge(doc: dict[str, Any], into: Path) -> int:
    """Put these phases' results into an earlier full run's perf.json and redraw its write-up: the
    other figures stay as measured then. Only phases whose figures compare within themselves."""
    from tests.bench import report

    base = json.loads(into.read_text())
    for key in MERGED_PHASES:
        if key in doc["results"]:
            base["results"][key] = {**doc["results"][key], "measured_at": doc["generated_at"]}
    base["targets"] = [t.to_json() for t in evaluate(base["results"])]
    report.print_table(base)
    report.write_all(base, into.parent)
    log(f"merged {', '.join(k for k in MERGED_PHASES if k in doc['results'])} into {into}")
    return 0


def render(source: Path, out_dir: Path) -> int:
    """The write-up again from measured numbers (after a change to the report's wording or charts)."""
    from tests.bench import report

    doc = json.loads(source.read_text())
    report.print_table(doc)
    report.write_all(doc, out_dir)
    log(f"rendered {source} into {out_dir}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run (written under .bench/)")
    parser.add_argument("--out", help="output directory (default: docs/, or .bench/ with --quick)")
    parser.add_argument("--phases", help=f"comma-separated subset of: {','.join(PHASES)}")
    parser.add_argument("--pool-size", type=int, help="SCE_POOL_SIZE for the server (default: its own)")
    parser.add_argument("--pool-max", type=int, help="SCE_POOL_MAX for the server: a pool that grows with bursts")
    parser.add_argument("--profile", action="store_true", help="profile every target's workload, missed or not")
    parser.add_argument("--no-profile", action="store_true", help="do not profile missed targets")
    parser.add_argument(
        "--merge",
        metavar="JSON",
        help=f"put the measured phases ({', '.join(MERGED_PHASES)}) into this perf.json and redraw its write-up",
    )
    parser.add_argument("--render", metavar="JSON", help="only redraw the table, charts and doc from a perf.json")
    args = parser.parse_args(argv)
    if args.render:
        return render(Path(args.render), Path(args.out) if args.out else Path(args.render).parent)
    signal.signal(signal.SIGTERM, _sigterm)
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
