"""vLLM's asynchronous engine in process (`--backend vllm --model NAME_OR_PATH`).

Every request is submitted on its own with `engine.generate(prompt, sampling_params,
request_id)`; vLLM's continuous batching puts whatever is in flight into one batch, so the
dispatcher lets thousands through at once. Prefix caching is on: the N aggregation prompts of a
step share the problem text, and step 1's N prompts are identical. Chat messages are templated
with the model's tokenizer and sent as token ids, so the prompt length is exact; the engine's
context length (`max_model_len`) drives the context policy, and `max_tokens` is capped so that
prompt plus answer always fit.

Supported: vLLM 0.10 to 0.33 (V1 `AsyncLLM`, and 0.10's V0 `AsyncLLMEngine`). Where the
releases differ, the backend follows the installed one: errors are classified by class name
(`vllm_errors.py`), token ids go in as `vllm.inputs.tokens_input` where it exists (0.26+),
only the final output is requested where `RequestOutputKind` exists.

vllm is imported only by `from_config`, i.e. only when this backend is chosen; the engine
object is injected, so tests drive the backend with a fake that follows vLLM's source
(tests/fake_vllm.py).
"""

from __future__ import annotations

import contextlib
import inspect
import itertools
import sys
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from recursa.backends.base import Backend, Completion, GenerationRequest, RetryableError
from recursa.backends.vllm_errors import engine_error, unfinished
from recursa.errors import (
    ContextOverflowError,
    MissingDependencyError,
    RecursaError,
    UsageError,
)

if TYPE_CHECKING:
    from recursa.config import BackendConfig

SamplingFactory = Callable[..., Any]
#: Token ids -> the prompt object `engine.generate` takes.
PromptInput = Callable[[list[int]], Any]


@contextlib.asynccontextmanager
async def _no_close() -> AsyncIterator[None]:
    yield


def raw_token_prompt(ids: list[int]) -> dict[str, Any]:
    """The token prompt of vLLM < 0.26 (a `TokensPrompt` dict; deprecated from 0.26)."""
    return {"prompt_token_ids": ids}


def _tokenizer_of(engine: Any) -> Any:
    """The Hugging Face tokenizer behind a vLLM engine (the attribute moved between versions):
    V1 `AsyncLLM.tokenizer` (0.33: the renderer's tokenizer; 0.10: a TokenizerGroup around
    it), else a synchronous `get_tokenizer()`, else V0's wrapped `LLMEngine` (vLLM 0.10 with
    VLLM_USE_V1=0: `engine.engine.tokenizer.tokenizer`, `engine.engine.get_tokenizer()`)."""
    for owner in (engine, getattr(engine, "engine", None)):
        if owner is None:
            continue
        tok = getattr(owner, "tokenizer", None)
        tok = getattr(tok, "tokenizer", tok)  # older engines wrap it in a TokenizerGroup
        if tok is not None and hasattr(tok, "apply_chat_template"):
            return tok
        getter = getattr(owner, "get_tokenizer", None)
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
        prompt_input: PromptInput = raw_token_prompt,
    ) -> None:
        self.engine = engine
        self.model = model
        self._sampling_params = sampling_params
        self._prompt_input = prompt_input
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
        # A reasoning effort goes to the chat template (gpt-oss's reads `reasoning_effort`).
        extra = {"reasoning_effort": request.reasoning_effort} if request.reasoning_effort else {}
        ids = self.tokenizer.apply_chat_template(
            request.messages, tokenize=True, add_generation_prompt=True, **extra
        )
        if hasattr(ids, "keys"):  # transformers 5 returns a BatchEncoding (dict-like)
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
        request_id = f"{request.key or 'request'}#{next(self._ids)}"
        final: Any = None
        ids: list[int] = []
        try:  # every call into vLLM or the tokenizer: its errors become recursa's
            ids = self.prompt_ids(request)
            params = self._params(request, len(ids))
            # With scheduling_policy="priority" (engine_args), lower values run first and are
            # preempted last: a problem's earlier steps first.
            step = int(request.meta.get("step", 0))
            prompt = self._prompt_input(ids)
            stream = self.engine.generate(prompt, params, request_id, priority=step)
            # Closing the stream (on cancellation too) lets vLLM abort the request.
            closing = contextlib.aclosing(stream) if hasattr(stream, "aclose") else _no_close()
            async with closing:
                async for output in stream:
                    final = output
        except (RecursaError, RetryableError):
            raise
        except Exception as exc:
            raise engine_error(exc, self.description) from exc
        if final is None or not getattr(final, "outputs", None):
            raise RetryableError(f"{self.description} returned no output for {request_id}")
        out = final.outputs[0]
        failed = unfinished(out.finish_reason, self.description, request_id)
        if failed is not None:
            raise failed
        return Completion(
            text=str(out.text),
            finish_reason=str(out.finish_reason or "stop"),
            prompt_tokens=len(getattr(final, "prompt_token_ids", None) or ids),
            completion_tokens=len(out.token_ids),
        )

    async def aclose(self) -> None:
        shutdown = getattr(self.engine, "shutdown", None)  # V1 AsyncLLM
        if shutdown is None:  # V0 AsyncLLMEngine (vLLM 0.10 with VLLM_USE_V1=0)
            shutdown = getattr(self.engine, "shutdown_background_loop", None)
        if shutdown is not None:
            result = shutdown()
            if inspect.isawaitable(result):
                await result


def in_ray_actor() -> bool:
    """Whether this process is a Ray actor (a replica of the ray backend)."""
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return False
    try:
        return ray.get_runtime_context().get_actor_id() is not None
    except Exception:  # an older or partial ray: assume a plain driver
        return False


def engine_args(config: BackendConfig, *, under_ray: bool = False) -> dict[str, Any]:
    """vLLM `AsyncEngineArgs` keywords from the settings (unset ones keep vLLM's defaults).

    Under Ray (a replica actor), an engine that spans several GPUs runs its workers as local
    processes (`distributed_executor_backend="mp"`, as verl does): inside a Ray placement group
    vLLM would otherwise pick its Ray executor and schedule workers on GPUs the actor holds."""
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
    if under_ray and (config.tensor_parallel_size or 1) > 1:
        args["distributed_executor_backend"] = "mp"
    return args


#: vLLM's scheduler `watermark`: the share of the KV cache a request joining a running batch
#: must leave free, so running sequences can grow instead of being preempted
#: (benchmarks/README.md measured 0.01 faster than vLLM's default, off, at every point).
VLLM_WATERMARK = 0.01


def with_watermark(args: dict[str, Any], engine_args_class: Any) -> dict[str, Any]:
    """`args` plus `watermark=VLLM_WATERMARK` where the installed vLLM's engine arguments have
    that field (added by vLLM pull request 44594, June 2026); older releases get `args`."""
    fields = getattr(engine_args_class, "__dataclass_fields__", {})
    if "watermark" in fields and "watermark" not in args:
        return {**args, "watermark": VLLM_WATERMARK}
    return args


def sampling_factory(sampling_params: Any, output_kind: Any = None) -> SamplingFactory:
    """SamplingParams asking for the final output only where vLLM has `RequestOutputKind`
    (0.6+); older engines stream every step and the backend keeps the last."""
    extra: dict[str, Any] = {} if output_kind is None else {"output_kind": output_kind}

    def make(**kwargs: Any) -> Any:
        return sampling_params(**kwargs, **extra)

    return make


def token_prompt(inputs: Any) -> PromptInput:
    """`vllm.inputs.tokens_input` where it exists (0.26+: an engine input that skips the
    deprecated raw-prompt path), else the raw `{"prompt_token_ids": ...}` dict."""
    build = getattr(inputs, "tokens_input", None)
    return build if callable(build) else raw_token_prompt


def from_config(config: BackendConfig) -> VLLMBackend:
    args = engine_args(config, under_ray=in_ray_actor())
    try:
        import vllm.inputs
        from vllm import AsyncEngineArgs, AsyncLLMEngine, SamplingParams
    except ImportError as exc:
        raise MissingDependencyError("vllm", "vllm") from exc
    try:
        from vllm.sampling_params import RequestOutputKind

        final_only: Any = RequestOutputKind.FINAL_ONLY
    except ImportError:
        final_only = None
    engine = AsyncLLMEngine.from_engine_args(
        AsyncEngineArgs(**with_watermark(args, AsyncEngineArgs))
    )
    return VLLMBackend(
        engine,
        sampling_factory(SamplingParams, final_only),
        model=config.model or "model",
        prompt_input=token_prompt(vllm.inputs),
    )
