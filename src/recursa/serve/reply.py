"""What the proxy answers: a standard chat completion (or its chunks) for an RSA result.

The message is the selected final candidate: a leading `<think>` block (a reasoning model's
trace) goes into `reasoning_content`, the rest is `content`; with `logprobs` the candidate's
own token log-probabilities come along. `usage` sums every upstream generation of the run.
The extra `rsa` field reports the extracted final answer and each step's agreement.
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
_LEADING_THINK = re.compile(r"^\s*<think>(.*?)</think>\s*", re.DOTALL | re.IGNORECASE)


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


def split_reasoning(text: str) -> tuple[str | None, str]:
    """A leading `<think>...</think>` block's content, and the text after it."""
    match = _LEADING_THINK.match(text)
    if match is None:
        return None, text
    return match.group(1).strip(), text[match.end() :]


def message(candidate: Candidate) -> dict[str, Any]:
    """The assistant message for a candidate."""
    reasoning, content = split_reasoning(candidate.text)
    out: dict[str, Any] = {"role": "assistant", "content": content}
    if reasoning is not None:
        out["reasoning_content"] = reasoning
    return out


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


def completion_body(meta: ReplyMeta, result: SolveResult, logprobs: bool = False) -> dict[str, Any]:
    """A standard `chat.completion` object (plus `rsa`); with `logprobs`, the selected
    candidate's."""
    chosen = selected(result)
    return {
        "id": meta.id,
        "object": "chat.completion",
        "created": meta.created,
        "model": meta.model,
        "choices": [
            {
                "index": 0,
                "message": message(chosen),
                "finish_reason": finish_reason(chosen),
                "logprobs": chosen.logprobs if logprobs else None,
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


def token_pieces(text: str, logprobs: dict[str, Any] | None) -> list[tuple[str, Any]]:
    """The text in pieces, each with its tokens' logprobs object: a few tokens per piece when
    the tokens spell the text exactly, else all of them on the first piece."""
    entries = (logprobs or {}).get("content")
    if not isinstance(entries, list) or not entries:
        return [(piece, None) for piece in text_pieces(text)]
    tokens = [e.get("token") if isinstance(e, dict) else None for e in entries]
    if all(isinstance(t, str) for t in tokens) and "".join(tokens) == text:  # type: ignore[arg-type]
        step = WORDS_PER_CHUNK
        return [
            ("".join(tokens[i : i + step]), {"content": entries[i : i + step]})  # type: ignore[arg-type]
            for i in range(0, len(entries), step)
        ]
    pieces = text_pieces(text) or [""]
    return [(p, {"content": entries} if i == 0 else None) for i, p in enumerate(pieces)]


def completion_chunks(
    meta: ReplyMeta, result: SolveResult, include_usage: bool, logprobs: bool = False
) -> list[dict[str, Any]]:
    """The final message as chunks: the role (and any reasoning), the content in pieces
    (with their logprobs when asked for), then the finish reason (carrying `rsa`), then, when
    asked for, a usage chunk with no choices."""
    chosen = selected(result)
    reasoning, content = split_reasoning(chosen.text)
    chunks = [chunk(meta, {"role": "assistant", "content": ""})]
    if reasoning is not None:
        chunks.append(chunk(meta, {"reasoning_content": reasoning}))
    for piece, piece_logprobs in token_pieces(content, chosen.logprobs if logprobs else None):
        part = chunk(meta, {"content": piece})
        part["choices"][0]["logprobs"] = piece_logprobs
        chunks.append(part)
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
