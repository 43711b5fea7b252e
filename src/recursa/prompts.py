"""Plain, aggregation (K > 1), refinement (K = 1) and summary prompts, shared by every entry
point.

The aggregation and refinement prompts follow the reference code's layout and meaning
(HyperPotatoNeo/RSA, `aggregate_prompt`): an intro naming the kind of problem and the answer
format, "Problem:" and the problem, the candidates "(may contain mistakes)" under numbered
separators ("---- Solution 1 ----", or "---- Candidate ----" for one), and a closing line
asking for a single improved solution that ends with the answer format. Every part is
followed by a blank line, as the reference's parts are. Aggregation-aware RL models were
trained on this layout, so it is kept for every task family.
"""

from __future__ import annotations

from collections.abc import Callable

from recursa.backends.base import Message
from recursa.context import Fitted, show_empty
from recursa.tasks.base import OWN_PROMPT, Problem, Task
from recursa.think import ThinkPolicy, fit_with_policy

AGGREGATE_INTRO = (
    "You are given a {kind} and several candidate solutions. Some candidates may be incorrect "
    "or contain errors. Aggregate the useful ideas and produce a single, high-quality "
    "solution. Reason carefully; if candidates disagree, choose the correct path. If all are "
    "incorrect, then attempt a different strategy. End with the final result in {hint}."
)
REFINE_INTRO = (
    "You are given a {kind} and a candidate solution. The candidate may be incomplete or "
    "contain errors. Refine this trajectory and produce an improved, higher-quality solution. "
    "If it is entirely wrong, attempt a new strategy. End with the final result in {hint}."
)
AGGREGATE_HEADER = "Candidate solutions (may contain mistakes):"
REFINE_HEADER = "Candidate solution (may contain mistakes):"
AGGREGATE_CLOSING = (
    "Now write a single improved solution. Provide clear reasoning and end with the final "
    "answer in {hint}."
)
REFINE_CLOSING = (
    "Now refine the candidate into an improved solution. Provide clear reasoning and end with "
    "the final answer in {hint}."
)

SUMMARY_INTRO = (
    "You are given a {kind} and a candidate solution. Summarize the solution into a concise "
    "chain-of-thought style outline that preserves all important information required to "
    "continue refinement later: the main approach(es), key steps/equations, useful "
    "intermediate results, and any mistakes or dead ends. Compress it while keeping the "
    "essential structure. If the candidate included a final answer, retain it at the end in "
    "{hint}."
)
SUMMARY_CLOSING = (
    "Now produce the concise, information-preserving summary. End with the final answer in "
    "{hint} if present."
)


def candidate_header(index: int, count: int) -> str:
    """The separator before each candidate ("---- Solution 1 ----", ...; one: "---- Candidate
    ----")."""
    return "---- Candidate ----" if count == 1 else f"---- Solution {index} ----"


def plain_messages(task: Task, problem: Problem) -> list[Message]:
    """The messages for a fresh sample (step 1): a row's own prompt exactly as it carries it
    (one user message, or all its messages), else the problem's history (a conversation's
    earlier messages, see `Problem.history`) and the task's plain prompt."""
    own = problem.meta.get(OWN_PROMPT)
    if isinstance(own, list) and own:
        return [{"role": str(m["role"]), "content": str(m["content"])} for m in own]
    return [*problem.history, {"role": "user", "content": task.plain_prompt(problem)}]


def _join(parts: list[str]) -> str:
    """Each part followed by a newline, parts separated by one more: the reference's layout."""
    return "\n".join(part + "\n" for part in parts).rstrip("\n")


def aggregation_text(task: Task, problem: Problem, candidates: list[str]) -> str:
    """The aggregation (or, with one candidate, refinement) prompt as one user message."""
    one = len(candidates) == 1
    fields = {"kind": task.problem_kind, "hint": task.format_hint}
    parts = [
        (REFINE_INTRO if one else AGGREGATE_INTRO).format(**fields),
        "Problem:",
        task.problem_text(problem).strip(),
        REFINE_HEADER if one else AGGREGATE_HEADER,
    ]
    for i, cand in enumerate(candidates, start=1):
        parts.append(f"{candidate_header(i, len(candidates))}\n{cand.strip()}")
    parts.append((REFINE_CLOSING if one else AGGREGATE_CLOSING).format(**fields))
    closing = task.closing_instruction(problem)
    if closing:
        parts.append(closing)
    return _join(parts)


def aggregation_messages(task: Task, problem: Problem, candidates: list[str]) -> list[Message]:
    """The messages asking the model to aggregate (K > 1) or refine (K = 1) candidates: the
    problem's history, then the aggregation prompt as the last user turn."""
    return [
        *problem.history,
        {"role": "user", "content": aggregation_text(task, problem, candidates)},
    ]


def fitted_aggregation_messages(
    task: Task,
    problem: Problem,
    shown: list[str],
    *,
    think: ThinkPolicy,
    context_tokens: int | None,
    max_tokens: int,
    count: Callable[[str], int],
    estimated: bool = False,
) -> tuple[list[Message], Fitted]:
    """The aggregation messages exactly as the engine sends them: the K texts shown under
    the think policy (an empty candidate as giving no answer, `context.show_empty`), fitted
    to the context window (`recursa.think`, `recursa.context`), and the max tokens left for
    the answer; `estimated` says token counts are guesses. The engine and `recursa view`
    (which rebuilds past prompts) both call this."""
    shown = [show_empty(t) for t in shown]
    # The prompt without candidates (and the history before it), counted only when a
    # context window bounds it.
    overhead = (
        count(aggregation_text(task, problem, [""] * len(shown)))
        + sum(count(m.get("content") or "") for m in problem.history)
        if context_tokens is not None
        else 0
    )
    fitted = fit_with_policy(
        think, shown, overhead, context_tokens, max_tokens, count, estimated=estimated
    )
    return aggregation_messages(task, problem, fitted.candidates), fitted


def summary_text(task: Task, problem: Problem, candidate: str) -> str:
    """The prompt asking for a summary of one candidate (`--summarize-candidates`), in the
    layout of the reference's `summarize_cot_prompt`, with the family's answer format."""
    fields = {"kind": task.problem_kind, "hint": task.format_hint}
    return _join(
        [
            SUMMARY_INTRO.format(**fields),
            "Problem:",
            task.problem_text(problem).strip(),
            "Candidate solution:",
            candidate.strip(),
            SUMMARY_CLOSING.format(**fields),
        ]
    )
