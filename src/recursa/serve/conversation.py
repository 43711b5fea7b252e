"""A chat conversation as one RSA problem.

RSA aggregates candidate answers to one problem, and the aggregation prompt restates that
problem, so the whole conversation is folded into the problem text: the last message must be
the user's and is the question; system and developer messages become an "Instructions"
section and earlier turns a "Conversation so far" transcript above it. A single user message
with nothing before it is the problem text unchanged. Every candidate, plain or aggregated,
therefore sees the same instructions and history.
"""

from __future__ import annotations

from recursa.hashing import stable_hash
from recursa.serve.errors import bad_request
from recursa.serve.schema import ChatMessage
from recursa.tasks import Problem

_SPEAKERS = {"user": "User", "assistant": "Assistant", "tool": "Tool", "function": "Tool"}


def problem_text(messages: list[ChatMessage]) -> str:
    """The problem the model is asked to solve, as described in the module docstring."""
    if not messages or messages[-1].role != "user":
        raise bad_request(
            "the last message must come from the user: it is the question RSA answers",
            param="messages",
        )
    question = messages[-1].text()
    if not question.strip():
        raise bad_request("the last user message is empty", param="messages")
    instructions = [m.text().strip() for m in messages[:-1] if m.role in ("system", "developer")]
    turns = [
        f"{_SPEAKERS[m.role]}: {m.text().strip()}"
        for m in messages[:-1]
        if m.role not in ("system", "developer") and m.text().strip()
    ]
    instructions = [i for i in instructions if i]
    if not instructions and not turns:
        return question
    sections = []
    if instructions:
        sections.append("Instructions:\n" + "\n\n".join(instructions))
    if turns:
        sections.append("Conversation so far:\n" + "\n\n".join(turns))
    sections.append("Latest user message:\n" + question)
    return "\n\n".join(sections)


def problem_from_messages(messages: list[ChatMessage], task: str) -> Problem:
    """The Problem for a conversation; its id is a stable hash of the text, so the same
    conversation with the same seed draws the same subsets."""
    text = problem_text(messages)
    return Problem(id=f"chat-{stable_hash('chat', text):016x}", question=text, task=task)
