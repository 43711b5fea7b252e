"""Self-verification (the rejection-sampling baseline): the model judges each candidate.

Each candidate is shown to the model with the problem and a request for a one-word verdict,
True or False, sampled at a low temperature with a few tokens. The final answer is the
majority vote among the candidates judged True; when none is, the majority vote over all.
It is a final-answer selection (`--selection verify`): judgements go through the engine's one
generation path (the completion store, the dispatcher, the record), so a resumed run never
asks for a judgement twice, and `recursa.solve`, `recursa solve` and `recursa serve` all have
it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from recursa.backends.base import Message
from recursa.context import fit_candidates, strip_think
from recursa.final_selection import Selected, Selection, SelectionContext
from recursa.gather import gather_or_cancel
from recursa.result import Candidate
from recursa.selection import ranked_clusters
from recursa.tasks import Problem, Task

#: The journal phase (and the selection's name) of the judgements.
VERIFY = "verify"

VERIFY_INTRO = (
    "You are given a problem and one candidate solution. Check the solution carefully, step "
    "by step, and decide whether its final answer is correct."
)
VERIFY_QUESTION = "Is the candidate's final answer correct? Reply with one word: True or False."
_VERDICT = re.compile(r"\b(true|false|yes|no|correct|incorrect)\b", re.IGNORECASE)
_YES = {"true", "yes", "correct"}


def verification_text(task: Task, problem: Problem, candidate: str) -> str:
    """The judge prompt: instructions, the problem, the candidate, the one-word question."""
    return "\n".join(
        [
            VERIFY_INTRO,
            "",
            "Problem:",
            task.problem_text(problem),
            "",
            "---- Candidate solution ----",
            candidate.strip(),
            "---- End of candidate ----",
            "",
            VERIFY_QUESTION,
        ]
    )


def parse_verdict(text: str) -> bool | None:
    """The first True/False (or yes/no, correct/incorrect) word after any reasoning block;
    None when there is none."""
    match = _VERDICT.search(strip_think(text))
    return None if match is None else match.group(1).lower() in _YES


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
    max_tokens = int(settings.verify_max_tokens)
    overhead = context.count_tokens(verification_text(context.task, context.problem, ""))
    fitted = fit_candidates(
        [strip_think(candidate.text)],
        overhead,
        context.context_tokens,
        max_tokens,
        context.count_tokens,
    )
    messages: list[Message] = [
        {
            "role": "user",
            "content": verification_text(context.task, context.problem, fitted.candidates[0]),
        }
    ]
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


class VerifySelection(Selection):
    """Self-verification as the final selection (`--selection verify`; the `self-verify`
    evaluation method is T = 1 with this selection)."""

    name = VERIFY
    metrics: ClassVar[dict[str, str]] = {"verified_acc": "self-verified accuracy"}

    def extra_generations(self, n: int) -> int:
        return n  # one judgement per final candidate

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
        self, details: dict[str, Any] | None, correct: Sequence[bool], majority_correct: bool
    ) -> dict[str, float]:
        """verified_acc: the share of the candidates judged True that are correct (the
        majority's correctness when none was)."""
        verdicts = (details or {}).get("verdicts") or []
        accepted = [slot for slot, judged in enumerate(verdicts) if judged]
        if not accepted:
            return {"verified_acc": float(majority_correct)}
        return {"verified_acc": sum(float(correct[s]) for s in accepted) / len(accepted)}
