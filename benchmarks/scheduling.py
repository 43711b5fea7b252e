"""Scheduling: recursa's pipelined scheduler against a step barrier on a simulated engine.

The real `Engine` drives a simulated continuous-batching engine (`SimulatedEngine`: at most B
sequences decode together, an iteration costs a + b * batch, prefill c per prompt token,
log-normal completion lengths) through the real `Dispatcher`, in virtual time, so a
paper-scale run (30 problems, N 16, K 4, T 10, B 256) takes seconds. Each point runs the same
workload (same seeds, so the same prompts and completion lengths) twice: pipelined (the
default) and with the step barrier (`RSAConfig.sync_steps=True`, the reference code's
schedule). See benchmarks/README.md for the lower bound behind "efficiency".

With `--memory NAME` (or `--kv-tokens N`) the engine also has a KV-cache pool (16-token
blocks, admission when a prompt's blocks fit, preemption with recompute, prefix caching), the
bound becomes memory-aware, the table gains `kv peak`, `preempted tokens` and `prefix-cache
hit` columns, and a second table compares, at each point, the pipelined schedule with no
limit, the same schedule with the dispatcher's admission control (at most the pool's tokens
in flight, each request counted as prompt + max_tokens, and as prompt + the mean reported
completion), both schedules with the other setting of vLLM's `--watermark` (0.01, what the
vLLM backend sets where vLLM has it, or 0, vLLM's default and older releases) and the step
barrier. `--watermark F` sets the first table's (default 0.01).

    python benchmarks/scheduling.py            # the sweep: problems 1/8/30/100 x B 64/256
    python benchmarks/scheduling.py --quick    # under a minute; still runs the paper point
    python benchmarks/scheduling.py --sensitivity   # the paper point under other cost models
    python benchmarks/scheduling.py --memory qwen3-4b-h200 [--quick]   # KV memory binds
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tqdm import tqdm

from recursa import Dispatcher, Engine, GenerationRequest, Problem, RSAConfig
from recursa.backends.admission import InFlightEstimate
from recursa.backends.kv_cache import MEMORY_PRESETS, MemoryModel, memory_preset
from recursa.backends.simulated import (
    CostModel,
    KVStats,
    LengthModel,
    LowerBound,
    SimulatedEngine,
)
from recursa.backends.vllm import VLLM_WATERMARK
from recursa.errors import BackendError
from recursa.virtual_clock import run_virtual

PAPER_POINT = (30, 256)
SWEEP = [(p, b) for p in (1, 8, 30, 100) for b in (64, 256)]
QUICK = [(1, 64), (8, 64), (8, 256), (30, 256)]
#: (a, b) pairs for --sensitivity: from weight-bound decode (a large) to KV-bound (b * B large).
SENSITIVITY_COSTS = [(0.030, 0.00002), (0.020, 0.00005), (0.010, 0.0001), (0.006, 0.0005)]
SENSITIVITY_SIGMAS = [0.4, 0.6, 1.0]
#: Under a memory model the problem statement is this many words (tokens) long, about an AIME
#: problem's size, so that sharing the problem text (prefix caching) is modelled.
MEMORY_PROBLEM_WORDS = 100
#: The admission-control variants measured under a memory model: (label, estimate).
ADMISSION = [("bounded max", "max_tokens"), ("bounded usage", "usage")]
#: vLLM's `--watermark` as the vLLM backend sets it; the second table adds the other setting.
WATERMARK = VLLM_WATERMARK


def other_watermark(watermark: float) -> float:
    """The watermark the second table compares with: vLLM's default (0), or the backend's."""
    return 0.0 if watermark else WATERMARK


def step_priority(request: GenerationRequest) -> int:
    """vLLM's priority as the vLLM backend sets it: the request's step (lower runs first)."""
    return int(request.meta.get("step", 0))


def staggered_priority(stagger: int) -> Callable[[GenerationRequest], int]:
    """Priority `stagger` x step + the problem's index (problem "p7": 7): problem i runs as if
    i / stagger steps behind, so early problems move ahead and their aggregation prompts share
    the engine with later problems' first step. Measured only here (benchmarks/README.md);
    the vLLM backend sends the step."""

    def priority(request: GenerationRequest) -> int:
        index = int(str(request.meta.get("problem_id", "p0")).lstrip("p") or 0)
        return stagger * step_priority(request) + index

    return priority


def priority_of(stagger: int | None) -> Callable[[GenerationRequest], int] | None:
    if stagger is None:
        return None
    return step_priority if stagger == 0 else staggered_priority(stagger)


@dataclass(frozen=True)
class Run:
    """One schedule of one workload."""

    wall_s: float
    utilisation: float
    bound: LowerBound
    generations: int
    real_s: float
    kv: KVStats
    peak_batch: int
    kv_utilisation: float

    @property
    def efficiency(self) -> float:
        return self.bound.seconds / self.wall_s


def run_once(
    problems: int,
    cost: CostModel,
    lengths: LengthModel,
    seed: int,
    sync_steps: bool,
    memory: MemoryModel | None = None,
    admission: InFlightEstimate | None = None,
    stagger: int | None = 0,
    watermark: float = 0.0,
) -> Run:
    """The paper's RSA settings (N 16, K 4, T 10, 8,192 max tokens) on `problems` problems;
    with `admission`, the dispatcher keeps at most the pool's tokens in flight. Under a memory
    model the engine schedules by priority = step (what the vLLM backend asks for) with
    `stagger` 0, first come, first served with None, W x step + the problem's index with W > 0
    (`staggered_priority`); `watermark` is vLLM's (a share of the pool a joining request
    leaves free)."""
    priority = priority_of(stagger) if memory is not None else None
    sim = SimulatedEngine(
        cost, lengths, seed=seed, memory=memory, priority=priority, watermark=watermark
    )
    config = RSAConfig(n=16, k=4, t=10, seed=seed, max_tokens=lengths.cap, sync_steps=sync_steps)
    budget = memory.kv_tokens if memory is not None and admission is not None else None
    dispatcher = Dispatcher(
        sim, max_tokens_in_flight=budget, in_flight_estimate=admission or "max_tokens"
    )
    engine = Engine(dispatcher, config, keep_history=False)
    words = " ".join(["word"] * MEMORY_PROBLEM_WORDS) if memory is not None else ""
    batch = [
        Problem(f"p{i}", f"Simulated problem number {i}. {words}".strip()) for i in range(problems)
    ]

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
        kv=sim.kv_stats(),
        peak_batch=sim.peak_batch,
        kv_utilisation=sim.kv_utilisation(wall),
    )


@dataclass(frozen=True)
class Point:
    problems: int
    max_batch: int
    pipelined: Run
    barrier: Run
    #: Under a memory model: the pipelined schedule with admission control, by ADMISSION label,
    #: and both schedules at `other_watermark`, labelled "pipelined/barrier watermark W".
    bounded: dict[str, Run]

    @property
    def speedup(self) -> float:
        return self.barrier.wall_s / self.pipelined.wall_s


def measure(
    points: Sequence[tuple[int, int]],
    cost: CostModel,
    lengths: LengthModel,
    seed: int,
    memory: MemoryModel | None = None,
    stagger: int | None = 0,
    watermark: float = 0.0,
    variants_at: Sequence[tuple[int, int]] | None = None,
) -> list[Point]:
    """Each point pipelined and with the barrier; under a memory model also the variants of
    the second table (admission control, the watermark), at every point or at `variants_at`."""
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
        bounded = {}
        if memory is not None and (variants_at is None or (problems, max_batch) in variants_at):
            for label, estimate in ADMISSION:
                bounded[label] = run_once(
                    problems, point_cost, lengths, seed, False, memory, estimate, stagger, watermark
                )
            other = other_watermark(watermark)
            for sync, label in ((False, "pipelined"), (True, "barrier")):
                bounded[f"{label} watermark {other:g}"] = run_once(
                    problems, point_cost, lengths, seed, sync, memory, None, stagger, other
                )
        out.append(
            Point(
                problems,
                max_batch,
                pipelined=run_once(
                    problems, point_cost, lengths, seed, False, memory, None, stagger, watermark
                ),
                barrier=run_once(
                    problems, point_cost, lengths, seed, True, memory, None, stagger, watermark
                ),
                bounded=bounded,
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


def sweep_table(points: Sequence[Point], memory: bool = False, watermark: float = 0.0) -> str:
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
    other = other_watermark(watermark)
    marked = f"pipelined watermark {other:g}"
    with_marked = memory and all(marked in p.bounded for p in points)
    if memory:
        header += ["kv peak", "preempted tokens", "prefix-cache hit"]
    if with_marked:
        header += [f"eff watermark {other:g}"]
    rows = []
    for p in points:
        b = p.pipelined.bound
        kv = p.pipelined.kv
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
                b.bound_by,
                f"{p.pipelined.efficiency:.3f}",
                f"{p.barrier.efficiency:.3f}",
            ]
            + (
                [f"{kv.peak_share:.3f}", f"{kv.preempted_tokens:,}", f"{kv.prefix_hit_rate:.3f}"]
                if memory
                else []
            )
            + ([f"{p.bounded[marked].efficiency:.3f}"] if with_marked else [])
        )
    return table(header, rows)


def admission_table(points: Sequence[Point]) -> str:
    """Each point's schedules under the memory model: no limit, admission control, barrier."""
    header = [
        "problems",
        "B",
        "schedule",
        "wall s",
        "vs barrier",
        "efficiency",
        "peak batch",
        "kv peak",
        "kv util",
        "preemptions",
        "preempted tokens",
        "preempted share",
        "prefix-cache hit",
    ]
    rows = []
    for p in points:
        runs = [("pipelined", p.pipelined), *p.bounded.items(), ("barrier", p.barrier)]
        for label, run in runs:
            rows.append(
                [
                    str(p.problems),
                    str(p.max_batch),
                    label,
                    f"{run.wall_s:,.0f}",
                    f"{p.barrier.wall_s / run.wall_s:.3f}",
                    f"{run.efficiency:.3f}",
                    str(run.peak_batch),
                    f"{run.kv.peak_share:.3f}",
                    f"{run.kv_utilisation:.3f}",
                    f"{run.kv.preemptions:,}",
                    f"{run.kv.preempted_tokens:,}",
                    f"{run.kv.preempted_share:.3f}",
                    f"{run.kv.prefix_hit_rate:.3f}",
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
    p.add_argument(
        "--quick",
        action="store_true",
        help="4 points incl. the paper-scale one (with a memory model, the second table's "
        "variants only at the paper point)",
    )
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
    p.add_argument(
        "--memory",
        choices=sorted(MEMORY_PRESETS),
        help="model a KV-cache pool sized for this model and GPU (see benchmarks/README.md)",
    )
    p.add_argument(
        "--kv-tokens",
        type=int,
        metavar="N",
        help="model a KV-cache pool of N tokens (with --memory: instead of its size)",
    )
    p.add_argument(
        "--watermark",
        type=float,
        default=WATERMARK,
        metavar="F",
        help="with a memory model: vLLM's --watermark (share of the pool a joining request "
        f"leaves free; default {WATERMARK:g}, what the vLLM backend sets where vLLM has it; "
        "0 is vLLM's default; the second table adds the other of the two)",
    )
    p.add_argument(
        "--stagger",
        type=int,
        default=0,
        metavar="W",
        help="with a memory model: priority W x step + problem index instead of the step "
        "(default 0: the step, as the vLLM backend sends)",
    )
    p.add_argument(
        "--fcfs",
        action="store_true",
        help="with a memory model: first come, first served instead of priority = step",
    )
    args = p.parse_args(argv)
    if args.kv_tokens is not None and args.kv_tokens < 16:
        p.error(f"--kv-tokens must be at least one 16-token block, not {args.kv_tokens}")
    if args.stagger < 0 or (args.stagger and args.fcfs):
        p.error("--stagger takes W >= 0 and cannot be combined with --fcfs")
    if not 0.0 <= args.watermark < 1.0:
        p.error(f"--watermark is a share of the KV pool in [0, 1), not {args.watermark}")
    if args.sensitivity and (args.memory or args.kv_tokens):
        p.error("--sensitivity runs the memory-free model; drop --memory/--kv-tokens")
    return args


def memory_of(args: argparse.Namespace) -> MemoryModel | None:
    if args.memory is None and args.kv_tokens is None:
        return None
    if args.kv_tokens is None:
        return memory_preset(args.memory)
    return MemoryModel(
        args.kv_tokens, name=f"{args.memory} with --kv-tokens" if args.memory else ""
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    if args.sensitivity:
        return sensitivity(args)
    cost = CostModel(PAPER_POINT[1], args.a, args.b, args.c)
    lengths = LengthModel(args.median, args.sigma, args.cap)
    memory = memory_of(args)
    start = time.perf_counter()
    try:
        points = measure(
            QUICK if args.quick else SWEEP,
            cost,
            lengths,
            args.seed,
            memory,
            None if args.fcfs else args.stagger,
            args.watermark,
            [PAPER_POINT] if args.quick else None,  # --quick: the variants at the paper point
        )
    except BackendError as exc:  # a pool too small for one request
        print(f"scheduling.py: {exc}; use a larger --kv-tokens", file=sys.stderr)
        return 1
    print(
        f"simulated engine: iteration a + b*batch with a = {args.a * 1e3:g} ms, "
        f"b = {args.b * 1e3:g} ms; prefill c = {args.c * 1e3:g} ms/token; lengths log-normal "
        f"(median {args.median:g}, sigma {args.sigma:g}, cap {args.cap}); N 16, K 4, T 10; "
        f"seed {args.seed}; times are virtual seconds"
    )
    priority_label = f"{args.stagger} x step + problem index" if args.stagger else "step"
    if memory is None:
        print("memory: none (no KV-cache limit: only B bounds the batch)")
    else:
        print(
            f"memory: {memory.description} ({memory.blocks:,} blocks of "
            f"{memory.block_tokens}); prefix caching on; "
            f"{'first come, first served' if args.fcfs else 'priority = ' + priority_label}; "
            f"watermark {args.watermark:g}; problem statements of {MEMORY_PROBLEM_WORDS} words"
        )
    print(sweep_table(points, memory is not None, args.watermark))
    if memory is not None:
        print()
        print(
            "admission control (dispatcher max_tokens_in_flight = the pool's tokens; "
            "max: prompt + max_tokens, usage: prompt + mean reported completion; "
            "watermark: vLLM's --watermark; vs barrier: the barrier above over this row):"
        )
        print(admission_table(points))
    print(f"(real time {time.perf_counter() - start:.1f} s)")
    paper = next(p for p in points if (p.problems, p.max_batch) == PAPER_POINT)
    result = f"RESULT speedup={paper.speedup:.3f} efficiency={paper.pipelined.efficiency:.3f}"
    if memory is not None:
        kv = paper.pipelined.kv
        result += f" kv_peak={kv.peak_share:.3f} preempted_share={kv.preempted_share:.3f}"
        result += f" watermark={args.watermark:g}"
        other = other_watermark(args.watermark)
        marked = paper.bounded[f"pipelined watermark {other:g}"]
        marked_barrier = paper.bounded[f"barrier watermark {other:g}"]
        result += (
            f" watermark{other:g}_speedup={marked_barrier.wall_s / marked.wall_s:.3f}"
            f" watermark{other:g}_efficiency={marked.efficiency:.3f}"
            f" watermark{other:g}_preempted_share={marked.kv.preempted_share:.3f}"
        )
    print(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
