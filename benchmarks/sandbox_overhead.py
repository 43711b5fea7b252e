"""How long one sandboxed run takes in each isolation tier available here, and how many
runs per second a parallel batch sustains. Prints a table; not a pass/fail test.

    .venv/bin/python benchmarks/sandbox_overhead.py [--runs 20] [--parallel 2] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from recursa.sandbox import Sandbox, SandboxConfig, SandboxUnavailable

PROGRAM = "import sys\nprint(sum(map(int, sys.stdin.read().split())))\n"


async def measure(mode: str, runs: int, parallel: int) -> tuple[str, list[float], float] | None:
    box = Sandbox(SandboxConfig(isolation=mode, max_parallel_tests=parallel))  # type: ignore[arg-type]
    try:
        tier = await box.isolation()
    except SandboxUnavailable:
        return None
    single = []
    for _ in range(runs):
        start = time.monotonic()
        run = await box.run(PROGRAM, "1 2 3\n")
        single.append(time.monotonic() - start)
        assert run.ok, run.message
    start = time.monotonic()
    batch = await asyncio.gather(*(box.run(PROGRAM, "1 2 3\n") for _ in range(runs)))
    rate = runs / (time.monotonic() - start)
    assert all(r.ok for r in batch)
    return tier.describe(), single, rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="5 runs per tier")
    args = parser.parse_args()
    if args.quick:
        args.runs = 5
    print(f"| tier | what | runs | mean ms | p90 ms | runs/s ({args.parallel} parallel) |")
    print("| --- | --- | --- | --- | --- | --- |")
    result: list[str] = []
    for mode in ("namespaces", "userns", "process"):
        found = asyncio.run(measure(mode, args.runs, args.parallel))
        if found is None:
            print(f"| {mode} | unavailable here | | | | |")
            continue
        what, single, rate = found
        ms = sorted(1000 * s for s in single)
        p90 = ms[min(len(ms) - 1, int(0.9 * len(ms)))]
        print(
            f"| {mode} | {what} | {len(ms)} | {statistics.mean(ms):.0f} | {p90:.0f} | {rate:.1f} |"
        )
        result.append(f"{mode}_mean_ms={statistics.mean(ms):.0f} {mode}_runs_per_s={rate:.1f}")
    print("RESULT " + " ".join(result))


if __name__ == "__main__":
    main()
