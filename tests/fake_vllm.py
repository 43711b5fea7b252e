"""A fake of vLLM's async engine that follows the source of the supported releases (0.10-0.33).

vllm does not install without a GPU, so the parts of its contract the backend depends on are
written down here from the wheels' source, each with the file it mirrors:

- exception classes per release: `vllm/exceptions.py`, `vllm/v1/engine/exceptions.py`;
- `SamplingParams` argument checks (temperature in [0, 2] from 0.26): `vllm/sampling_params.py`;
- `RequestOutputKind` (CUMULATIVE / DELTA / FINAL_ONLY): `vllm/sampling_params.py`, honoured by
  `vllm/v1/engine/output_processor.py`;
- `AsyncLLM.generate`: validation errors and `EngineDeadError` raised as they are, anything else
  wrapped in `EngineGenerateError`, the request aborted on `CancelledError`/`GeneratorExit`:
  `vllm/v1/engine/async_llm.py`;
- finish reasons "stop", "length", "abort", "error", "repetition":
  `vllm/v1/engine/__init__.py` (`FINISH_REASON_STRINGS`);
- the token input `tokens_input(ids)` -> `{"type": "token", "prompt_token_ids": ids}` (0.26+):
  `vllm/inputs/engine.py`;
- transformers 5's `apply_chat_template(..., tokenize=True)` returns a `BatchEncoding`
  (dict-like, `input_ids` inside), not a list.
"""

from __future__ import annotations

import asyncio
import enum
from collections import UserDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any


# -- vllm/exceptions.py (0.31 and 0.33) ----------------------------------------------------------
class VLLMError(Exception):
    pass


class VLLMClientError(VLLMError):
    pass


class VLLMServerError(VLLMError):
    pass


class VLLMValidationError(VLLMClientError):
    """0.31+: no longer a ValueError."""

    def __init__(self, message: str, *, parameter: str | None = None, value: Any = None):
        super().__init__(message)
        self.parameter = parameter
        self.value = value

    def __str__(self) -> str:
        base = super().__str__()
        extras = []
        if self.parameter is not None:
            extras.append(f"parameter={self.parameter}")
        if self.value is not None:
            extras.append(f"value={self.value}")
        return f"{base} ({', '.join(extras)})" if extras else base


class GenerationError(VLLMServerError):
    def __init__(self, message: str = "Internal server error") -> None:
        super().__init__(message)


class RetryableRequestError(GenerationError):
    """0.33: a transient request-level failure that is safe for clients to retry."""

    def __init__(self, message: str = "Request failed; please retry") -> None:
        super().__init__(message)


# -- vllm/v1/engine/exceptions.py (0.31+: VLLMServerError subclasses) ---------------------------
class EngineGenerateError(VLLMServerError):
    """Raised when a AsyncLLM.generate() fails. Recoverable."""


class EngineDeadError(VLLMServerError):
    """Raised when the EngineCore dies. Unrecoverable."""

    def __init__(self, *args: Any, suppress_context: bool = False) -> None:
        super().__init__(
            "EngineCore encountered an issue. See stack trace (above) for the root cause.", *args
        )
        self.__suppress_context__ = suppress_context


# -- vllm/exceptions.py (0.26): VLLMValidationError was a ValueError ---------------------------
class VLLMValidationError026(ValueError):
    pass


VLLMValidationError026.__name__ = "VLLMValidationError"


# -- vllm/sampling_params.py -------------------------------------------------------------------
class RequestOutputKind(enum.Enum):
    CUMULATIVE = 0
    DELTA = 1
    FINAL_ONLY = 2


@dataclass
class SamplingParams:
    """The arguments recursa passes, checked as `SamplingParams._verify_args` does (0.26+)."""

    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    min_p: float = 0.0
    max_tokens: int | None = 16
    seed: int | None = None
    output_kind: RequestOutputKind = RequestOutputKind.CUMULATIVE

    def __post_init__(self) -> None:
        if self.temperature < 0.0:
            raise VLLMValidationError(
                f"temperature must be non-negative, got {self.temperature}.",
                parameter="temperature",
                value=self.temperature,
            )
        if self.temperature > 2.0:
            raise VLLMValidationError(
                f"temperature must be in [0, 2], got {self.temperature}.",
                parameter="temperature",
                value=self.temperature,
            )
        if not 0.0 < self.top_p <= 1.0:
            raise VLLMValidationError(
                f"top_p must be in (0, 1], got {self.top_p}.", parameter="top_p", value=self.top_p
            )
        if self.max_tokens is not None and self.max_tokens < 1:
            raise VLLMValidationError(
                f"max_tokens must be at least 1, got {self.max_tokens}.",
                parameter="max_tokens",
                value=self.max_tokens,
            )


# -- vllm/inputs/engine.py (0.26+) --------------------------------------------------------------
def tokens_input(prompt_token_ids: list[int]) -> dict[str, Any]:
    return {"type": "token", "prompt_token_ids": prompt_token_ids}


INPUTS_026 = SimpleNamespace(tokens_input=tokens_input)  # `vllm.inputs` of 0.26+
INPUTS_010 = SimpleNamespace()  # `vllm.inputs` of 0.10: TokensPrompt only, no tokens_input


# -- transformers 5 ------------------------------------------------------------------------------
class BatchEncoding(UserDict):  # type: ignore[type-arg]
    """transformers' BatchEncoding: a UserDict, not a dict, with attribute access."""

    def __getattr__(self, item: str) -> Any:
        try:
            return self.data[item]
        except KeyError as exc:
            raise AttributeError(item) from exc


class FakeTokenizer:
    """Words are tokens; the chat template wraps each message in two marker tokens."""

    def __init__(self, chat_template: str | None = "words") -> None:
        self.vocab: dict[str, int] = {}
        self.chat_template = chat_template

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        ids = [self.vocab.setdefault(w, len(self.vocab) + 10) for w in text.split()]
        return [1, *ids] if add_special_tokens else ids

    def template_ids(
        self, messages: list[dict[str, str]], reasoning_effort: str | None = None
    ) -> list[int]:
        ids = [1]
        if reasoning_effort is not None:  # a template variable, as gpt-oss's template reads
            ids += [5, *self.encode(f"Reasoning: {reasoning_effort}", False), 6]
        for m in messages:
            ids += [2, *self.encode(f"{m['role']}: {m['content']}", False), 3]
        return [*ids, 4]

    def apply_chat_template(
        self,
        messages: list[dict[str, str]],
        tokenize: bool = True,
        add_generation_prompt: bool = False,
        return_dict: bool = True,
        **template_vars: Any,
    ) -> Any:
        """transformers passes extra keywords to the template as variables."""
        if self.chat_template is None:  # transformers' message for a model without a template
            raise ValueError(
                "Cannot use chat template functions because tokenizer.chat_template is not set "
                "and no template argument was passed!"
            )
        assert tokenize and add_generation_prompt
        ids = self.template_ids(messages, template_vars.get("reasoning_effort"))
        if return_dict:  # transformers 5's default
            return BatchEncoding({"input_ids": ids, "attention_mask": [1] * len(ids)})
        return ids


@dataclass
class FakeEngine:
    """`AsyncLLM`'s surface: `generate(prompt, sampling_params, request_id, priority=0)` is an async
    generator of `RequestOutput`s; `tokenizer`, `model_config.max_model_len`, `abort`,
    `shutdown`."""

    max_model_len: int = 4096
    reply: str = "so \\boxed{7}"
    delay: float = 0.001
    tokenizer: Any = field(default_factory=FakeTokenizer)
    #: Raised by generate() before any output (as `add_request` raises in vLLM).
    fail: Exception | None = None
    #: Finish reasons of the final output, one per call in order ("stop"/"length" after).
    finish_reasons: list[str] = field(default_factory=list)
    calls: list[tuple[Any, Any, str]] = field(default_factory=list)
    #: The `priority` each call passed (vLLM's default is 0).
    priorities: list[int] = field(default_factory=list)
    aborted: list[str] = field(default_factory=list)
    in_flight: int = 0
    peak: int = 0
    shut: bool = False

    def __post_init__(self) -> None:
        self.model_config = SimpleNamespace(max_model_len=self.max_model_len)

    async def abort(self, request_id: str) -> None:
        self.aborted.append(request_id)

    async def generate(
        self, prompt: Any, params: Any, request_id: str, priority: int = 0
    ) -> AsyncIterator[SimpleNamespace]:
        self.calls.append((prompt, params, request_id))
        self.priorities.append(priority)
        get = params.get if isinstance(params, dict) else lambda k, d=None: getattr(params, k, d)
        try:
            if self.fail is not None:
                raise self.fail
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            try:
                async for out in self._outputs(prompt, get, len(self.calls) - 1):
                    yield out
            finally:
                self.in_flight -= 1
        except (asyncio.CancelledError, GeneratorExit):
            await self.abort(request_id)
            raise
        except (EngineDeadError, VLLMClientError, ValueError, GenerationError):
            raise
        except Exception as exc:
            raise EngineGenerateError() from exc

    async def _outputs(self, prompt: Any, get: Any, call: int) -> AsyncIterator[SimpleNamespace]:
        max_tokens = get("max_tokens")
        words = self.reply.split()[:max_tokens]
        kind = get("output_kind", RequestOutputKind.CUMULATIVE)
        for n in range(1, len(words) + 1):
            await asyncio.sleep(self.delay)
            done = n == len(words)
            if kind == RequestOutputKind.FINAL_ONLY and not done:
                continue
            finish = None
            if done:
                finish = "length" if n == max_tokens else "stop"
                if call < len(self.finish_reasons):
                    finish = self.finish_reasons[call]
            yield SimpleNamespace(
                prompt_token_ids=prompt["prompt_token_ids"],
                finished=done,
                outputs=[
                    SimpleNamespace(
                        text=" ".join(words[:n]), token_ids=list(range(n)), finish_reason=finish
                    )
                ],
            )

    def shutdown(self) -> None:
        self.shut = True
