"""The verl RL parquet schema, and the one mapping from a row's `data_source` to a task family.

verl reads rows with the columns `data_source`, `prompt` (a list of chat messages), `ability`,
`reward_model` (`{"ground_truth": ..., "style": "rule"}`) and `extra_info` (a dict). The reward
functions in `recursa.rl.rewards` and the loaders that read such files for evaluation both
decide a row's task family with `family_for_data_source`, so a row is graded the same way
in training and in evaluation.

The mapping, first match wins:

1. `extra_info["task"]`, when it names a task family (`general`, `math`, `rg`, `mcq`,
   `code`). Every row `recursa rl build-data` writes carries it.
2. `extra_info` holds Reasoning Gym's `dataset_name` and `entry`: `rg`.
3. The `data_source` text (case-insensitive) against the prefixes and keywords in
   `DATA_SOURCE_FAMILIES`: `reasoning_gym`, `rg:` and `reasoning-gym` are `rg`; math
   collections (`math`, `gsm8k`, `aime`, `hmmt`, `amc`, `deepscaler`, `numina`, `olympiad`)
   are `math`; `supergpqa`, `gpqa`, `mmlu`, `mcq` and `multiple_choice` are `mcq`;
   `livecodebench`, `code`, `apps`, `taco` and `codeforces` are `code`.
4. Anything else is a usage error naming the data source: a row the library cannot grade
   must not silently score 0.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from recursa.errors import UsageError
from recursa.tasks import TASKS, Problem

#: The reward style verl's rule-based reward managers expect.
REWARD_STYLE = "rule"

#: (pattern, family) pairs tried in order against the lower-cased data source.
DATA_SOURCE_FAMILIES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^(reasoning[_-]gym|rg:|rg/)"), "rg"),
    (re.compile(r"supergpqa|gpqa|mmlu|\bmcq\b|multiple[_-]choice"), "mcq"),
    (re.compile(r"livecodebench|codeforces|\btaco\b|\bapps\b|\bcode\b|code[_-]?contests"), "code"),
    (re.compile(r"math|gsm8k|aime|hmmt|\bamc|deepscaler|numina|olympiad"), "math"),
]

#: verl's `ability` column for each task family.
ABILITIES: dict[str, str] = {
    "general": "general",
    "math": "math",
    "rg": "reasoning",
    "mcq": "multiple_choice",
    "code": "code",
}


def _info(extra_info: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return extra_info if isinstance(extra_info, Mapping) else {}


def family_for_data_source(data_source: str, extra_info: Mapping[str, Any] | None = None) -> str:
    """The task family that grades a verl row (see the module docstring for the mapping)."""
    info = _info(extra_info)
    task = info.get("task")
    if isinstance(task, str) and task in TASKS:
        return task
    if info.get("dataset_name") and info.get("entry"):
        return "rg"
    source = str(data_source or "").strip().lower()
    for pattern, family in DATA_SOURCE_FAMILIES:
        if pattern.search(source):
            return family
    raise UsageError(
        f"cannot tell which task grades data source {data_source!r}; set extra_info.task to "
        f"one of {sorted(TASKS)}"
    )


def ground_truth_text(value: Any) -> str:
    """A reference answer as the string stored in `reward_model.ground_truth` ('' if none)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _json_object(value: Any) -> dict[str, Any]:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, str) and value.strip():
        try:
            loaded = json.loads(value)
        except ValueError:
            return {}
        return loaded if isinstance(loaded, dict) else {}
    return {}


def problem_meta(extra_info: Mapping[str, Any] | None) -> dict[str, Any]:
    """The grader's `Problem.meta` from a row's extra_info: the JSON `meta` object, plus
    Reasoning Gym's `dataset_name` and `entry` (kept as given; the grader parses JSON)."""
    info = _info(extra_info)
    meta = _json_object(info.get("meta"))
    for key in ("dataset_name", "entry"):
        if info.get(key):
            meta[key] = info[key]
    return meta


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
