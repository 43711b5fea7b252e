"""What an OpenAI-compatible server says about itself: its models, its kind, its context window
and how it counts tokens (docs/BACKENDS.md, "What recursa asks the server").

- Models: `GET /v1/models`. Without --model, one listed model is used; several are an error
  that lists them.
- Kind: the model entry's `owned_by` ("vllm", "sglang", "llamacpp" for llama.cpp's server,
  "me" for llama-cpp-python's, "openai"/"system" for OpenAI; api.openai.com by its host);
  anything else is "other". The kind decides which sampling parameters are sent: top_k and
  min_p exist on vLLM, SGLang and both llama.cpp servers and are sent disabled unless set;
  OpenAI and unknown servers never get them.
- Context window: vLLM's and SGLang's `max_model_len` in the model entry; llama.cpp's
  `GET /props` (`default_generation_settings.n_ctx`, the per-slot window). Otherwise unknown.
- Token counts: `POST /tokenize` (vLLM, SGLang: `{"prompt"}`; llama.cpp: `{"content"}`) and
  llama-cpp-python's `POST /extras/tokenize/count` (`{"input"}`), at the server's root (the base URL
  without `/v1`). Elsewhere counts are estimates, and messages say so.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import httpx

log = logging.getLogger("recursa")

KIND_BY_OWNER: dict[str, str] = {
    "vllm": "vllm",
    "sglang": "sglang",
    "llamacpp": "llamacpp",
    "me": "llama-cpp-python",  # what llama-cpp-python's server reports
    "openai": "openai",
    "system": "openai",
    "openai-internal": "openai",
}

#: Sampling parameters sent disabled unless the user sets them (the paper samples with
#: temperature 1 and no top-k/min-p truncation; servers otherwise apply their own defaults or
#: the model's generation_config). llama.cpp's samplers treat top_k <= 0 as off;
#: llama-cpp-python's server takes top_k >= 0 only, defaults min_p to 0.05 and
#: repeat_penalty to 1.1 (its in-process API, recursa's llamacpp backend, to 1.0).
DISABLED_SAMPLING: dict[str, dict[str, Any]] = {
    "vllm": {"top_k": -1, "min_p": 0.0},
    "sglang": {"top_k": -1, "min_p": 0.0},
    "llamacpp": {"top_k": 0, "min_p": 0.0},
    "llama-cpp-python": {"top_k": 0, "min_p": 0.0, "repeat_penalty": 1.0},
}

#: kind -> (path at the server's root, the field that carries the text, extra body fields).
TOKENIZE: dict[str, tuple[str, str, dict[str, Any]]] = {
    "vllm": ("/tokenize", "prompt", {"add_special_tokens": False}),
    "sglang": ("/tokenize", "prompt", {"add_special_tokens": False}),
    "llamacpp": ("/tokenize", "content", {"add_special": False}),
    "llama-cpp-python": ("/extras/tokenize/count", "input", {}),
}


def server_root(base_url: str) -> str:
    """The base URL without its trailing `/v1` (where tokenize and props endpoints live)."""
    url = base_url.rstrip("/")
    return url[: -len("/v1")] if url.endswith("/v1") else url


def kind_of(entry: dict[str, Any] | None, base_url: str) -> str:
    """The server kind from a model entry's owned_by, else from the host, else "other"."""
    host = urlparse(base_url).hostname or ""
    if host == "api.openai.com" or host.endswith(".openai.azure.com"):
        return "openai"
    owner = entry.get("owned_by") if entry else None
    if isinstance(owner, str):
        return KIND_BY_OWNER.get(owner.strip().lower(), "other")
    return "other"


def _positive_int(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None


def token_count(data: object) -> int | None:
    """The count in a tokenize answer (`count`, else the length of `tokens`)."""
    if not isinstance(data, dict):
        return None
    count = data.get("count")
    if isinstance(count, int) and not isinstance(count, bool) and count >= 0:
        return count
    tokens = data.get("tokens")
    return len(tokens) if isinstance(tokens, list) else None


@dataclass
class ServerFacts:
    """What discovery learned; `problem` says why the model list is missing, if it is."""

    entries: list[dict[str, Any]] | None
    problem: str = ""
    #: The failure is worth retrying (no connection, a timeout, 429 or 5xx).
    transient: bool = False
    #: The HTTP status of a failed list, and whether its body was an API's error object
    #: (rather than a web server's page for a path it does not know).
    status: int | None = None
    api_error: bool = False

    @property
    def ids(self) -> list[str]:
        return [str(e["id"]) for e in self.entries or [] if isinstance(e.get("id"), str)]

    def entry(self, model: str | None) -> dict[str, Any] | None:
        """The model's entry; for a model the list does not name (an alias the server also
        answers to), the first entry when every entry has the same owner."""
        entries = self.entries or []
        for e in entries:
            if e.get("id") == model:
                return e
        owners = {str(e.get("owned_by")) for e in entries}
        return dict(entries[0], max_model_len=None) if len(owners) == 1 else None


async def list_models(client: httpx.AsyncClient, base_url: str) -> ServerFacts:
    """GET /models; a failure is recorded, not raised (a named model works without it)."""
    try:
        response = await client.get(f"{base_url}/models")
    except httpx.HTTPError as exc:
        problem = f"connection to {base_url} failed ({type(exc).__name__}) on GET /models"
        return ServerFacts(None, problem, transient=True)
    if response.status_code != 200:
        status = response.status_code
        busy = status == 429 or status >= 500
        try:
            body = response.json()
        except ValueError:
            body = None
        api_error = isinstance(body, dict) and isinstance(body.get("error"), dict)
        problem = f"GET /models answered HTTP {status}"
        return ServerFacts(None, problem, transient=busy, status=status, api_error=api_error)
    try:
        data = response.json()
    except ValueError:
        return ServerFacts(None, "GET /models answered with something that is not JSON")
    models = data.get("data") if isinstance(data, dict) else None
    if not isinstance(models, list):
        return ServerFacts(None, "GET /models answered without a `data` list")
    return ServerFacts([m for m in models if isinstance(m, dict)])


async def context_window(
    client: httpx.AsyncClient, base_url: str, kind: str, entry: dict[str, Any] | None
) -> tuple[int | None, str]:
    """The context window the server states, and where it said so ("" when it does not)."""
    found = _positive_int((entry or {}).get("max_model_len"))
    if found:
        return found, "max_model_len in GET /v1/models"
    if kind == "llamacpp":
        try:
            response = await client.get(f"{server_root(base_url)}/props")
            data = response.json() if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            data = None
        if isinstance(data, dict):
            settings = data.get("default_generation_settings")
            n_ctx = _positive_int(settings.get("n_ctx")) if isinstance(settings, dict) else None
            n_ctx = n_ctx or _positive_int(data.get("n_ctx"))
            if n_ctx:
                return n_ctx, "n_ctx in GET /props"
    return None, ""


class ServerTokenizer:
    """Counts tokens through the server's tokenize endpoint, if its kind has one. A server
    that answers 404/405/501 has none: counting falls back to estimates, said once."""

    def __init__(
        self,
        client: Callable[[], httpx.AsyncClient],
        base_url: str,
        kind: str,
        model: str | None,
    ) -> None:
        spec = TOKENIZE.get(kind)
        self._client = client
        self._url = f"{server_root(base_url)}{spec[0]}" if spec else ""
        self._field = spec[1] if spec else ""
        self._extra = dict(spec[2]) if spec else {}
        self._model = model
        self.available = spec is not None

    async def count(self, text: str) -> int | None:
        """Tokens in `text`, or None (unavailable, or this call failed)."""
        if not self.available:
            return None
        body: dict[str, Any] = {self._field: text, **self._extra}
        if self._model and self._field in ("prompt", "input"):
            body["model"] = self._model
        try:
            response = await self._client().post(self._url, json=body)
        except httpx.HTTPError:
            return None
        if response.status_code in (404, 405, 501):
            if self.available:
                self.available = False
                log.warning(
                    "%s answered HTTP %s: token counts are estimates from now on "
                    "(about 3 characters per token)",
                    self._url,
                    response.status_code,
                )
            return None
        if response.status_code != 200:
            return None
        try:
            return token_count(response.json())
        except ValueError:
            return None
