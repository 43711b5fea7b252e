"""Training rows in the verl RL schema: plain and aggregation prompts, and their parquet file.

A row's prompt is built with exactly the prompt builders inference uses
(`recursa.prompts.plain_messages` and `aggregation_messages`); an aggregation row shows K
candidates of its own problem, chosen with the engine's seeded subset draw
(`draw_subset(seed, problem id, step 2, slot 0, M, K)`) and with `<think>` blocks stripped
as the think policy says (`auto`, the default, keeps them whole as inference does when the
K candidates fit; training prompts are sized for that). Files are written
deterministically: rows in a fixed order, a fixed schema, no pandas metadata and no
timestamps, so the same inputs give the same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from recursa.context import strip_think
from recursa.engine import draw_subset
from recursa.errors import MissingDependencyError, UsageError
from recursa.hashing import stable_rng
from recursa.prompts import aggregation_messages, plain_messages
from recursa.rl.schema import ABILITIES, REWARD_STYLE, ground_truth_text
from recursa.tasks import Problem, get_task

PLAIN = "plain"
AGGREGATION = "aggregation"
#: The slot whose subset an aggregation row shows (step 2, slot 0 of an RSA run).
SUBSET_STEP, SUBSET_SLOT = 2, 0


def pick_count(total: int, fraction: float) -> int:
    """How many of `total` items a fraction selects (rounded half up)."""
    return int(total * fraction + 0.5)


def choose(ids: Sequence[str], count: int, seed: int, purpose: str) -> set[str]:
    """`count` of the ids, picked by position with an RNG seeded from (purpose, seed, how
    many ids there are)."""
    rng = stable_rng(purpose, seed, len(ids))
    return {ids[i] for i in rng.sample(range(len(ids)), count)}


def split_validation(ids: Sequence[str], fraction: float, seed: int) -> set[str]:
    """The problems held out for validation: round(fraction x P), at least one when the
    fraction is positive and there are two or more problems, never all of them."""
    if fraction <= 0 or len(ids) < 2:
        return set()
    count = min(max(1, pick_count(len(ids), fraction)), len(ids) - 1)
    return choose(ids, count, seed, "rl-validation")


def mixture(ids: Sequence[str], agg_fraction: float, seed: int) -> set[str]:
    """The problems that get an aggregation prompt: round(agg_fraction x P) of them."""
    return choose(ids, pick_count(len(ids), agg_fraction), seed, "rl-aggregation")


def data_source(problem: Problem, source: str) -> str:
    """`reasoning_gym/NAME` for Reasoning Gym problems, else the source's name."""
    name = problem.meta.get("dataset_name")
    if problem.task == "rg" and name:
        return f"reasoning_gym/{name}"
    return source


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def extra_info(
    problem: Problem, index: int, split: str, kind: str, slots: Sequence[int]
) -> dict[str, Any]:
    """What the reward needs (task, Reasoning Gym's dataset_name and entry, the problem's
    meta) and what the row is (its problem, split, kind and the candidates it shows)."""
    meta = {k: v for k, v in problem.meta.items() if k not in ("dataset_name", "entry")}
    entry = problem.meta.get("entry")
    name = problem.meta.get("dataset_name")
    return {
        "index": index,
        "split": split,
        "task": problem.task,
        "problem_id": problem.id,
        "question": problem.question,
        "prompt_kind": kind,
        "k": len(slots),
        "candidate_slots": [int(s) for s in slots],
        "dataset_name": str(name) if name else None,
        "entry": None if entry is None else (entry if isinstance(entry, str) else _json(entry)),
        "meta": _json(meta),
    }


def build_row(
    problem: Problem,
    source: str,
    index: int,
    split: str,
    candidates: Sequence[str] | None,
    k: int,
    seed: int,
    think: str = "auto",
) -> dict[str, Any]:
    """One verl row: a plain prompt, or (with candidates) an aggregation prompt over K of
    them drawn with the engine's seeded subset RNG."""
    task = get_task(problem.task)
    slots: list[int] = []
    if candidates is None:
        messages = plain_messages(task, problem)
        kind = PLAIN
    else:
        if len(candidates) < k:
            raise UsageError(
                f"problem {problem.id!r} has {len(candidates)} candidates; an aggregation "
                f"prompt needs K = {k}"
            )
        slots = draw_subset(seed, problem.id, SUBSET_STEP, SUBSET_SLOT, len(candidates), k)
        shown = [candidates[s] if think != "strip" else strip_think(candidates[s]) for s in slots]
        messages = aggregation_messages(task, problem, shown)
        kind = AGGREGATION
    return {
        "data_source": data_source(problem, source),
        "prompt": [{"role": m["role"], "content": m["content"]} for m in messages],
        "ability": ABILITIES.get(problem.task, problem.task),
        "reward_model": {"ground_truth": ground_truth_text(problem.answer), "style": REWARD_STYLE},
        "extra_info": extra_info(problem, index, split, kind, slots),
    }


def parquet_schema() -> Any:
    """The fixed Arrow schema of a training file."""
    try:
        import pyarrow as pa
    except ImportError as exc:
        raise MissingDependencyError("pyarrow", "rl") from exc
    text = pa.string()
    return pa.schema(
        [
            ("data_source", text),
            ("prompt", pa.list_(pa.struct([("role", text), ("content", text)]))),
            ("ability", text),
            ("reward_model", pa.struct([("ground_truth", text), ("style", text)])),
            (
                "extra_info",
                pa.struct(
                    [
                        ("index", pa.int64()),
                        ("split", text),
                        ("task", text),
                        ("problem_id", text),
                        ("question", text),
                        ("prompt_kind", text),
                        ("k", pa.int64()),
                        ("candidate_slots", pa.list_(pa.int64())),
                        ("dataset_name", text),
                        ("entry", text),
                        ("meta", text),
                    ]
                ),
            ),
        ]
    )


def write_parquet(rows: Sequence[Mapping[str, Any]], path: Path) -> None:
    """Write rows with the fixed schema; the same rows always give the same bytes."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist([dict(r) for r in rows], schema=parquet_schema())
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp, compression="zstd", write_statistics=False)
    tmp.replace(path)
