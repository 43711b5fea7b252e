"""A real, registered backend without a model: scripted outputs or a simulated model.

The simulated model answers in the format the prompt asks for (`\\boxed{}`, `<answer>` tags or
a "Final answer:" line). A fresh sample is correct with probability `accuracy`. When the prompt
shows candidates (an aggregation prompt), with probability `quality` it aggregates: it returns
the correct answer if any candidate holds it, else the most common candidate answer; otherwise
it samples afresh. So `quality` is how much aggregation helps. A wrong answer is another
number for a numeric truth, another option letter (A-D) for a letter, so multiple-choice
runs have wrong answers too. Asked to judge a candidate
(self-verification, `meta["phase"] == "verify"`), it answers True or False, judging the
candidate's last answer correctly with probability `quality`. Asked to summarise a candidate
(`meta["phase"] == "summarize"`), it returns a short summary keeping its last answer. The
correct answer is the request's `meta["reference"]` when the engine knows it, else a number
derived from the problem id. Every output is a deterministic function of the request (its
seed, key and messages).
"""

from __future__ import annotations

import asyncio
import random
import re
import struct
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


# Candidates sit between the first "---- Solution i ----" / "---- Candidate ----" header (or,
# in a judge or summary prompt, the "Candidate solution:" line) and the closing "Now ..." line;
# answer spans elsewhere (the format hint's own "<answer>...</answer>" or "\boxed{A}") are not
# candidates' answers.
_SHOWN = re.compile(
    r"^(?:---- (?:Solution \d+|Candidate) ----|Candidate solution:)$(.*)"
    r"^Now (?:write a single improved|refine the candidate|verify if|produce the concise)",
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


_WORDS = [f"step{i}" for i in range(1000)]
_ACCEPT_BELOW = 1000 << 22


def _filler(rng: random.Random, count: int) -> str:
    """`count` words "step<n>", with n drawn exactly as `rng.randrange(1000)` draws it, but
    without a Python call per draw: randrange(1000) takes the top 10 bits of one 32-bit output
    of the generator and redraws while they are 1000 or more, and getrandbits(32 * m) returns
    m such outputs, least significant first. Only the generator's state afterwards may differ
    (it can run ahead), and nothing draws from it later."""
    words: list[str] = []
    while len(words) < count:
        m = count - len(words) + 4
        outputs = struct.unpack(f"<{m}I", rng.getrandbits(32 * m).to_bytes(4 * m, "little"))
        words += [_WORDS[v >> 22] for v in outputs if v < _ACCEPT_BELOW]
    return " ".join(words[:count])


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
        keep_calls: bool = True,
    ) -> None:
        self.script = script
        self.accuracy = accuracy
        self.quality = quality
        self.latency = latency
        self.words = words
        self._context_tokens = context_tokens
        #: Every request, in call order, when `keep_calls` (for tests); the registered backend
        #: keeps none, so a long evaluation holds no request after it is answered.
        self.keep_calls = keep_calls
        self.calls: list[GenerationRequest] = []
        #: Requests answered so far (kept or not).
        self.call_count = 0

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
        if len(truth) == 1 and "A" <= truth <= "Z":  # an option letter: another letter
            others = [c for c in "ABCD" if c != truth]
            return others[pick % len(others)]
        return f"{truth} (variant {pick + 1})"

    def judge(self, request: GenerationRequest) -> str:
        """A True/False verdict on the candidate shown in a self-verification prompt."""
        prompt = request.messages[-1]["content"]
        shown = _spans(prompt, _answer_format(prompt))
        right = bool(shown) and shown[-1] == self.truth(request)
        rng = stable_rng("mock-judge", request.seed, request.key, prompt)
        return str(right if rng.random() < self.quality else not right)

    def summarize(self, request: GenerationRequest) -> str:
        """A short summary that keeps the shown candidate's last answer."""
        prompt = request.messages[-1]["content"]
        fmt = _answer_format(prompt)
        shown = _spans(prompt, fmt)
        kept = f"\n{_render(shown[-1], fmt)}" if shown else ""
        return f"Summary: the candidate's approach, in brief.{kept}"

    def simulate(self, request: GenerationRequest) -> str:
        if request.meta.get("phase") == "verify":
            return self.judge(request)
        if request.meta.get("phase") == "summarize":
            return self.summarize(request)
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
        filler = _filler(rng, self.words)
        return f"Let me reason about this. {filler}\n{_render(answer, fmt)}"

    def _scripted(self, request: GenerationRequest) -> str:
        assert self.script is not None
        if callable(self.script):
            return self.script(request)
        return self.script[(self.call_count - 1) % len(self.script)]

    async def generate(self, request: GenerationRequest) -> Completion:
        self.call_count += 1
        if self.keep_calls:
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
        keep_calls=False,
    )
