"""The llama.cpp backend passes a reasoning effort as gpt-oss reads it: a system message
"Reasoning: <effort>" (llama-cpp-python takes no chat-template variables). Real model."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from recursa.backends.base import GenerationRequest

pytest.importorskip("llama_cpp")


def test_the_effort_is_a_leading_system_message() -> None:
    from recursa.backends.llamacpp import LlamaCppBackend

    backend = LlamaCppBackend(n_ctx=512, n_threads=1)
    seen: list[list[dict[str, Any]]] = []
    real = backend._llm.create_chat_completion

    def recording(**kwargs: Any) -> Any:
        seen.append(kwargs["messages"])
        return real(**kwargs)

    backend._llm.create_chat_completion = recording
    user = [{"role": "user", "content": "Say hi."}]
    for effort in ("low", None):
        request = GenerationRequest(messages=user, max_tokens=4, seed=1, reasoning_effort=effort)
        out = asyncio.run(backend.generate(request))
        assert out.completion_tokens >= 1
    assert seen[0] == [{"role": "system", "content": "Reasoning: low"}, *user]
    assert seen[1] == user
