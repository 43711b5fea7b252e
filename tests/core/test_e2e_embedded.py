"""End to end on the real bundled SmolLM2-135M-Instruct: in process and over HTTP."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from recursa import solve

pytestmark = pytest.mark.e2e


def test_solve_json_on_the_embedded_model() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "recursa",
            "solve",
            "What is 7 + 5?",
            "--task",
            "math",
            "-n",
            "2",
            "-k",
            "2",
            "-t",
            "2",
            "--max-tokens",
            "48",
            "--n-ctx",
            "2048",
            "--seed",
            "1",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert set(out) >= {"answer", "text", "steps", "usage", "config"}
    assert len(out["steps"]) == 2
    for step in out["steps"]:
        assert len(step["candidates"]) == 2
        for c in step["candidates"]:
            assert c["text"].strip()
            assert 0 < c["completion_tokens"] <= 48
            assert c["prompt_tokens"] > 0
    # Aggregation prompts hold the problem and two candidates, so they are longer.
    assert (
        out["steps"][1]["candidates"][0]["prompt_tokens"]
        > (out["steps"][0]["candidates"][0]["prompt_tokens"])
    )
    assert out["usage"]["prompt_tokens"] > 0 and out["usage"]["completion_tokens"] > 0
    assert out["text"] in [c["text"] for c in out["steps"][-1]["candidates"]]
    assert out["config"]["backend"] == "llamacpp"


def test_solve_over_http_against_llama_cpp_server(llama_server: str) -> None:
    result = solve(
        "Name a primary colour.",
        backend="openai",
        base_url=llama_server,
        model="smollm2",
        n=2,
        k=2,
        t=2,
        max_tokens=32,
        seed=2,
        concurrency=2,
    )
    assert len(result.steps) == 2
    assert all(c.text.strip() for s in result.steps for c in s.candidates)
    assert result.usage["generations"] == 4
    assert result.usage["prompt_tokens"] > 0
    assert 0 < result.usage["completion_tokens"] <= 4 * 32
    assert result.text in [c.text for c in result.steps[-1].candidates]


def test_a_small_window_cuts_candidates_and_never_overflows_llama_cpp() -> None:
    """n_ctx 300 with long candidates: the engine cuts them to fit a window that leaves room
    for the chat template's own tokens and the answer. Before, the prompt fitted to the
    contents alone (and to the 512 llama.cpp reports for a 300-token buffer) overflowed it:
    "could not broadcast input array from shape (300,) into shape (276,)"."""
    from recursa.backends.llamacpp import LlamaCppBackend

    backend = LlamaCppBackend(n_ctx=300)
    assert 0 < backend.template_tokens < 100
    assert backend.context_tokens == 300 - backend.template_tokens
    proc = subprocess.run(
        [sys.executable, "-m", "recursa", "-q", "solve", "Write a long story about a cat "
         "who learns to count, then say what 2+2 is.", "-n", "2", "-k", "2", "-t", "2",
         "--max-tokens", "64", "--n-ctx", "300", "--seed", "1", "--json"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert len(data["steps"]) == 2
    assert "cut" in proc.stderr or "too long" in proc.stderr  # the truncation was announced
    for cand in data["steps"][1]["candidates"]:
        # The prompt (template included, as llama.cpp counts it) left room for the answer;
        # joining messages may tokenize one token differently from the contents alone.
        assert cand["prompt_tokens"] + 64 <= 300 + 2, cand["prompt_tokens"]
