"""The vLLM backend against the contract of the supported vLLM releases (0.10 to 0.33).

One test per behaviour; each names the vLLM file whose behaviour tests/fake_vllm.py mirrors.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from types import SimpleNamespace
from typing import Any

import pytest

from recursa.backends import Dispatcher, GenerationRequest, RetryableError
from recursa.backends.base import BackendDeadError
from recursa.backends.vllm import (
    VLLMBackend,
    _tokenizer_of,
    engine_args,
    raw_token_prompt,
    sampling_factory,
    token_prompt,
)
from recursa.config import BackendConfig
from recursa.errors import BackendError, UsageError
from tests import fake_vllm as fv


def req(content: str = "what is 3 + 4", max_tokens: int = 64, **kw: Any) -> GenerationRequest:
    return GenerationRequest(
        messages=[{"role": "user", "content": content}], max_tokens=max_tokens, key="p/1/0", **kw
    )


def backend(engine: fv.FakeEngine, **kw: Any) -> VLLMBackend:
    """The backend as from_config builds it, on vLLM 0.26+'s API (the fake's)."""
    kw.setdefault("prompt_input", token_prompt(fv.INPUTS_026))
    factory = sampling_factory(fv.SamplingParams, fv.RequestOutputKind.FINAL_ONLY)
    return VLLMBackend(engine, factory, model="fake/model", **kw)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


# -- exceptions: vllm/exceptions.py, vllm/v1/engine/exceptions.py ---------------------------------
def test_validation_error_of_031_plus_is_a_one_sentence_refusal() -> None:
    """vllm/exceptions.py (0.31+): VLLMValidationError(VLLMClientError) is not a ValueError."""
    err = fv.VLLMValidationError("This model's maximum context length is 4096 tokens")
    assert not isinstance(err, ValueError)
    engine = fv.FakeEngine(fail=err)
    with pytest.raises(UsageError) as info:
        run(backend(engine).generate(req()))
    assert str(info.value) == (
        "vLLM model fake/model refused a request: This model's maximum context length is "
        "4096 tokens"
    )


@pytest.mark.parametrize(
    "err",
    [
        fv.VLLMValidationError026("prompt too long"),  # vllm/exceptions.py of 0.26 (a ValueError)
        ValueError("prompt too long"),  # vllm/v1/engine/async_llm.py of 0.10: `except ValueError`
    ],
)
def test_validation_errors_of_older_releases_are_refusals_too(err: Exception) -> None:
    with pytest.raises(UsageError, match="refused a request: prompt too long"):
        run(backend(fv.FakeEngine(fail=err)).generate(req()))


def test_a_dead_engine_is_backend_dead_not_retried() -> None:
    """vllm/v1/engine/exceptions.py: EngineDeadError, 'Unrecoverable'."""
    engine = fv.FakeEngine(fail=fv.EngineDeadError())
    dispatcher = Dispatcher(backend(engine), max_retries=3)
    with pytest.raises(BackendDeadError, match="engine died \\(EngineDeadError\\)"):
        run(dispatcher.generate(req()))
    assert len(engine.calls) == 1  # not retried in this process: it cannot recover here


def test_retryable_request_error_of_033_is_retried() -> None:
    """vllm/exceptions.py (0.33): RetryableRequestError(GenerationError), e.g. a paused engine
    (vllm/v1/engine/async_llm.py pause_generation)."""
    engine = fv.FakeEngine(fail=fv.RetryableRequestError())
    with pytest.raises(RetryableError, match="RetryableRequestError"):
        run(backend(engine).generate(req()))


def test_an_unexpected_engine_failure_is_engine_generate_error_and_retried() -> None:
    """vllm/v1/engine/async_llm.py: any other exception in generate() is re-raised as
    EngineGenerateError ('Recoverable'); the dispatcher retries it."""

    class Flaky(fv.FakeEngine):
        async def generate(
            self, prompt: Any, params: Any, request_id: str, priority: int = 0
        ) -> Any:
            self.fail = RuntimeError("KV transfer failed") if not self.calls else None
            async for out in super().generate(prompt, params, request_id, priority):
                yield out

    engine = Flaky()
    dispatcher = Dispatcher(backend(engine), max_retries=2, base_delay=0.0)
    out = run(dispatcher.generate(req()))
    assert out.text == "so \\boxed{7}" and len(engine.calls) == 2


def test_a_non_retryable_generation_error_ends_the_run_naming_it() -> None:
    """vllm/outputs.py (0.33): RequestError.to_exception() -> GenerationError when not
    retryable."""
    engine = fv.FakeEngine(fail=fv.GenerationError("KV load failed"))
    with pytest.raises(BackendError, match=r"failed \(GenerationError: KV load failed\)"):
        run(backend(engine).generate(req()))


# -- vllm/sampling_params.py --------------------------------------------------------------------
def test_sampling_params_refusal_is_inside_the_error_mapping() -> None:
    """vllm/sampling_params.py (0.26+): temperature > 2 raises VLLMValidationError in
    SamplingParams itself, before generate(); recursa allows any temperature >= 0."""
    engine = fv.FakeEngine()
    with pytest.raises(UsageError, match=r"refused a request: temperature must be in \[0, 2\]"):
        run(backend(engine).generate(req(temperature=2.5)))
    assert engine.calls == []


def test_final_only_output_kind_yields_one_output() -> None:
    """vllm/sampling_params.py RequestOutputKind; vllm/v1/engine/output_processor.py sends
    FINAL_ONLY requests their finished output only."""
    engine = fv.FakeEngine(reply="a b c d \\boxed{7}")
    outputs: list[Any] = []
    params = sampling_factory(fv.SamplingParams, fv.RequestOutputKind.FINAL_ONLY)(max_tokens=9)
    assert params.output_kind is fv.RequestOutputKind.FINAL_ONLY

    async def collect() -> None:
        async for out in engine.generate({"prompt_token_ids": [1]}, params, "r"):
            outputs.append(out)

    run(collect())
    assert len(outputs) == 1 and outputs[0].finished
    out = run(backend(fv.FakeEngine(reply="a b c d \\boxed{7}")).generate(req()))
    assert out.text == "a b c d \\boxed{7}" and out.completion_tokens == 5


def test_without_output_kind_the_last_cumulative_output_is_kept() -> None:
    """vLLM before RequestOutputKind streams cumulative outputs; the last one is the answer."""
    engine = fv.FakeEngine(reply="a b \\boxed{7}")
    b = VLLMBackend(engine, sampling_factory(fv.SamplingParams), model="fake/model")
    out = run(b.generate(req()))
    assert out.text == "a b \\boxed{7}" and out.completion_tokens == 3


# -- vllm/v1/engine/__init__.py: finish reasons --------------------------------------------------
@pytest.mark.parametrize("reason", ["abort", "error"])
def test_abort_and_error_finish_reasons_are_retried_not_accepted(reason: str) -> None:
    """vllm/v1/engine/__init__.py FINISH_REASON_STRINGS: 'abort' and 'error' (0.26+: a
    retryable request-level internal error) are not finished candidates."""
    engine = fv.FakeEngine(finish_reasons=[reason])
    dispatcher = Dispatcher(backend(engine), max_retries=2, base_delay=0.0)
    out = run(dispatcher.generate(req()))
    assert len(engine.calls) == 2 and out.finish_reason == "stop"
    assert dispatcher.usage.retries == 1
    with pytest.raises(RetryableError, match=f"finish reason '{reason}'"):
        run(backend(fv.FakeEngine(finish_reasons=[reason])).generate(req()))


def test_repetition_finish_reason_is_a_finished_candidate() -> None:
    out = run(backend(fv.FakeEngine(finish_reasons=["repetition"])).generate(req()))
    assert out.finish_reason == "repetition" and out.text == "so \\boxed{7}"


# -- vllm/v1/engine/async_llm.py: cancellation ---------------------------------------------------
def test_cancelling_a_request_aborts_it_in_the_engine() -> None:
    """vllm/v1/engine/async_llm.py generate(): on CancelledError/GeneratorExit the request is
    aborted (`await self.abort(request_id)`), freeing its KV cache."""
    engine = fv.FakeEngine(reply=" ".join(["w"] * 200), delay=0.01)
    b = backend(engine)

    async def go() -> None:
        task = asyncio.create_task(b.generate(req(max_tokens=200)))
        while not engine.in_flight:
            await asyncio.sleep(0.001)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(go())
    assert engine.aborted == [engine.calls[0][2]] and engine.in_flight == 0


# -- vllm/inputs/engine.py: the token input ------------------------------------------------------
def test_token_input_is_the_engine_input_from_026_and_the_raw_dict_before() -> None:
    """vllm/inputs/engine.py (0.26+): tokens_input() makes {"type": "token", ...}, which
    AsyncLLM takes without the deprecated raw-prompt path (vllm/v1/engine/input_processor.py
    warns 'Passing raw prompts to InputProcessor is deprecated')."""
    assert token_prompt(fv.INPUTS_026) is fv.tokens_input
    assert token_prompt(fv.INPUTS_010) is raw_token_prompt
    modern, old = fv.FakeEngine(), fv.FakeEngine()
    run(backend(modern).generate(req()))
    run(backend(old, prompt_input=token_prompt(fv.INPUTS_010)).generate(req()))
    ids = modern.tokenizer.template_ids(req().messages)
    assert modern.calls[0][0] == {"type": "token", "prompt_token_ids": ids}
    assert old.calls[0][0] == {"prompt_token_ids": ids}


# -- the tokenizer: transformers 5, and vLLM's attributes ---------------------------------------
def test_chat_template_batch_encoding_is_read_as_token_ids() -> None:
    """transformers 5: apply_chat_template(tokenize=True) returns a BatchEncoding (a
    UserDict, not a dict); the ids are its input_ids."""
    engine = fv.FakeEngine()
    encoded = engine.tokenizer.apply_chat_template(
        req().messages, tokenize=True, add_generation_prompt=True
    )
    assert not isinstance(encoded, (list, dict))
    assert backend(engine).prompt_ids(req()) == encoded["input_ids"]


def test_a_model_without_a_chat_template_is_a_one_sentence_refusal() -> None:
    engine = fv.FakeEngine(tokenizer=fv.FakeTokenizer(chat_template=None))
    with pytest.raises(UsageError, match="refused a request: Cannot use chat template"):
        run(backend(engine).generate(req()))
    assert engine.calls == []


def test_the_v0_engine_tokenizer_is_found() -> None:
    """vllm/engine/async_llm_engine.py (0.10, VLLM_USE_V1=0): AsyncLLMEngine has no
    `tokenizer`, its `get_tokenizer` is a coroutine, and the wrapped LLMEngine
    (vllm/engine/llm_engine.py) holds a TokenizerGroup in `engine.tokenizer`."""
    tok = fv.FakeTokenizer()

    class V0AsyncLLMEngine:
        def __init__(self) -> None:
            self.engine = SimpleNamespace(
                tokenizer=SimpleNamespace(tokenizer=tok),
                model_config=SimpleNamespace(max_model_len=2048),
            )
            self.stopped = False

        async def get_tokenizer(self) -> Any:
            return tok

        def shutdown_background_loop(self) -> None:
            self.stopped = True

    engine = V0AsyncLLMEngine()
    assert _tokenizer_of(engine) is tok
    b = VLLMBackend(engine, sampling_factory(fv.SamplingParams), model="v0")
    assert b.context_tokens == 2048
    run(b.aclose())
    assert engine.stopped


# -- engine arguments under Ray -----------------------------------------------------------------
def test_multi_gpu_replicas_under_ray_use_the_mp_executor() -> None:
    """vllm/config/parallel.py picks the Ray executor inside a Ray placement group; replicas
    pass distributed_executor_backend='mp', as verl's vLLM server does."""
    tp2 = BackendConfig(backend="vllm", model="m", tensor_parallel_size=2)
    assert engine_args(tp2, under_ray=True)["distributed_executor_backend"] == "mp"
    assert "distributed_executor_backend" not in engine_args(tp2)
    one = BackendConfig(backend="vllm", model="m")
    assert "distributed_executor_backend" not in engine_args(one, under_ray=True)


def test_a_replica_whose_engine_died_exits_its_process() -> None:
    """BackendDeadError in a Ray replica ends the actor process (non-zero, not exit_actor),
    so Ray restarts it; the driver's requests fail over (tests/test_ray.py kills replicas)."""
    code = textwrap.dedent(
        """
        import asyncio
        from recursa.backends import GenerationRequest
        from recursa.backends.ray_replica import Replica
        from recursa.backends.vllm import VLLMBackend
        from recursa.config import BackendConfig
        from tests import fake_vllm as fv

        replica = Replica(BackendConfig(backend="mock"))
        replica._backend = VLLMBackend(fv.FakeEngine(fail=fv.EngineDeadError()), fv.SamplingParams)
        request = GenerationRequest(messages=[{"role": "user", "content": "hi"}], max_tokens=4)
        print(asyncio.run(replica.generate(request)))
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    from recursa.backends.ray_replica import ENGINE_DEAD_EXIT

    assert proc.returncode == ENGINE_DEAD_EXIT, proc.stderr
    assert proc.stdout == ""  # no reply was sent: the driver sees the actor die
    assert "exits for a restart" in proc.stderr and "EngineDeadError" in proc.stderr


# -- from_config against the installed release's modules ------------------------------------------
def fake_vllm_modules(monkeypatch: pytest.MonkeyPatch, *, modern: bool) -> list[dict[str, Any]]:
    """`vllm`, `vllm.inputs` and `vllm.sampling_params` as 0.26+ (modern) or 0.10 lay them out."""
    import types

    built: list[dict[str, Any]] = []

    class AsyncEngineArgs:
        def __init__(self, **kwargs: Any) -> None:
            built.append(kwargs)

    class AsyncLLMEngine:
        @staticmethod
        def from_engine_args(args: Any) -> fv.FakeEngine:
            return fv.FakeEngine()

    vllm = types.ModuleType("vllm")
    inputs = types.ModuleType("vllm.inputs")
    sampling = types.ModuleType("vllm.sampling_params")
    if modern:
        inputs.tokens_input = fv.tokens_input  # type: ignore[attr-defined]
    sampling.RequestOutputKind = fv.RequestOutputKind  # type: ignore[attr-defined]
    vllm.AsyncEngineArgs = AsyncEngineArgs  # type: ignore[attr-defined]
    vllm.AsyncLLMEngine = AsyncLLMEngine  # type: ignore[attr-defined]
    vllm.SamplingParams = fv.SamplingParams  # type: ignore[attr-defined]
    vllm.inputs = inputs  # type: ignore[attr-defined]
    vllm.sampling_params = sampling  # type: ignore[attr-defined]
    for name, module in (
        ("vllm", vllm),
        ("vllm.inputs", inputs),
        ("vllm.sampling_params", sampling),
    ):
        monkeypatch.setitem(sys.modules, name, module)
    return built


@pytest.mark.parametrize("modern", [True, False])
def test_from_config_follows_the_installed_release(
    monkeypatch: pytest.MonkeyPatch, modern: bool
) -> None:
    from recursa.backends.vllm import from_config

    built = fake_vllm_modules(monkeypatch, modern=modern)
    b = from_config(BackendConfig(backend="vllm", model="m", tensor_parallel_size=2))
    assert built == [
        {
            "model": "m",
            "enable_prefix_caching": True,
            "scheduling_policy": "priority",
            "tensor_parallel_size": 2,
        }
    ]
    run(b.generate(req()))
    engine = b.engine
    prompt, params, _ = engine.calls[0]
    assert ("type" in prompt) is modern  # tokens_input on 0.26+, the raw dict before
    assert params.output_kind is fv.RequestOutputKind.FINAL_ONLY


def test_the_watermark_is_set_only_where_vllm_has_it() -> None:
    import dataclasses

    from recursa.backends.vllm import VLLM_WATERMARK, with_watermark

    @dataclasses.dataclass
    class Newer:  # engine arguments of a vLLM with the scheduler watermark (PR 44594)
        model: str = ""
        watermark: float = 0.0

    @dataclasses.dataclass
    class Older:
        model: str = ""

    args = {"model": "m"}
    assert VLLM_WATERMARK == 0.01
    assert with_watermark(args, Newer) == {"model": "m", "watermark": 0.01}
    assert with_watermark(args, Older) == args == {"model": "m"}
    assert with_watermark(args, object) == args  # not a dataclass: nothing to check against
    assert with_watermark({"model": "m", "watermark": 0.05}, Newer)["watermark"] == 0.05
