"""What `recursa.evaluate` costs beyond the model: journal, grading, records, and its memory.

The mock backend answers instantly, so the time measured is recursa's own per generation
(engine, SQLite journal commits, grading, per-step statistics, problems.jsonl). Each size runs
in a fresh process, so the peak resident memory is that run's. The registered mock backend
keeps no request it has answered, and the metrics are running totals, so memory stays flat as
problems grow; the resume of the finished run replays the journal without model calls.

    .venv/bin/python benchmarks/eval_overhead.py [--problems 250 1000 4000] [-n 8] [-t 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = """
import json, resource, sys, time
from recursa import Problem, evaluate
size, n, t = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
out, resume = sys.argv[4], sys.argv[5] == "1"
problems = [Problem(f"p{i}", f"What is {i} + 1?", str(i + 1), "general") for i in range(size)]
start = time.perf_counter()
result = evaluate(problems, out=out, resume=resume, backend="mock", n=n, k=min(4, n), t=t)
wall = time.perf_counter() - start
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
run = result.summary["run"]
generations = result.summary["metrics"]["generations"]
print(json.dumps({"wall": wall, "rss_kib": rss, "requested": run["requested_this_session"],
                  "generations": generations}))
"""


def run(size: int, n: int, t: int, out: Path, resume: bool) -> dict[str, float]:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(size), str(n), str(t), str(out), "1" if resume else "0"],
        capture_output=True,
        text=True,
        check=True,
    )
    data: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, nargs="+", default=[250, 1000, 4000])
    parser.add_argument("-n", type=int, default=8)
    parser.add_argument("-t", type=int, default=3)
    args = parser.parse_args()
    print(
        "| problems | generations | run s | us/generation | peak RSS MiB | resume s | "
        f"resume peak RSS MiB | journal MiB |  (N={args.n}, T={args.t}, mock backend)"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for size in args.problems:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "run"
            first = run(size, args.n, args.t, out, resume=False)
            again = run(size, args.n, args.t, out, resume=True)
            assert again["requested"] == 0, "a resume of a finished run asked the model"
            journal = (out / "journal.sqlite").stat().st_size / 2**20
            gens = int(first["generations"])
            print(
                f"| {size} | {gens} | {first['wall']:.1f} | {1e6 * first['wall'] / gens:.0f} | "
                f"{first['rss_kib'] / 1024:.0f} | {again['wall']:.1f} | "
                f"{again['rss_kib'] / 1024:.0f} | {journal:.1f} |"
            )


if __name__ == "__main__":
    main()
