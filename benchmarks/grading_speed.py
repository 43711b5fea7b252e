"""Grading throughput per task family, on the main thread and off it.

Run: python benchmarks/grading_speed.py [--repeat N]. Prints a Markdown table; no pass/fail.
Off the main thread, math-verify runs in a helper process (see recursa.tasks.math_worker),
so the table shows what that costs next to the in-process path. Reasoning Gym scorers always
run in their own helper process (recursa.tasks.rg_worker): answers are untrusted text.
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Callable

from recursa.benchmarks import load_benchmark
from recursa.tasks import Problem, get_task
from recursa.tasks.math import extract_boxed


def timed(fn: Callable[[], object], repeat: int, in_thread: bool = False) -> float:
    """Seconds per call, after one warm-up call in the same thread (which, off the main
    thread, also starts the math-verify helper process)."""
    elapsed: list[float] = []

    def loop() -> None:
        fn()
        started = time.perf_counter()
        for _ in range(repeat):
            fn()
        elapsed.append(time.perf_counter() - started)

    if in_thread:
        worker = threading.Thread(target=loop)
        worker.start()
        worker.join()
    else:
        loop()
    return elapsed[0] / repeat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=200, help="calls per case")
    args = parser.parse_args()

    math = Problem(id="m", question="q", answer="\\frac{1}{2}", task="math")
    aime = Problem(id="a", question="q", answer="204", task="math")
    mcq = Problem(id="c", question="q", answer="C", task="mcq", meta={"options": list("abcd")})
    rg = load_benchmark("rg:maze", size=1, seed=0).problems[0]
    arc = load_benchmark("arc-agi-2", limit=1).problems[0]
    filler = "We reason step by step. " * 200

    def grader(problem: Problem, answer: str) -> Callable[[], object]:
        completion = filler + answer
        return lambda: get_task(problem.task).grade(problem, completion)

    cases: list[tuple[str, Callable[[], object], bool]] = [
        ("math, integer answer", grader(aime, "\\boxed{204}"), False),
        ("math, 0.5 vs \\frac{1}{2}, main thread", grader(math, "\\boxed{0.5}"), False),
        ("math, 0.5 vs \\frac{1}{2}, other thread", grader(math, "\\boxed{0.5}"), True),
        ("mcq", grader(mcq, "\\boxed{C}"), False),
        (
            "rg (maze scorer, in its helper process)",
            grader(rg, f"<answer>{rg.answer}</answer>"),
            False,
        ),
        ("arc (first arc-agi-2 grid)", grader(arc, f"<answer>\n{arc.answer}\n</answer>"), False),
        ("extract_boxed, 20k unclosed boxes", lambda: extract_boxed("\\boxed{" * 20_000), False),
    ]
    print("| case | calls | ms per call |")
    print("| --- | --- | --- |")
    for name, fn, in_thread in cases:
        per_call = timed(fn, args.repeat, in_thread)
        print(f"| {name} | {args.repeat} | {per_call * 1000:.3f} |")


if __name__ == "__main__":
    main()
