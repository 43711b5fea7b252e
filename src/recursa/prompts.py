"""Plain, aggregation (K > 1) and refinement (K = 1) prompts, shared by every entry point."""

from __future__ import annotations

from collections.abc import Callable

from recursa.backends.base import Message
from recursa.context import Fitted, fit_candidates, strip_think
from recursa.tasks.base import Problem, Task

AGGREGATE_INTRO = (
    "You are given a problem and several candidate solutions to it. Some candidates may be "
    "wrong or incomplete. Combine the useful ideas into a single, high-quality solution: "
    "reason carefully, check the candidates' steps, and where they disagree, work out which "
    "path is correct. If every candidate is wrong, solve the problem with a different "
    "strategy. Finish with {answer_format}."
)
REFINE_INTRO = (
    "You are given a problem and a candidate solution, which may be incomplete or wrong. "
    "Refine it into a correct, complete solution: check each step and fix what is wrong. If "
    "the approach is entirely wrong, solve the problem with a new strategy. Finish with "
    "{answer_format}."
)


def candidate_header(index: int, count: int) -> str:
    """The separator before each candidate ("Solution 1", ...; "Candidate solution" if one)."""
    return "---- Candidate solution ----" if count == 1 else f"---- Solution {index} ----"


def plain_messages(task: Task, problem: Problem) -> list[Message]:
    """The messages for a fresh sample (step 1)."""
    return [{"role": "user", "content": task.plain_prompt(problem)}]


def aggregation_text(task: Task, problem: Problem, candidates: list[str]) -> str:
    """The aggregation (or, with one candidate, refinement) prompt as one user message."""
    intro = (REFINE_INTRO if len(candidates) == 1 else AGGREGATE_INTRO).format(
        answer_format=task.answer_format
    )
    parts = [intro, "", "Problem:", task.problem_text(problem), ""]
    for i, cand in enumerate(candidates, start=1):
        parts += [candidate_header(i, len(candidates)), cand.strip(), ""]
    parts += ["---- End of candidates ----", "", task.format_instruction(problem)]
    return "\n".join(parts)


def aggregation_messages(task: Task, problem: Problem, candidates: list[str]) -> list[Message]:
    """The messages asking the model to aggregate (K > 1) or refine (K = 1) candidates."""
    return [{"role": "user", "content": aggregation_text(task, problem, candidates)}]


def fitted_aggregation_messages(
    task: Task,
    problem: Problem,
    shown: list[str],
    *,
    keep_think: bool,
    context_tokens: int | None,
    max_tokens: int,
    count: Callable[[str], int],
) -> tuple[list[Message], Fitted]:
    """The aggregation messages exactly as the engine sends them: the K candidates' texts
    without their think blocks (unless `keep_think`), fitted to the context window (the
    context policy in `recursa.context`), and the max tokens left for the answer. The
    engine and `recursa view` (which rebuilds past prompts) both call this."""
    texts = shown if keep_think else [strip_think(t) for t in shown]
    # The prompt without candidates, counted only when a context window bounds it.
    overhead = (
        count(aggregation_text(task, problem, [""] * len(texts)))
        if context_tokens is not None
        else 0
    )
    fitted = fit_candidates(texts, overhead, context_tokens, max_tokens, count)
    return aggregation_messages(task, problem, fitted.candidates), fitted
