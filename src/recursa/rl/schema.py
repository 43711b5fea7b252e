"""The verl RL schema, and the one mapping from a row's `data_source` to a task family.

verl reads rows with the columns `data_source`, `prompt` (a list of chat messages), `ability`,
`reward_model` (`{"ground_truth": ..., "style": "rule"}`) and `extra_info` (a dict). The reward
functions in `recursa.rl.rewards` decide a row's task family and grading data exactly as the
evaluation loader of verl files does (`recursa.benchmarks.rows.task_for_source` and
`verl_meta`): one mapping, so a row is graded alike in training and in evaluation.
`extra_info.task` wins when it names a family (every row `recursa rl build-data` writes
carries it); otherwise the data source decides (see `task_for_source`), and an unrecognised
source is graded as math.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from recursa.benchmarks.rows import task_for_source, verl_meta
from recursa.tasks import TASKS, Problem

#: The reward style verl's rule-based reward managers expect.
REWARD_STYLE = "rule"


def ability(task: str) -> str:
    """verl's `ability` column for a task family (the family's own `Task.ability`)."""
    return TASKS.get(task).ability if task in TASKS else task


def _info(extra_info: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return extra_info if isinstance(extra_info, Mapping) else {}


def family_for_data_source(data_source: str, extra_info: Mapping[str, Any] | None = None) -> str:
    """The task family that grades a verl row (the evaluation loader's mapping)."""
    return task_for_source(str(data_source or ""), _info(extra_info))


def problem_meta(extra_info: Mapping[str, Any] | None) -> dict[str, Any]:
    """The grader's `Problem.meta` from a row's extra_info, as the evaluation loader builds
    it, plus Reasoning Gym's `dataset_name` and `entry` (the grader parses a JSON entry)."""
    info = _info(extra_info)
    meta = verl_meta(info)
    for key in ("dataset_name", "entry"):
        if info.get(key):
            meta[key] = info[key]
    return meta


def ground_truth_text(value: Any) -> str:
    """A reference answer as the string stored in `reward_model.ground_truth` ('' if none)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def last_user_text(prompt: Any) -> str:
    """The content of the last user message of a chat prompt (or the prompt if it is text)."""
    if isinstance(prompt, str):
        return prompt
    try:
        messages = list(prompt)
    except TypeError:
        return ""
    for message in reversed(messages):
        if isinstance(message, Mapping) and message.get("role") == "user":
            return str(message.get("content") or "")
    return ""


def problem_from_row(
    data_source: str,
    ground_truth: Any,
    extra_info: Mapping[str, Any] | None = None,
    prompt: Any = None,
) -> Problem:
    """A `Problem` that grades like the row: family, reference and meta from the row."""
    info = _info(extra_info)
    family = family_for_data_source(data_source, info)
    question = info.get("question")
    if not isinstance(question, str) or not question:
        question = last_user_text(prompt)
    pid = info.get("problem_id")
    if not pid:
        pid = f"{data_source}/{info.get('index', 0)}"
    return Problem(
        id=str(pid),
        question=question,
        answer=ground_truth if ground_truth not in (None, "") else None,
        task=family,
        meta=problem_meta(info),
    )
