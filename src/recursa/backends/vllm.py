"""vLLM's asynchronous engine in process (`--backend vllm --model NAME_OR_PATH`).

Every request is submitted on its own with `engine.generate(prompt, sampling_params,
request_id)`; vLLM's continuous batching puts whatever is in flight into one batch, so the
dispatcher lets thousands through at once. Prefix caching is on: the N aggregation prompts of a
step share the problem text, and step 1's N prompts are identical. Chat messages are templated
with the model's tokenizer and sent as token ids, so the prompt length is exact; the engine's
context length (`max_model_len`) drives the context policy, and `max_tokens` is capped so that
prompt plus answer always fit.

vllm is imported only by `from_config`, i.e. only when this backend is chosen; the engine
object is injected, so tests drive the backend with a fake of the same interface.
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from recursa.backends.base import Backend, Completion, GenerationRequest, RetryableError
from recursa.errors import BackendError, ContextOverflowError, MissingDependencyError, UsageError

if TYPE_CHECKING:
    from recursa.config import BackendConfig

SamplingFactory = Callable[..., Any]


def _tokenizer_of(engine: Any) -> Any:
    """The Hugging Face tokenizer behind a vLLM engine (the attribute moved between versions)."""
    tok = getattr(engine, "tokenizer", None)
    tok = getattr(tok, "tokenizer", tok)  # older engines wrap it in a TokenizerGroup
    if tok is not None and hasattr(tok, "apply_chat_template"):
        return tok
    getter = getattr(engine, "get_tokenizer", None)
    if getter is not None and not inspect.iscoroutinefunction(getter):
        tok = getter()
        if hasattr(tok, "apply_chat_template"):
            return tok
    return None


def _max_model_len(engine: Any) -> int | None:
    config = getattr(engine, "model_config", None)
    if config is None:  # older AsyncLLMEngine keeps it on the wrapped LLMEngine
        config = getattr(getattr(engine, "engine", None), "model_config", None)
    value = getattr(config, "max_model_len", None)
    return int(value) if value else None


class VLLMBackend(Backend):
    """An in-process vLLM engine (`AsyncLLM`/`AsyncLLMEngine`) or anything with its interface:
    `generate(prompt, sampling_params, request_id)` yielding outputs whose last one is final,
    a tokenizer with `apply_chat_template`, and `model_config.max_model_len`."""

    default_concurrency = 4096

    def __init__(
        self,
        engine: Any,
        sampling_params: SamplingFactory,
        model: str = "model",
        tokenizer: Any = None,
    ) -> None:
        self.engine = engine
        self.model = model
        self._sampling_params = sampling_params
        self.tokenizer = tokenizer if tokenizer is not None else _tokenizer_of(engine)
        if self.tokenizer is None:
            raise UsageError(f"the vLLM engine for {model} has no tokenizer to template chats")
        self._max_model_len = _max_model_len(engine)
        self._ids = itertools.count()

    @property
    def description(self) -> str:
        return f"vLLM model {self.model}"

    @property
    def context_tokens(self) -> int | None:
        return self._max_model_len

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def prompt_ids(self, request: GenerationRequest) -> list[int]:
        """The request's chat messages through the model's chat template, as token ids."""
        ids = self.tokenizer.apply_chat_template(
            request.messages, tokenize=True, add_generation_prompt=True
        )
        if isinstance(ids, dict) or hasattr(ids, "input_ids"):  # a BatchEncoding
            ids = ids["input_ids"]
        return [int(i) for i in ids]

    def _params(self, request: GenerationRequest, prompt_tokens: int) -> Any:
        max_tokens = request.max_tokens
        if self._max_model_len is not None:
            room = self._max_model_len - prompt_tokens
            if room < 1:
                raise ContextOverflowError(
                    f"a {prompt_tokens}-token prompt does not fit {self.description}'s "
                    f"{self._max_model_len}-token context window"
                )
            max_tokens = min(max_tokens, room)
        kwargs: dict[str, Any] = {
            "n": 1,
            "temperature": request.temperature,
            # The paper samples with no top-p/top-k/min-p truncation.
            "top_p": request.top_p if request.top_p is not None else 1.0,
            "min_p": 0.0,
            "max_tokens": max_tokens,
        }
        if request.seed is not None:
            kwargs["seed"] = request.seed
        return self._sampling_params(**kwargs)

    async def generate(self, request: GenerationRequest) -> Completion:
        ids = self.prompt_ids(request)
        params = self._params(request, len(ids))
        request_id = f"{request.key or 'request'}#{next(self._ids)}"
        final: Any = None
        try:
            # With scheduling_policy="priority" (engine_args), lower values run first and are
            # preempted last: a problem's earlier steps first (the longest chains left).
            step = int(request.meta.get("step", 0))
            prompt = {"prompt_token_ids": ids}
            async for output in self.engine.generate(prompt, params, request_id, priority=step):
                final = output
        except ValueError as exc:  # vLLM's validation errors (prompt too long, bad params)
            raise BackendError(f"{self.description} refused a request: {exc}") from exc
        except Exception as exc:  # the engine's own failures, named so the user sees which
            if type(exc).__name__ == "EngineGenerateError":
                raise RetryableError(f"{self.description} failed a request: {exc!r}") from exc
            raise BackendError(
                f"{self.description} failed ({type(exc).__name__}: {exc}); see vLLM's log above"
            ) from exc
        if final is None or not getattr(final, "outputs", None):
            raise RetryableError(f"{self.description} returned no output for {request_id}")
        out = final.outputs[0]
        return Completion(
            text=str(out.text),
            finish_reason=str(out.finish_reason or "stop"),
            prompt_tokens=len(getattr(final, "prompt_token_ids", None) or ids),
            completion_tokens=len(out.token_ids),
        )

    async def aclose(self) -> None:
        shutdown = getattr(self.engine, "shutdown", None)
        if shutdown is not None:
            result = shutdown()
            if inspect.isawaitable(result):
                await result


def engine_args(config: BackendConfig) -> dict[str, Any]:
    """vLLM `AsyncEngineArgs` keywords from the settings (unset ones keep vLLM's defaults)."""
    if not config.model:
        raise UsageError("the vllm backend needs --model (a Hugging Face name or a local path)")
    args: dict[str, Any] = {
        "model": config.model,
        "enable_prefix_caching": True,
        "scheduling_policy": "priority",
    }
    for name in (
        "tensor_parallel_size",
        "data_parallel_size",
        "gpu_memory_utilization",
        "max_model_len",
        "max_num_seqs",
    ):
        value = getattr(config, name)
        if value is not None:
            args[name] = value
    return args


def from_config(config: BackendConfig) -> VLLMBackend:
    args = engine_args(config)
    try:
        from vllm import AsyncEngineArgs, AsyncLLMEngine, SamplingParams
    except ImportError as exc:
        raise MissingDependencyError("vllm", "vllm") from exc
    try:
        from vllm.sampling_params import RequestOutputKind

        final_only: dict[str, Any] = {"output_kind": RequestOutputKind.FINAL_ONLY}
    except ImportError:  # older vllm streams every step; we keep the last output anyway
        final_only = {}

    def sampling_params(**kwargs: Any) -> Any:
        return SamplingParams(**kwargs, **final_only)

    engine = AsyncLLMEngine.from_engine_args(AsyncEngineArgs(**args))
    return VLLMBackend(engine, sampling_params, model=config.model or "model")
