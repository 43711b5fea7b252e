"""Rewards for RL, scored by the same graders as evaluation (final-answer correctness).

Two entry points over one scorer, `score_row`:

- `compute_score(data_source, solution_str, ground_truth, extra_info=None)`: verl's custom
  reward signature. Point verl at this file:

      custom_reward_function.path=$(python -c "import recursa.rl.rewards as r; print(r.__file__)")
      custom_reward_function.name=compute_score

  verl loads the file by path, so `recursa` must be installed where verl's reward workers run.
- `correctness(prompts, completions, **columns)` (alias `trl_reward`): TRL's reward-function
  signature. TRL passes every dataset column as a keyword list (`data_source`,
  `reward_model`, `extra_info` for the rows `recursa rl build-data` writes); completions are
  plain strings or chat messages (the assistant's text is scored).

The task family comes from `recursa.rl.schema.family_for_data_source`, the mapping the
verl-parquet loader uses for evaluation, and the grade from that family's `Task.grade`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from recursa.errors import UsageError
from recursa.rl.schema import problem_from_row
from recursa.tasks import Grade, get_task
from recursa.tasks.base import grading_failed


def grade_row(
    data_source: str,
    solution_str: str,
    ground_truth: Any,
    extra_info: Mapping[str, Any] | None = None,
) -> Grade:
    """The evaluation grader's verdict on one completion of a verl row."""
    problem = problem_from_row(data_source, ground_truth, extra_info)
    try:
        return get_task(problem.task).grade(problem, solution_str)
    except Exception as exc:  # a reward is a number for any completion, never an exception
        return grading_failed(None, exc)


def score_row(
    data_source: str,
    solution_str: str,
    ground_truth: Any,
    extra_info: Mapping[str, Any] | None = None,
) -> float:
    """The reward of one completion: the grader's score (1.0 correct, 0.0 not)."""
    return float(grade_row(data_source, solution_str, ground_truth, extra_info).score)


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: Any,
    extra_info: Mapping[str, Any] | None = None,
    **_: Any,
) -> float:
    """verl's custom reward function (extra keywords some reward managers pass are ignored)."""
    return score_row(data_source, solution_str, ground_truth, extra_info)


def completion_text(completion: Any) -> str:
    """The text to grade: a string as is; for chat messages, the assistant messages' text."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Mapping):
        return str(completion.get("content") or "")
    if isinstance(completion, Sequence):
        parts = [
            str(m.get("content") or "")
            for m in completion
            if isinstance(m, Mapping) and m.get("role", "assistant") == "assistant"
        ]
        return "\n".join(parts)
    return str(completion)


def _column(columns: Mapping[str, Any], name: str, size: int) -> list[Any]:
    values = columns.get(name)
    if values is None:
        raise UsageError(
            f"the training data has no {name!r} column; build it with 'recursa rl build-data' "
            "(verl RL schema)"
        )
    values = list(values)
    if len(values) != size:
        raise UsageError(f"the {name!r} column has {len(values)} values for {size} completions")
    return values


def _ground_truth(reward_model: Any) -> Any:
    if isinstance(reward_model, Mapping):
        return reward_model.get("ground_truth")
    return reward_model


def correctness(prompts: Sequence[Any], completions: Sequence[Any], **columns: Any) -> list[float]:
    """TRL reward function: one grader score per completion (same graders as evaluation)."""
    size = len(completions)
    sources = _column(columns, "data_source", size)
    models = _column(columns, "reward_model", size)
    infos = columns.get("extra_info") or [None] * size
    return [
        score_row(str(src), completion_text(comp), _ground_truth(rm), info)
        for src, comp, rm, info in zip(sources, completions, models, infos, strict=True)
    ]


#: The name the documentation uses for the TRL reward function.
trl_reward = correctness
