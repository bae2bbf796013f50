"""Measure `ingest run` on a generated batch: speed, peak memory, clients and connections.

Each configuration runs `ingest run --json` as its own process tree while this script samples
the resident memory of every process in the tree. The figures go to a JSON file and are
printed as a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
INGEST = [sys.executable, "-m", "nightly_ingest.cli"]
SAMPLE_INTERVAL_S = 0.25


@dataclass
class Measurement:
    """Figures of one `ingest run` of a benchmark."""

    messages: int
    max_concurrency: int
    slice_size: int
    status: str
    reconciled: bool
    duration_s: float
    wall_s: float
    messages_per_s: float
    peak_rss_mb: float
    environments_started: int
    invocations: int
    clients_created: int
    connections_opened: int


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000, help="messages in the batch")
    parser.add_argument("--seed", type=int, default=1, help="seed of the generated batch")
    parser.add_argument(
        "--max-concurrency", type=int, nargs="+", default=[4], help="MaxConcurrency values to run"
    )
    parser.add_argument(
        "--slice-size", type=int, nargs="+", default=[500], help="SliceSize values to run"
    )
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks" / "results", help="folder for JSON results"
    )
    args = parser.parse_args(argv)

    batch = ROOT / "build" / f"benchmark-{args.messages}-{args.seed}.jsonl"
    if not batch.exists():
        batch.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                *INGEST,
                "generate",
                "--messages",
                str(args.messages),
                "--out",
                str(batch),
                "--seed",
                str(args.seed),
            ],
            check=True,
        )

    measurements = []
    for max_concurrency in args.max_concurrency:
        for slice_size in args.slice_size:
            print(f"running MaxConcurrency {max_concurrency}, SliceSize {slice_size}", flush=True)
            measurements.append(measure(batch, args.messages, max_concurrency, slice_size))

    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    result_path = args.out / f"nightly-{args.messages}-{stamp}.json"
    result_path.write_text(
        json.dumps(
            {"machine": machine_description(), "measurements": [asdict(m) for m in measurements]},
            indent=2,
        )
        + "\n"
    )
    print(markdown_table(measurements))
    print(f"results written to {result_path}")
    return 0 if all(m.reconciled for m in measurements) else 1


def measure(batch: Path, messages: int, max_concurrency: int, slice_size: int) -> Measurement:
    """Run one `ingest run --json` and sample its process tree's memory until it ends."""
    command = [
        *INGEST,
        "run",
        str(batch),
        "--json",
        "--max-concurrency",
        str(max_concurrency),
        "--slice-size",
        str(slice_size),
    ]
    started = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = _PeakMemory(process.pid)
    peak.start()
    stdout, stderr = process.communicate()
    wall = time.monotonic() - started
    peak.stop()

    if not stdout.strip():
        raise RuntimeError(f"ingest run exited {process.returncode} without a summary: {stderr}")
    summary = json.loads(stdout)
    return Measurement(
        messages=messages,
        max_concurrency=max_concurrency,
        slice_size=slice_size,
        status=summary["status"],
        reconciled=summary["reconciled"],
        duration_s=summary["duration_s"],
        wall_s=round(wall, 1),
        messages_per_s=summary["messages_per_s"],
        peak_rss_mb=round(peak.peak_bytes / 2**20, 1),
        environments_started=summary["environments_started"],
        invocations=summary["invocations"],
        clients_created=summary["clients_created"],
        connections_opened=summary["connections_opened"],
    )


class _PeakMemory(threading.Thread):
    """Sampler of the summed resident memory of a process and all its descendants."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self._root = psutil.Process(pid)
        self._done = threading.Event()
        self.peak_bytes = 0

    def run(self) -> None:
        while not self._done.wait(SAMPLE_INTERVAL_S):
            try:
                tree = [self._root, *self._root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            total = 0
            for process in tree:
                try:
                    total += process.memory_info().rss
                except psutil.NoSuchProcess:
                    continue
            self.peak_bytes = max(self.peak_bytes, total)

    def stop(self) -> None:
        self._done.set()
        self.join()


def machine_description() -> dict[str, object]:
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "platform": platform.platform(),
    }


def markdown_table(measurements: list[Measurement]) -> str:
    header = (
        "| messages | MaxConcurrency | SliceSize | status | execution s | msg/s | peak RSS MB "
        "| environments | invocations | clients | connections |\n"
        "|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|"
    )
    rows = [
        f"| {m.messages:,} | {m.max_concurrency} | {m.slice_size} | {m.status} "
        f"| {m.duration_s:.1f} | {m.messages_per_s:,.0f} | {m.peak_rss_mb:,.0f} "
        f"| {m.environments_started} | {m.invocations} | {m.clients_created} "
        f"| {m.connections_opened} |"
        for m in measurements
    ]
    return "\n".join([header, *rows])


if __name__ == "__main__":
    sys.exit(main())
