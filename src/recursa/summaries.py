"""`--summarize-candidates`: before an aggregation step, each candidate of the previous step is
summarised by the model, and the aggregation prompts show the summaries.

This is the reference code's `--summarize-cot` (summarise every candidate, then aggregate
the summaries), done per problem as its step completes. A summary is a generation like any
other: the engine makes it through its one generation path (the dispatcher with the run's
sampling settings and, when given, a completion store: an evaluation's journal, phase
"summarize", keyed by the summarised candidate's step and slot), so a resumed run never asks
twice. This module builds the request's prompt. The population itself, its grades and its
votes stay the candidates', not the summaries'.
"""

from __future__ import annotations

from collections.abc import Callable

from recursa.backends.base import Message
from recursa.config import RSAConfig
from recursa.context import fit_candidates, strip_think
from recursa.prompts import summary_text
from recursa.tasks import Problem, Task

SUMMARIZE = "summarize"


def summary_messages(
    task: Task,
    problem: Problem,
    candidate: str,
    config: RSAConfig,
    context_tokens: int | None,
    count: Callable[[str], int],
) -> tuple[list[Message], int]:
    """The summary prompt for one candidate (its think blocks stripped unless `think` is
    "keep", cut to the context window as the context policy says) and its max tokens."""
    text = candidate if config.think == "keep" else strip_think(candidate)
    overhead = count(summary_text(task, problem, ""))
    fitted = fit_candidates([text], overhead, context_tokens, config.max_tokens, count)
    messages: list[Message] = [
        {"role": "user", "content": summary_text(task, problem, fitted.candidates[0])}
    ]
    return messages, fitted.max_tokens
