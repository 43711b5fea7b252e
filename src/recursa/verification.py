"""Self-verification (the rejection-sampling baseline): the model judges each candidate.

Each candidate is shown to the model with the problem and the reference code's request to
output only True or False, sampled at a low temperature with a few tokens (the reference:
temperature 0.1, 10 tokens). The verdict is the reference's rule: the last "true" or "false"
in the reply (any case), outside `<think>` blocks; a reply with neither is not True. The
self-verified score is the mean score of the candidates judged True, 0 when none is (as the
reference computes it). The final answer is the majority vote among the candidates judged
True; when none is, the majority vote over all (the reference picks no final answer).
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
from recursa.context import Fitted
from recursa.engine import CompletionStore, gather_or_cancel
from recursa.hashing import request_seed
from recursa.result import Candidate
from recursa.selection import ranked_clusters
from recursa.tasks import Problem, Task
from recursa.tasks.base import outside_think
from recursa.think import fit_with_policy

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


async def verify_population(
    dispatcher: Dispatcher,
    task: Task,
    problem: Problem,
    candidates: Sequence[Candidate],
    *,
    seed: int,
    temperature: float = 0.1,
    max_tokens: int = 10,
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


def verified_score(scores: Sequence[float], verdicts: Sequence[Verdict]) -> float:
    """The reference's self-verified score of one problem: the mean score of the candidates
    judged True (scores by slot), 0.0 when none is."""
    accepted = [v.slot for v in verdicts if v.judged]
    return sum(float(scores[s]) for s in accepted) / len(accepted) if accepted else 0.0
