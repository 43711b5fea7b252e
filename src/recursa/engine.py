"""The RSA loop for one problem, and the scheduler that runs many problems at once.

Step 1 samples N candidates from the plain prompt. Each later step draws, for every slot,
K distinct members of the previous population uniformly without replacement (an RNG seeded
by a stable hash of (seed, problem id, step, slot)) and asks the model to aggregate them.
Problems proceed independently: a problem's step t+1 starts as soon as its own step t is done
(unless `sync_steps` asks for the reference code's step barrier).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from recursa.backends.base import Completion, GenerationRequest
from recursa.backends.dispatch import Dispatcher
from recursa.config import RSAConfig, early_stop_fraction
from recursa.context import ESTIMATE_NOTE, fit_plain, is_empty, show_empty, strip_think
from recursa.hashing import request_seed, stable_rng
from recursa.prompts import aggregation_text, fitted_aggregation_messages, plain_messages
from recursa.result import Candidate, SolveResult, StepResult
from recursa.selection import majority_vote, random_member, ranked_clusters
from recursa.tasks import Problem, Task, get_task
from recursa.tasks.base import safe_vote_keys

log = logging.getLogger("recursa")
T = TypeVar("T")


class CompletionStore(Protocol):
    """Durable completions: asked before the backend, told of every new completion."""

    def lookup(self, problem_id: str, step: int, slot: int) -> Completion | None: ...

    def record(
        self,
        problem_id: str,
        step: int,
        slot: int,
        request: GenerationRequest,
        completion: Completion,
    ) -> None: ...


#: Called when a problem's step is complete; may be a coroutine function, which the engine
#: awaits before that problem's next step (other problems go on meanwhile).
StepCallback = Callable[[Problem, StepResult], Awaitable[None] | None]
GenerationCallback = Callable[[Problem, Candidate], None]


def draw_subset(seed: int, problem_id: str, step: int, slot: int, n: int, k: int) -> list[int]:
    """K distinct indices of 0..n-1, uniformly without replacement, fixed by the key."""
    return stable_rng("subset", seed, problem_id, step, slot).sample(range(n), k)


async def gather_or_cancel(coros: Sequence[Coroutine[Any, Any, T]]) -> list[T]:
    """Run coroutines concurrently; on the first failure cancel the rest and re-raise."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


@dataclass
class _State:
    problem: Problem
    task: Task
    steps: list[StepResult] = field(default_factory=list)
    generations_saved: int = 0
    done: bool = False
    usage: dict[str, int] = field(
        default_factory=lambda: {"prompt_tokens": 0, "completion_tokens": 0, "generations": 0}
    )


class Engine:
    """Runs RSA with one config over a dispatcher; optionally backed by a completion store."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        config: RSAConfig,
        *,
        context_tokens: int | None = None,
        store: CompletionStore | None = None,
        on_step: StepCallback | None = None,
        on_generation: GenerationCallback | None = None,
        keep_history: bool = True,
        request_params: Mapping[str, Any] | None = None,
        summary_store: CompletionStore | None = None,
    ) -> None:
        self.dispatcher = dispatcher
        self.config = config
        self._context_tokens = context_tokens
        self.store = store
        self.on_step = on_step
        self.on_generation = on_generation
        self.keep_history = keep_history
        #: Extra request-body fields sent with every generation (GenerationRequest.params).
        self.request_params = dict(request_params or {})
        #: Where `summarize_candidates` journals its summaries (an evaluation's journal).
        self.summary_store = summary_store
        self._told_truncation = False
        self._told_empty = False
        self._stop_fraction = early_stop_fraction(config.early_stop) if config.early_stop else None

    @property
    def context_tokens(self) -> int | None:
        """The window prompts are fitted to: the setting, else what the backend knows (an
        openai server's own figure is known once `start()` asked it)."""
        return self._context_tokens or self.dispatcher.backend.context_tokens

    # -- one generation -------------------------------------------------------------------
    async def _generate(
        self,
        state: _State,
        step: int,
        slot: int,
        parents: list[int],
        build: Callable[[], Awaitable[GenerationRequest]],
    ) -> Candidate:
        pid = state.problem.id
        completion = self.store.lookup(pid, step, slot) if self.store else None
        if completion is None:
            # The backend learns what it needs (a server's model, window) before the first
            # request it sends; a run answered entirely from its journal asks nothing.
            await self.dispatcher.start()
            request = await build()
            completion = await self.dispatcher.generate(request)
            if self.store is not None:
                self.store.record(pid, step, slot, request, completion)
        candidate = Candidate(
            step=step,
            slot=slot,
            text=completion.text,
            answer=state.task.extract(completion.text),
            prompt_tokens=completion.prompt_tokens,
            completion_tokens=completion.completion_tokens,
            finish_reason=completion.finish_reason,
            parents=parents,
            logprobs=completion.logprobs,
        )
        if is_empty(candidate.text):
            self._note_empty(state)
        state.usage["prompt_tokens"] += candidate.prompt_tokens
        state.usage["completion_tokens"] += candidate.completion_tokens
        state.usage["generations"] += 1
        if self.on_generation is not None:
            self.on_generation(state.problem, candidate)
        return candidate

    def _note_empty(self, state: _State) -> None:
        """An empty completion: a candidate without an answer, counted and said once."""
        state.usage["empty_completions"] = state.usage.get("empty_completions", 0) + 1
        if not self._told_empty:
            self._told_empty = True
            log.warning(
                "%s returned an empty completion (no text outside <think> blocks): it counts "
                "as a candidate without an answer and is shown to aggregation as giving none",
                self.dispatcher.backend.description,
            )

    def _request(
        self,
        problem: Problem,
        step: int,
        slot: int,
        messages: list[dict[str, str]],
        max_tokens: int,
    ) -> GenerationRequest:
        cfg = self.config
        meta: dict[str, Any] = {"problem_id": problem.id, "step": step, "slot": slot}
        if problem.answer is not None:
            meta["reference"] = str(problem.answer)
        return GenerationRequest(
            messages=messages,
            max_tokens=max_tokens,
            temperature=cfg.temperature,
            top_p=cfg.top_p,
            seed=request_seed(cfg.seed, problem.id, step, slot),
            reasoning_effort=cfg.reasoning_effort,
            key=f"{problem.id}/{step}/{slot}",
            meta=meta,
            params=self.request_params,
        )

    def _count(self, text: str) -> int:
        return self.dispatcher.backend.count_tokens(text)

    def _plain_builder(
        self, state: _State, slot: int
    ) -> Callable[[], Awaitable[GenerationRequest]]:
        async def build() -> GenerationRequest:
            messages = plain_messages(state.task, state.problem)
            text = "\n".join(m["content"] for m in messages)
            backend = self.dispatcher.backend
            if self.context_tokens is not None:
                await backend.prepare_counts([text])
            max_tokens = fit_plain(
                self._count(text),
                self.context_tokens,
                self.config.max_tokens,
                estimated=backend.counts_are_estimates,
            )
            return self._request(state.problem, 1, slot, messages, max_tokens)

        return build

    def _aggregate_builder(
        self, state: _State, step: int, slot: int, shown: list[str]
    ) -> Callable[[], Awaitable[GenerationRequest]]:
        async def build() -> GenerationRequest:
            backend = self.dispatcher.backend
            if self.context_tokens is not None:  # the server counts what will be counted
                texts = [show_empty(t) for t in shown]
                bare = aggregation_text(state.task, state.problem, [""] * len(texts))
                stripped = [strip_think(t) for t in texts] if self.config.think != "keep" else []
                history = [m.get("content") or "" for m in state.problem.history]
                await backend.prepare_counts([bare, *texts, *stripped, *history])
            messages, fitted = fitted_aggregation_messages(
                state.task,
                state.problem,
                shown,
                think=self.config.think,
                context_tokens=self.context_tokens,
                max_tokens=self.config.max_tokens,
                count=self._count,
                estimated=backend.counts_are_estimates,
            )
            if fitted.truncated and not self._told_truncation:
                self._told_truncation = True
                log.warning(
                    "candidates are too long for the %s-token context window%s: their "
                    "beginnings are cut, keeping each one's end (see docs/ARCHITECTURE.md, "
                    "context policy)",
                    self.context_tokens,
                    " by token counts" + ESTIMATE_NOTE if backend.counts_are_estimates else "",
                )
            return self._request(state.problem, step, slot, messages, fitted.max_tokens)

        return build

    # -- one step -------------------------------------------------------------------------
    async def _step(self, state: _State, step: int) -> None:
        cfg = self.config
        pid = state.problem.id
        if step == 1:
            coros = [
                self._generate(state, 1, s, [], self._plain_builder(state, s)) for s in range(cfg.n)
            ]
        else:
            previous = state.steps[-1].candidates
            texts = [c.text for c in previous]
            if cfg.summarize_candidates:
                texts = await self._summaries(state, previous)
            coros = []
            for s in range(cfg.n):
                parents = draw_subset(cfg.seed, pid, step, s, len(previous), cfg.k)
                shown = [texts[i] for i in parents]
                coros.append(
                    self._generate(
                        state, step, s, parents, self._aggregate_builder(state, step, s, shown)
                    )
                )
        population = await gather_or_cancel(coros)
        keys = await safe_vote_keys(state.task, state.problem, [c.answer for c in population])
        if keys is not None:
            for candidate, key in zip(population, keys, strict=True):
                candidate.vote_key = key
        top = ranked_clusters(state.task, population, cfg.seed, pid)[0]
        result = StepResult(
            step=step,
            candidates=population,
            agreement=len(top.members) / len(population),
            majority_answer=top.answer,
            majority_key=population[top.members[0]].vote_key,
        )
        earlier = state.steps[-1] if state.steps else None
        if not self.keep_history and state.steps:
            state.steps[-1] = result
        else:
            state.steps.append(result)
        if self.on_step is not None:
            pending = self.on_step(state.problem, result)
            if pending is not None:
                await pending
        if step < cfg.t and self._agreed(state.task, earlier, result):
            state.generations_saved = (cfg.t - step) * cfg.n
            state.done = True
        if step == cfg.t:
            state.done = True

    async def _summaries(self, state: _State, previous: list[Candidate]) -> list[str]:
        """`summarize_candidates`: the model's summary of every member of the last step."""
        from recursa.summaries import summarize_population

        done = await summarize_population(
            self.dispatcher,
            state.task,
            state.problem,
            previous,
            self.config,
            context_tokens=self.context_tokens,
            store=self.summary_store,
        )
        for completion in done:
            state.usage["prompt_tokens"] += completion.prompt_tokens
            state.usage["completion_tokens"] += completion.completion_tokens
            state.usage["generations"] += 1
        return [c.text for c in done]

    def _agreed(self, task: Task, earlier: StepResult | None, current: StepResult) -> bool:
        """Early stop: at this step and the previous one, at least the rule's fraction of the
        population agreed, on the same answer."""
        if self._stop_fraction is None or earlier is None:
            return False
        if current.majority_answer is None or earlier.majority_answer is None:
            return False
        if current.majority_key is not None and earlier.majority_key is not None:
            same = current.majority_key == earlier.majority_key
        else:
            same = task.equivalent(earlier.majority_answer, current.majority_answer)
        return (
            current.agreement >= self._stop_fraction
            and earlier.agreement >= self._stop_fraction
            and same
        )

    # -- whole problems -------------------------------------------------------------------
    def _new_state(self, problem: Problem, task: Task | None) -> _State:
        return _State(problem, task or get_task(problem.task))

    def _finish(self, state: _State) -> SolveResult:
        cfg = self.config
        final = state.steps[-1].candidates
        pid = state.problem.id
        if cfg.selection == "random":
            chosen = random_member(final, cfg.seed, pid)
        else:
            chosen, _ = majority_vote(state.task, final, cfg.seed, pid)
        return SolveResult(
            problem_id=pid,
            answer=chosen.answer,
            text=chosen.text,
            selected_slot=chosen.slot,
            steps=state.steps,
            usage=dict(state.usage),
            config=cfg.model_dump(),
            steps_run=state.steps[-1].step,
            generations_saved=state.generations_saved,
        )

    async def _run_state(self, state: _State) -> SolveResult:
        step = len(state.steps)
        while not state.done:
            step += 1
            await self._step(state, step)
        return self._finish(state)

    async def run(self, problem: Problem, task: Task | None = None) -> SolveResult:
        """RSA on one problem: steps 1..T (or until consensus when early stop is on)."""
        return await self._run_state(self._new_state(problem, task))

    async def run_many(self, problems: Sequence[Problem]) -> list[SolveResult]:
        """Many problems at once: pipelined, or step by step with `sync_steps`."""
        states = [self._new_state(p, None) for p in problems]
        if not self.config.sync_steps:
            return await gather_or_cancel([self._run_state(s) for s in states])
        step = 0
        while any(not s.done for s in states):
            step += 1
            await gather_or_cancel([self._step(s, step) for s in states if not s.done])
        return [self._finish(s) for s in states]
