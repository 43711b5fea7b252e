"""Rows to problems: the simple schema, the verl RL schema, and what each task family needs.

Simple rows: `question` (or `problem`), `answer`, optional `id`, `task`, `options`,
`dataset_name`/`entry` (Reasoning Gym) and `meta`. verl rows: `data_source`, `prompt` (a list
of chat messages), `reward_model.ground_truth` and `extra_info`. The task family is decided
for each row on its own, never from the first row of a file.
"""

from __future__ import annotations

import json
import string
from collections.abc import Mapping
from typing import Any

from recursa.benchmarks.base import RowSkip
from recursa.benchmarks.lcb import lcb_row_problem, looks_like_lcb
from recursa.tasks import TASKS, Problem
from recursa.tasks.arc import arc_problem_error
from recursa.tasks.base import OWN_PROMPT
from recursa.tasks.math import math_reference_error

_LETTERS = string.ascii_uppercase


def is_verl_row(row: Mapping[str, Any]) -> bool:
    """The verl RL schema: a `data_source` and a `prompt` of chat messages."""
    return "data_source" in row and "prompt" in row


def is_simple_row(row: Mapping[str, Any]) -> bool:
    return "question" in row or "problem" in row


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _own_id(*sources: Mapping[str, Any] | None) -> str | None:
    for source in sources:
        if not source:
            continue
        for key in ("id", "problem_id", "uid", "uuid"):
            value = source.get(key)
            if value is not None and _text(value):
                return _text(value)
    return None


def parse_entry(value: Any) -> dict[str, Any] | None:
    """A Reasoning Gym entry: a dict, or the JSON string verl files carry."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    return dict(value) if isinstance(value, Mapping) else None


def rg_dataset_names() -> set[str]:
    """Datasets the installed reasoning-gym registers (empty when it is not installed)."""
    try:
        from reasoning_gym.factory import DATASETS
    except ImportError:
        return set()
    return set(DATASETS)


def task_for_source(data_source: str, extra_info: Mapping[str, Any]) -> str:
    """The task family of a verl row. This is the one mapping shared by evaluation (this
    loader) and the RL rewards (`recursa.rl.rewards`), so a row is graded alike in both:
    `extra_info.task` when it names a family (every row `recursa rl build-data` writes has
    it); else by `data_source`: multiple choice (gpqa, mmlu, mcq, multiple_choice), Reasoning
    Gym (reasoning_gym..., rg_..., rg:..., or `extra_info` carrying `dataset_name`/`entry`),
    ARC (arc...), code (livecodebench, ...code...), a Reasoning Gym dataset's own name; and
    anything else is math (verl's own example sets are math)."""
    task = extra_info.get("task")
    if isinstance(task, str) and task in TASKS:
        return task
    src = data_source.strip().lower()
    if "gpqa" in src or "mmlu" in src or "multiple_choice" in src or "mcq" in src:
        return "mcq"
    compact = src.replace("-", "_").replace(" ", "_")
    if (
        "reasoning_gym" in compact
        or "reasoninggym" in compact
        or compact.startswith(("rg_", "rg:", "rg/"))
    ):
        return "rg"
    if extra_info.get("dataset_name") is not None or extra_info.get("entry") is not None:
        return "rg"
    if "arc_agi" in compact or compact.startswith("arc"):
        return "arc"
    if "livecodebench" in compact or "code" in compact:
        return "code"
    if compact.split("/")[-1] in rg_dataset_names():
        return "rg"
    return "math"


def verl_meta(extra_info: Mapping[str, Any]) -> dict[str, Any]:
    """Grading data in a verl row's extra_info (besides Reasoning Gym's entry): its `meta`
    object (a mapping, or the JSON string `recursa rl build-data` writes) and the `options`,
    `starter_code` and `tests` keys."""
    meta: dict[str, Any] = {}
    packed = extra_info.get("meta")
    if isinstance(packed, str) and packed.strip():
        try:
            packed = json.loads(packed)
        except ValueError:
            packed = None
    if isinstance(packed, Mapping):
        meta.update(packed)
    for key in ("options", "starter_code", "tests"):
        if extra_info.get(key) is not None:
            meta[key] = extra_info[key]
    return meta


def user_message(prompt: Any) -> str:
    """The problem as written in a verl `prompt`: the (last) user message's content."""
    if isinstance(prompt, str):
        return prompt.strip()
    if not isinstance(prompt, (list, tuple)):
        return ""
    users = [m for m in prompt if isinstance(m, Mapping) and m.get("role") == "user"]
    return _question(users[-1].get("content")) if users else ""


def own_prompt(prompt: Any) -> str | list[dict[str, str]] | None:
    """A verl row's prompt as it must be sent: the user message's text exactly (not stripped)
    when the prompt is one user message, the messages themselves when it holds more (a
    system message), None when it holds no user message with text."""
    if isinstance(prompt, str):
        return prompt if prompt.strip() else None
    if not isinstance(prompt, (list, tuple)):
        return None
    messages = [
        {"role": str(m.get("role")), "content": m.get("content")}
        for m in prompt
        if isinstance(m, Mapping)
    ]
    if not messages or not all(isinstance(m["content"], str) for m in messages):
        return None
    users = [m for m in messages if m["role"] == "user"]
    if not users or not str(users[-1]["content"]).strip():
        return None
    if len(messages) == 1:
        return str(messages[0]["content"])
    return [{"role": str(m["role"]), "content": str(m["content"])} for m in messages]


def _reference_type_error(answer: Any) -> str | None:
    """A reference must be text or a number (grids and entries are checked by their task)."""
    if answer is None or isinstance(answer, str):
        return None
    if isinstance(answer, (int, float)) and not isinstance(answer, bool):
        return None
    return f"the reference answer is a {type(answer).__name__}, not text or a number"


def check_problem(problem: Problem) -> Problem:
    """Raise RowSkip when the problem lacks what its task family needs to be graded."""
    if problem.task not in TASKS:
        raise RowSkip(f"unknown task {problem.task!r}")
    if problem.task == "arc":
        from recursa.tasks.arc import arc_problem

        posed = arc_problem(
            problem.id,
            problem.meta.get("train") or [],
            problem.meta.get("test_input"),
            problem.answer,
        )
        error = arc_problem_error(posed)
        if error:
            raise RowSkip(error)
        posed.meta = {**problem.meta, **posed.meta}
        if problem.question.strip():
            posed.question = problem.question
        return posed
    if not problem.question.strip():
        raise RowSkip("no question text")
    meta = problem.meta
    scored_by_entry = problem.task == "rg" and parse_entry(meta.get("entry")) is not None
    if not scored_by_entry and (error := _reference_type_error(problem.answer)):
        raise RowSkip(error)
    if problem.task == "rg":
        has_entry = meta.get("dataset_name") and parse_entry(meta.get("entry")) is not None
        if meta.get("entry") is not None and parse_entry(meta.get("entry")) is None:
            raise RowSkip("its Reasoning Gym entry is not a JSON object")
        if not has_entry and not _text(problem.answer):
            raise RowSkip("a Reasoning Gym row needs dataset_name and entry, or an answer")
    elif problem.task == "mcq":
        letter = _text(problem.answer).upper()
        options = meta.get("options")
        count = len(options) if isinstance(options, (list, tuple)) and options else 26
        if len(letter) != 1 or letter not in _LETTERS[:count]:
            raise RowSkip(f"multiple-choice answer {problem.answer!r} is not an option letter")
        problem.answer = letter
    elif problem.task != "code" and not _text(problem.answer):
        raise RowSkip("no reference answer")
    elif problem.task == "math" and (error := math_reference_error(_text(problem.answer))):
        raise RowSkip(error)
    return problem


def _question(value: Any) -> str:
    """The question text; a question that is not text (a list, a number) is a RowSkip."""
    if value is not None and not isinstance(value, str):
        raise RowSkip(f"the question is a {type(value).__name__}, not text")
    return _text(value)


def simple_problem(index: int, row: Mapping[str, Any]) -> Problem:
    """A problem from a simple row; the task is the row's `task`, else inferred from its fields."""
    question = _question(row.get("question", row.get("problem")))
    meta: dict[str, Any] = dict(row["meta"]) if isinstance(row.get("meta"), Mapping) else {}
    for key in ("options", "dataset_name", "entry", "starter_code", "tests"):
        if row.get(key) is not None:
            meta[key] = row[key]
    if "entry" in meta and parse_entry(meta["entry"]) is not None:
        meta["entry"] = parse_entry(meta["entry"])
    task = _text(row.get("task"))
    if not task:
        if meta.get("dataset_name") and meta.get("entry") is not None:
            task = "rg"
        elif meta.get("options"):
            task = "mcq"
        else:
            task = "math"
    answer = row.get("answer")
    if answer is None and meta.get("entry") is not None:
        entry = parse_entry(meta["entry"])
        answer = entry.get("answer") if entry else None
    pid = _own_id(row) or str(index)
    return check_problem(Problem(id=pid, question=question, answer=answer, task=task, meta=meta))


def verl_problem(index: int, row: Mapping[str, Any]) -> Problem:
    """A problem from a verl RL row; the task comes from this row's `data_source`."""
    extra = row.get("extra_info")
    extra_info: dict[str, Any] = dict(extra) if isinstance(extra, Mapping) else {}
    reward = row.get("reward_model")
    ground_truth = reward.get("ground_truth") if isinstance(reward, Mapping) else None
    data_source = _text(row.get("data_source"))
    task = task_for_source(data_source, extra_info)
    meta: dict[str, Any] = {**verl_meta(extra_info), "data_source": data_source}
    if task == "rg":
        meta["dataset_name"] = extra_info.get("dataset_name")
        entry = extra_info.get("entry")
        meta["entry"] = parse_entry(entry) if parse_entry(entry) is not None else entry
        if meta["dataset_name"] is None or entry is None:
            raise RowSkip("a Reasoning Gym row needs extra_info.dataset_name and extra_info.entry")
    # The bare problem when the row keeps it (build-data rows, verl's example preprocessors):
    # the prompt may be an aggregation prompt or carry another answer-format instruction.
    question = _text(extra_info.get("question")) or user_message(row.get("prompt"))
    # The plain prompt of a row that carries its own is that prompt, byte for byte (the
    # reference sends the file's prompt as it is); an aggregation row's prompt is not one.
    if extra_info.get("prompt_kind") != "aggregation" and OWN_PROMPT not in meta:
        own = own_prompt(row.get("prompt"))
        if own is not None:
            meta[OWN_PROMPT] = own
    pid = _own_id(row, extra_info) or str(index)
    return check_problem(
        Problem(id=pid, question=question, answer=ground_truth, task=task, meta=meta)
    )


def row_problem(index: int, row: Any) -> Problem | RowSkip:
    """Whichever schema the row follows; a RowSkip (not an exception) when it cannot be used."""
    if not isinstance(row, Mapping):
        return RowSkip(f"row is a {type(row).__name__}, not an object")
    try:
        if looks_like_lcb(row):
            return lcb_row_problem(index, row)
        if is_verl_row(row):
            return verl_problem(index, row)
        if is_simple_row(row):
            return simple_problem(index, row)
    except RowSkip as skip:
        return skip
    return RowSkip("row has neither question/problem nor data_source/prompt")
