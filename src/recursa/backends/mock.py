"""A real, registered backend without a model: scripted outputs or a simulated model.

The simulated model answers in the format the prompt asks for (`\\boxed{}`, `<answer>` tags or
a "Final answer:" line). A fresh sample is correct with probability `accuracy`. When the prompt
shows candidates (an aggregation prompt), with probability `quality` it aggregates: it returns
the correct answer if any candidate holds it, else the most common candidate answer; otherwise
it samples afresh. So `quality` is how much aggregation helps. Asked to judge a candidate
(self-verification, `meta["phase"] == "verify"`), it answers True or False, judging the
candidate's last answer correctly with probability `quality`. The correct answer is the
request's `meta["reference"]` when the engine knows it, else a number derived from the problem
id. Every output is a deterministic function of the request (its seed, key and messages).
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from recursa.backends.base import Backend, Completion, GenerationRequest
from recursa.hashing import stable_hash, stable_rng

if TYPE_CHECKING:
    from recursa.config import BackendConfig

Script = Callable[[GenerationRequest], str] | Sequence[str]

_BOXED = re.compile(r"\\boxed\{([^{}]+)\}")
# A span holds no tag itself: the instruction's empty "<answer></answer>" must not pair with
# the next candidate's closing tag.
_TAGGED = re.compile(r"<answer>((?:(?!</?answer>).)+)</answer>", re.DOTALL)
_FINAL = re.compile(r"^Final answer:[ \t]*(\S.*)$", re.MULTILINE)


def _answer_format(prompt: str) -> str:
    if "\\boxed" in prompt:
        return "boxed"
    if "<answer>" in prompt:
        return "tagged"
    return "final"


# Candidates sit between "---- Solution i ----" / "---- Candidate solution ----" headers and
# an "---- End of candidate(s) ----" line; answer spans elsewhere (the format instruction's own
# example, "<answer>your answer</answer>") are not candidates' answers.
_SHOWN = re.compile(
    r"^---- (?:Solution \d+|Candidate solution) ----$(.*)^---- End of candidates? ----$",
    re.MULTILINE | re.DOTALL,
)


def _spans(prompt: str, fmt: str) -> list[str]:
    """The answers of the candidates a prompt shows (none in a plain prompt)."""
    section = _SHOWN.search(prompt)
    if section is None:
        return []
    pattern = {"boxed": _BOXED, "tagged": _TAGGED, "final": _FINAL}[fmt]
    return [m.strip() for m in pattern.findall(section.group(1)) if m.strip()]


def _render(answer: str, fmt: str) -> str:
    if fmt == "boxed":
        return f"\\boxed{{{answer}}}"
    if fmt == "tagged":
        return f"<answer>{answer}</answer>"
    return f"Final answer: {answer}"


class MockBackend(Backend):
    """Scripted outputs (a function of the request, or a list used in call order) or the
    simulated model described in the module docstring."""

    default_concurrency = 64

    def __init__(
        self,
        script: Script | None = None,
        accuracy: float = 0.3,
        quality: float = 0.6,
        latency: float = 0.0,
        words: int = 40,
        context_tokens: int | None = None,
    ) -> None:
        self.script = script
        self.accuracy = accuracy
        self.quality = quality
        self.latency = latency
        self.words = words
        self._context_tokens = context_tokens
        self.calls: list[GenerationRequest] = []

    @property
    def description(self) -> str:
        return "the mock backend"

    @property
    def context_tokens(self) -> int | None:
        return self._context_tokens

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def truth(self, request: GenerationRequest) -> str:
        """The answer the simulated model counts as correct for this request's problem."""
        ref = request.meta.get("reference")
        if ref is not None and str(ref).strip():
            return str(ref).strip()
        return str(10 + stable_hash("mock-truth", request.meta.get("problem_id", "")) % 90)

    def _wrong(self, truth: str, pick: int) -> str:
        if truth.lstrip("-").isdigit():
            return str(int(truth) + 1 + pick)
        return f"{truth} (variant {pick + 1})"

    def judge(self, request: GenerationRequest) -> str:
        """A True/False verdict on the candidate shown in a self-verification prompt."""
        prompt = request.messages[-1]["content"]
        shown = _spans(prompt, _answer_format(prompt))
        right = bool(shown) and shown[-1] == self.truth(request)
        rng = stable_rng("mock-judge", request.seed, request.key, prompt)
        return str(right if rng.random() < self.quality else not right)

    def simulate(self, request: GenerationRequest) -> str:
        if request.meta.get("phase") == "verify":
            return self.judge(request)
        prompt = request.messages[-1]["content"]
        fmt = _answer_format(prompt)
        truth = self.truth(request)
        rng = stable_rng("mock", request.seed, request.key, prompt)
        shown = _spans(prompt, fmt)
        if shown and rng.random() < self.quality:
            answer = truth if truth in shown else Counter(shown).most_common(1)[0][0]
        elif rng.random() < self.accuracy:
            answer = truth
        else:
            answer = self._wrong(truth, rng.randrange(3))
        filler = " ".join(f"step{rng.randrange(1000)}" for _ in range(self.words))
        return f"Let me reason about this. {filler}\n{_render(answer, fmt)}"

    def _scripted(self, request: GenerationRequest) -> str:
        assert self.script is not None
        if callable(self.script):
            return self.script(request)
        return self.script[(len(self.calls) - 1) % len(self.script)]

    async def generate(self, request: GenerationRequest) -> Completion:
        self.calls.append(request)
        if self.latency:
            await asyncio.sleep(self.latency)
        text = self._scripted(request) if self.script is not None else self.simulate(request)
        return Completion(
            text=text,
            finish_reason="stop",
            prompt_tokens=self.count_tokens(request.prompt_text()),
            completion_tokens=self.count_tokens(text),
        )


def from_config(config: BackendConfig) -> MockBackend:
    return MockBackend(
        accuracy=config.mock_accuracy,
        quality=config.mock_quality,
        latency=config.mock_latency,
        context_tokens=config.context_tokens,
    )
