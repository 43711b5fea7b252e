"""A simulated continuous-batching inference engine (vLLM-like), run in virtual time.

The cost model. At most `max_batch` (B) sequences run together. The engine works in
iterations: at each iteration boundary, waiting requests join the batch first come, first
served while fewer than B run; the iteration then takes

    a + b * batch + c * (prompt tokens of the requests that joined at this boundary)

seconds (a = `iteration_s`, b = `per_sequence_s`, c = `prefill_per_token_s`), and every
sequence in the batch, the new ones included, emits one token. A sequence leaves the batch
after the iteration in which it emitted its last token; its request is answered then.
Completion lengths come from `LengthModel`: log-normal, a deterministic function of the run
seed and the request's key, so two schedules of the same workload decode the same tokens.

Completions are short placeholder texts that *declare* their length,
`<sim-completion tokens=3000/>`, followed by an answer in every task's format; the backend's
`count_tokens` counts a declared length as that many tokens, so aggregation prompts (which
quote K candidates) cost as much prefill as the real ones would, without megabytes of text.

The engine must run on `recursa.virtual_clock.VirtualClockLoop`: time is the loop's virtual
clock, so a run that would take hours takes seconds. Every generation is traced
(`trace`), and `busy_batch_seconds` integrates the batch size over time for utilisation.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
from collections import defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass

from recursa.backends.base import Backend, Completion, GenerationRequest
from recursa.hashing import stable_rng
from recursa.virtual_clock import VirtualClockLoop

_DECLARED = re.compile(r"<sim-completion tokens=(\d+)/>")


@dataclass(frozen=True)
class CostModel:
    """Seconds per engine iteration: a + b * batch + c * newly prefilled prompt tokens."""

    max_batch: int = 256
    iteration_s: float = 0.020
    per_sequence_s: float = 0.00005
    prefill_per_token_s: float = 0.00001

    def decode_iteration(self, batch: int) -> float:
        """The decode part of one iteration with `batch` sequences (a + b * batch)."""
        return self.iteration_s + self.per_sequence_s * batch

    def per_token_at_full_batch(self) -> float:
        """The least decode cost per token: (a + b * B) / B."""
        return self.decode_iteration(self.max_batch) / self.max_batch


@dataclass(frozen=True)
class LengthModel:
    """Completion lengths: round(exp(N(ln median, sigma^2))), clamped to [minimum, cap]."""

    median: float = 3000.0
    sigma: float = 0.6
    cap: int = 8192
    minimum: int = 16

    def sample(self, seed: int, key: str) -> int:
        z = stable_rng("sim-length", seed, key).gauss(0.0, 1.0)
        length = round(math.exp(math.log(self.median) + self.sigma * z))
        return max(self.minimum, min(self.cap, length))


@dataclass
class GenerationTrace:
    """What happened to one request inside the simulated engine (times are virtual)."""

    key: str
    problem: str
    step: int
    prompt_tokens: int
    completion_tokens: int
    submitted: float
    started: float = math.nan
    finished: float = math.nan
    #: c * this request's own prompt tokens (the part of its prefill no schedule can avoid).
    own_prefill_s: float = 0.0
    #: Sum over the iterations it decoded in of a + b * batch (its decode at its batch's cost).
    decode_s: float = 0.0


@dataclass(frozen=True)
class LowerBound:
    """A lower bound on the wall time of a traced run (benchmarks/README.md defines it).

    Every iteration costs its prefill part plus its decode part, so the wall time is at least
    all prefill plus all decode. All prefill is `prefill_s` in any schedule. Decode is at
    least `full_batch_decode_s` (every token at the least per-token cost, (a + b B) / B) and
    at least `chain_decode_s`: one problem's steps run one after another, so the decode time
    of each step's slowest generation (at the batch it actually ran in) adds up."""

    prefill_s: float
    full_batch_decode_s: float
    chain_decode_s: float
    chain_problem: str

    @property
    def seconds(self) -> float:
        return self.prefill_s + max(self.full_batch_decode_s, self.chain_decode_s)


def lower_bound(traces: Iterable[GenerationTrace], cost: CostModel) -> LowerBound:
    """The bound above for the finished generations in `traces`."""
    done = [t for t in traces if not math.isnan(t.finished)]
    slowest: dict[tuple[str, int], float] = defaultdict(float)
    for t in done:
        slowest[t.problem, t.step] = max(slowest[t.problem, t.step], t.decode_s)
    chains: dict[str, float] = defaultdict(float)
    for (problem, _), seconds in slowest.items():
        chains[problem] += seconds
    problem = max(chains, key=lambda p: chains[p], default="")
    return LowerBound(
        prefill_s=cost.prefill_per_token_s * sum(t.prompt_tokens for t in done),
        full_batch_decode_s=cost.per_token_at_full_batch() * sum(t.completion_tokens for t in done),
        chain_decode_s=chains.get(problem, 0.0),
        chain_problem=problem,
    )


@dataclass
class _Sequence:
    trace: GenerationTrace
    target: int
    future: asyncio.Future[Completion]
    text: str
    finish_reason: str
    produced: int = 0


class SimulatedEngine(Backend):
    """The engine in the module docstring. Requests queue inside it (as in vLLM), so the
    dispatcher may send all of them at once."""

    default_concurrency = 1 << 30

    def __init__(
        self,
        cost: CostModel | None = None,
        lengths: LengthModel | None = None,
        seed: int = 0,
        answers: int = 4,
    ) -> None:
        self.cost = cost or CostModel()
        self.lengths = lengths or LengthModel()
        self.seed = seed
        self.answers = answers
        self.trace: dict[str, GenerationTrace] = {}
        self.busy_batch_seconds = 0.0
        self.iterations = 0
        self.peak_batch = 0
        self._waiting: deque[_Sequence] = deque()
        self._running: list[_Sequence] = []
        self._wake: asyncio.Future[None] | None = None
        self._server: asyncio.Task[None] | None = None

    @property
    def description(self) -> str:
        return f"the simulated engine (B={self.cost.max_batch})"

    def count_tokens(self, text: str) -> int:
        declared = sum(int(n) for n in _DECLARED.findall(text))
        return declared + len(_DECLARED.sub(" ", text).split())

    def _completion_text(self, request: GenerationRequest, tokens: int) -> str:
        answer = stable_rng("sim-answer", self.seed, request.key).randrange(self.answers)
        return (
            f"<sim-completion tokens={tokens}/>\n"
            f"<answer>{answer}</answer> \\boxed{{{answer}}}\nFinal answer: {answer}"
        )

    async def generate(self, request: GenerationRequest) -> Completion:
        loop = asyncio.get_running_loop()
        if not isinstance(loop, VirtualClockLoop):
            raise RuntimeError("the simulated engine runs only on a VirtualClockLoop")
        wanted = self.lengths.sample(self.seed, request.key)
        tokens = min(wanted, request.max_tokens)
        trace = GenerationTrace(
            key=request.key,
            problem=str(request.meta.get("problem_id", request.key)),
            step=int(request.meta.get("step", 0)),
            prompt_tokens=self.count_tokens(request.prompt_text()),
            completion_tokens=tokens,
            submitted=loop.time(),
        )
        self.trace[request.key] = trace
        seq = _Sequence(
            trace=trace,
            target=tokens,
            future=loop.create_future(),
            text=self._completion_text(request, tokens),
            finish_reason="length" if wanted > tokens else "stop",
        )
        self._waiting.append(seq)
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)
        if self._server is None or self._server.done():
            self._server = loop.create_task(self._serve(loop))
        return await seq.future

    def _admit(self, now: float) -> list[_Sequence]:
        admitted = []
        while self._waiting and len(self._running) < self.cost.max_batch:
            seq = self._waiting.popleft()
            if seq.future.cancelled():
                continue
            seq.trace.started = now
            seq.trace.own_prefill_s = self.cost.prefill_per_token_s * seq.trace.prompt_tokens
            self._running.append(seq)
            admitted.append(seq)
        return admitted

    async def _iterations_run(
        self, loop: VirtualClockLoop, prefill: float, step: float, most: int
    ) -> int:
        """Let up to `most` iterations pass; a request arriving while the batch has room
        ends the wait at the end of the iteration in progress (it joins at that boundary)."""
        start = loop.time()
        if len(self._running) >= self.cost.max_batch or most == 1:
            await asyncio.sleep(prefill + most * step)
            return most
        self._wake = loop.create_future()
        await asyncio.wait([self._wake], timeout=prefill + most * step)
        woken, self._wake = self._wake.done(), None
        if not woken:
            return most
        elapsed = loop.time() - start
        done = min(most, max(1, math.ceil((elapsed - prefill) / step - 1e-9)))
        await asyncio.sleep(max(0.0, start + prefill + done * step - loop.time()))
        return done

    async def _serve(self, loop: VirtualClockLoop) -> None:
        while True:
            await loop.wait_idle()  # every client has reacted to the last answers
            admitted = self._admit(loop.time())
            self._running = [s for s in self._running if not s.future.cancelled()]
            if not self._running:
                if not self._waiting:
                    self._wake = loop.create_future()
                    await self._wake
                    self._wake = None
                continue
            batch = len(self._running)
            self.peak_batch = max(self.peak_batch, batch)
            prefill = self.cost.prefill_per_token_s * sum(s.trace.prompt_tokens for s in admitted)
            step = self.cost.decode_iteration(batch)
            most = min(s.target - s.produced for s in self._running)
            done = await self._iterations_run(loop, prefill, step, most)
            self.iterations += done
            self.busy_batch_seconds += batch * (prefill + done * step)
            now = loop.time()
            still = []
            for seq in self._running:
                seq.produced += done
                seq.trace.decode_s += done * step
                if seq.produced < seq.target:
                    still.append(seq)
                    continue
                seq.trace.finished = now
                if not seq.future.done():
                    seq.future.set_result(
                        Completion(
                            text=seq.text,
                            finish_reason=seq.finish_reason,
                            prompt_tokens=seq.trace.prompt_tokens,
                            completion_tokens=seq.target,
                        )
                    )
            self._running = still

    def lower_bound(self) -> LowerBound:
        """`lower_bound` over everything this engine has served."""
        return lower_bound(self.trace.values(), self.cost)

    def utilisation(self, wall_s: float) -> float:
        """Mean busy batch over `wall_s` seconds, as a share of B."""
        return self.busy_batch_seconds / (self.cost.max_batch * wall_s) if wall_s > 0 else 0.0

    async def aclose(self) -> None:
        if self._server is not None and not self._server.done():
            self._server.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._server
        self._server = None
