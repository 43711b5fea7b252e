"""Reasoning Gym: the answer is the last `<answer>...</answer>`, scored by the task's own scorer.

Majority voting uses normalised exact string equality: these answers are order-sensitive
(move lists, sequences), so math equivalence would merge different answers.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from typing import Any

from recursa.tasks.base import (
    Grade,
    Problem,
    Task,
    no_answer,
    no_reference,
    normalize_text,
    not_text,
    outside_think,
)

_TAG = re.compile(r"<(/?)answer>", re.IGNORECASE)


def tagged_spans(text: str) -> list[str]:
    """The contents of `<answer>...</answer>` pairs, in order. Each closing tag pairs with the
    nearest opening tag before it, so `<answer> and <answer>42</answer>` gives "42". One
    linear scan, whatever the completion holds."""
    spans: list[str] = []
    open_end: int | None = None
    for tag in _TAG.finditer(text):
        if not tag.group(1):
            open_end = tag.end()
        elif open_end is not None:
            spans.append(text[open_end : tag.start()])
            open_end = None
    return spans


def extract_tagged(text: str) -> str | None:
    """The last non-empty `<answer>` span. The last, not the first: a completion that echoes
    the instruction ("<answer> and </answer>") must not parse as "and". Only the text outside
    `<think>` blocks is searched."""
    for candidate in reversed(tagged_spans(outside_think(text))):
        value = candidate.strip()
        if value:
            return value
    return None


def _entry(meta: dict[str, Any]) -> dict[str, Any] | None:
    entry = meta.get("entry")
    if isinstance(entry, str):
        try:
            entry = json.loads(entry)
        except ValueError:
            return None
    return entry if isinstance(entry, dict) else None


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


def score_with_reasoning_gym(answer: str, dataset_name: str, entry: dict[str, Any]) -> float:
    """The task's own score of an untrusted answer, computed in a helper process that lets
    no answer run code and stops a scorer that runs too long (`rg_worker`); raises
    ScorerFailed when the scorer raised or ran out of time."""
    from recursa.tasks.rg_worker import score_in_child

    return score_in_child(dataset_name, answer, entry)


def grade_reasoning_gym(completion: str, reference: object, meta: dict[str, Any]) -> Grade:
    """Score with the generator's scorer when the row carries its entry; else exact match."""
    if not isinstance(completion, str):
        return not_text(completion)
    answer = extract_tagged(completion)
    if answer is None:
        return no_answer()
    entry, name = _entry(meta), meta.get("dataset_name")
    if entry is not None and name:
        try:
            score = score_with_reasoning_gym(answer, str(name), entry)
        except Exception as exc:  # scorers raise on odd answers; a grader never does
            return Grade(0.0, answer, f"the {name} scorer failed: {exc}")
        return Grade(score, answer, "" if score >= 1.0 else f"{name} scorer gave {score:g}")
    if reference is None:
        return no_reference(answer)
    ok = normalize_text(answer) == normalize_text(str(reference))
    return Grade(1.0 if ok else 0.0, answer, "" if ok else "answer differs from the reference")


class ReasoningGymTask(Task):
    name = "rg"
    format_hint = "<answer>...</answer>"

    def format_instruction(self, problem: Problem) -> str:
        # No filled-in example: a model (or the mock) may copy "<answer>your answer</answer>"
        # as if it were a candidate's answer; an empty tag pair is never read as an answer.
        return (
            "Think step by step, then give only your final answer between <answer></answer> tags."
        )

    def extract(self, text: str) -> str | None:
        return extract_tagged(text)

    def grade(self, problem: Problem, completion: str) -> Grade:
        return grade_reasoning_gym(completion, problem.answer, problem.meta)
