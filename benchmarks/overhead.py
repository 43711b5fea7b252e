"""Overhead: generations per second through the scheduler and the journal, and peak memory.

A real `recursa.evaluate` run (engine, dispatcher, SQLite journal committing every completion
as it arrives, grading, metrics, problems.jsonl, summary) drives the registered mock backend
(`backend="mock"`, simulated model, zero latency), so everything measured is recursa's own
work plus the mock's text generation. Problems are built in code (math problems with known
integer answers) before the clock starts. Each configuration runs in a fresh subprocess, which
reports its wall time, its CPU time (user + system) and its peak resident memory
(`resource.getrusage(RUSAGE_SELF).ru_maxrss`: the whole process, interpreter and imports
included); the journal is then checked to hold every generation.

    python benchmarks/overhead.py            # 1,000 problems x N 16 x T 2/5/10 (160,000 at T 10)
    python benchmarks/overhead.py --quick    # 100 problems, under a minute
    python benchmarks/overhead.py --profile  # one 200-problem T 10 run under cProfile (CPU time)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

STEPS = (2, 5, 10)


def problems(count: int) -> list[Any]:
    """Math problems with known integer answers (the simulated mock answers them)."""
    from recursa.tasks import Problem

    return [
        Problem(
            id=f"add-{i}",
            question=f"What is {i} + {2 * i + 7}?",
            answer=str(3 * i + 7),
            task="math",
        )
        for i in range(count)
    ]


def child(args: argparse.Namespace) -> int:
    """One configuration in this (fresh) process; prints one JSON line."""
    import recursa

    todo = problems(args.problems)
    out = Path(args.dir) / f"run-t{args.t}"
    settings = {"n": args.n, "k": args.k, "t": args.t, "seed": 0, "backend": "mock"}
    base_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if args.profile:
        import cProfile
        import pstats

        prof = cProfile.Profile(time.process_time)
        prof.enable()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    result = recursa.evaluate(todo, out=out, **settings)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if args.profile:
        prof.disable()
        pstats.Stats(prof, stream=sys.stderr).sort_stats("tottime").print_stats(25)
    with sqlite3.connect(out / "journal.sqlite") as db:
        journaled = int(db.execute("SELECT COUNT(*) FROM completions").fetchone()[0])
    expected = args.problems * args.n * args.t
    generations = int(result.summary["metrics"]["generations"])
    if journaled != expected or generations != expected:
        raise SystemExit(f"expected {expected} generations, journal {journaled}, ran {generations}")
    journal_mb = sum(p.stat().st_size for p in out.glob("journal.sqlite*")) / 2**20
    print(
        json.dumps(
            {
                "problems": args.problems,
                "n": args.n,
                "t": args.t,
                "generations": generations,
                "wall_s": wall,
                "cpu_s": cpu,
                "base_mb": base_mb,
                "peak_mb": peak_mb,
                "journal_mb": journal_mb,
                "mean_acc": result.summary["metrics"]["mean_acc"],
            }
        )
    )
    return 0


def run_config(problems_n: int, n: int, k: int, t: int, workdir: Path, profile: bool) -> Any:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        "--problems",
        str(problems_n),
        "-n",
        str(n),
        "-k",
        str(k),
        "-t",
        str(t),
        "--dir",
        str(workdir),
    ]
    if profile:
        cmd.append("--profile")
    done = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table with right-aligned columns."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    lines = [
        "| " + " | ".join(h.rjust(w) for h, w in zip(header, widths, strict=True)) + " |",
        "|" + "|".join("-" * (w + 1) + ":" for w in widths) + "|",
    ]
    lines += [
        "| " + " | ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows
    ]
    return "\n".join(lines)


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="100 problems (under a minute)")
    p.add_argument("--problems", type=int, default=None, help="problems (default 1000)")
    p.add_argument("-n", type=int, default=16, help="population size N (default 16)")
    p.add_argument("-k", type=int, default=4, help="aggregation set size K (default 4)")
    p.add_argument(
        "-t", type=int, nargs="+", default=list(STEPS), help="steps T to run (default 2 5 10)"
    )
    p.add_argument("--profile", action="store_true", help="profile one run (stderr)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--dir", default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    if args.child:
        args.t = args.t[0]
        return child(args)
    count = args.problems or (100 if args.quick else 1000)
    steps = sorted(args.t)
    if args.profile:
        count, steps = args.problems or 200, [max(steps)]
    load = os.getloadavg()
    print(
        f"overhead: {count} problems, N {args.n}, K {args.k}, T {'/'.join(map(str, steps))}, "
        f"mock backend at zero latency, {os.cpu_count()} CPUs, load average before "
        f"{load[0]:.1f}",
        flush=True,
    )
    workdir = Path(tempfile.mkdtemp(prefix="recursa-overhead-"))
    results = []
    try:
        for t in steps:
            results.append(run_config(count, args.n, args.k, t, workdir, args.profile))
            print(f"  T {t}: {results[-1]['wall_s']:.1f} s", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    header = [
        "problems",
        "N",
        "T",
        "generations",
        "wall s",
        "gen/s (wall)",
        "CPU s",
        "gen/s (CPU)",
        "RSS after imports MB",
        "peak RSS MB",
        "journal MB",
    ]
    rows = [
        [
            str(r["problems"]),
            str(r["n"]),
            str(r["t"]),
            f"{r['generations']:,}",
            f"{r['wall_s']:.1f}",
            f"{r['generations'] / r['wall_s']:,.0f}",
            f"{r['cpu_s']:.1f}",
            f"{r['generations'] / r['cpu_s']:,.0f}",
            f"{r['base_mb']:.0f}",
            f"{r['peak_mb']:.0f}",
            f"{r['journal_mb']:.0f}",
        ]
        for r in results
    ]
    print(table(header, rows))
    load = os.getloadavg()
    print(f"(load average after: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} on 1/5/15 min)")
    last = results[-1]
    print(
        f"RESULT generations_per_s={last['generations'] / last['wall_s']:.0f} "
        f"peak_mb={last['peak_mb']:.0f} cpu_generations_per_s="
        f"{last['generations'] / last['cpu_s']:.0f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
