"""What the proxy answers: a standard chat completion (or its chunks) for an RSA result.

The message is the selected final candidate. `usage` sums every upstream generation of the
run. The extra `rsa` field reports the extracted final answer and each step's agreement.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from recursa.result import Candidate, SolveResult

_WORDS = re.compile(r"\S+\s*|\s+")
WORDS_PER_CHUNK = 8
_FINISH_REASONS = {"stop", "length", "content_filter"}


@dataclass(frozen=True)
class ReplyMeta:
    """The fields shared by a reply's body or chunks."""

    model: str
    id: str = field(default_factory=lambda: f"chatcmpl-{uuid.uuid4().hex}")
    created: int = field(default_factory=lambda: int(time.time()))


def selected(result: SolveResult) -> Candidate:
    """The candidate whose text is the reply."""
    final = result.steps[-1].candidates
    return next((c for c in final if c.slot == result.selected_slot), final[0])


def finish_reason(candidate: Candidate) -> str:
    """The candidate's finish reason in OpenAI's vocabulary ("stop" for anything else)."""
    return candidate.finish_reason if candidate.finish_reason in _FINISH_REASONS else "stop"


def usage(result: SolveResult) -> dict[str, int]:
    """Token totals over every upstream generation of the run."""
    prompt = int(result.usage.get("prompt_tokens", 0))
    completion = int(result.usage.get("completion_tokens", 0))
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def rsa_report(result: SolveResult) -> dict[str, Any]:
    """The extra `rsa` field: final answer, per-step agreement, generations, settings."""
    cfg = result.config
    return {
        "answer": result.answer,
        "selected_slot": result.selected_slot,
        "steps_run": result.steps_run,
        "generations": int(result.usage.get("generations", 0)),
        "steps": [
            {
                "step": s.step,
                "agreement": s.agreement,
                "majority_answer": s.majority_answer,
                "answers": [c.answer for c in s.candidates],
            }
            for s in result.steps
        ],
        "config": {k: cfg[k] for k in ("n", "k", "t", "task", "seed", "temperature", "max_tokens")},
    }


def completion_body(meta: ReplyMeta, result: SolveResult) -> dict[str, Any]:
    """A standard `chat.completion` object (plus `rsa`)."""
    chosen = selected(result)
    return {
        "id": meta.id,
        "object": "chat.completion",
        "created": meta.created,
        "model": meta.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": chosen.text},
                "finish_reason": finish_reason(chosen),
                "logprobs": None,
            }
        ],
        "usage": usage(result),
        "rsa": rsa_report(result),
    }


def chunk(
    meta: ReplyMeta,
    delta: dict[str, Any],
    finish_reason: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """One `chat.completion.chunk` with a single choice."""
    return {
        "id": meta.id,
        "object": "chat.completion.chunk",
        "created": meta.created,
        "model": meta.model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}],
        **extra,
    }


def text_pieces(text: str, words: int = WORDS_PER_CHUNK) -> list[str]:
    """The text cut into pieces of a few words; joined, they are the text exactly."""
    tokens = _WORDS.findall(text)
    return ["".join(tokens[i : i + words]) for i in range(0, len(tokens), words)]


def completion_chunks(
    meta: ReplyMeta, result: SolveResult, include_usage: bool
) -> list[dict[str, Any]]:
    """The final message as chunks: the role, the content in pieces, then the finish reason
    (carrying `rsa`), then, when asked for, a usage chunk with no choices."""
    chosen = selected(result)
    chunks = [chunk(meta, {"role": "assistant", "content": ""})]
    chunks += [chunk(meta, {"content": piece}) for piece in text_pieces(chosen.text)]
    chunks.append(chunk(meta, {}, finish_reason(chosen), rsa=rsa_report(result)))
    if include_usage:
        chunks.append(
            {
                "id": meta.id,
                "object": "chat.completion.chunk",
                "created": meta.created,
                "model": meta.model,
                "choices": [],
                "usage": usage(result),
            }
        )
    return chunks
