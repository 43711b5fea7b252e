"""The openai backend and the CLI against keep-alive servers: what reaches the upstream for
each setting, model discovery, server token counts, reasoning fields and upstream errors.

Every CLI test runs `python -m recursa` as a subprocess against a uvicorn server
(tests/openai_upstream.py), the way a user meets a vLLM or llama.cpp server."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from recursa import solve
from recursa.context import NO_ANSWER_MARKER
from tests.fake_server import chat_body
from tests.openai_upstream import Upstream, running

SMALL = ["-n", "2", "-k", "2", "-t", "2", "--max-tokens", "16", "--task", "math"]


def recursa(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "recursa", "-q", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def solve_cli(url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return recursa(
        "solve", "What is 2+2?", "--backend", "openai", "--base-url", url, *SMALL, *extra
    )


def one_sentence(proc: subprocess.CompletedProcess[str]) -> str:
    lines = proc.stderr.strip().splitlines()
    assert "Traceback" not in proc.stderr, proc.stderr
    assert len(lines) == 1, proc.stderr
    return lines[0]


# -- one event loop per command, against keep-alive connections --------------------------
def test_solve_json_over_keep_alive_connections_discovers_the_model() -> None:
    with running(Upstream()) as up:
        proc = solve_cli(up.url, "--json", "--concurrency", "1")
    assert proc.returncode == 0, proc.stderr
    assert "Event loop is closed" not in proc.stderr
    out = json.loads(proc.stdout)
    assert out["answer"] == "4"
    assert out["backend"]["model"] == "fake-model"
    assert out["backend"]["server_kind"] == "vllm"
    assert len(up.received) == 4
    assert {b["model"] for b in up.received} == {"fake-model"}
    # One connection carried several requests: keep-alive was in play, and the backend was
    # closed on the loop that owns it.
    assert len(set(up.clients)) < len(up.clients)


def test_eval_over_keep_alive_connections(tmp_path: Path) -> None:
    data = tmp_path / "two.jsonl"
    data.write_text(
        "\n".join(json.dumps({"problem": f"What is {i}+{4 - i}?", "answer": "4"}) for i in (1, 2))
    )
    with running(Upstream()) as up:
        proc = recursa(
            "eval", str(data), "--out", str(tmp_path / "run"), "--backend", "openai",
            "--base-url", up.url, "-n", "2", "-k", "2", "-t", "2", "--max-tokens", "16",
            "--json",
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["problems"] == 2 and summary["metrics"]["final_acc"] == 1.0
    assert len(up.received) == 8


def test_several_models_without_model_is_a_usage_error_listing_them() -> None:
    models = [{"id": "alpha", "owned_by": "vllm"}, {"id": "beta", "owned_by": "vllm"}]
    with running(Upstream(models=models)) as up:
        proc = solve_cli(up.url, "--json")
        assert up.received == []
    assert proc.returncode == 2
    line = one_sentence(proc)
    assert "serves 2 models (alpha, beta)" in line and "--model" in line
    assert json.loads(proc.stdout)["exit_code"] == 2  # --json still prints


def test_named_model_is_sent_as_named() -> None:
    models = [{"id": "alpha", "owned_by": "vllm"}, {"id": "beta", "owned_by": "vllm"}]
    with running(Upstream(models=models)) as up:
        proc = solve_cli(up.url, "--model", "beta")
    assert proc.returncode == 0, proc.stderr
    assert {b["model"] for b in up.received} == {"beta"}


@pytest.mark.parametrize(
    ("status", "payload", "phrase"),
    [
        (404, {"error": {"message": "The model `x` does not exist.", "code": 404}}, "HTTP 404"),
        (400, {"error": {"message": "bad things\nin two lines"}}, "HTTP 400): bad things in"),
        (422, {"detail": [{"loc": ["body", "top_k"], "msg": "too small"}]}, "top_k: too small"),
    ],
)
def test_upstream_refusal_is_one_sentence_with_status_and_message(
    status: int, payload: dict[str, Any], phrase: str
) -> None:
    with running(Upstream(reply=lambda body: (status, payload))) as up:
        proc = solve_cli(up.url, "--json")
    assert proc.returncode == 1
    line = one_sentence(proc)
    assert line.startswith("recursa: error: the server at") and phrase in line, line
    assert json.loads(proc.stdout)["error"] in line


# -- sampling stated explicitly, per server kind (issue 13, item 3) -------------------------
def test_vllm_server_gets_top_p_1_and_top_k_disabled() -> None:
    with running(Upstream(models=[{"id": "m", "owned_by": "vllm"}])) as up:
        assert solve_cli(up.url).returncode == 0
    for body in up.received:
        assert body["temperature"] == 1.0 and body["top_p"] == 1.0
        assert body["top_k"] == -1 and body["min_p"] == 0.0
        assert body["max_tokens"] == 16 and "max_completion_tokens" not in body
        assert isinstance(body["seed"], int)


def test_openai_server_gets_no_top_k_or_min_p() -> None:
    with running(Upstream(models=[{"id": "gpt-x", "owned_by": "openai"}])) as up:
        assert solve_cli(up.url, "--temperature", "0.7").returncode == 0
    for body in up.received:
        assert body["temperature"] == 0.7 and body["top_p"] == 1.0
        assert "top_k" not in body and "min_p" not in body
        # OpenAI's current field (reasoning models refuse max_tokens).
        assert body["max_completion_tokens"] == 16 and "max_tokens" not in body


@pytest.mark.parametrize(
    ("owner", "flag", "expected"),
    [
        ("llamacpp", [], {"top_k": 0, "min_p": 0.0}),
        ("me", [], {"top_k": 0, "min_p": 0.0, "repeat_penalty": 1.0}),
        ("sglang", [], {"top_k": -1, "min_p": 0.0}),
        ("someone", [], {}),
        ("someone", ["--server-kind", "vllm"], {"top_k": -1, "min_p": 0.0}),
        ("vllm", ["--server-kind", "openai"], {}),
    ],
)
def test_disabled_sampling_by_server_kind(
    owner: str, flag: list[str], expected: dict[str, Any]
) -> None:
    with running(Upstream(models=[{"id": "m", "owned_by": owner}])) as up:
        assert solve_cli(up.url, *flag).returncode == 0
    extra = {"top_k", "min_p", "repeat_penalty"}
    for body in up.received:
        assert {k: v for k, v in body.items() if k in extra} == expected
        assert body["top_p"] == 1.0


def test_request_params_reach_every_request_and_override_defaults(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("request_params:\n  reasoning_effort: low\n  top_k: 5\n")
    with running(Upstream()) as up:
        proc = solve_cli(
            up.url, "--config", str(config), "--request-param", "top_k=20",
            "--request-param", 'chat_template_kwargs={"enable_thinking": false}',
            "--request-param", "reasoning_effort=high", "--top-p", "0.95",
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    for body in up.received:
        assert body["top_k"] == 20 and body["min_p"] == 0.0 and body["top_p"] == 0.95
        assert body["chat_template_kwargs"] == {"enable_thinking": False}
        assert body["reasoning_effort"] == "high"


def test_reasoning_effort_reaches_every_request() -> None:
    with running(Upstream(models=[{"id": "gpt-oss", "owned_by": "vllm"}])) as up:
        assert solve_cli(up.url, "--reasoning-effort", "high").returncode == 0
    assert up.received and all(b["reasoning_effort"] == "high" for b in up.received)


def test_request_params_from_the_library() -> None:
    with running(Upstream()) as up:
        result = solve(
            "What is 2+2?", backend="openai", base_url=up.url, n=2, k=2, t=1,
            max_tokens=8, task="math", request_params={"min_p": 0.1, "logit_bias": {"1": -5}},
        )  # fmt: skip
    assert result.answer == "4"
    assert all(b["min_p"] == 0.1 and b["logit_bias"] == {"1": -5} for b in up.received)


@pytest.mark.parametrize(
    ("param", "phrase"),
    [("temperature=0.5", "--temperature"), ("model=x", "--model"), ("oops", "KEY=JSON")],
)
def test_request_param_recursa_sets_itself_is_refused(param: str, phrase: str) -> None:
    proc = recursa("solve", "q", "--backend", "mock", "--request-param", param)
    assert proc.returncode == 2
    assert phrase in one_sentence(proc)


def openai_reasoning_model(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """Refuses what OpenAI's reasoning models refuse."""
    for name in ("max_tokens", "top_p"):
        if name in body:
            message = f"Unsupported parameter: '{name}' is not supported with this model."
            err = {"message": message, "param": name, "code": "unsupported_parameter"}
            return 400, {"error": err}
    return 200, chat_body("\\boxed{4}")


@pytest.mark.parametrize("concurrency", ["1", "4"])
def test_fields_a_server_refuses_are_renamed_or_dropped_once(concurrency: str) -> None:
    models = [{"id": "o-mini", "owned_by": "someone"}]
    with running(Upstream(models=models, reply=openai_reasoning_model)) as up:
        proc = solve_cli(up.url, "--json", "-n", "4", "--concurrency", concurrency)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["answer"] == "4"
    assert out["backend"]["max_tokens_field"] == "max_completion_tokens"
    assert out["backend"]["not_sent"] == ["top_p"]
    accepted = [b for b in up.received if "max_tokens" not in b and "top_p" not in b]
    assert len(accepted) == 8  # every generation, once the fields were settled
    if concurrency == "1":  # two refusals in all (max_tokens, then top_p)
        assert len(up.received) == 8 + 2


def test_a_field_the_user_set_is_not_dropped_when_refused() -> None:
    models = [{"id": "o-mini", "owned_by": "someone"}]
    with running(Upstream(models=models, reply=openai_reasoning_model)) as up:
        proc = solve_cli(up.url, "--top-p", "0.9", "--max-tokens-field", "max_completion_tokens")
    assert proc.returncode == 1
    assert "Unsupported parameter: 'top_p'" in one_sentence(proc)


# -- reasoning fields and empty completions --------------------------------------------------
def test_reasoning_content_becomes_a_leading_think_block_and_content_null_no_answer() -> None:
    def reply(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        out = chat_body("")
        message = out["choices"][0]["message"]
        if body["seed"] % 2:
            message["content"] = None  # reasoning only: a candidate without an answer
            message["reasoning"] = "I think it is \\boxed{99}."
        else:
            message["content"] = "So \\boxed{4}."
            message["reasoning_content"] = "2 and 2 make 4."
        return 200, out

    with running(Upstream(reply=reply)) as up:
        proc = solve_cli(up.url, "--json", "-n", "4", "-k", "4", "-t", "2")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    texts = [c["text"] for c in out["steps"][0]["candidates"]]
    assert "<think>\n2 and 2 make 4.\n</think>\n\nSo \\boxed{4}." in texts
    assert "<think>\nI think it is \\boxed{99}.\n</think>" in texts
    # Reasoning only is a candidate without an answer: answers are read outside <think>
    # blocks, so the draft \boxed{99} in the reasoning never votes.
    empty = [c for c in out["steps"][0]["candidates"] if c["text"].endswith("</think>")]
    assert empty and all(c["answer"] is None for c in empty)
    assert out["usage"]["empty_completions"] >= len(empty)
    assert all(c["answer"] in (None, "4") for s in out["steps"] for c in s["candidates"])
    # The aggregation prompts show the empty candidates as giving no answer, never as "".
    aggregation = [b["messages"][-1]["content"] for b in up.received[4:]]
    assert all(NO_ANSWER_MARKER in p for p in aggregation)


def test_empty_completions_are_reported_by_solve() -> None:
    with running(Upstream(reply=lambda body: (200, chat_body("")))) as up:
        proc = solve_cli(up.url)
    assert proc.returncode == 0, proc.stderr
    assert "(4 of 4 completions were empty: no answer)" in proc.stdout
    assert "empty completion" in proc.stderr  # said once, as a warning
    assert all(NO_ANSWER_MARKER in b["messages"][-1]["content"] for b in up.received[2:])


# -- context window and token counts from the server -----------------------------------------
LONG = "word " * 400  # 2,000 characters: about 667 tokens estimated, 400 by the server


def test_vllm_max_model_len_and_tokenize_decide_the_fit() -> None:
    models = [{"id": "m", "owned_by": "vllm", "max_model_len": 600}]
    with running(Upstream(models=models, tokenize="/tokenize")) as up:
        proc = recursa("solve", LONG, "--backend", "openai", "--base-url", up.url, *SMALL, "--json")
    # 400 server tokens fit a 600-token window (the 3-chars estimate, 667, would not).
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    # The server's window less the reserve for the chat template's tokens.
    assert out["backend"]["server_context_tokens"] == 600
    assert out["backend"]["context_tokens"] == 600 - 64
    assert out["backend"]["context_source"] == "max_model_len in GET /v1/models"
    assert out["backend"]["token_counts"] == "server tokenizer"
    assert any(LONG.strip() in t for t in up.tokenized)
    assert all(b["max_tokens"] <= 16 for b in up.received)


def test_server_count_is_stated_exactly_when_the_prompt_does_not_fit() -> None:
    models = [{"id": "m", "owned_by": "vllm", "max_model_len": 300}]
    with running(Upstream(models=models, tokenize="/tokenize")) as up:
        proc = recursa("solve", LONG, "--backend", "openai", "--base-url", up.url, *SMALL)
        assert up.received == []
    assert proc.returncode == 1
    line = one_sentence(proc)
    assert "takes 4" in line and f"{300 - 64}-token context window" in line
    assert "estimate" not in line


def test_estimated_counts_are_labelled_as_estimates() -> None:
    with running(Upstream(models=[{"id": "m", "owned_by": "openai"}])) as up:
        proc = recursa(
            "solve", LONG, "--backend", "openai", "--base-url", up.url, *SMALL,
            "--context-tokens", "300",
        )  # fmt: skip
    assert proc.returncode == 1
    line = one_sentence(proc)
    assert "about 6" in line and "an estimate at 3 characters per token" in line


def test_llama_cpp_props_and_tokenize() -> None:
    props = {"default_generation_settings": {"n_ctx": 2048}}
    models = [{"id": "m", "owned_by": "llamacpp"}]
    with running(Upstream(models=models, props=props, tokenize="/tokenize")) as up:
        proc = solve_cli(up.url, "--json")
    assert proc.returncode == 0, proc.stderr
    backend = json.loads(proc.stdout)["backend"]
    assert backend["server_context_tokens"] == 2048
    assert backend["context_source"] == "n_ctx in GET /props"
    assert backend["token_counts"] == "server tokenizer" and up.tokenized


def test_missing_tokenize_endpoint_falls_back_to_estimates() -> None:
    models = [{"id": "m", "owned_by": "vllm", "max_model_len": 4096}]
    with running(Upstream(models=models)) as up:  # no /tokenize
        proc = solve_cli(up.url, "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["backend"]["token_counts"] == "estimated"
    assert "token counts are estimates" in proc.stderr


# -- llama-cpp-python's real server with the bundled model -------------------------------
def test_cli_against_llama_cpp_python_server(llama_server: str) -> None:
    proc = recursa(
        "solve", "Name a primary colour.", "--backend", "openai", "--base-url", llama_server,
        "-n", "2", "-k", "2", "-t", "2", "--max-tokens", "24", "--seed", "3", "--json",
        "--context-tokens", "4096",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "Event loop is closed" not in proc.stderr
    out = json.loads(proc.stdout)
    # Discovered from the server: its one model, its kind, its tokenizer.
    assert out["backend"]["model"] == "smollm2"
    assert out["backend"]["server_kind"] == "llama-cpp-python"
    assert out["backend"]["token_counts"] == "server tokenizer"
    assert out["usage"]["generations"] == 4
    assert 0 < out["usage"]["completion_tokens"] <= 4 * 24
    assert out["text"] in [c["text"] for c in out["steps"][-1]["candidates"]]


def test_llama_cpp_python_server_refusal_is_one_sentence(llama_server: str) -> None:
    # top_k -1 (vLLM's "off") is out of range for llama-cpp-python: it answers HTTP 500 with
    # a validation error, which is not worth retrying.
    proc = recursa(
        "solve", "Hi", "--backend", "openai", "--base-url", llama_server, "-n", "1", "-k", "1",
        "-t", "1", "--max-tokens", "4", "--request-param", "top_k=-1",
    )  # fmt: skip
    assert proc.returncode == 1
    line = one_sentence(proc)
    assert "(HTTP 500)" in line and "top_k" in line and "File" not in line


def test_kind_of_an_unlisted_alias_comes_from_a_uniform_list() -> None:
    from recursa.backends.openai_server import ServerFacts, kind_of

    same = ServerFacts([{"id": "a", "owned_by": "vllm", "max_model_len": 9000}])
    alias = same.entry("alias")
    assert kind_of(alias, "http://h/v1") == "vllm" and alias and alias["max_model_len"] is None
    mixed = ServerFacts([{"id": "a", "owned_by": "vllm"}, {"id": "b", "owned_by": "x"}])
    assert kind_of(mixed.entry("alias"), "http://h/v1") == "other"
    assert kind_of(None, "https://api.openai.com/v1") == "openai"


def test_llama_cpp_python_server_counts_the_prompt(llama_server: str) -> None:
    import httpx

    from recursa.backends.openai_server import server_root
    from recursa.prompts import plain_messages
    from recursa.tasks import Problem, get_task

    question = "Sum the numbers " + ", ".join(str(i) for i in range(150)) + "."
    content = plain_messages(get_task("math"), Problem("q", question, None, "math", {}))[0]
    count = httpx.post(
        f"{server_root(llama_server)}/extras/tokenize/count",
        json={"input": content["content"]},
        timeout=30,
    ).json()["count"]
    proc = recursa(
        "solve", question, "--backend", "openai", "--base-url", llama_server, "--task", "math",
        "-n", "1", "-k", "1", "-t", "1", "--context-tokens", "256",
    )  # fmt: skip
    assert proc.returncode == 1
    # The server's own count, stated as a fact (3 chars/token would say about 150 tokens).
    assert f"takes {count} tokens, more than the 256-token" in one_sentence(proc)
    assert count > 256


def test_one_backend_object_serves_one_sync_call_after_another() -> None:
    from recursa.backends.openai import OpenAIBackend

    with running(Upstream()) as up:
        backend = OpenAIBackend(up.url)
        settings: dict[str, Any] = {"n": 2, "k": 2, "t": 1, "max_tokens": 8, "task": "math"}
        first = solve("What is 2+2?", backend=backend, **settings)
        second = solve("What is 2+2?", backend=backend, **settings)  # a new event loop
        asyncio.run(backend.aclose())
    assert first.answer == second.answer == "4"
    assert len(up.received) == 4


def test_a_resume_answered_from_the_journal_asks_the_server_nothing(tmp_path: Path) -> None:
    data = tmp_path / "one.jsonl"
    data.write_text(json.dumps({"problem": "What is 2+2?", "answer": "4"}) + "\n")
    args = ["eval", str(data), "--out", str(tmp_path / "run"), "--backend", "openai"]
    small = ["-n", "2", "-k", "2", "-t", "2", "--max-tokens", "16", "--max-retries", "0"]
    with running(Upstream()) as up:
        assert recursa(*args, "--base-url", up.url, *small).returncode == 0
        url = up.url
    # The server is gone; every completion is journaled, so resuming needs none of it.
    proc = recursa(*args, "--base-url", url, *small, "--resume", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["run"]["requested_this_session"] == 0


def test_eval_reports_empty_completions(tmp_path: Path) -> None:
    data = tmp_path / "one.jsonl"
    data.write_text(json.dumps({"problem": "What is 2+2?", "answer": "4"}) + "\n")
    with running(Upstream(reply=lambda body: (200, chat_body("")))) as up:
        proc = recursa(
            "eval", str(data), "--out", str(tmp_path / "run"), "--backend", "openai",
            "--base-url", up.url, "-n", "2", "-k", "2", "-t", "2", "--max-tokens", "16",
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "(4 completions were empty: candidates without an answer)" in proc.stdout
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["run"]["empty_completions"] == 4
    assert summary["metrics"]["final_acc"] == 0.0


def test_base_url_without_v1_gets_a_hint() -> None:
    with running(Upstream()) as up:
        proc = solve_cli(up.url.removesuffix("/v1"))
        assert up.received == []
    assert proc.returncode == 1
    line = one_sentence(proc)
    assert "GET /models answered HTTP 404" in line and "missing /v1" in line
