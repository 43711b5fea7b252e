"""Consensus early stop on the simulated mock model: generations and tokens saved, and the
change in final (majority-vote) accuracy, over a sweep of model strengths.

The mock model (`recursa.backends.mock`): a fresh sample is correct with probability
`accuracy`; an aggregation, with probability `quality`, returns the correct answer if one of
its K candidates holds it, else the commonest candidate answer; otherwise it samples afresh.
Each point runs the same problems with early stop off and with each rule. The mock's outputs
are a deterministic function of each request, so an early-stopped run is exactly the full run
cut short: the accuracy change is the effect of stopping, not sampling noise.

    python benchmarks/early_stop.py           # 7 accuracies x 3 qualities, 100 problems each
    python benchmarks/early_stop.py --quick   # a smaller grid, under a minute
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from tqdm import tqdm

from recursa import Dispatcher, Engine, Problem, RSAConfig, SolveResult, get_task
from recursa.backends.mock import MockBackend

RULES = ["unanimous", "agree:0.9", "agree:0.75"]
ACCURACIES = [0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9]
QUALITIES = [0.3, 0.6, 0.9]
QUICK_ACCURACIES = [0.05, 0.3, 0.7]
QUICK_QUALITIES = [0.6, 0.9]


@dataclass(frozen=True)
class Outcome:
    """One rule (or none) over the problem set."""

    correct: list[bool]
    answers: list[str | None]
    generations: int
    completion_tokens: int
    saved: int
    steps_run: list[int]


def run(problems: Sequence[Problem], accuracy: float, quality: float, rule: str | None) -> Outcome:
    backend = MockBackend(accuracy=accuracy, quality=quality)
    config = RSAConfig(n=16, k=4, t=10, seed=0, early_stop=rule)
    engine = Engine(Dispatcher(backend), config, keep_history=False)
    results: list[SolveResult] = asyncio.run(engine.run_many(problems))
    task = get_task("general")
    return Outcome(
        correct=[
            task.grade(p, r.text).score == 1.0 for p, r in zip(problems, results, strict=True)
        ],
        answers=[r.answer for r in results],
        generations=sum(r.usage["generations"] for r in results),
        completion_tokens=sum(r.usage["completion_tokens"] for r in results),
        saved=sum(r.generations_saved for r in results),
        steps_run=[r.steps_run for r in results],
    )


def pct(x: float) -> str:
    return f"{100 * x:.1f}"


def row(accuracy: float, quality: float, rule: str, base: Outcome, early: Outcome) -> list[str]:
    n = len(base.correct)
    assert early.generations + early.saved == base.generations, "saved count is off"
    stopped = sum(s < 10 for s in early.steps_run)
    base_acc, early_acc = sum(base.correct) / n, sum(early.correct) / n
    return [
        f"{accuracy:g}",
        f"{quality:g}",
        rule,
        pct(stopped / n),
        f"{sum(early.steps_run) / n:.2f}",
        pct(early.saved / base.generations),
        pct(1 - early.completion_tokens / base.completion_tokens),
        pct(base_acc),
        pct(early_acc),
        f"{100 * (early_acc - base_acc):+.1f}",
        str(sum(a != b for a, b in zip(base.answers, early.answers, strict=True))),
    ]


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    lines = [
        "| " + " | ".join(h.rjust(w) for h, w in zip(header, widths, strict=True)) + " |",
        "|" + "|".join("-" * (w + 1) + ":" for w in widths) + "|",
    ]
    lines += [
        "| " + " | ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="a smaller grid (under a minute)")
    p.add_argument("--problems", type=int, default=None, help="problems per point (100; 30 quick)")
    args = p.parse_args(argv)
    count = args.problems or (30 if args.quick else 100)
    problems = [Problem(f"q{i}", f"Question {i}?", answer=str(100 + i)) for i in range(count)]
    grid = [
        (a, q)
        for q in (QUICK_QUALITIES if args.quick else QUALITIES)
        for a in (QUICK_ACCURACIES if args.quick else ACCURACIES)
    ]
    rows, worst_drop, saved_unanimous, total_unanimous = [], 0.0, 0, 0
    for accuracy, quality in tqdm(grid, desc="early stop", unit="point", file=sys.stderr):
        base = run(problems, accuracy, quality, None)
        for rule in RULES:
            early = run(problems, accuracy, quality, rule)
            rows.append(row(accuracy, quality, rule, base, early))
            if rule == "unanimous":
                drop = (sum(base.correct) - sum(early.correct)) / count
                worst_drop = max(worst_drop, drop)
                saved_unanimous += early.saved
                total_unanimous += base.generations
    print(
        f"mock model, N 16, K 4, T 10, {count} problems per point; early stop off vs each rule "
        "(same problems and seeds)"
    )
    header = [
        "accuracy",
        "quality",
        "rule",
        "stopped %",
        "steps run",
        "gens saved %",
        "tokens saved %",
        "majority acc off %",
        "majority acc rule %",
        "change pp",
        "answers changed",
    ]
    print(table(header, rows))
    print(
        f"RESULT unanimous_generations_saved={saved_unanimous / total_unanimous:.3f} "
        f"unanimous_worst_accuracy_drop={worst_drop:.3f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
