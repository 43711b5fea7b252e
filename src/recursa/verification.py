"""Self-verification (the rejection-sampling baseline): the model judges each candidate.

Each candidate is shown to the model with the problem and the reference code's request to
output only True or False, sampled at a low temperature with a few tokens (the reference:
temperature 0.1, 10 tokens). The verdict is the reference's rule: the last "true" or "false"
in the reply (any case), outside `<think>` blocks; a reply with neither is not True. The
self-verified score is the mean score of the candidates judged True, 0 when none is (as the
reference computes it). The final answer is the majority vote among the candidates judged
True; when none is, the majority vote over all (the reference picks no final answer).
It is a final-answer selection (`--selection verify`; the `self-verify` method): judgements
go through the engine's one generation path (the completion store, the dispatcher, the
record), so a resumed run never asks for a judgement twice, and `recursa.solve`,
`recursa solve` and `recursa serve` all have it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, ClassVar

from recursa.backends.base import Message
from recursa.context import Fitted
from recursa.final_selection import Selected, Selection, SelectionContext
from recursa.gather import gather_or_cancel
from recursa.result import Candidate
from recursa.selection import ranked_clusters
from recursa.tasks import Problem, Task
from recursa.tasks.base import outside_think
from recursa.think import fit_with_policy

#: The journal phase (and the selection's name) of the judgements.
VERIFY = "verify"

VERIFY_INTRO = (
    "You are given a problem and a candidate solution. Verify whether the candidate solution "
    "is correct. If the solution is correct, output only True. If it is incorrect, output "
    "only False. Do not generate anything else."
)
VERIFY_QUESTION = 'Now verify if the solution is True or False. Only output "True" or "False".'
#: The reference's verdict pattern: no word boundaries, any case; the last match decides.
_VERDICT = re.compile(r"(true|false)", re.IGNORECASE)


def verification_text(task: Task, problem: Problem, candidate: str) -> str:
    """The judge prompt in the reference's layout: instructions, "Problem:", the problem,
    "Candidate solution:", the candidate, the request for True or False."""
    parts = [
        VERIFY_INTRO,
        "Problem:",
        task.problem_text(problem).strip(),
        "Candidate solution:",
        candidate.strip(),
        VERIFY_QUESTION,
    ]
    return "\n".join(part + "\n" for part in parts).rstrip("\n")


def verification_messages(
    task: Task,
    problem: Problem,
    candidate: str,
    context_tokens: int | None,
    max_tokens: int,
    count: Callable[[str], int],
) -> tuple[list[Message], Fitted]:
    """The judge's messages as `verify_population` sends them: the candidate under the
    `auto` think policy, fitted to the context window. `recursa view` rebuilds past ones
    with it."""
    overhead = count(verification_text(task, problem, ""))
    fitted = fit_with_policy("auto", [candidate], overhead, context_tokens, max_tokens, count)
    content = verification_text(task, problem, fitted.candidates[0])
    return [{"role": "user", "content": content}], fitted


def parse_verdict(text: str) -> bool | None:
    """The last "true"/"false" (any case) outside `<think>` blocks: True or False; None when
    the reply holds neither (which counts as not True). "not correct" is no verdict."""
    found = _VERDICT.findall(outside_think(text))
    return None if not found else found[-1].lower() == "true"


@dataclass(frozen=True)
class Verdict:
    """One candidate's judgement: True, False, or None when the reply held neither."""

    slot: int
    judged: bool | None
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0


async def judge(context: SelectionContext, candidate: Candidate) -> Verdict:
    """The model's verdict on one candidate, through the engine's generation path."""
    settings = context.settings
    messages, fitted = verification_messages(
        context.task,
        context.problem,
        candidate.text,
        context.context_tokens,
        int(settings.verify_max_tokens),
        context.count_tokens,
    )
    completion = await context.generate(
        VERIFY,
        candidate.step,
        candidate.slot,
        messages,
        max_tokens=fitted.max_tokens,
        temperature=float(settings.verify_temperature),
    )
    return Verdict(
        candidate.slot,
        parse_verdict(completion.text),
        completion.text,
        completion.prompt_tokens,
        completion.completion_tokens,
    )


def choose_verified(
    task: Task,
    candidates: Sequence[Candidate],
    verdicts: Sequence[Verdict],
    seed: int,
    problem_id: str,
) -> tuple[Candidate, bool]:
    """The majority answer among candidates judged True, and whether it fell back to the
    majority over all candidates because none was judged True."""
    if not candidates:
        raise ValueError("self-verification over an empty population")
    accepted = {v.slot for v in verdicts if v.judged}
    pool = [c for c in candidates if c.slot in accepted]
    fallback = not pool
    if fallback:
        pool = list(candidates)
    best = ranked_clusters(task, pool, seed, problem_id)[0]
    return pool[best.members[0]], fallback


def verified_score(scores: Sequence[float], verdicts: Sequence[Verdict]) -> float:
    """The reference's self-verified score of one problem: the mean score of the candidates
    judged True (scores by slot), 0.0 when none is."""
    accepted = [v.slot for v in verdicts if v.judged]
    return sum(float(scores[s]) for s in accepted) / len(accepted) if accepted else 0.0


class VerifySelection(Selection):
    """Self-verification as the final selection (`--selection verify`; the `self-verify`
    evaluation method is T = 1 with this selection)."""

    name = VERIFY
    #: Reported in report.md (verified_score, in summary.json beside it, is not).
    metrics: ClassVar[dict[str, str]] = {"verified_acc": "self-verified accuracy"}

    def extra_generations(self, n: int) -> int:
        return n  # one judgement per final candidate

    def sample_cost(self, max_tokens: int, settings: Mapping[str, Any]) -> Fraction:
        """A judgement may write `verify_max_tokens` (V) tokens where a sample writes M."""
        verify_max_tokens = int(settings.get("verify_max_tokens") or 10)
        return Fraction(verify_max_tokens, max_tokens)

    async def select(self, context: SelectionContext) -> Selected:
        verdicts = await gather_or_cancel([judge(context, c) for c in context.candidates])
        chosen, fallback = choose_verified(
            context.task, context.candidates, verdicts, context.seed, context.problem.id
        )
        return Selected(
            chosen,
            details={
                "verdicts": [v.judged for v in verdicts],
                "fallback_to_majority": fallback,
            },
            prompt_tokens=sum(v.prompt_tokens for v in verdicts),
            completion_tokens=sum(v.completion_tokens for v in verdicts),
            generations=len(verdicts),
        )

    def problem_metrics(
        self, details: dict[str, Any] | None, scores: Sequence[float], correct: Sequence[bool]
    ) -> dict[str, float]:
        """The reference's definitions over the candidates judged True (0 when none is):
        verified_acc, their share correct; verified_score, their mean score."""
        verdicts = [
            Verdict(slot, judged, "")
            for slot, judged in enumerate((details or {}).get("verdicts") or [])
        ]
        return {
            "verified_acc": verified_score([float(c) for c in correct], verdicts),
            "verified_score": verified_score(scores, verdicts),
        }
