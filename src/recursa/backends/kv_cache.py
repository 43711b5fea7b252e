"""The KV-cache model of the simulated engine: a pool of fixed-size blocks, as in vLLM.

A sequence's KV cache lives in blocks of `block_tokens` (16) tokens. A prompt's *full* blocks
can be shared (prefix caching): a block's identity is the whole token sequence up to its end,
so two prompts share their leading blocks exactly as far as their tokens agree, block for
block, and a shared block is stored once while any running sequence uses it (its reference
count). Everything else a sequence holds (the partly filled last prompt block and the blocks
its decoded tokens fill) is private to it.

Prompts are laid out as *runs* of full blocks (`layout`): a run is either one block holding a
mix of words and completion pieces, or the whole blocks inside one quoted completion. Two
prompts with the same tokens up to a run's start and the same completion have the identical
run, so a run is shared whole or not at all, and the pool counts references per run (a few
dozen per prompt) instead of per block (about 900 for an aggregation prompt).

`MemoryPreset` derives a pool size from a model and a GPU; `MEMORY_PRESETS` is the one
registry of preset names (`--memory NAME` in benchmarks/scheduling.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

BLOCK_TOKENS = 16

#: One run of full prompt blocks: (identity, number of blocks).
Run = tuple[int, int]


@dataclass(frozen=True)
class MemoryModel:
    """A KV-cache pool of `kv_tokens` tokens (rounded down to whole blocks)."""

    kv_tokens: int
    block_tokens: int = BLOCK_TOKENS
    name: str = ""

    def __post_init__(self) -> None:
        if self.block_tokens < 1 or self.kv_tokens < self.block_tokens:
            raise ValueError(
                f"a KV pool needs at least one block of {self.block_tokens} tokens, "
                f"not {self.kv_tokens} tokens"
            )

    @property
    def blocks(self) -> int:
        return self.kv_tokens // self.block_tokens

    def blocks_for(self, tokens: int) -> int:
        """Blocks that hold `tokens` tokens of one sequence."""
        return -(-tokens // self.block_tokens)

    @property
    def description(self) -> str:
        label = f"{self.name}: " if self.name else ""
        return f"{label}KV pool of {self.blocks * self.block_tokens:,} tokens"


@dataclass(frozen=True)
class MemoryPreset:
    """A model on a GPU: the KV bytes per token and the memory vLLM leaves for the pool."""

    model: str
    gpu: str
    layers: int
    kv_heads: int
    head_dim: int
    dtype_bytes: int
    gpu_bytes: float
    gpu_memory_utilization: float
    weight_bytes: float

    @property
    def bytes_per_token(self) -> int:
        """K and V for every layer: layers x KV heads x head dim x 2 x bytes per value."""
        return self.layers * self.kv_heads * self.head_dim * 2 * self.dtype_bytes

    @property
    def kv_tokens(self) -> int:
        """(utilisation x GPU memory - weights) / bytes per token, in whole blocks."""
        free = self.gpu_memory_utilization * self.gpu_bytes - self.weight_bytes
        tokens = int(free // self.bytes_per_token)
        return tokens - tokens % BLOCK_TOKENS

    def memory(self, name: str) -> MemoryModel:
        return MemoryModel(self.kv_tokens, BLOCK_TOKENS, name)


MEMORY_PRESETS: dict[str, MemoryPreset] = {
    # Qwen3-4B(-Instruct-2507): 36 layers, 8 KV heads, head dim 128, bf16 (its config.json);
    # about 4.0e9 parameters in bf16; one H200 has 141 GB; vLLM's default utilisation 0.9.
    "qwen3-4b-h200": MemoryPreset(
        model="Qwen3-4B-Instruct-2507",
        gpu="H200",
        layers=36,
        kv_heads=8,
        head_dim=128,
        dtype_bytes=2,
        gpu_bytes=141e9,
        gpu_memory_utilization=0.9,
        weight_bytes=8.0e9,
    ),
}


def memory_preset(name: str) -> MemoryModel:
    """The pool of a registered preset, or ValueError naming the known ones."""
    try:
        return MEMORY_PRESETS[name].memory(name)
    except KeyError:
        known = ", ".join(sorted(MEMORY_PRESETS))
        raise ValueError(f"unknown memory preset {name!r} (known: {known})") from None


def layout(pieces: Iterable[tuple[str, int]], block_tokens: int = BLOCK_TOKENS) -> list[Run]:
    """The runs of full blocks of a prompt given as pieces (identity, tokens), in order.

    A word is one token (`(word, 1)`); a quoted completion is many tokens of one identity.
    A run's identity hashes the identity of everything before it, so equal ids mean equal
    token prefixes (up to hash collisions, which Python's 64-bit tuple hash makes negligible).
    """
    runs: list[Run] = []
    chain = 0  # identity of the token prefix up to the last full block
    mixed: list[tuple[str, int, int]] = []  # pieces of the block being filled
    fill = 0
    for ident, n in pieces:
        pos = 0
        if fill:
            take = min(n, block_tokens - fill)
            mixed.append((ident, 0, take))
            fill += take
            pos = take
            if fill == block_tokens:
                chain = hash((chain, tuple(mixed)))
                runs.append((chain, 1))
                mixed, fill = [], 0
        whole = (n - pos) // block_tokens
        if whole:
            chain = hash((chain, ident, pos, whole))
            runs.append((chain, whole))
            pos += whole * block_tokens
        if pos < n:
            mixed.append((ident, pos, n))
            fill += n - pos
    return runs


def run_blocks(runs: Sequence[Run]) -> int:
    return sum(n for _, n in runs)


class BlockPool:
    """Blocks in use: shared prompt runs by reference count, plus private blocks."""

    def __init__(self, memory: MemoryModel) -> None:
        self.memory = memory
        self.capacity = memory.blocks
        self._refs: dict[int, int] = {}
        self._shared = 0  # blocks of the runs in _refs
        self._private = 0
        self.peak = 0

    @property
    def used(self) -> int:
        return self._shared + self._private

    @property
    def free(self) -> int:
        return self.capacity - self.used

    @property
    def shared_blocks(self) -> int:
        return self._shared

    def cached_blocks(self, runs: Sequence[Run]) -> int:
        """Blocks of the leading runs already in the pool (a prefix-cache hit)."""
        hit = 0
        for ident, n in runs:
            if ident not in self._refs:
                break
            hit += n
        return hit

    def missing_blocks(self, runs: Sequence[Run]) -> int:
        """Blocks of `runs` the pool does not hold yet."""
        return sum(n for ident, n in runs if ident not in self._refs)

    def acquire(self, runs: Sequence[Run], private: int) -> None:
        for ident, n in runs:
            count = self._refs.get(ident, 0)
            if count == 0:
                self._shared += n
            self._refs[ident] = count + 1
        self._private += private
        self._check()

    def release(self, runs: Sequence[Run], private: int) -> None:
        for ident, n in runs:
            count = self._refs[ident] - 1
            if count:
                self._refs[ident] = count
            else:
                del self._refs[ident]
                self._shared -= n
        self._private -= private

    def grow(self, blocks: int) -> None:
        self._private += blocks
        self._check()

    def _check(self) -> None:
        if self.used > self.capacity:
            raise AssertionError(f"KV pool over capacity: {self.used} > {self.capacity} blocks")
        self.peak = max(self.peak, self.used)


def ceil_sum(n: int, block_tokens: int = BLOCK_TOKENS) -> int:
    """sum of ceil(m / block) for m = 1..n (0 for n <= 0), in closed form."""
    if n <= 0:
        return 0
    q, r = divmod(n, block_tokens)
    return block_tokens * q * (q + 1) // 2 + r * (q + 1)


def blocks_over_decode(prompt: int, tokens: int, block_tokens: int = BLOCK_TOKENS) -> int:
    """sum over j = 1..tokens of ceil((prompt + j - 1) / block): the blocks a sequence holds
    in the iteration that emits its j-th token, added up over its decode."""
    return ceil_sum(prompt + tokens - 1, block_tokens) - ceil_sum(prompt - 1, block_tokens)
