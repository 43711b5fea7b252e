"""ARC grids: training pairs and a test input as digit grids; the answer grid inside <answer>.

A grid is written one row per line, one digit (0-9) per cell, no separators. Parsing is
lenient about spaces, commas and brackets between cells, and strict about the result: it must
be a non-empty rectangle of digits. Grading is exact match; two answers are equivalent when
they are the same grid.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from recursa.tasks.base import (
    Grade,
    Problem,
    Task,
    no_answer,
    no_reference,
    not_text,
    outside_think,
)
from recursa.tasks.reasoning_gym import tagged_spans

Grid = list[list[int]]

_CELL_SEPARATORS = re.compile(r"[\s,\[\]]+")
_FENCE = re.compile(r"^`{3,}\w*$")


def as_grid(value: Any) -> Grid | None:
    """A list-of-rows grid of ints 0-9 (from lists, tuples, numpy arrays or text), or None."""
    if isinstance(value, str):
        grid, _ = parse_grid(value)
        return grid
    if hasattr(value, "tolist"):
        value = value.tolist()
    if not isinstance(value, Sequence) or not value:
        return None
    rows: Grid = []
    for row in value:
        if hasattr(row, "tolist"):
            row = row.tolist()
        if not isinstance(row, Sequence) or isinstance(row, str) or not row:
            return None
        if not all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= 9 for c in row):
            return None
        rows.append([int(c) for c in row])
    if len({len(r) for r in rows}) != 1:
        return None
    return rows


def render_grid(grid: Grid) -> str:
    """One row per line, one digit per cell."""
    return "\n".join("".join(str(c) for c in row) for row in grid)


def parse_grid(text: str) -> tuple[Grid | None, str]:
    """A grid from text (rows on lines; cells as digits, optionally separated), or None and why."""
    rows: Grid = []
    for raw in text.strip().splitlines():
        line = raw.strip()
        if not line or _FENCE.match(line):
            continue
        cells = _CELL_SEPARATORS.sub("", line)
        if not cells.isdigit() or not cells.isascii():
            return None, f"line {line[:40]!r} is not a row of digits"
        rows.append([int(c) for c in cells])
    if not rows:
        return None, "the answer holds no grid"
    widths = {len(r) for r in rows}
    if len(widths) != 1:
        return None, f"the rows have different lengths ({', '.join(map(str, sorted(widths)))})"
    return rows, ""


def extract_grid(text: str) -> tuple[Grid | None, str]:
    """The grid in the last non-empty <answer> span (an echoed instruction is not an answer)."""
    spans = [s for s in tagged_spans(outside_think(text)) if s.strip()]
    if not spans:
        return None, "no <answer> grid found in the completion"
    return parse_grid(spans[-1])


def render_arc_prompt(train: Sequence[Any], test_input: Any) -> str:
    """The training pairs and the test input, as digit grids."""
    parts = [
        "Find the rule that turns each input grid into its output grid in these examples, "
        "then apply it to the test input. Each digit 0-9 is a colour; each line is a row."
    ]
    for i, pair in enumerate(train, 1):
        grid_in, grid_out = as_grid(pair["input"]), as_grid(pair["output"])
        assert grid_in is not None and grid_out is not None
        parts.append(f"Example {i} input:\n{render_grid(grid_in)}")
        parts.append(f"Example {i} output:\n{render_grid(grid_out)}")
    test_grid = as_grid(test_input)
    assert test_grid is not None
    parts.append(f"Test input:\n{render_grid(test_grid)}")
    return "\n\n".join(parts)


def arc_problem_error(problem: Problem) -> str | None:
    """Why an ARC problem cannot be posed or graded (None when it can)."""
    train = problem.meta.get("train")
    if not isinstance(train, Sequence) or isinstance(train, str) or not train:
        return "an ARC problem needs meta['train'], a list of input/output pairs"
    for i, pair in enumerate(train):
        if not isinstance(pair, dict) or as_grid(pair.get("input")) is None:
            return f"training pair {i} has no valid input grid"
        if as_grid(pair.get("output")) is None:
            return f"training pair {i} has no valid output grid"
    if as_grid(problem.meta.get("test_input")) is None:
        return "an ARC problem needs meta['test_input'], a grid"
    if as_grid(problem.answer) is None:
        return "an ARC problem needs its answer as a grid"
    return None


def arc_problem(pid: str, train: Sequence[Any], test_input: Any, answer: Any) -> Problem:
    """A Problem whose question is the rendered grids and whose answer is the rendered output
    grid (text, like every other task's reference); meta keeps the grids themselves. Invalid
    grids leave the question empty: `arc_problem_error` then says what is wrong."""
    answer_grid = as_grid(answer)
    problem = Problem(
        id=pid,
        question="",
        answer=render_grid(answer_grid) if answer_grid is not None else None,
        task="arc",
        meta={
            "train": [
                {"input": as_grid(p.get("input")), "output": as_grid(p.get("output"))}
                if isinstance(p, dict)
                else p
                for p in train
            ],
            "test_input": as_grid(test_input),
        },
    )
    if arc_problem_error(problem) is None:
        problem.question = render_arc_prompt(problem.meta["train"], problem.meta["test_input"])
    return problem


def grade_arc(completion: str, reference: object) -> Grade:
    """1.0 when the answer grid equals the reference exactly; 0.0 and why otherwise."""
    if not isinstance(completion, str):
        return not_text(completion)
    grid, why = extract_grid(completion)
    if grid is None:
        return no_answer() if why.startswith("no <answer>") else Grade(0.0, None, why)
    answer = render_grid(grid)
    gold = as_grid(reference)
    if gold is None:
        return no_reference(answer)
    if grid == gold:
        return Grade(1.0, answer)
    if len(grid) != len(gold) or len(grid[0]) != len(gold[0]):
        return Grade(
            0.0,
            answer,
            f"grid is {len(grid)}x{len(grid[0])}, the reference is {len(gold)}x{len(gold[0])}",
        )
    pairs = zip(grid, gold, strict=True)
    wrong = sum(a != b for ra, rb in pairs for a, b in zip(ra, rb, strict=True))
    return Grade(0.0, answer, f"{wrong} of {len(gold) * len(gold[0])} cells differ")


class ArcTask(Task):
    name = "arc"
    problem_kind = "grid puzzle"
    format_hint = (
        "<answer>...</answer> tags holding the test output grid, one row per line, one digit "
        "per cell"
    )

    def format_instruction(self, problem: Problem) -> str:
        return (
            "Think it through, then give the test output grid between <answer></answer> tags, "
            "in the same format as the grids above: one row per line, one digit per cell, "
            "no spaces."
        )

    def extract(self, text: str) -> str | None:
        grid, _ = extract_grid(text)
        return render_grid(grid) if grid is not None else None

    def key(self, answer: str) -> str:
        grid, _ = parse_grid(answer)
        return render_grid(grid) if grid is not None else answer.strip()

    def grade(self, problem: Problem, completion: str) -> Grade:
        return grade_arc(completion, problem.answer)
