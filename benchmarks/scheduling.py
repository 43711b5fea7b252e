"""Scheduling: recursa's pipelined scheduler against a step barrier on a simulated engine.

The real `Engine` drives a simulated continuous-batching engine (`SimulatedEngine`: at most B
sequences decode together, an iteration costs a + b * batch, prefill c per prompt token,
log-normal completion lengths) through the real `Dispatcher`, in virtual time, so a
paper-scale run (30 problems, N 16, K 4, T 10, B 256) takes seconds. Each point runs the same
workload (same seeds, so the same prompts and completion lengths) twice: pipelined (the
default) and with the step barrier (`RSAConfig.sync_steps=True`, the reference code's
schedule). See benchmarks/README.md for the lower bound behind "efficiency".

    python benchmarks/scheduling.py            # the sweep: problems 1/8/30/100 x B 64/256
    python benchmarks/scheduling.py --quick    # under a minute; still runs the paper point
    python benchmarks/scheduling.py --sensitivity   # the paper point under other cost models
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

from tqdm import tqdm

from recursa import Dispatcher, Engine, Problem, RSAConfig
from recursa.backends.simulated import CostModel, LengthModel, LowerBound, SimulatedEngine
from recursa.virtual_clock import run_virtual

PAPER_POINT = (30, 256)
SWEEP = [(p, b) for p in (1, 8, 30, 100) for b in (64, 256)]
QUICK = [(1, 64), (8, 64), (8, 256), (30, 256)]
#: (a, b) pairs for --sensitivity: from weight-bound decode (a large) to KV-bound (b * B large).
SENSITIVITY_COSTS = [(0.030, 0.00002), (0.020, 0.00005), (0.010, 0.0001), (0.006, 0.0005)]
SENSITIVITY_SIGMAS = [0.4, 0.6, 1.0]


@dataclass(frozen=True)
class Run:
    """One schedule of one workload."""

    wall_s: float
    utilisation: float
    bound: LowerBound
    generations: int
    real_s: float

    @property
    def efficiency(self) -> float:
        return self.bound.seconds / self.wall_s


def run_once(
    problems: int, cost: CostModel, lengths: LengthModel, seed: int, sync_steps: bool
) -> Run:
    """The paper's RSA settings (N 16, K 4, T 10, 8,192 max tokens) on `problems` problems."""
    sim = SimulatedEngine(cost, lengths, seed=seed)
    config = RSAConfig(n=16, k=4, t=10, seed=seed, max_tokens=lengths.cap, sync_steps=sync_steps)
    engine = Engine(Dispatcher(sim), config, keep_history=False)
    batch = [Problem(f"p{i}", f"Simulated problem number {i}.") for i in range(problems)]

    async def main() -> float:
        await engine.run_many(batch)
        return asyncio.get_running_loop().time()

    start = time.perf_counter()
    wall = run_virtual(main())
    return Run(
        wall_s=wall,
        utilisation=sim.utilisation(wall),
        bound=sim.lower_bound(),
        generations=len(sim.trace),
        real_s=time.perf_counter() - start,
    )


@dataclass(frozen=True)
class Point:
    problems: int
    max_batch: int
    pipelined: Run
    barrier: Run

    @property
    def speedup(self) -> float:
        return self.barrier.wall_s / self.pipelined.wall_s


def measure(
    points: Sequence[tuple[int, int]], cost: CostModel, lengths: LengthModel, seed: int
) -> list[Point]:
    out = []
    bar = tqdm(points, desc="scheduling", unit="point", file=sys.stderr, leave=False)
    for problems, max_batch in bar:
        bar.set_postfix_str(f"{problems} problems, B {max_batch}")
        point_cost = CostModel(
            max_batch=max_batch,
            iteration_s=cost.iteration_s,
            per_sequence_s=cost.per_sequence_s,
            prefill_per_token_s=cost.prefill_per_token_s,
        )
        out.append(
            Point(
                problems,
                max_batch,
                pipelined=run_once(problems, point_cost, lengths, seed, sync_steps=False),
                barrier=run_once(problems, point_cost, lengths, seed, sync_steps=True),
            )
        )
    return out


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


def sweep_table(points: Sequence[Point]) -> str:
    header = [
        "problems",
        "B",
        "generations",
        "pipelined s",
        "barrier s",
        "speedup",
        "util pipelined",
        "util barrier",
        "bound s",
        "bound by",
        "eff pipelined",
        "eff barrier",
    ]
    rows = []
    for p in points:
        b = p.pipelined.bound
        rows.append(
            [
                str(p.problems),
                str(p.max_batch),
                str(p.pipelined.generations),
                f"{p.pipelined.wall_s:,.0f}",
                f"{p.barrier.wall_s:,.0f}",
                f"{p.speedup:.3f}",
                f"{p.pipelined.utilisation:.3f}",
                f"{p.barrier.utilisation:.3f}",
                f"{b.seconds:,.0f}",
                "chain" if b.chain_decode_s > b.full_batch_decode_s else "throughput",
                f"{p.pipelined.efficiency:.3f}",
                f"{p.barrier.efficiency:.3f}",
            ]
        )
    return table(header, rows)


def sensitivity(args: argparse.Namespace) -> int:
    """The paper-scale point under other decode cost models and length spreads."""
    rows = []
    grid = [(a, b, s) for a, b in SENSITIVITY_COSTS for s in SENSITIVITY_SIGMAS]
    for a, b, sigma in tqdm(grid, desc="sensitivity", file=sys.stderr, leave=False):
        cost = CostModel(PAPER_POINT[1], a, b, args.c)
        lengths = LengthModel(args.median, sigma, args.cap)
        point = measure([PAPER_POINT], cost, lengths, args.seed)[0]
        rows.append(
            [
                f"{a * 1e3:g}",
                f"{b * 1e3:g}",
                f"{a / (b * PAPER_POINT[1]):.2f}",
                f"{sigma:g}",
                f"{point.speedup:.3f}",
                f"{point.pipelined.efficiency:.3f}",
                f"{point.barrier.efficiency:.3f}",
            ]
        )
    print(
        f"paper-scale point (30 problems, B 256), c = {args.c * 1e3:g} ms/token, seed {args.seed}"
    )
    header = ["a ms", "b ms", "a/(b*B)", "sigma", "speedup", "eff pipelined", "eff barrier"]
    print(table(header, rows))
    return 0


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    defaults_cost, defaults_len = CostModel(), LengthModel()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="4 points incl. the paper-scale one")
    p.add_argument("--sensitivity", action="store_true", help="vary a, b and sigma at 30 x 256")
    p.add_argument("--seed", type=int, default=0, help="run seed (subsets and lengths)")
    p.add_argument("--a", type=float, default=defaults_cost.iteration_s, help="s per iteration")
    p.add_argument("--b", type=float, default=defaults_cost.per_sequence_s, help="s per sequence")
    p.add_argument(
        "--c", type=float, default=defaults_cost.prefill_per_token_s, help="s per prompt token"
    )
    p.add_argument("--median", type=float, default=defaults_len.median, help="median length")
    p.add_argument("--sigma", type=float, default=defaults_len.sigma, help="log-normal sigma")
    p.add_argument("--cap", type=int, default=defaults_len.cap, help="max new tokens")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    if args.sensitivity:
        return sensitivity(args)
    cost = CostModel(PAPER_POINT[1], args.a, args.b, args.c)
    lengths = LengthModel(args.median, args.sigma, args.cap)
    start = time.perf_counter()
    points = measure(QUICK if args.quick else SWEEP, cost, lengths, args.seed)
    print(
        f"simulated engine: iteration a + b*batch with a = {args.a * 1e3:g} ms, "
        f"b = {args.b * 1e3:g} ms; prefill c = {args.c * 1e3:g} ms/token; lengths log-normal "
        f"(median {args.median:g}, sigma {args.sigma:g}, cap {args.cap}); N 16, K 4, T 10; "
        f"seed {args.seed}; times are virtual seconds"
    )
    print(sweep_table(points))
    print(f"(real time {time.perf_counter() - start:.1f} s)")
    paper = next(p for p in points if (p.problems, p.max_batch) == PAPER_POINT)
    print(f"RESULT speedup={paper.speedup:.3f} efficiency={paper.pipelined.efficiency:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
