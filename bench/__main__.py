"""`python -m bench`: every benchmark in one run on embedded servers, ratios measured side by side.

Defaults keep the whole run to a few minutes; the flags make each part longer or larger.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import shlex
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from bench import goals, latency, predict, push, read_api, scale, worker_apply
from bench.figures import Figure, figure, joined_failures, ratio_figure
from bench.stack import RESULTS_DIR, BenchStack, bench_stack, create_api_key, rss_bytes
from bench.tables import Table
from modelreg.shared.adapters import kafka

ALL = ("read", "worker", "latency", "predict", "push", "scale")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--only", default=",".join(ALL), help=f"comma-separated subset of {', '.join(ALL)}")
    parser.add_argument("--models", type=int, default=1000, help="models registered (read and worker)")
    parser.add_argument("--read-seconds", type=float, default=5, help="measured seconds per read cell")
    parser.add_argument("--clients", default="1,8,32", help="concurrent read clients, comma-separated")
    parser.add_argument("--events-per-model", type=int, default=20, help="worker events per model")
    parser.add_argument("--limit-seconds", type=float, default=5, help="seconds per raw-update limit")
    parser.add_argument("--latency-rate", type=float, default=100, help="events per second")
    parser.add_argument("--latency-seconds", type=float, default=30, help="seconds of latency probes")
    parser.add_argument("--scale-sizes", default="1000,10000,100000", help="models in the scale table")
    parser.add_argument("--scale-seconds", type=float, default=3, help="measured seconds per scale cell")
    parser.add_argument("--scale-worker-models", type=int, default=500, help="models per scale worker run")
    parser.add_argument("--scale-events-per-model", type=int, default=10, help="events per model there")
    parser.add_argument("--predict-seconds", type=float, default=5, help="measured seconds per predict cell")
    parser.add_argument("--push-rate", type=float, default=100, help="events per second (push)")
    parser.add_argument("--push-seconds", type=float, default=20, help="seconds of push probes")
    parser.add_argument("--watchers", type=int, default=100, help="concurrent SSE watchers (push)")
    parser.add_argument("--no-mlflow", action="store_true", help="skip the MLflow peer")
    parser.add_argument(
        "--results",
        default=str(RESULTS_DIR / "RESULTS.md"),
        help="where to write the results ('' for nowhere)",
    )
    return parser.parse_args(argv)


def machine() -> dict[str, str]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown",
    )
    mem_kb = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    import os

    return {
        "cpu": cpu,
        "cores (nproc)": str(os.cpu_count()),
        "memory": f"{mem_kb / 1024**2:.1f} GiB",
        "os": platform.platform(),
        "python": platform.python_version(),
        "commit": commit,
        # Other work on the machine moves absolute figures (ratios less): recorded, not corrected for.
        "load average (1, 5, 15 min) at start": ", ".join(f"{v:.2f}" for v in os.getloadavg()),
    }


async def wait_ready(url: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(timeout=5) as http:
        while True:
            try:
                if (await http.get(url)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} not ready after {timeout_s}s")
            await asyncio.sleep(0.2)


async def run(args: argparse.Namespace, stack: BenchStack) -> list[Table]:
    selected = {part.strip() for part in args.only.split(",") if part.strip()}
    unknown = selected - set(ALL)
    if unknown:
        raise SystemExit(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    with_mlflow = "read" in selected and not args.no_mlflow
    settings = stack.settings
    mlflow_start = asyncio.create_task(asyncio.to_thread(stack.mlflow.start, 120)) if with_mlflow else None

    print("starting api and worker ...", file=sys.stderr)
    await kafka.ensure_topics(settings, [settings.events_topic, settings.dlq_topic, settings.commands_topic])
    ids = await read_api.seed_models(stack, args.models)
    # The benchmarks read like a client: with a key for their namespace, made by the key service.
    api_key = await create_api_key(settings, read_api.NAMESPACE)
    stack.api.start()
    stack.worker.start()
    await wait_ready(f"{stack.api_url}/health/ready")
    if mlflow_start is not None:
        await mlflow_start
        print(f"registering {len(ids)} models in MLflow ...", file=sys.stderr)
        await read_api.seed_mlflow(stack.mlflow.url, ids)
    await asyncio.sleep(2)  # let start-up allocations settle before the idle reading
    memory = Table("Memory (RSS)", ["process", "idle MiB", "under load MiB", "load"])
    idle = {"api": rss_bytes(stack.api.process.pid), "worker": rss_bytes(stack.worker.process.pid)}
    if with_mlflow:
        idle["mlflow"] = rss_bytes(stack.mlflow.process.pid)

    tables: list[Table] = []
    measured: dict[goals.Goal, Figure | None] = {}
    # process → (peak RSS, the load it was under, why that load failed or None)
    peaks: dict[str, tuple[int, str, str | None]] = {}
    if "read" in selected:
        print("read benchmark ...", file=sys.stderr)
        clients = [int(c) for c in args.clients.split(",")]
        read = await read_api.run(stack, api_key, ids, args.read_seconds, clients, with_mlflow)
        tables += [read.table, read.ratios]
        top = max(clients)
        api_rps = read.results["API", top].rps
        find_one = ratio_figure(api_rps, read.results["limit: find_one", top].rps)
        measured[goals.AUTH_RATIO] = measured[goals.CACHE_RATIO] = find_one
        measured[goals.CEILING_RATIO] = ratio_figure(api_rps, read.results[read_api.CEILING, top].rps)
        staleness_table, staleness_p99 = await latency.staleness(stack, api_key, ids)
        tables.append(staleness_table)
        measured[goals.STALENESS_P99] = staleness_p99
        load = f"read, {max(clients)} clients"
        peaks["api"] = (read.peak_rss["api"], load, read.load_failure["api"])
        if with_mlflow:
            peaks["mlflow"] = (read.peak_rss["mlflow"], load, read.load_failure["mlflow"])
    if "worker" in selected:
        print("worker benchmark ...", file=sys.stderr)
        worker = await worker_apply.run(stack, ids, args.events_per_model, args.limit_seconds)
        tables.append(worker.table)
        events = f"{len(ids) * args.events_per_model:,} events"
        peaks["worker"] = (worker.peak_rss, events, worker.load_failure)
    if "latency" in selected:
        print("latency benchmark ...", file=sys.stderr)
        latency_table, p99 = await latency.run(
            stack,
            api_key,
            ids,
            args.latency_rate,
            args.latency_seconds,
            first_sequence=args.events_per_model + 1,
        )
        tables.append(latency_table)
        measured[goals.EVENT_P99] = p99
    if "predict" in selected:
        print("inference route benchmark ...", file=sys.stderr)
        predict_table, measured[goals.PREDICT_OVERHEAD] = await predict.run(
            stack, api_key, args.predict_seconds
        )
        tables.append(predict_table)
    if "push" in selected:
        print("push benchmark (SSE and webhooks) ...", file=sys.stderr)
        push_table, measured[goals.SSE_P99] = await push.run(
            stack, api_key, ids, args.push_rate, args.push_seconds, min(args.watchers, len(ids))
        )
        tables.append(push_table)
    # Last: it adds models up to the largest size, and the benchmarks above are meant at --models.
    if "scale" in selected:
        print("scale benchmark ...", file=sys.stderr)
        sizes = [int(size) for size in args.scale_sizes.split(",")]
        scale_tables, by_size = await scale.run(
            stack,
            api_key,
            sizes,
            len(ids),
            args.scale_seconds,
            args.scale_worker_models,
            args.scale_events_per_model,
        )
        tables += scale_tables
        largest = by_size[-1]
        measured[goals.LIST_P99] = largest.listing.p99
        measured[goals.GET_FLAT] = scale.get_flatness(by_size)
        scaling = [ratio_figure(r.workers[2], r.workers[1]) for r in by_size]
        failed = [f for f in scaling if f.failed]
        measured[goals.WORKER_SCALING] = failed[0] if failed else min(scaling, key=lambda f: f.value)
    for process, idle_bytes in idle.items():
        # No reading means the process was gone; a peak under a failed load is a peak under refusals.
        idle_mib = figure(idle_bytes / 2**20, None if idle_bytes else "process not running")
        if idle_mib.failure is not None:
            memory.fail(f"{process}, idle", idle_mib.failure)
        if process not in peaks:
            memory.add(process, idle_mib.text(".0f"), "n/a", "")
            continue
        peak, load, load_failure = peaks[process]
        peak_failure = joined_failures(load_failure, None if peak else "no reading")
        peak_mib = figure(peak / 2**20, peak_failure)
        if peak_failure is not None:
            memory.fail(f"{process}, under load", peak_failure)
        memory.add(process, idle_mib.text(".0f"), peak_mib.text(".0f"), load)
    tables.append(memory)
    tables.append(goals.goals_table(measured))
    return tables


def write_results(path: Path, tables: list[Table], argv: list[str], info: dict[str, str]) -> None:
    command = "python -m bench" + (" " + shlex.join(argv) if argv else "")
    failed = sum(len(table.failures) for table in tables)
    lines = [
        "# Benchmark results",
        "",
        "The last run of `make bench` (or the command below), written by the run itself. "
        "Every ratio compares figures measured in that same run, on the same machine, against the same "
        "embedded servers (SecantusDB for MongoDB, tansu for Kafka). The load generator runs on the same "
        "machine and shares its cores, so absolute figures are lower bounds; the ratios are the point.",
        "",
        f"- command: `{command}`",
        f"- date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        *(f"- {name}: {value}" for name, value in info.items()),
        f"- failed cells: {failed} (a failed cell shows FAILED instead of figures, its ratios n/a)"
        if failed
        else "- failed cells: none",
        "",
    ]
    for table in tables:
        lines += [table.markdown(), ""]
    path.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so the servers started below are stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    info = machine()
    with bench_stack(with_mlflow=not args.no_mlflow) as stack:
        tables = asyncio.run(run(args, stack))
    print()
    for table in tables:
        print(table.text(), end="\n\n")
    if args.results:
        write_results(Path(args.results), tables, argv, info)
        print(f"written to {args.results}")
    failures = [f"{table.title}: {failure}" for table in tables for failure in table.failures]
    if failures:
        print(f"\n{len(failures)} cell(s) FAILED: their figures and ratios are not shown.", file=sys.stderr)
        for failure in failures:
            print(f"  {failure}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
