"""Reasoning Gym scoring in a helper process: answers are untrusted text.

The scorers are third-party code that may evaluate the answer (see `expression_guard`) or
take unbounded time on adversarial input (`9**9**9**9` handed to sympy). So every score is
computed in a helper process (`recursa.tasks.helper`) that guards evaluation before any
scorer runs and is killed when a score takes longer than `DEADLINE_S`.

Protocol: `[dataset_name, answer, entry]` in, the score out (or `["error", ExceptionName]`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from recursa.tasks.helper import HelperProcess, serve

#: Seconds one score may take (scorers take milliseconds; this only stops runaway work).
DEADLINE_S = 20.0

_helper = HelperProcess("recursa.tasks.rg_worker")


class ScorerFailed(Exception):
    """The scorer raised, or did not finish in time; the message says which."""


def shutdown() -> None:
    """Stop the helper process."""
    _helper.shutdown()


def score_in_child(
    dataset_name: str, answer: str, entry: dict[str, Any], deadline_s: float = DEADLINE_S
) -> float:
    """The dataset's own score of `answer`, computed in the helper process."""
    reply = _helper.ask([dataset_name, answer, entry], deadline_s)
    if reply is None:
        raise ScorerFailed(f"did not finish within {deadline_s:g} s")
    if isinstance(reply, list):
        raise ScorerFailed(str(reply[-1]))
    return float(reply)


#: Datasets whose scorers compare against tuple-of-tuples grids in the entry's metadata; an
#: entry that went through JSON holds lists instead, and a correct answer would score 0.05.
_TUPLE_GRID_DATASETS = frozenset({"arc_agi", "rearc"})


def _tuple_grid(value: Any) -> Any:
    if isinstance(value, list) and all(isinstance(row, (list, tuple)) for row in value):
        return tuple(tuple(row) for row in value)
    return value


def restore_entry(dataset_name: str, entry: dict[str, Any]) -> dict[str, Any]:
    """Undo what a JSON round trip changed in an entry where the task's scorer cares."""
    if dataset_name not in _TUPLE_GRID_DATASETS or not isinstance(entry.get("metadata"), dict):
        return entry
    metadata = dict(entry["metadata"])
    for key in ("input", "output"):
        if key in metadata:
            metadata[key] = _tuple_grid(metadata[key])
    return {**entry, "metadata": metadata}


@functools.cache
def score_answer_fn(dataset_name: str) -> Callable[[str | None, dict[str, Any]], float]:
    """The dataset's `score_answer`, built once (some datasets load data files to build)."""
    import reasoning_gym

    fn: Callable[[str | None, dict[str, Any]], float] = reasoning_gym.get_score_answer_fn(
        dataset_name
    )
    return fn


def score_here(answer: str, dataset_name: str, entry: dict[str, Any]) -> float:
    """The task's own `score_answer`, in this process (raises on unknown datasets, like
    reasoning_gym does). Only the scoring helper process calls this: scorers may evaluate
    the answer as code."""
    return float(score_answer_fn(dataset_name)(answer, restore_entry(dataset_name, entry)))


def _handle(request: list[Any]) -> float:
    name, answer, entry = request
    return score_here(str(answer), str(name), dict(entry))


def _warm_up() -> None:
    import reasoning_gym  # noqa: F401 - import before saying ready

    from recursa.tasks.expression_guard import install

    install()


if __name__ == "__main__":
    serve(_handle, _warm_up)
