"""Self-verification (the rejection-sampling baseline): the model judges each candidate.

Each candidate is shown to the model with the problem and a request for a one-word verdict,
True or False, sampled at a low temperature with a few tokens. The final answer is the
majority vote among the candidates judged True; when none is, the majority vote over all.
This asks the model, so it lives beside selection rather than in a task; judgements go
through the same dispatcher and, when given, a completion store (the run's journal), so a
resumed run never asks for a judgement twice.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from recursa.backends.base import GenerationRequest, Message
from recursa.backends.dispatch import Dispatcher
from recursa.context import Fitted, fit_candidates, strip_think
from recursa.engine import CompletionStore, gather_or_cancel
from recursa.hashing import request_seed
from recursa.result import Candidate
from recursa.selection import ranked_clusters
from recursa.tasks import Problem, Task

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


def verification_messages(
    task: Task,
    problem: Problem,
    candidate: str,
    context_tokens: int | None,
    max_tokens: int,
    count: Callable[[str], int],
) -> tuple[list[Message], Fitted]:
    """The judge's messages as `verify_population` sends them: the candidate without its
    think blocks, fitted to the context window. `recursa view` rebuilds past ones with it."""
    overhead = count(verification_text(task, problem, ""))
    fitted = fit_candidates([strip_think(candidate)], overhead, context_tokens, max_tokens, count)
    content = verification_text(task, problem, fitted.candidates[0])
    return [{"role": "user", "content": content}], fitted


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


async def verify_population(
    dispatcher: Dispatcher,
    task: Task,
    problem: Problem,
    candidates: Sequence[Candidate],
    *,
    seed: int,
    temperature: float = 0.0,
    max_tokens: int = 16,
    context_tokens: int | None = None,
    store: CompletionStore | None = None,
) -> list[Verdict]:
    """Ask the model to judge every candidate (concurrently); stored judgements are reused."""
    backend = dispatcher.backend
    window = context_tokens or backend.context_tokens

    async def judge(cand: Candidate) -> Verdict:
        completion = store.lookup(problem.id, cand.step, cand.slot) if store else None
        if completion is None:
            messages, fitted = verification_messages(
                task, problem, cand.text, window, max_tokens, backend.count_tokens
            )
            meta: dict[str, Any] = {
                "problem_id": problem.id,
                "step": cand.step,
                "slot": cand.slot,
                "phase": "verify",
            }
            if problem.answer is not None:
                meta["reference"] = str(problem.answer)
            request = GenerationRequest(
                messages=messages,
                max_tokens=fitted.max_tokens,
                temperature=temperature,
                seed=request_seed(seed, problem.id, "verify", cand.step, cand.slot),
                key=f"{problem.id}/verify/{cand.step}/{cand.slot}",
                meta=meta,
            )
            completion = await dispatcher.generate(request)
            if store is not None:
                store.record(problem.id, cand.step, cand.slot, request, completion)
        return Verdict(
            cand.slot,
            parse_verdict(completion.text),
            completion.text,
            completion.prompt_tokens,
            completion.completion_tokens,
        )

    return await gather_or_cancel([judge(c) for c in candidates])


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
