"""`POST /v1/responses`: the Responses API (text in, text out) over the same RSA run.

A Responses request is translated into a chat-completions body and then handled exactly as
one (serve/job.py): `input` (a string, or message items with text parts) and `instructions`
become the messages, `max_output_tokens` the per-generation `max_tokens`, `text.format` the
`response_format`, `reasoning.effort` the `reasoning_effort`, `include:
["message.output_text.logprobs"]` (or `top_logprobs`) asks for logprobs. Nothing is stored:
`previous_response_id`, `conversation`, `prompt` and `background` are 400s, and replies say
`"store": false`. The reply is a `response` object with one `message` output item (and a
`reasoning` item before it when the selected candidate opens with a `<think>` block); with
`stream: true` the standard event sequence (`response.created` ... `response.completed`).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from recursa.result import SolveResult
from recursa.serve.errors import APIError, bad_request
from recursa.serve.params import unsupported
from recursa.serve.reply import rsa_report, selected, split_reasoning, text_pieces
from recursa.serve.streaming import sse_event

#: Responses fields refused (the proxy keeps no state and runs no tools), and why.
REFUSED: dict[str, str] = {
    "previous_response_id": "responses are not stored by the RSA proxy; send the whole "
    "conversation as input",
    "conversation": "conversations are not stored by the RSA proxy; send the whole "
    "conversation as input",
    "prompt": "stored prompt templates are not supported by the RSA proxy",
    "tools": "tools are not supported by the RSA proxy",
}
#: Responses fields this module translates or answers itself; not forwarded.
HANDLED = frozenset(
    {
        "input",
        "instructions",
        "max_output_tokens",
        "text",
        "reasoning",
        "include",
        "store",
        "truncation",
        "stream_options",
        "background",
        "tool_choice",
        "parallel_tool_calls",
        "max_tool_calls",
        *REFUSED,
    }
)
#: Passed into the chat body under the same name.
SAME_NAME = frozenset({"model", "temperature", "top_p", "stream", "seed", "rsa", "top_logprobs"})
LOGPROBS_INCLUDE = "message.output_text.logprobs"
_TEXT_PARTS = {"input_text", "output_text", "text"}


def _part_text(part: Any, where: str) -> str:
    if isinstance(part, dict) and part.get("type") in _TEXT_PARTS:
        text = part.get("text")
        if isinstance(text, str):
            return text
    kind = part.get("type") if isinstance(part, dict) else type(part).__name__
    raise bad_request(
        f"{where}: content of type {kind!r} is not supported by the RSA proxy; send text",
        param=where,
    )


def input_messages(value: Any) -> list[dict[str, Any]]:
    """`input` as chat messages."""
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if not isinstance(value, list) or not value:
        raise bad_request("input must be a string or a non-empty list of messages", param="input")
    messages = []
    for i, item in enumerate(value):
        where = f"input[{i}]"
        if not isinstance(item, dict) or item.get("type", "message") != "message":
            kind = item.get("type") if isinstance(item, dict) else type(item).__name__
            raise bad_request(
                f"{where}: items of type {kind!r} are not supported by the RSA proxy (it runs "
                "no tools and keeps no reasoning items); send messages",
                param=where,
            )
        content = item.get("content")
        if isinstance(content, list):
            content = "".join(_part_text(p, f"{where}.content[{j}]") for j, p in enumerate(content))
        messages.append({"role": item.get("role"), "content": content})
    return messages


def _response_format(text: Any) -> dict[str, Any] | None:
    fmt = text.get("format") if isinstance(text, dict) else None
    if not isinstance(fmt, dict):
        return None
    if fmt.get("type") == "json_schema":
        spec = {k: fmt[k] for k in ("name", "schema", "strict", "description") if k in fmt}
        return {"type": "json_schema", "json_schema": spec}
    return {"type": fmt.get("type")}


def chat_body(body: dict[str, Any]) -> dict[str, Any]:
    """The chat-completions body a Responses request amounts to, or a 400."""
    for name, reason in REFUSED.items():
        if body.get(name) not in (None, [], ""):
            raise unsupported(name, reason)
    if body.get("background"):
        raise unsupported("background", "background responses are not supported")
    if "input" not in body:
        raise bad_request("input is required", param="input")
    messages = input_messages(body["input"])
    instructions = body.get("instructions")
    if isinstance(instructions, str) and instructions:
        messages.insert(0, {"role": "system", "content": instructions})
    chat: dict[str, Any] = {k: v for k, v in body.items() if k in SAME_NAME}
    chat["messages"] = messages
    for key, value in body.items():
        if key not in HANDLED and key not in SAME_NAME:
            chat[key] = value  # forwarded to every generation, as in chat completions
    if body.get("max_output_tokens") is not None:
        chat["max_tokens"] = body["max_output_tokens"]
    response_format = _response_format(body.get("text"))
    if response_format is not None:
        chat["response_format"] = response_format
    text = body.get("text")
    if isinstance(text, dict) and text.get("verbosity") is not None:
        chat["verbosity"] = text["verbosity"]
    reasoning = body.get("reasoning")
    if isinstance(reasoning, dict):
        if reasoning.get("summary") or reasoning.get("generate_summary"):
            raise unsupported(
                "reasoning.summary", "reasoning summaries are not produced by the RSA proxy"
            )
        if reasoning.get("effort") is not None:
            chat["reasoning_effort"] = reasoning["effort"]
    include = body.get("include") or []
    if not isinstance(include, list):
        raise bad_request("include must be a list", param="include")
    if LOGPROBS_INCLUDE in include or body.get("top_logprobs"):
        chat["logprobs"] = True
    for name in ("tool_choice",):
        if body.get(name) not in (None, "none", "auto"):
            raise unsupported(name, "no tools are offered by the RSA proxy")
    return chat


@dataclass(frozen=True)
class ResponseMeta:
    """The fields every event of one response shares, and the request's echoed settings."""

    model: str
    request: dict[str, Any]
    logprobs: bool = False
    id: str = field(default_factory=lambda: f"resp_{uuid.uuid4().hex}")
    message_id: str = field(default_factory=lambda: f"msg_{uuid.uuid4().hex}")
    created_at: int = field(default_factory=lambda: int(time.time()))


def _usage(result: SolveResult) -> dict[str, Any]:
    prompt = int(result.usage.get("prompt_tokens", 0))
    completion = int(result.usage.get("completion_tokens", 0))
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + completion,
    }


def response_object(
    meta: ResponseMeta,
    status: str,
    output: list[dict[str, Any]],
    result: SolveResult | None = None,
    error: APIError | None = None,
) -> dict[str, Any]:
    """A `response` object; the request's settings are echoed as the API does."""
    req = meta.request
    incomplete = None
    if result is not None and selected(result).finish_reason == "length":
        status, incomplete = "incomplete", {"reason": "max_output_tokens"}
    body: dict[str, Any] = {
        "id": meta.id,
        "object": "response",
        "created_at": meta.created_at,
        "status": status,
        "error": None
        if error is None
        else {"code": error.code or "server_error", "message": error.message},
        "incomplete_details": incomplete,
        "instructions": req.get("instructions"),
        "max_output_tokens": req.get("max_output_tokens"),
        "model": meta.model,
        "output": output,
        "parallel_tool_calls": bool(req.get("parallel_tool_calls", True)),
        "previous_response_id": None,
        "reasoning": req.get("reasoning") or {"effort": None, "summary": None},
        "store": False,
        "temperature": req.get("temperature"),
        "text": req.get("text") or {"format": {"type": "text"}},
        "tool_choice": req.get("tool_choice") or "auto",
        "tools": [],
        "top_p": req.get("top_p"),
        "truncation": req.get("truncation") or "disabled",
        "usage": None if result is None else _usage(result),
        "metadata": req.get("metadata") or {},
    }
    if result is not None:
        body["rsa"] = rsa_report(result)
    return body


def _logprob_entries(meta: ResponseMeta, result: SolveResult) -> list[dict[str, Any]]:
    if not meta.logprobs:
        return []
    content = (selected(result).logprobs or {}).get("content")
    return content if isinstance(content, list) else []


def _text_part(text: str, logprobs: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": logprobs}


def _message_item(meta: ResponseMeta, part: dict[str, Any] | None, status: str) -> dict[str, Any]:
    return {
        "type": "message",
        "id": meta.message_id,
        "status": status,
        "role": "assistant",
        "content": [] if part is None else [part],
    }


def _reasoning_item(meta: ResponseMeta, reasoning: str) -> dict[str, Any]:
    return {
        "type": "reasoning",
        "id": f"rs_{meta.message_id[4:]}",
        "summary": [],
        "content": [{"type": "reasoning_text", "text": reasoning}],
        "status": "completed",
    }


def output_items(meta: ResponseMeta, result: SolveResult) -> list[dict[str, Any]]:
    """The output: a reasoning item (when the candidate has a think block), the message."""
    reasoning, content = split_reasoning(selected(result).text)
    items = [] if reasoning is None else [_reasoning_item(meta, reasoning)]
    part = _text_part(content, _logprob_entries(meta, result))
    return [*items, _message_item(meta, part, "completed")]


def response_body(meta: ResponseMeta, result: SolveResult) -> dict[str, Any]:
    return response_object(meta, "completed", output_items(meta, result), result)


class EventStream:
    """The numbered events of one streamed response."""

    def __init__(self, meta: ResponseMeta) -> None:
        self.meta = meta
        self.number = 0

    def event(self, kind: str, **fields: Any) -> bytes:
        payload = {"type": kind, "sequence_number": self.number, **fields}
        self.number += 1
        return sse_event(kind, payload)

    def opening(self) -> list[bytes]:
        start = response_object(self.meta, "in_progress", [])
        return [
            self.event("response.created", response=start),
            self.event("response.in_progress", response=start),
        ]

    def finished(self, result: SolveResult) -> list[bytes]:
        meta = self.meta
        items = output_items(meta, result)
        events = []
        for index, item in enumerate(items[:-1]):  # the reasoning item, whole
            events.append(self.event("response.output_item.added", output_index=index, item=item))
            events.append(self.event("response.output_item.done", output_index=index, item=item))
        index = len(items) - 1
        part = items[-1]["content"][0]
        ids = {"item_id": meta.message_id, "output_index": index, "content_index": 0}
        events.append(
            self.event(
                "response.output_item.added",
                output_index=index,
                item=_message_item(meta, None, "in_progress"),
            )
        )
        events.append(self.event("response.content_part.added", **ids, part=_text_part("", [])))
        for piece in text_pieces(part["text"]):
            events.append(self.event("response.output_text.delta", **ids, delta=piece, logprobs=[]))
        events.append(
            self.event(
                "response.output_text.done", **ids, text=part["text"], logprobs=part["logprobs"]
            )
        )
        events.append(self.event("response.content_part.done", **ids, part=part))
        events.append(self.event("response.output_item.done", output_index=index, item=items[-1]))
        done = response_object(meta, "completed", items, result)
        kind = "response.incomplete" if done["status"] == "incomplete" else "response.completed"
        events.append(self.event(kind, response=done))
        return events

    def failed(self, error: APIError) -> list[bytes]:
        return [
            self.event("error", code=error.code, message=error.message, param=error.param),
            self.event(
                "response.failed", response=response_object(self.meta, "failed", [], error=error)
            ),
        ]
