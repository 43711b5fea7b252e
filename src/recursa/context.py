"""What candidates look like inside an aggregation prompt: think blocks and the context policy.

Context policy. An aggregation prompt must leave room for the answer: the prompt may use at
most `context - reserve` tokens, where `reserve = min(max_tokens, context // 2)`. When the
problem and K whole candidates exceed that, candidates are shortened from the front, keeping
each one's end (where its final answer is) behind the marker `TRUNCATION_MARKER`. The budget is
shared by water-filling: candidates shorter than an equal share stay whole and their unused
share goes to the longer ones. If not even `MIN_CANDIDATE_TOKENS` per candidate fit next to
the problem, the problem cannot be aggregated in this context: ContextOverflowError.
The generation's own `max_tokens` is then capped to what is left of the window.

Token counts come from the backend; where it only estimates them (an openai server without a
tokenize endpoint: about 3 characters per token), every message here says so.

Empty candidates. A completion with no text outside `<think>` blocks (an empty completion, or
a server's `content: null`) is a candidate without an answer. It is never shown to the model
as an empty solution: it keeps its place among the K candidates as `NO_ANSWER_MARKER` (after
its reasoning when think blocks are kept), so the model knows that attempt gave nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from recursa.errors import ContextOverflowError

TRUNCATION_MARKER = "[... earlier part of this candidate omitted to fit the context window ...]"
MIN_CANDIDATE_TOKENS = 16
NO_ANSWER_MARKER = "[this candidate gave no answer: its completion was empty]"
ESTIMATE_NOTE = " (an estimate at 3 characters per token: the backend has no tokenizer)"

_THINK_BLOCK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)


def strip_think(text: str) -> str:
    """Remove reasoning blocks. Closed `<think>...</think>` blocks go; text before a stray
    closing tag (templates that omit the opening one) goes; an unclosed `<think>` (a trace cut
    off by max tokens) loses only the tag, since its content is all there is."""
    if "think>" not in text.lower():  # no tag at all: the common case, kept cheap
        return text.strip()
    text = _THINK_BLOCK.sub("", text)
    lower = text.lower()
    if "</think>" in lower:
        text = text[lower.rfind("</think>") + len("</think>") :]
    return re.sub(r"<think>", "", text, flags=re.IGNORECASE).strip()


def is_empty(text: str) -> bool:
    """Whether a completion has no text outside `<think>` blocks (no answer at all)."""
    return not strip_think(text)


def show_empty(text: str) -> str:
    """A candidate as it enters an aggregation prompt: unchanged, or, when it has no answer,
    its reasoning (if any) followed by the no-answer marker, so that stripping think blocks
    leaves the marker."""
    if not is_empty(text):
        return text
    kept = text.strip()
    return f"{kept}\n\n{NO_ANSWER_MARKER}" if kept else NO_ANSWER_MARKER


def keep_tail(text: str, budget: int, count: Callable[[str], int]) -> str:
    """The longest suffix of `text` (cut at a word boundary where possible) that fits
    `budget` tokens together with the marker, behind the marker."""
    marker_cost = count(TRUNCATION_MARKER) + 1
    room = max(budget - marker_cost, 1)
    lo, hi = 0, len(text)  # binary search on the start offset
    while lo < hi:
        mid = (lo + hi) // 2
        if count(text[mid:]) <= room:
            hi = mid
        else:
            lo = mid + 1
    start = lo
    space = text.find(" ", start)
    if 0 <= space < start + 40:
        start = space + 1
    return f"{TRUNCATION_MARKER}\n{text[start:]}"


@dataclass(frozen=True)
class Fitted:
    """Candidates ready for a prompt, and the max tokens the generation may use."""

    candidates: list[str]
    max_tokens: int
    truncated: int


def candidate_budget(overhead_tokens: int, context_tokens: int, max_tokens: int) -> int:
    """Tokens the candidates may take together: the window less the answer's reserve and the
    prompt without candidates."""
    return context_tokens - min(max_tokens, context_tokens // 2) - overhead_tokens


def fit_candidates(
    candidates: list[str],
    overhead_tokens: int,
    context_tokens: int | None,
    max_tokens: int,
    count: Callable[[str], int],
    *,
    estimated: bool = False,
) -> Fitted:
    """Apply the context policy (module docstring). `overhead_tokens` is the prompt without
    candidates (instructions, problem, separators); `estimated` says the counts are guesses."""
    if context_tokens is None:
        return Fitted(list(candidates), max_tokens, 0)
    budget = candidate_budget(overhead_tokens, context_tokens, max_tokens)
    if budget < MIN_CANDIDATE_TOKENS * max(len(candidates), 1):
        about = "about " if estimated else ""
        raise ContextOverflowError(
            f"the problem ({about}{overhead_tokens} tokens with instructions"
            f"{ESTIMATE_NOTE if estimated else ''}) leaves no room for "
            f"{len(candidates)} candidates in a {context_tokens}-token context window; "
            "use a larger context, a smaller K or fewer max tokens"
        )
    sizes = [count(c) for c in candidates]
    if sum(sizes) <= budget:
        used = overhead_tokens + sum(sizes)
        return Fitted(list(candidates), max(1, min(max_tokens, context_tokens - used)), 0)
    # Water-filling: short candidates keep everything, the rest share what is left equally.
    order = sorted(range(len(candidates)), key=lambda i: sizes[i])
    shares = [0] * len(candidates)
    left, remaining = budget, len(candidates)
    for i in order:
        share = left // remaining
        shares[i] = min(sizes[i], share)
        left -= shares[i]
        remaining -= 1
    out, truncated = [], 0
    for cand, size, share in zip(candidates, sizes, shares, strict=True):
        if size <= share:
            out.append(cand)
        else:
            out.append(keep_tail(cand, share, count))
            truncated += 1
    used = overhead_tokens + sum(count(c) for c in out)
    return Fitted(out, max(1, min(max_tokens, context_tokens - used)), truncated)


def fit_plain(
    prompt_tokens: int, context_tokens: int | None, max_tokens: int, *, estimated: bool = False
) -> int:
    """Max tokens for a plain prompt; the prompt alone must fit."""
    if context_tokens is None:
        return max_tokens
    if prompt_tokens >= context_tokens - 1:
        about = "about " if estimated else ""
        raise ContextOverflowError(
            f"the problem takes {about}{prompt_tokens} tokens"
            f"{ESTIMATE_NOTE if estimated else ''}, more than the {context_tokens}-token "
            "context window"
        )
    return max(1, min(max_tokens, context_tokens - prompt_tokens))
