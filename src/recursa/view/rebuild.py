"""Rebuilding the prompts a run sent, with the engine's own prompt functions.

A prompt is rebuilt by the functions the engine and self-verification call
(`prompts.plain_messages`, `prompts.fitted_aggregation_messages`,
`verification.verification_messages`), never by a copy. The journal keeps a hash of each
request it answered (messages, max tokens, temperature, top-p, seed), so a rebuilt prompt is
checked against it: "match" means the page shows exactly what the model was sent.

Candidates are cut only when a context window is set and they do not fit. The rebuild first
assumes no cut (no tokenizer needed); when that does not match the journal, it rebuilds with
the run's backend counting tokens (the embedded model's tokenizer for llama.cpp), loaded once
and only then.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from recursa.backends.base import Backend, GenerationRequest, Message
from recursa.errors import RecursaError
from recursa.prompts import fitted_aggregation_messages, plain_messages
from recursa.runs.journal import JournalRow, request_hash
from recursa.tasks import Problem, Task
from recursa.think import THINK_POLICIES, ThinkPolicy
from recursa.verification import verification_messages

log = logging.getLogger("recursa")

#: Backends too heavy to start only to count tokens (a GPU engine, a Ray cluster).
_NO_COUNTER = frozenset({"vllm", "ray"})

#: Check outcomes: the journal's request hash confirms the rebuild, or it does not; "built":
#: built in the process that sent it (recursa solve --view), with the same token counter.
MATCH, MISMATCH, UNCHECKED, BUILT = "match", "mismatch", "unchecked", "built"


@dataclass(frozen=True)
class Rebuilt:
    """A rebuilt prompt and whether the journal's request hash confirms it."""

    messages: list[Message]
    check: str
    note: str = ""


class Counter:
    """Token counting and the context window as the run's engine had them."""

    def __init__(
        self, context_tokens: int | None, count: Callable[[str], int] | None, note: str = ""
    ) -> None:
        self.context_tokens = context_tokens
        self.count = count
        self.note = note

    @classmethod
    def of_backend(cls, backend: Backend, context_tokens: int | None) -> Counter:
        return cls(context_tokens or backend.context_tokens, backend.count_tokens)


class RecordedCounter(Counter):
    """The counter of a recorded run, made from its backend settings on first use."""

    def __init__(self, backend_settings: dict[str, Any]) -> None:
        super().__init__(backend_settings.get("context_tokens"), None)
        self._settings = backend_settings
        self._loaded = False
        self._backend: Backend | None = None

    def load(self) -> bool:
        """Start the run's backend to count tokens; False (with a note) when it cannot."""
        if self._loaded:
            return self.count is not None
        self._loaded = True
        name = str(self._settings.get("backend", ""))
        if name in _NO_COUNTER:
            self.note = f"the {name} backend is not started to count tokens"
            return False
        try:
            from recursa.backends import create_backend
            from recursa.config import BackendConfig

            fields = set(BackendConfig.model_fields)
            config = BackendConfig(**{k: v for k, v in self._settings.items() if k in fields})
            self._backend = create_backend(config)
        except (RecursaError, ValueError, ImportError, OSError) as exc:
            self.note = f"the run's backend could not be started to count tokens: {exc}"
            return False
        self.context_tokens = self.context_tokens or self._backend.context_tokens
        self.count = self._backend.count_tokens
        return True

    def close(self) -> None:
        if self._backend is not None:
            with contextlib.suppress(Exception):
                asyncio.run(self._backend.aclose())
            self._backend = None


def think_policy(rsa: dict[str, Any]) -> ThinkPolicy:
    """The run's think policy; runs recorded before `think` existed had `keep_think`."""
    think = rsa.get("think")
    if think in THINK_POLICIES:
        return cast(ThinkPolicy, think)
    return "keep" if rsa.get("keep_think") else "strip"


def journaled_hash(messages: list[Message], row: JournalRow, top_p: float | None) -> str:
    """The journal's request hash of `messages` sent with the sampling `row` records."""
    return request_hash(
        GenerationRequest(
            messages=messages,
            max_tokens=row.max_tokens,
            temperature=row.temperature,
            top_p=top_p,
            seed=row.request_seed,
        )
    )


class PromptRebuilder:
    """Rebuilds plain, aggregation and self-verification prompts of one run."""

    def __init__(self, rsa: dict[str, Any], counter: Counter) -> None:
        self.think = think_policy(rsa)
        self.max_tokens = int(rsa.get("max_tokens", 1024))
        self.top_p = rsa.get("top_p")
        self.counter = counter

    def _checked(
        self,
        build: Callable[[int | None, Callable[[str], int]], list[Message]],
        row: JournalRow | None,
    ) -> Rebuilt:
        counter = self.counter
        if row is None:  # built here with the run's own counter (recursa solve --view)
            if counter.count is None:
                return Rebuilt(
                    build(None, len), UNCHECKED, "no tokenizer to apply the context window"
                )
            return Rebuilt(build(counter.context_tokens, counter.count), BUILT)
        whole = build(None, len)  # candidates whole: right unless the window cut them
        if journaled_hash(whole, row, self.top_p) == row.request_hash:
            return Rebuilt(whole, MATCH)
        if counter.count is None and isinstance(counter, RecordedCounter):
            counter.load()
        if counter.count is None or counter.context_tokens is None:
            note = counter.note or "no context window to apply"
            return Rebuilt(whole, MISMATCH, f"differs from the journal's request hash ({note})")
        try:
            fitted = build(counter.context_tokens, counter.count)
        except RecursaError as exc:
            return Rebuilt(whole, MISMATCH, f"cannot rebuild with the context window: {exc}")
        if journaled_hash(fitted, row, self.top_p) == row.request_hash:
            return Rebuilt(fitted, MATCH, "candidates cut to fit the context window")
        return Rebuilt(fitted, MISMATCH, "differs from the journal's request hash")

    def plain(self, task: Task, problem: Problem, row: JournalRow | None) -> Rebuilt:
        return self._checked(lambda _w, _c: plain_messages(task, problem), row)

    def aggregation(
        self, task: Task, problem: Problem, shown: list[str], row: JournalRow | None
    ) -> Rebuilt:
        def build(window: int | None, count: Callable[[str], int]) -> list[Message]:
            messages, _ = fitted_aggregation_messages(
                task,
                problem,
                shown,
                think=self.think,
                context_tokens=window,
                max_tokens=self.max_tokens,
                count=count,
            )
            return messages

        return self._checked(build, row)

    def verification(
        self, task: Task, problem: Problem, text: str, max_tokens: int, row: JournalRow | None
    ) -> Rebuilt:
        def build(window: int | None, count: Callable[[str], int]) -> list[Message]:
            return verification_messages(task, problem, text, window, max_tokens, count)[0]

        return self._checked(build, row)
