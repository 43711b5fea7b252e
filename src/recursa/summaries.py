"""`--summarize-candidates`: before an aggregation step, each candidate of the previous step is
summarised by the model, and the aggregation prompts show the summaries.

This is the reference code's `--summarize-cot` (summarise every candidate, then aggregate
the summaries), done per problem as its step completes. A summary is a generation like any
other: it goes through the dispatcher with the run's sampling settings and, when given, a
completion store (an evaluation's journal, phase "summarize", keyed by the summarised
candidate's step and slot), so a resumed run never asks twice. The population itself, its
grades and its votes stay the candidates', not the summaries'.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from recursa.backends.base import Completion, GenerationRequest
from recursa.backends.dispatch import Dispatcher
from recursa.config import RSAConfig
from recursa.context import fit_candidates, strip_think
from recursa.engine import CompletionStore, gather_or_cancel
from recursa.hashing import request_seed
from recursa.prompts import summary_text
from recursa.result import Candidate
from recursa.tasks import Problem, Task

SUMMARIZE = "summarize"


async def summarize_population(
    dispatcher: Dispatcher,
    task: Task,
    problem: Problem,
    candidates: Sequence[Candidate],
    config: RSAConfig,
    *,
    context_tokens: int | None,
    store: CompletionStore | None = None,
) -> list[Completion]:
    """One summary per candidate (concurrently), in slot order; stored summaries are reused."""
    backend = dispatcher.backend

    async def summarize(cand: Candidate) -> Completion:
        completion = store.lookup(problem.id, cand.step, cand.slot) if store else None
        if completion is not None:
            return completion
        text = cand.text if config.think == "keep" else strip_think(cand.text)
        overhead = backend.count_tokens(summary_text(task, problem, ""))
        fitted = fit_candidates(
            [text], overhead, context_tokens, config.max_tokens, backend.count_tokens
        )
        meta: dict[str, Any] = {
            "problem_id": problem.id,
            "step": cand.step,
            "slot": cand.slot,
            "phase": SUMMARIZE,
        }
        if problem.answer is not None:
            meta["reference"] = str(problem.answer)
        request = GenerationRequest(
            messages=[
                {"role": "user", "content": summary_text(task, problem, fitted.candidates[0])}
            ],
            max_tokens=fitted.max_tokens,
            temperature=config.temperature,
            top_p=config.top_p,
            seed=request_seed(config.seed, problem.id, SUMMARIZE, cand.step, cand.slot),
            reasoning_effort=config.reasoning_effort,
            key=f"{problem.id}/{SUMMARIZE}/{cand.step}/{cand.slot}",
            meta=meta,
        )
        completion = await dispatcher.generate(request)
        if store is not None:
            store.record(problem.id, cand.step, cand.slot, request, completion)
        return completion

    return await gather_or_cancel([summarize(c) for c in candidates])
