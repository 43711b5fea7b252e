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

Completions are short placeholder texts that *declare* their length (and whose they are),
`<sim-completion tokens=3000 of="p0/1/3"/>`, followed by an answer in every task's format;
the backend's `count_tokens` counts a declared length as that many tokens, so aggregation
prompts (which quote K candidates) cost as much prefill as the real ones would, without
megabytes of text.

With a `priority` function (vLLM's `scheduling_policy="priority"`: lower values first) the
queue is ordered by (priority, arrival) instead of arrival alone.

With a `MemoryModel` (a KV-cache pool; `recursa.backends.kv_cache`) the engine also does what
vLLM's scheduler does when memory binds. Before each iteration every running sequence needs
the blocks for its prompt and the tokens decoded so far (one block more per 16 decoded
tokens); if they do not fit, the most recently admitted sequence (with a `priority`
function: the lowest-priority one, latest arrival first) is preempted: its blocks are freed
and it goes back to the head of the queue, keeping the tokens it has decoded, whose KV cache
is recomputed, with its prompt's, when it is admitted again (vLLM's recompute mode). If a
sequence was preempted, nothing new joins at that boundary; otherwise a waiting request joins
only if the blocks its prompt (and any tokens it decoded before) need are free, and the queue
stops at the first one that does not fit. Prefix caching: a prompt's full blocks that some
running sequence already holds are shared, not stored again, and not prefilled again (at
least one token is always prefilled). A request whose prompt plus max_tokens could not fit
the empty pool is refused (BackendError), as vLLM refuses a max_model_len its cache cannot
hold. With a `watermark` (vLLM's `--watermark`, a share of the pool's blocks, 0 by default)
a waiting or preempted request joins a non-empty batch only if that many blocks stay free
after its prompt's, which leaves the running sequences room to grow; growth itself may use
every block.

The engine must run on `recursa.virtual_clock.VirtualClockLoop`: time is the loop's virtual
clock, so a run that would take hours takes seconds. Every generation is traced
(`trace`), and `busy_batch_seconds` integrates the batch size over time for utilisation;
`kv_stats()` reports the pool's peak, preemptions and prefix-cache hits.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from recursa.backends.base import Backend, Completion, GenerationRequest
from recursa.backends.kv_cache import BlockPool, MemoryModel, Run, layout, run_blocks
from recursa.backends.simulated_bound import GenerationTrace, LowerBound, lower_bound
from recursa.errors import BackendError
from recursa.hashing import stable_rng
from recursa.virtual_clock import VirtualClockLoop

__all__ = [
    "CostModel",
    "GenerationTrace",
    "KVStats",
    "LengthModel",
    "LowerBound",
    "SimulatedEngine",
    "lower_bound",
]

#: A completion's declared length and, for prefix caching, whose completion it is.
_DECLARED = re.compile(r'<sim-completion tokens=(\d+)(?: of="([^"]*)")?/>')


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


@dataclass(frozen=True)
class KVStats:
    """What the KV-cache pool did over a run (all zero without a memory model)."""

    capacity_blocks: int
    peak_blocks: int
    preemptions: int
    #: Tokens prefilled again after preemptions.
    preempted_tokens: int
    #: Every token the engine computed: prefill (recomputation included) plus decode.
    computed_tokens: int
    #: Prompt tokens found in the prefix cache, and prompt tokens prefilled, over admissions.
    cached_tokens: int
    prefilled_tokens: int

    @property
    def peak_share(self) -> float:
        return self.peak_blocks / self.capacity_blocks if self.capacity_blocks else 0.0

    @property
    def preempted_share(self) -> float:
        return self.preempted_tokens / self.computed_tokens if self.computed_tokens else 0.0

    @property
    def prefix_hit_rate(self) -> float:
        total = self.cached_tokens + self.prefilled_tokens
        return self.cached_tokens / total if total else 0.0


@dataclass(eq=False)
class _Sequence:
    trace: GenerationTrace
    target: int
    future: asyncio.Future[Completion]
    text: str
    finish_reason: str
    order: int
    priority: int = 0
    produced: int = 0
    #: The prompt's full blocks (shareable) and the private blocks held now.
    runs: list[Run] = field(default_factory=list)
    full_blocks: int = 0
    private: int = 0
    #: Prompt tokens to prefill at the iteration it joins (set on admission).
    joining_prefill: int = 0
    admitted: int = -1

    def key(self) -> tuple[int, int]:
        return (self.priority, self.order)

    def __lt__(self, other: _Sequence) -> bool:  # the waiting heap's order
        return self.key() < other.key()


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
        memory: MemoryModel | None = None,
        priority: Callable[[GenerationRequest], int] | None = None,
        watermark: float = 0.0,
    ) -> None:
        if not 0.0 <= watermark < 1.0:
            raise ValueError(f"a watermark is a share of the KV pool in [0, 1), not {watermark}")
        self.cost = cost or CostModel()
        self.lengths = lengths or LengthModel()
        self.seed = seed
        self.answers = answers
        self.memory = memory
        self.priority = priority
        self.pool = BlockPool(memory) if memory is not None else None
        #: Blocks a joining request must leave free when others run (vLLM's watermark).
        self.watermark_blocks = int(watermark * memory.blocks) if memory is not None else 0
        self.trace: dict[str, GenerationTrace] = {}
        self.busy_batch_seconds = 0.0
        #: Blocks in use integrated over time (memory model only), for `kv_utilisation`.
        self.busy_block_seconds = 0.0
        self.iterations = 0
        self.peak_batch = 0
        self._waiting: list[_Sequence] = []  # a heap by (priority, arrival)
        self._running: list[_Sequence] = []
        self._arrivals = itertools.count()
        self._admissions = itertools.count()
        self._wake: asyncio.Future[None] | None = None
        self._server: asyncio.Task[None] | None = None

    @property
    def description(self) -> str:
        memory = f", {self.memory.description}" if self.memory is not None else ""
        return f"the simulated engine (B={self.cost.max_batch}{memory})"

    def count_tokens(self, text: str) -> int:
        declared = sum(int(n) for n, _ in _DECLARED.findall(text))
        return declared + len(_DECLARED.sub(" ", text).split())

    def prompt_runs(self, text: str) -> list[Run]:
        """The full blocks of a prompt as runs: words are one token each, a quoted completion
        is its declared number of tokens of its own identity."""
        assert self.memory is not None
        pieces: list[tuple[str, int]] = []
        pos = 0
        for m in _DECLARED.finditer(text):
            pieces += [(w, 1) for w in text[pos : m.start()].split()]
            pieces.append((f"\0{m.group(2) or m.group(0)}", int(m.group(1))))
            pos = m.end()
        pieces += [(w, 1) for w in text[pos:].split()]
        return layout(pieces, self.memory.block_tokens)

    def _completion_text(self, request: GenerationRequest, tokens: int) -> str:
        answer = stable_rng("sim-answer", self.seed, request.key).randrange(self.answers)
        return (
            f'<sim-completion tokens={tokens} of="{request.key}"/>\n'
            f"<answer>{answer}</answer> \\boxed{{{answer}}}\nFinal answer: {answer}"
        )

    async def generate(self, request: GenerationRequest) -> Completion:
        loop = asyncio.get_running_loop()
        if not isinstance(loop, VirtualClockLoop):
            raise RuntimeError("the simulated engine runs only on a VirtualClockLoop")
        wanted = self.lengths.sample(self.seed, request.key)
        tokens = min(wanted, request.max_tokens)
        text = request.prompt_text()
        trace = GenerationTrace(
            key=request.key,
            problem=str(request.meta.get("problem_id", request.key)),
            step=int(request.meta.get("step", 0)),
            prompt_tokens=self.count_tokens(text),
            completion_tokens=tokens,
            submitted=loop.time(),
        )
        seq = _Sequence(
            trace=trace,
            target=tokens,
            future=loop.create_future(),
            text=self._completion_text(request, tokens),
            finish_reason="length" if wanted > tokens else "stop",
            order=next(self._arrivals),
            priority=self.priority(request) if self.priority is not None else 0,
        )
        if self.memory is not None:
            needed = self.memory.blocks_for(trace.prompt_tokens + request.max_tokens)
            if needed > self.memory.blocks:
                raise BackendError(
                    f"{self.description} cannot hold a {trace.prompt_tokens}-token prompt "
                    f"with max_tokens={request.max_tokens}: that takes {needed} KV blocks, "
                    f"the pool has {self.memory.blocks}"
                )
            seq.runs = trace.runs = self.prompt_runs(text)
            seq.full_blocks = run_blocks(seq.runs)
        self.trace[request.key] = trace
        heapq.heappush(self._waiting, seq)
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)
        if self._server is None or self._server.done():
            self._server = loop.create_task(self._serve(loop))
        return await seq.future

    # -- KV-cache bookkeeping (memory model only) -------------------------------------------

    def _blocks_needed(self, seq: _Sequence, ahead: int = 0) -> int:
        """Private blocks `seq` needs to emit its next token, `ahead` iterations from now:
        its prompt and decoded tokens so far, less the shareable full prompt blocks."""
        assert self.memory is not None
        total = self.memory.blocks_for(seq.trace.prompt_tokens + seq.produced + ahead)
        return total - seq.full_blocks

    def _release(self, seq: _Sequence) -> None:
        if self.pool is not None:
            self.pool.release(seq.runs, seq.private)
            seq.private = 0

    def _make_room(self) -> bool:
        """Give every running sequence the blocks of its next token, preempting as vLLM does
        while they do not fit; True if any sequence was preempted."""
        assert self.pool is not None
        growth = {id(s): self._blocks_needed(s) - s.private for s in self._running}
        need = sum(growth.values())
        preempted = False
        while need > self.pool.free:
            if self.priority is None:
                victim = max(self._running, key=lambda s: s.admitted)
            else:
                victim = max(self._running, key=_Sequence.key)
            self._running.remove(victim)
            need -= growth[id(victim)]
            self._release(victim)
            victim.trace.preemptions += 1
            heapq.heappush(self._waiting, victim)
            preempted = True
        for seq in self._running:
            self.pool.grow(growth[id(seq)])
            seq.private += growth[id(seq)]
        return preempted

    def _fits(self, seq: _Sequence) -> bool:
        assert self.pool is not None
        private = self._blocks_needed(seq)
        headroom = self.watermark_blocks if self._running else 0
        return self.pool.missing_blocks(seq.runs) + private + headroom <= self.pool.free

    def _iterations_that_fit(self, most: int) -> int:
        """The most iterations (<= `most`) the running sequences can decode before one of
        them needs a block the pool does not have."""
        assert self.pool is not None
        free = self.pool.free

        def extra(k: int) -> int:
            return sum(self._blocks_needed(s, k - 1) - s.private for s in self._running)

        lo, hi = 1, most  # extra(1) == 0 after _make_room
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if extra(mid) <= free:
                lo = mid
            else:
                hi = mid - 1
        return lo

    # -- the serving loop ---------------------------------------------------------------------

    def _admit(self, now: float) -> list[_Sequence]:
        admitted = []
        while self._waiting and len(self._running) < self.cost.max_batch:
            seq = self._waiting[0]
            if seq.future.cancelled():
                heapq.heappop(self._waiting)
                continue
            tokens = seq.trace.prompt_tokens + seq.produced
            cached = 0
            if self.pool is not None:
                if not self._fits(seq):
                    break
                hit = self.pool.cached_blocks(seq.runs) * self.pool.memory.block_tokens
                cached = min(hit, tokens - 1)
                seq.private = self._blocks_needed(seq)
                self.pool.acquire(seq.runs, seq.private)
            heapq.heappop(self._waiting)
            trace = seq.trace
            if seq.admitted < 0:
                trace.started = now
                trace.own_prefill_s = self.cost.prefill_per_token_s * trace.prompt_tokens
            else:
                trace.recomputed_tokens += tokens - cached
            seq.joining_prefill = tokens - cached
            trace.prefill_tokens += tokens - cached
            trace.cached_tokens += cached
            seq.admitted = next(self._admissions)
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
            for seq in [s for s in self._running if s.future.cancelled()]:
                self._running.remove(seq)
                self._release(seq)
            preempted = self._make_room() if self.pool is not None else False
            admitted = [] if preempted else self._admit(loop.time())
            if not self._running:
                if not self._waiting:
                    self._wake = loop.create_future()
                    await self._wake
                    self._wake = None
                continue
            batch = len(self._running)
            self.peak_batch = max(self.peak_batch, batch)
            prefill = self.cost.prefill_per_token_s * sum(s.joining_prefill for s in admitted)
            step = self.cost.decode_iteration(batch)
            most = min(s.target - s.produced for s in self._running)
            if self.pool is not None:
                most = self._iterations_that_fit(most)
            used_before = self.pool.used if self.pool is not None else 0
            done = await self._iterations_run(loop, prefill, step, most)
            self.iterations += done
            self.busy_batch_seconds += batch * (prefill + done * step)
            now = loop.time()
            for seq in self._running:
                seq.produced += done
                seq.trace.decode_s += done * step
                if self.pool is not None:  # the blocks held in the last of those iterations
                    grown = self._blocks_needed(seq, -1) - seq.private
                    self.pool.grow(grown)
                    seq.private += grown
            if self.pool is not None:  # growth is about linear over the span: take the mean
                used = (used_before + self.pool.used) / 2
                self.busy_block_seconds += used * (prefill + done * step)
            still = []
            for seq in self._running:
                if seq.produced < seq.target:
                    still.append(seq)
                    continue
                seq.trace.finished = now
                self._release(seq)
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
        return lower_bound(self.trace.values(), self.cost, self.memory)

    def kv_stats(self) -> KVStats:
        traces = self.trace.values()
        prefilled = sum(t.prefill_tokens for t in traces)
        return KVStats(
            capacity_blocks=self.pool.capacity if self.pool is not None else 0,
            peak_blocks=self.pool.peak if self.pool is not None else 0,
            preemptions=sum(t.preemptions for t in traces),
            preempted_tokens=sum(t.recomputed_tokens for t in traces),
            computed_tokens=prefilled + sum(t.completion_tokens for t in traces),
            cached_tokens=sum(t.cached_tokens for t in traces),
            prefilled_tokens=prefilled,
        )

    def kv_utilisation(self, wall_s: float) -> float:
        """Mean share of the KV pool in use over `wall_s` seconds (0 without memory model)."""
        if self.pool is None or wall_s <= 0:
            return 0.0
        return self.busy_block_seconds / (self.pool.capacity * wall_s)

    def utilisation(self, wall_s: float) -> float:
        """Mean busy batch over `wall_s` seconds, as a share of B."""
        return self.busy_batch_seconds / (self.cost.max_batch * wall_s) if wall_s > 0 else 0.0

    async def aclose(self) -> None:
        if self._server is not None and not self._server.done():
            self._server.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._server
        self._server = None
