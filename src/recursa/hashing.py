"""Stable hashing: the same inputs give the same number in every process (never `hash`)."""

from __future__ import annotations

import hashlib
import random


def stable_hash(*parts: object) -> int:
    """A 64-bit integer from the parts' text, stable across processes and platforms."""
    text = "\x1f".join(repr(p) for p in parts)
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def stable_rng(*parts: object) -> random.Random:
    """A private RNG seeded from the parts."""
    return random.Random(stable_hash(*parts))


def request_seed(*parts: object) -> int:
    """A non-negative 31-bit seed for a backend request (llama.cpp and OpenAI accept it)."""
    return stable_hash("request-seed", *parts) % (2**31 - 1)
