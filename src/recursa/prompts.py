"""Plain, aggregation (K > 1) and refinement (K = 1) prompts, shared by every entry point."""

from __future__ import annotations

from recursa.backends.base import Message
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
    """The messages for a fresh sample (step 1): the problem's history, then the prompt."""
    return [*problem.history, {"role": "user", "content": task.plain_prompt(problem)}]


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
    """The messages asking the model to aggregate (K > 1) or refine (K = 1) candidates: the
    problem's history, then the aggregation prompt as the last user turn."""
    return [
        *problem.history,
        {"role": "user", "content": aggregation_text(task, problem, candidates)},
    ]
