"""The think policy: how candidates' `<think>` blocks enter an aggregation prompt.

- `keep`: candidates go in whole, reasoning blocks included (the reference code's behaviour).
- `strip`: `<think>` blocks are always removed first (`context.strip_think`).
- `auto` (default): candidates go in whole when the K of them fit the context window next to
  the problem; only when they do not are their `<think>` blocks removed.

Whatever the policy, what still does not fit is then cut by the context policy
(`context.fit_candidates`: each candidate keeps its end, behind a marker). Without a known
context window every policy but `strip` keeps candidates whole. A server's separate
reasoning text arrives as a leading `<think>...</think>` block of the completion, so the
policy governs it like any other reasoning block.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

from recursa.context import Fitted, candidate_budget, fit_candidates, strip_think

ThinkPolicy = Literal["keep", "strip", "auto"]
THINK_POLICIES: tuple[str, ...] = ("keep", "strip", "auto")


def keep_think_alias(data: Any) -> Any:
    """Settings with the deprecated `keep_think` (True / False) turned into `think` (keep /
    strip) unless `think` is given; for the settings models' "before" validators."""
    if isinstance(data, dict) and data.get("keep_think") is not None:
        data = dict(data)
        data.setdefault("think", "keep" if data["keep_think"] else "strip")
        data["keep_think"] = None
    return data


def fit_with_policy(
    policy: ThinkPolicy,
    candidates: Sequence[str],
    overhead_tokens: int,
    context_tokens: int | None,
    max_tokens: int,
    count: Callable[[str], int],
    *,
    estimated: bool = False,
) -> Fitted:
    """The candidates as they go into the prompt (see the module docstring); `estimated`
    says the token counts are guesses (messages say so)."""
    texts = list(candidates)
    if policy == "strip":
        texts = [strip_think(t) for t in texts]
    elif policy == "auto" and context_tokens is not None:
        budget = candidate_budget(overhead_tokens, context_tokens, max_tokens)
        if sum(count(t) for t in texts) > budget:
            texts = [strip_think(t) for t in texts]
    return fit_candidates(
        texts, overhead_tokens, context_tokens, max_tokens, count, estimated=estimated
    )
