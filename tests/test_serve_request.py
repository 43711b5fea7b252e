"""The proxy's request handling without a server: conversations, settings layering, chunks."""

from __future__ import annotations

import json
from typing import Any

import pytest

from recursa.config import RSAConfig
from recursa.prompts import aggregation_text
from recursa.result import Candidate, SolveResult, StepResult
from recursa.serve.conversation import problem_from_messages, split_conversation
from recursa.serve.errors import APIError
from recursa.serve.job import _latest_logprobs_only
from recursa.serve.models import parse_model_name
from recursa.serve.open_task import JSONFormat, OpenTask
from recursa.serve.reply import ReplyMeta, completion_body, completion_chunks, text_pieces
from recursa.serve.schema import ChatMessage, parse_request, rsa_config


def messages(*pairs: tuple[str, Any]) -> list[ChatMessage]:
    return [ChatMessage(role=role, content=content) for role, content in pairs]  # type: ignore[arg-type]


def test_a_lone_user_message_is_the_question_with_no_history() -> None:
    problem = problem_from_messages(messages(("user", "What is 2+2?")), "general")
    assert problem.question == "What is 2+2?" and problem.history == []


def test_system_and_earlier_turns_are_kept_as_messages_before_the_question() -> None:
    history, question = split_conversation(
        messages(
            ("system", "Answer in French."),
            ("developer", "Be brief."),
            ("user", "Hi"),
            ("assistant", "Bonjour"),
            ("user", [{"type": "text", "text": "What is "}, {"type": "text", "text": "2+2?"}]),
        )
    )
    assert history == [
        {"role": "system", "content": "Answer in French."},
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Bonjour"},
    ]
    assert question == "What is 2+2?"


def test_the_same_conversation_gets_the_same_problem_id() -> None:
    a = problem_from_messages(messages(("user", "q1")), "math")
    b = problem_from_messages(messages(("user", "q1")), "math")
    c = problem_from_messages(messages(("user", "q2")), "math")
    d = problem_from_messages(messages(("system", "s"), ("user", "q1")), "math")
    assert a.id == b.id != c.id and a.id != d.id and a.task == "math"


@pytest.mark.parametrize(
    ("convo", "fragment"),
    [
        ((("user", "q"), ("assistant", "a")), "last message must come from the user"),
        ((("user", "   "),), "empty"),
        ((("user", [{"type": "image_url", "image_url": {"url": "x"}}]),), "'image_url'"),
        ((("user", "q"), ("tool", "42"), ("user", "and?")), "messages[1]: tool calls"),
    ],
)
def test_conversations_rsa_cannot_answer_are_400s(convo: Any, fragment: str) -> None:
    with pytest.raises(APIError) as info:
        split_conversation(messages(*convo))
    assert info.value.status == 400 and fragment in info.value.message


def request(**body: Any) -> Any:
    return parse_request({"messages": [{"role": "user", "content": "q"}], **body})


def test_settings_layer_defaults_then_standard_fields_then_the_rsa_object() -> None:
    defaults = RSAConfig(n=6, k=3, t=5, temperature=0.7, max_tokens=500)
    cfg = rsa_config(defaults, request(), 4096)
    assert (cfg.n, cfg.k, cfg.t, cfg.temperature, cfg.max_tokens) == (6, 3, 5, 0.7, 500)
    cfg = rsa_config(defaults, request(temperature=0.2, max_tokens=40, seed=9), 4096)
    assert (cfg.temperature, cfg.max_tokens, cfg.seed, cfg.n) == (0.2, 40, 9, 6)
    cfg = rsa_config(defaults, request(max_completion_tokens=30, max_tokens=40), 4096)
    assert cfg.max_tokens == 30
    cfg = rsa_config(
        defaults, request(temperature=0.2, rsa={"n": 8, "k": 2, "temperature": 1.1}), 4096
    )
    assert (cfg.n, cfg.k, cfg.t, cfg.temperature) == (8, 2, 5, 1.1)


def test_a_bad_standard_field_is_named_as_itself() -> None:
    with pytest.raises(APIError) as info:
        rsa_config(RSAConfig(), request(max_tokens=0), 100)
    assert info.value.status == 400 and info.value.param == "max_tokens"
    with pytest.raises(APIError) as info:
        rsa_config(RSAConfig(), request(rsa={"k": 0}), 100)
    assert info.value.param == "rsa.k"


def test_unknown_rsa_fields_are_named() -> None:
    with pytest.raises(APIError) as info:
        rsa_config(RSAConfig(), request(rsa={"n": 2, "k": 1, "bogus": 1, "sync_steps": True}), 99)
    err = info.value
    assert err.status == 400 and err.code == "unknown_parameter"
    assert "'bogus'" in err.message and "'sync_steps'" in err.message


@pytest.mark.parametrize(
    ("rsa", "fragment"),
    [
        ({"n": 2, "k": 3}, "K (3) cannot exceed the population size N (2)"),
        ({"n": 0}, "n=0"),
        ({"t": -1}, "t=-1"),
        ({"task": "poetry"}, "task"),
        ({"n": 64, "k": 4, "t": 10}, "limit of 100"),
        ({"n": True, "k": 1}, "n=True"),
        ({"temperature": "hot"}, "temperature"),
    ],
)
def test_invalid_rsa_settings_are_400s_naming_the_problem(
    rsa: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(APIError) as info:
        rsa_config(RSAConfig(), request(rsa=rsa), 100)
    assert info.value.status == 400 and fragment in info.value.message


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, "messages.0.role"),
        ({"messages": [{"role": "user", "content": "x"}], "n": 2}, "n must be 1"),
        ({"messages": [{"role": "user", "content": "x"}], "rsa": [1]}, "rsa"),
        ({"messages": [{"role": "user", "content": "x"}], "stream": "yes"}, "stream"),
        (
            {"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function"}]},
            "tools",
        ),
    ],
)
def test_malformed_bodies_are_400s(body: dict[str, Any], fragment: str) -> None:
    with pytest.raises(APIError) as info:
        parse_request(body)
    assert info.value.status == 400 and fragment in info.value.message


def result(text: str, finish: str = "stop") -> SolveResult:
    steps = [
        StepResult(1, [Candidate(1, s, f"draft {s}", str(s), 10, 4) for s in range(2)], 0.5, "0"),
        StepResult(
            2,
            [Candidate(2, 0, "other", "1", 30, 6), Candidate(2, 1, text, "7", 30, 9, finish)],
            0.5,
            "7",
        ),
    ]
    return SolveResult(
        problem_id="p",
        answer="7",
        text=text,
        selected_slot=1,
        steps=steps,
        usage={"prompt_tokens": 80, "completion_tokens": 23, "generations": 4},
        config=RSAConfig(n=2, k=2, t=2).model_dump(),
        steps_run=2,
    )


def test_pieces_join_back_to_the_text_exactly() -> None:
    for text in ["", "one", "  leading\n\nand  double  spaces \t end  ", "a " * 50]:
        pieces = text_pieces(text, words=3)
        assert "".join(pieces) == text
        assert all(p for p in pieces)


def test_the_reply_is_the_selected_candidate_with_summed_usage() -> None:
    body = completion_body(ReplyMeta(model="m"), result("the chosen text", "length"))
    assert body["object"] == "chat.completion" and body["model"] == "m"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "the chosen text"}
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"] == {"prompt_tokens": 80, "completion_tokens": 23, "total_tokens": 103}
    assert body["rsa"]["answer"] == "7" and body["rsa"]["generations"] == 4
    assert [s["agreement"] for s in body["rsa"]["steps"]] == [0.5, 0.5]
    assert body["rsa"]["steps"][1]["answers"] == ["1", "7"]


def test_chunks_carry_the_same_message_then_usage() -> None:
    text = "word " * 30 + "\\boxed{7}"
    meta = ReplyMeta(model="m")
    chunks = completion_chunks(meta, result(text), include_usage=True)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    content = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks[:-1])
    assert content == text
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop" and "rsa" in chunks[-2]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] == 103
    assert {c["id"] for c in chunks} == {meta.id}
    assert "usage" not in completion_chunks(meta, result(text), include_usage=False)[-1]


@pytest.mark.parametrize(
    ("name", "upstream", "settings"),
    [
        (None, None, {}),
        ("qwen3", "qwen3", {}),
        ("Qwen/Qwen3-8B", "Qwen/Qwen3-8B", {}),
        ("rsa", None, {}),
        ("rsa/qwen3", "qwen3", {}),
        ("rsa-n8-k3-t4/Qwen/Qwen3-8B", "Qwen/Qwen3-8B", {"n": 8, "k": 3, "t": 4}),
        ("rsa-t2/qwen3", "qwen3", {"t": 2}),
        ("rsa-n4-k2", None, {"n": 4, "k": 2}),
        ("rsa-x/qwen3", "rsa-x/qwen3", {}),  # not the RSA spelling: an upstream name
    ],
)
def test_model_names_pick_the_upstream_model_and_n_k_t(
    name: str | None, upstream: str | None, settings: dict[str, int]
) -> None:
    choice = parse_model_name(name)
    assert (choice.upstream, choice.settings) == (upstream, settings)


def test_unseeded_requests_draw_fresh_seeds_unless_the_server_or_request_sets_one() -> None:
    fresh = {rsa_config(RSAConfig(), request(), 4096).seed for _ in range(5)}
    assert len(fresh) == 5
    assert {rsa_config(RSAConfig(seed=4), request(), 4096).seed for _ in range(3)} == {4}
    assert rsa_config(RSAConfig(), request(seed=7), 4096).seed == 7
    assert rsa_config(RSAConfig(), request(rsa={"seed": 8}), 4096).seed == 8


def test_open_questions_default_to_a_random_member_and_json_to_a_vote() -> None:
    assert rsa_config(RSAConfig(), request(), 4096).selection == "random"
    as_json = request(response_format={"type": "json_object"})
    assert rsa_config(RSAConfig(), as_json, 4096).selection == "majority"
    assert rsa_config(RSAConfig(task="math"), request(), 4096).selection == "majority"
    assert rsa_config(RSAConfig(selection="majority"), request(), 4096).selection == "majority"
    assert rsa_config(RSAConfig(), request(rsa={"selection": "majority"}), 4096).selection == (
        "majority"
    )


def test_the_open_task_adds_no_format_and_json_answers_are_canonical() -> None:
    problem = problem_from_messages(messages(("user", "Write a haiku.")), "general")
    text_task = OpenTask()
    assert text_task.plain_prompt(problem) == "Write a haiku."
    prompt = aggregation_text(text_task, problem, ["one", "two"])
    assert "Final answer" not in prompt and "Write a haiku." in prompt
    assert text_task.extract("Final answer: 3") is None
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    json_task = OpenTask(JSONFormat(schema))
    prompt = aggregation_text(json_task, problem, ['{"a": 1}', '{"a": 2}'])
    assert prompt.endswith(json.dumps(schema)) and "JSON object" in prompt
    assert json_task.extract('<think>hm</think>\n```json\n{"b": [1], "a": 1}\n```') == (
        '{"a":1,"b":[1]}'
    )
    assert json_task.extract('{"a": 1') is None


def test_a_leading_think_block_is_the_replys_reasoning_content() -> None:
    body = completion_body(ReplyMeta(model="m"), result("<think>hmm, 7</think>\n\nIt is 7."))
    assert body["choices"][0]["message"] == {
        "role": "assistant",
        "content": "It is 7.",
        "reasoning_content": "hmm, 7",
    }
    chunks = completion_chunks(ReplyMeta(model="m"), result("<think>a</think>b"), False)
    assert chunks[1]["choices"][0]["delta"] == {"reasoning_content": "a"}
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == "b"


def test_only_the_latest_steps_logprobs_are_kept() -> None:
    lp = {"content": [{"token": "a", "logprob": -1.0}]}
    steps = [StepResult(s, [Candidate(s, 0, "a", None, logprobs=dict(lp))]) for s in (1, 2, 3)]
    seen: list[int] = []
    keep = _latest_logprobs_only(lambda problem, step: seen.append(step.step))
    problem = problem_from_messages(messages(("user", "q")), "general")
    for step in steps:
        keep(problem, step)
    assert [s.candidates[0].logprobs for s in steps] == [None, None, lp] and seen == [1, 2, 3]
