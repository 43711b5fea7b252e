"""The vLLM backend against a fake engine that follows vLLM's source (tests/fake_vllm.py; vllm
is not installable here), plus a real-engine test that runs wherever vllm and a GPU exist.
Each test of a vLLM behaviour names the vLLM file it mirrors."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import subprocess
import sys
from typing import Any

import pytest

from recursa import RSAConfig, UsageError, solve_async
from recursa.backends import GenerationRequest, create_backend
from recursa.backends.vllm import VLLMBackend, engine_args
from recursa.config import BackendConfig, build_configs
from recursa.errors import ContextOverflowError
from tests.fake_vllm import FakeEngine


def backend(engine: FakeEngine) -> VLLMBackend:
    return VLLMBackend(engine, lambda **kw: kw, model="fake/model")


def req(content: str, max_tokens: int = 64, **kw: Any) -> GenerationRequest:
    return GenerationRequest(
        messages=[{"role": "user", "content": content}], max_tokens=max_tokens, key="p/1/0", **kw
    )


def test_request_is_chat_templated_token_ids_with_the_paper_sampling() -> None:
    engine = FakeEngine()
    b = backend(engine)
    out = asyncio.run(b.generate(req("what is 3 + 4", temperature=0.7, seed=11)))
    prompt, params, request_id = engine.calls[0]
    expected = engine.tokenizer.template_ids([{"role": "user", "content": "what is 3 + 4"}])
    assert prompt == {"prompt_token_ids": expected}
    assert params == {
        "n": 1,
        "temperature": 0.7,
        "top_p": 1.0,
        "min_p": 0.0,
        "max_tokens": 64,
        "seed": 11,
    }
    assert request_id.startswith("p/1/0#")
    assert (out.text, out.finish_reason) == ("so \\boxed{7}", "stop")
    assert (out.prompt_tokens, out.completion_tokens) == (len(expected), 2)


def test_a_reasoning_effort_goes_to_the_chat_template() -> None:
    engine = FakeEngine()
    asyncio.run(backend(engine).generate(req("what is 3 + 4", reasoning_effort="high")))
    user = [{"role": "user", "content": "what is 3 + 4"}]
    expected = engine.tokenizer.template_ids(user, reasoning_effort="high")
    assert engine.calls[0][0] == {"prompt_token_ids": expected} and 5 in expected
    asyncio.run(backend(engine).generate(req("what is 3 + 4")))
    assert 5 not in engine.calls[1][0]["prompt_token_ids"]  # none asked, none sent


def test_context_window_comes_from_the_model_config_and_caps_max_tokens() -> None:
    engine = FakeEngine(max_model_len=20, reply=" ".join(f"w{i}" for i in range(40)))
    b = backend(engine)
    assert b.context_tokens == 20
    assert b.count_tokens("a b c") == 3
    out = asyncio.run(b.generate(req("x y", max_tokens=1000)))
    prompt_len = len(engine.calls[0][0]["prompt_token_ids"])
    assert engine.calls[0][1]["max_tokens"] == 20 - prompt_len
    assert out.finish_reason == "length" and out.completion_tokens == 20 - prompt_len
    with pytest.raises(ContextOverflowError, match="does not fit"):
        asyncio.run(b.generate(req(" ".join(["w"] * 30))))


def test_requests_are_submitted_one_by_one_and_run_together() -> None:
    engine = FakeEngine()
    result = asyncio.run(
        solve_async(
            "What is 3 + 4?",
            backend=backend(engine),
            rsa=RSAConfig(n=6, k=2, t=2, task="math", seed=1, max_tokens=32),
        )
    )
    assert result.answer == "7" and result.usage["generations"] == 12
    assert len(engine.calls) == 12 and len({c[2] for c in engine.calls}) == 12
    assert engine.peak == 6  # a step's N requests are in flight at once; vLLM batches them
    seeds = {c[1]["seed"] for c in engine.calls}
    assert len(seeds) == 12
    # every request carries its step as its priority (lower runs first under "priority")
    assert sorted(engine.priorities) == [1] * 6 + [2] * 6
    assert all(
        p == int(c[2].split("/")[1]) for p, c in zip(engine.priorities, engine.calls, strict=True)
    )
    assert not engine.shut  # a backend passed in is the caller's to close


def test_aclose_shuts_the_engine_down() -> None:
    engine = FakeEngine()
    asyncio.run(backend(engine).aclose())
    assert engine.shut


def test_settings_become_engine_args_with_prefix_caching() -> None:
    _, cfg = build_configs(
        {
            "backend": "vllm",
            "model": "Qwen/Qwen3-4B-Instruct-2507",
            "tensor_parallel_size": 2,
            "data_parallel_size": 4,
            "gpu_memory_utilization": 0.85,
            "max_model_len": 40960,
            "max_num_seqs": 256,
        }
    )
    assert engine_args(cfg) == {
        "model": "Qwen/Qwen3-4B-Instruct-2507",
        "enable_prefix_caching": True,
        "scheduling_policy": "priority",
        "tensor_parallel_size": 2,
        "data_parallel_size": 4,
        "gpu_memory_utilization": 0.85,
        "max_model_len": 40960,
        "max_num_seqs": 256,
    }
    assert engine_args(BackendConfig(backend="vllm", model="m")) == {
        "model": "m",
        "enable_prefix_caching": True,
        "scheduling_policy": "priority",
    }
    with pytest.raises(UsageError, match="needs --model"):
        engine_args(BackendConfig(backend="vllm"))
    for bad in ({"gpu_memory_utilization": 1.5}, {"tensor_parallel_size": 0}):
        with pytest.raises(UsageError):
            build_configs(bad)


needs_no_vllm = pytest.mark.skipif(
    importlib.util.find_spec("vllm") is not None, reason="vllm is installed here"
)


@needs_no_vllm
def test_missing_vllm_names_the_extra_and_cli_exits_2() -> None:
    with pytest.raises(UsageError, match=r"pip install 'recursa\[vllm\]'"):
        create_backend(BackendConfig(backend="vllm", model="m"))
    proc = subprocess.run(
        [sys.executable, "-m", "recursa.cli", "solve", "hi", "--backend", "vllm", "--model", "m"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "recursa: error: vllm is not installed; run: pip install 'recursa[vllm]'"
    )


def test_vllm_is_never_imported_unless_chosen() -> None:
    code = (
        "import sys, recursa, recursa.cli, recursa.api, recursa.backends;"
        "from recursa.cli import build_parser; build_parser();"
        "import recursa.backends.vllm;"
        "print('vllm' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stderr


def _real_vllm_skip_reason() -> str | None:
    if importlib.util.find_spec("vllm") is None:
        return "vllm is not installed (pip install 'recursa[vllm]' on a GPU machine)"
    import torch

    if not torch.cuda.is_available():
        return "no CUDA GPU for vLLM"
    return None


@pytest.mark.skipif(_real_vllm_skip_reason() is not None, reason=str(_real_vllm_skip_reason()))
def test_real_vllm_engine_runs_rsa() -> None:
    """Set RECURSA_VLLM_MODEL to a small local or cached model (default SmolLM2-135M)."""
    model = os.environ.get("RECURSA_VLLM_MODEL", "HuggingFaceTB/SmolLM2-135M-Instruct")
    result = asyncio.run(
        solve_async(
            "What is 3 + 4? Answer with one number.",
            backend="vllm",
            model=model,
            gpu_memory_utilization=0.5,
            max_model_len=4096,
            n=4,
            k=2,
            t=2,
            task="math",
            max_tokens=64,
        )
    )
    assert result.usage["generations"] == 8
    assert result.usage["completion_tokens"] > 0
    assert all(c.completion_tokens <= 64 for s in result.steps for c in s.candidates)
