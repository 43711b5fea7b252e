"""The proxy's request handling without a server: conversations, settings layering, chunks."""

from __future__ import annotations

from typing import Any

import pytest

from recursa.config import RSAConfig
from recursa.result import Candidate, SolveResult, StepResult
from recursa.serve.conversation import problem_from_messages, split_conversation
from recursa.serve.errors import APIError
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
