"""The loaded-benchmark contract: a named list of problems plus the rows that were skipped."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from recursa.errors import UsageError
from recursa.tasks import Problem, RowSkip

__all__ = ["Dataset", "RowSkip", "collect"]

log = logging.getLogger("recursa.benchmarks")


@dataclass
class Dataset:
    """A benchmark ready to run: every problem carries its own task family and grader data."""

    #: What the user asked for, e.g. "aime25", "rg:maze,sokoban", "data.jsonl".
    name: str
    problems: list[Problem]
    #: (row index, reason) for rows missing what their task needs.
    skipped: list[tuple[int, str]] = field(default_factory=list)
    #: Other things the user should know (e.g. tasks this reasoning-gym version lacks).
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.problems)

    def by_id(self) -> dict[str, Problem]:
        """Problems keyed by id (ids are unique within a dataset)."""
        return {p.id: p for p in self.problems}


def collect(
    name: str,
    rows: Iterable[tuple[int, Problem | RowSkip]],
    *,
    strict: bool,
    limit: int | None,
    notes: list[str] | None = None,
) -> Dataset:
    """Build a Dataset from (row index, problem or skip reason) pairs.

    Skips are recorded (or raise UsageError naming the row when `strict`); a repeated id is a
    skip too, since ids must be unique. `limit` keeps the first problems that loaded."""
    problems: list[Problem] = []
    skipped: list[tuple[int, str]] = []
    seen: set[str] = set()
    for index, item in rows:
        if isinstance(item, Problem) and item.id in seen:
            item = RowSkip(f"id {item.id!r} repeats an earlier row's id")
        if isinstance(item, RowSkip):
            if strict:
                raise UsageError(f"{name}: row {index} cannot be used: {item}")
            skipped.append((index, str(item)))
            continue
        seen.add(item.id)
        problems.append(item)
        if limit is not None and len(problems) >= limit:
            break
    if skipped and problems:  # with no problems at all, the caller's error says why
        first = "; ".join(f"row {i}: {why}" for i, why in skipped[:3])
        more = (
            f"; and {len(skipped) - 3} more (see the run's summary.json)"
            if len(skipped) > 3
            else ""
        )
        log.warning(
            "%s: skipped %d row(s) missing what their task needs (%s%s); --strict stops instead",
            name,
            len(skipped),
            first,
            more,
        )
    for note in notes or []:
        log.warning("%s: %s", name, note)
    return Dataset(name=name, problems=problems, skipped=skipped, notes=list(notes or []))
