"""A chat conversation as one RSA problem whose prompts keep the conversation's messages.

The last message must be the user's: it is the question. Everything before it (system and
developer messages, earlier user and assistant turns) is the problem's history, sent to the
upstream as messages before every prompt, fresh sample and aggregation alike; the aggregation
content (instructions, the question, the candidates) goes into the last user turn. Developer
messages are sent as system messages (the role chat templates know). Only text content is
supported; tool turns are a 400, since the proxy offers no tools.
"""

from __future__ import annotations

import json

from recursa.hashing import stable_hash
from recursa.serve.errors import bad_request
from recursa.serve.schema import ChatMessage
from recursa.tasks import Problem

#: The role each message is sent upstream with.
_UPSTREAM_ROLE = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "assistant": "assistant",
}


def split_conversation(messages: list[ChatMessage]) -> tuple[list[dict[str, str]], str]:
    """The history sent before every prompt, and the question (the last user message)."""
    if not messages or messages[-1].role != "user":
        raise bad_request(
            "the last message must come from the user: it is the question RSA answers",
            param="messages",
        )
    history: list[dict[str, str]] = []
    for i, message in enumerate(messages[:-1]):
        role = _UPSTREAM_ROLE.get(message.role)
        if role is None or (message.model_extra or {}).get("tool_calls"):
            raise bad_request(
                f"messages[{i}]: tool calls and tool results are not supported by the RSA "
                "proxy (it offers no tools)",
                param=f"messages.{i}",
            )
        entry = {"role": role, "content": message.text()}
        name = (message.model_extra or {}).get("name")
        if isinstance(name, str) and name:
            entry["name"] = name
        history.append(entry)
    question = messages[-1].text()
    if not question.strip():
        raise bad_request("the last user message is empty", param="messages")
    return history, question


def problem_from_messages(messages: list[ChatMessage], task: str) -> Problem:
    """The Problem for a conversation; its id is a stable hash of the whole conversation, so
    the same conversation with the same seed draws the same subsets."""
    history, question = split_conversation(messages)
    text = json.dumps([history, question], ensure_ascii=False)
    return Problem(
        id=f"chat-{stable_hash('chat', text):016x}",
        question=question,
        task=task,
        history=history,
    )
