"""A lower bound on the wall time of a run on the simulated engine (benchmarks/README.md
states it with its proof).

Every iteration costs its prefill part plus its decode part, so the wall time is at least
all prefill plus all decode. Prefill is at least `prefill_s`: without a memory model, every
prompt token once; with one (prefix caching), every distinct full prompt block once plus
every request's partly filled last block. Decode is at least each of:

- `full_batch_decode_s`: every token at the least per-token cost, (a + b B) / B;
- `memory_decode_s` (with a memory model): in an iteration the running sequences' blocks fit
  the pool, so a + b x >= sum over its tokens of (b + a f / capacity), f the blocks the
  emitting sequence holds, shared prompt runs counted 1/k for k requests of the workload that
  hold them: every token at the per-token cost of the largest batch of its size that fits;
  plus `early_s`: in the first L* iterations (L* the shortest of the problems' longest
  first-step generations, over problems with a later step) only first-step sequences can
  run, each at most i tokens into its decode at iteration i, so those iterations leave a
  share of the pool empty that no schedule can fill, and that share of a is paid on top;
- `chain_decode_s`: one problem's steps run one after another, so the decode time of each
  step's slowest generation (at the batch it actually ran in) adds up.
"""

from __future__ import annotations

import heapq
import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from recursa.backends.kv_cache import MemoryModel, Run, blocks_over_decode, run_blocks

if TYPE_CHECKING:
    from recursa.backends.simulated import CostModel


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
    #: c * this request's own prompt tokens (its prefill without prefix caching).
    own_prefill_s: float = 0.0
    #: Sum over the iterations it decoded in of a + b * batch (its decode at its batch's cost).
    decode_s: float = 0.0
    #: Its prompt's full blocks as runs (memory model only; see recursa.backends.kv_cache).
    runs: list[Run] = field(default_factory=list)
    #: Prompt (and, after a preemption, decoded) tokens prefilled, over all its admissions.
    prefill_tokens: int = 0
    #: Tokens its admissions found in the prefix cache instead of prefilling.
    cached_tokens: int = 0
    #: Tokens prefilled again because it had been preempted (part of prefill_tokens).
    recomputed_tokens: int = 0
    preemptions: int = 0


@dataclass(frozen=True)
class LowerBound:
    """`prefill_s + max(full_batch_decode_s, memory_decode_s, chain_decode_s)`."""

    prefill_s: float
    full_batch_decode_s: float
    chain_decode_s: float
    chain_problem: str
    memory_decode_s: float = 0.0
    #: The part of memory_decode_s for the pool the first iterations cannot fill (`early_s`).
    early_s: float = 0.0

    @property
    def decode_s(self) -> float:
        return max(self.full_batch_decode_s, self.memory_decode_s, self.chain_decode_s)

    @property
    def seconds(self) -> float:
        return self.prefill_s + self.decode_s

    @property
    def bound_by(self) -> str:
        """Which decode term binds: "chain", "memory" or "throughput"."""
        if self.chain_decode_s >= max(self.full_batch_decode_s, self.memory_decode_s):
            return "chain"
        return "memory" if self.memory_decode_s > self.full_batch_decode_s else "throughput"


def lower_bound(
    traces: Iterable[GenerationTrace], cost: CostModel, memory: MemoryModel | None = None
) -> LowerBound:
    """The bound above for the finished generations in `traces`."""
    done = [t for t in traces if not math.isnan(t.finished)]
    slowest: dict[tuple[str, int], float] = defaultdict(float)
    for t in done:
        slowest[t.problem, t.step] = max(slowest[t.problem, t.step], t.decode_s)
    chains: dict[str, float] = defaultdict(float)
    for (problem, _), seconds in slowest.items():
        chains[problem] += seconds
    problem = max(chains, key=lambda p: chains[p], default="")
    tokens = sum(t.completion_tokens for t in done)
    early_s = 0.0
    if memory is None:
        prefill_tokens = sum(t.prompt_tokens for t in done)
        memory_decode_s = 0.0
    else:
        holders = _holders(done)
        prefill_tokens, held = _memory_terms(done, memory, holders)
        early_s = cost.iteration_s * _early_empty_share(done, memory, holders, cost.max_batch)
        memory_decode_s = (
            cost.per_sequence_s * tokens + cost.iteration_s * held / memory.blocks + early_s
        )
    return LowerBound(
        prefill_s=cost.prefill_per_token_s * prefill_tokens,
        full_batch_decode_s=cost.per_token_at_full_batch() * tokens,
        chain_decode_s=chains.get(problem, 0.0),
        chain_problem=problem,
        memory_decode_s=memory_decode_s,
        early_s=early_s,
    )


def _holders(done: list[GenerationTrace]) -> Counter[int]:
    """For each shared prompt run, the number of requests of the workload whose prompt has it."""
    holders: Counter[int] = Counter()
    for t in done:
        for ident, _ in t.runs:
            holders[ident] += 1
    return holders


def _memory_terms(
    done: list[GenerationTrace], memory: MemoryModel, holders: Counter[int]
) -> tuple[int, float]:
    """(prompt tokens no schedule can avoid prefilling, sum over all emitted tokens of the
    blocks their sequence holds, shared runs weighted 1/k)."""
    bt = memory.block_tokens
    sizes = {ident: n for t in done for ident, n in t.runs}
    distinct_blocks = sum(sizes.values())
    tails = sum(t.prompt_tokens - bt * run_blocks(t.runs) for t in done)
    held = 0.0
    for t in done:
        full = run_blocks(t.runs)
        weighted = sum(n / holders[ident] for ident, n in t.runs)
        held += t.completion_tokens * (weighted - full)
        held += blocks_over_decode(t.prompt_tokens, t.completion_tokens, bt)
    return bt * distinct_blocks + tails, held


def _early_empty_share(
    done: list[GenerationTrace], memory: MemoryModel, holders: Counter[int], max_batch: int
) -> float:
    """Sum over the first L* iterations i of 1 - F(i) / M (benchmarks/README.md, `early_s`).

    A problem's step s + 1 is submitted only when all its step-s generations have finished,
    so no token of a later step is emitted before iteration L* + 1. At iteration i <= L* the
    batch is at most B first-step sequences, each emitting its j-th token with j <= i, so
    the blocks it holds (shared runs weighted 1/k, as in `memory_decode_s`) are at most
    F(i) = the sum of the B largest f_g(min(i, L_g)) over first-step generations g. F grows
    with i, so F(i) <= F(end of i's 16-iteration window) is used: the sum is a lower bound.
    """
    bt, capacity = memory.block_tokens, memory.blocks
    first: dict[str, int] = {}
    for t in done:
        first[t.problem] = min(first.get(t.problem, t.step), t.step)
    starters = [t for t in done if t.step == first[t.problem]]
    longest: dict[str, int] = defaultdict(int)
    for t in starters:
        longest[t.problem] = max(longest[t.problem], t.completion_tokens)
    later = {t.problem for t in done if t.step > first[t.problem]}
    if not starters:
        return 0.0
    horizon = min(longest[p] for p in later) if later else max(longest.values())
    # f_g(j) = ceil((P_g + j - 1) / bt) - full_g + weighted_g: (P_g, L_g, weighted - full)
    shapes = [
        (
            t.prompt_tokens,
            t.completion_tokens,
            sum(n / holders[ident] for ident, n in t.runs) - run_blocks(t.runs),
        )
        for t in starters
    ]
    empty = 0.0
    start = 0
    while start < horizon:
        end = min(start + bt, horizon)  # iterations start + 1 .. end
        held = heapq.nlargest(
            max_batch, (-(-(p + min(end, n) - 1) // bt) + extra for p, n, extra in shapes)
        )
        filled = min(1.0, sum(held) / capacity)
        if filled >= 1.0:
            break
        empty += (end - start) * (1.0 - filled)
        start = end
    return empty
