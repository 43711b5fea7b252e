"""Reasoning Gym: the answer is the last `<answer>...</answer>`, scored by the task's own scorer.

Majority voting uses normalised exact string equality: these answers are order-sensitive
(move lists, sequences), so math equivalence would merge different answers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from recursa.tasks.base import (
    Grade,
    Problem,
    RowSkip,
    Task,
    no_answer,
    no_reference,
    normalize_text,
    not_text,
    outside_think,
    reference_type_error,
    text_of,
)
from recursa.tasks.rg_worker import score_in_child

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


def parse_entry(value: Any) -> dict[str, Any] | None:
    """A Reasoning Gym entry: a dict, or the JSON string verl files carry."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    return dict(value) if isinstance(value, Mapping) else None


def _entry(meta: dict[str, Any]) -> dict[str, Any] | None:
    entry = meta.get("entry")
    if isinstance(entry, str):
        try:
            entry = json.loads(entry)
        except ValueError:
            return None
    return entry if isinstance(entry, dict) else None


def score_with_reasoning_gym(answer: str, dataset_name: str, entry: dict[str, Any]) -> float:
    """The task's own score of an untrusted answer, computed in a helper process that lets
    no answer run code and stops a scorer that runs too long (`rg_worker`); raises
    ScorerFailed when the scorer raised or ran out of time."""
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
    ability = "reasoning"
    #: Scorers give partial credit: the paper reports the raw mean score.
    paper_metric = "mean_score"

    def check_problem(self, problem: Problem) -> Problem:
        """Question text, and the generator's entry (scored by its own scorer) or an answer."""
        if not problem.question.strip():
            raise RowSkip("no question text")
        meta = problem.meta
        entry = parse_entry(meta.get("entry"))
        if entry is None and (error := reference_type_error(problem.answer)):
            raise RowSkip(error)
        if meta.get("entry") is not None and entry is None:
            raise RowSkip("its Reasoning Gym entry is not a JSON object")
        if not (meta.get("dataset_name") and entry is not None) and not text_of(problem.answer):
            raise RowSkip("a Reasoning Gym row needs dataset_name and entry, or an answer")
        return problem

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
