"""What the proxy does with each chat-completions parameter (the table in docs/SERVE.md).

Four kinds:
- read by the proxy itself: `messages`, `model`, `n`, `stream`, `stream_options`, `rsa`, and
  the RSA sampling settings `temperature`, `top_p`, `max_tokens`/`max_completion_tokens` and
  `seed` (layered into the run's RSAConfig, see serve/schema.py);
- sent with every upstream generation, unchanged: `response_format`, `logprobs`,
  `top_logprobs`, and every field this module does not name (`stop`, the penalties,
  `logit_bias`, `reasoning_effort`, `top_k`, `min_p`, `user`, `metadata`, vendor options such
  as `chat_template_kwargs`, ...): the upstream honours them, or refuses them with a 4xx that
  the client receives as such;
- refused with a 400 naming the field: what RSA cannot do (`audio` and non-text `modalities`,
  `prediction`, tools and function calling);
- without effect and dropped: `parallel_tool_calls`, and `tool_choice`/`function_call` of
  "none" or "auto", since no tools are ever offered.
"""

from __future__ import annotations

from typing import Any

from recursa.serve.errors import APIError

#: Fields the proxy reads itself; never forwarded as they come.
READ: frozenset[str] = frozenset(
    {
        "messages",
        "model",
        "n",
        "stream",
        "stream_options",
        "rsa",
        "temperature",
        "top_p",
        "max_tokens",
        "max_completion_tokens",
        "seed",
    }
)
#: Fields without effect when no tools are offered (none ever are).
NO_EFFECT: frozenset[str] = frozenset({"parallel_tool_calls", "tool_choice", "function_call"})
#: Fields refused whenever they ask for something, and why.
REFUSED: dict[str, str] = {
    "tools": "tools are not supported by the RSA proxy",
    "functions": "function calling is not supported by the RSA proxy",
    "audio": "audio output is not supported by the RSA proxy: it aggregates text",
    "prediction": "predicted outputs are not supported by the RSA proxy: every generation "
    "is new text",
}


def unsupported(name: str, reason: str) -> APIError:
    return APIError(400, f"{name}: {reason}", code="unsupported_parameter", param=name)


def check_unsupported(fields: dict[str, Any]) -> None:
    """A 400 naming the first field that asks for something the proxy cannot do."""
    for name, reason in REFUSED.items():
        value = fields.get(name)
        if value not in (None, [], {}):
            raise unsupported(name, reason)
    for name in ("tool_choice", "function_call"):
        value = fields.get(name)
        if value not in (None, "none", "auto"):
            raise unsupported(name, "no tools are offered by the RSA proxy")
    modalities = fields.get("modalities")
    if modalities is not None and modalities != ["text"]:
        raise unsupported("modalities", 'only ["text"] is supported by the RSA proxy')


def upstream_params(fields: dict[str, Any]) -> dict[str, Any]:
    """The request's fields that every upstream generation carries (see the docstring)."""
    return {
        name: value
        for name, value in fields.items()
        if name not in READ
        and name not in NO_EFFECT
        and name not in REFUSED
        and name != "modalities"
        and value is not None
    }
