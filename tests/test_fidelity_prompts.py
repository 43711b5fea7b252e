"""Fidelity to the reference code (HyperPotatoNeo/RSA): prompts, own prompts of verl rows,
multiple-choice answers, the think policy, code fences, verdicts and the verify budget."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from recursa import GenerationRequest, evaluate
from recursa.backends.mock import MockBackend
from recursa.benchmarks import load_benchmark
from recursa.config import BackendConfig, RSAConfig
from recursa.prompts import aggregation_text, plain_messages
from recursa.rl.rows import build_row
from recursa.runs.journal import Journal
from recursa.runs.methods import apply_method
from recursa.tasks import Problem, get_task
from recursa.tasks.base import outside_think
from recursa.tasks.code import extract_code
from recursa.think import fit_with_policy
from tests.evalkit import read_jsonl

# The paper's files (data/aime25/test.parquet, ...) hold verl rows whose one user message
# already ends with the answer instruction.
AIME_PROMPT = (
    "Find the sum of all integer bases $b>9$ for which $17_b$ is a divisor of $97_b$. "
    "Let's think step by step and output the final answer within \\boxed{}.\n"
)
GPQA_PROMPT = (
    "Which gas makes up most of Earth's atmosphere?\nA) Oxygen\nB) Nitrogen\nC) Argon\n"
    "D) Carbon dioxide\nE) Helium\nF) Neon\nG) Hydrogen\nH) Xenon\nI) Krypton\nJ) Radon\n"
    "Answer the question and put the option letter in \\boxed{}."
)


def verl_file(path: Path, rows: list[dict[str, Any]]) -> Path:
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def aime_row(i: int, prompt: str = AIME_PROMPT) -> dict[str, Any]:
    return {
        "data_source": "aime25",
        "prompt": [{"role": "user", "content": prompt}],
        "ability": "math",
        "reward_model": {"ground_truth": "70", "style": "rule"},
        "extra_info": {"split": "test", "index": i},
    }


def gpqa_row(i: int) -> dict[str, Any]:
    return {
        "data_source": "m-a-p/SuperGPQA",
        "prompt": [{"role": "user", "content": GPQA_PROMPT}],
        "ability": "science",
        "reward_model": {"ground_truth": "B", "style": "rule"},
        "extra_info": {"uuid": f"q{i}", "index": i},
    }


def test_a_verl_rows_plain_request_is_its_prompt_byte_for_byte(tmp_path: Path) -> None:
    path = verl_file(tmp_path / "aime.parquet", [aime_row(i) for i in range(2)])
    backend = MockBackend()
    evaluate(str(path), out=tmp_path / "run", n=2, k=2, t=2, backend=backend,
             backend_config=BackendConfig(backend="mock"))  # fmt: skip
    plain = [r for r in backend.calls if r.meta["step"] == 1]
    assert plain and all(r.messages == [{"role": "user", "content": AIME_PROMPT}] for r in plain)
    # The aggregation prompt shows the file's problem once, in the reference's layout.
    agg = next(r for r in backend.calls if r.meta["step"] == 2).messages[0]["content"]
    assert agg.count("Find the sum of all integer bases") == 1
    # RL plain rows of such a problem carry the same prompt.
    problem = load_benchmark(str(path)).problems[0]
    row = build_row(problem, "aime25", 0, "train", None, 4, 0)
    assert row["prompt"] == [{"role": "user", "content": AIME_PROMPT}]


def test_a_prompt_with_a_system_message_is_sent_whole(tmp_path: Path) -> None:
    row = aime_row(0)
    row["prompt"] = [{"role": "system", "content": "Be brief."}, *row["prompt"]]
    problem = load_benchmark(str(verl_file(tmp_path / "s.parquet", [row]))).problems[0]
    assert plain_messages(get_task("math"), problem) == row["prompt"]


def test_the_aggregation_prompt_has_the_references_layout() -> None:
    problem = Problem("p", "What is 2+2?", "4", "math")
    text = aggregation_text(get_task("math"), problem, ["I think \\boxed{4}", " \\boxed{5} \n"])
    assert text == (
        "You are given a math problem and several candidate solutions. Some candidates may be "
        "incorrect or contain errors. Aggregate the useful ideas and produce a single, "
        "high-quality solution. Reason carefully; if candidates disagree, choose the correct "
        "path. If all are incorrect, then attempt a different strategy. End with the final "
        "result in \\boxed{}.\n\n"
        "Problem:\n\nWhat is 2+2?\n\n"
        "Candidate solutions (may contain mistakes):\n\n"
        "---- Solution 1 ----\nI think \\boxed{4}\n\n"
        "---- Solution 2 ----\n\\boxed{5}\n\n"
        "Now write a single improved solution. Provide clear reasoning and end with the final "
        "answer in \\boxed{}."
    )
    one = aggregation_text(get_task("rg"), Problem("q", "Sort 3 1 2", "1 2 3", "rg"), ["x"])
    assert "a problem and a candidate solution" in one and "---- Candidate ----\nx" in one
    assert one.endswith("end with the final answer in <answer>...</answer>.")
    mcq = aggregation_text(get_task("mcq"), Problem("m", "Q?", "B", "mcq"), ["a", "b"])
    assert "You are given a multiple-choice problem" in mcq
    assert mcq.endswith(
        "Only include the correct option letter in \\boxed{}; for example \\boxed{A}."
    )


def test_code_prompts_carry_the_references_instructions() -> None:
    task = get_task("code")
    stdin = Problem("c", "Print the sum of two numbers.", None, "code", {"starter_code": ""})
    plain = task.plain_prompt(stdin)
    assert plain.startswith("You will be given a question (problem specification) and will")
    assert "Question:\nPrint the sum" in plain
    assert "(do not directly test on the sample inputs)" in plain
    starter = Problem(
        "f", "Add.", None, "code", {"starter_code": "class Solution:\n    def f(self):"}
    )
    agg = aggregation_text(task, starter, ["one", "two"])
    assert agg.rindex("You will use the following starter code") > agg.rindex("Now write a single")


def test_code_fences_may_open_and_close_mid_line() -> None:
    assert extract_code("Here it is: ```python\nprint(1)\n```") == "print(1)\n"
    assert extract_code("```python\nx = 1\nprint(x)``` and that is all") == "x = 1\nprint(x)\n"
    assert extract_code("inline ```py print(2)``` done") == "print(2)\n"
    assert extract_code("```js\nalert(1)\n```\n```\nprint(3)\n```") == "print(3)\n"
    assert extract_code("```python\nprint(4)\n```\n```python\nnever closed") == "print(4)\n"
    assert extract_code("<think>```python\nprint(5)\n```</think>no code") is None


def test_answers_are_read_outside_think_blocks() -> None:
    assert outside_think("<think>\\boxed{1}</think> so \\boxed{2}") == " so \\boxed{2}"
    assert outside_think("reasoning</think>answer") == "answer"
    assert outside_think("a <think>cut off \\boxed{9}") == "a "
    assert get_task("math").extract("<think>\\boxed{1}</think>\\boxed{2}") == "2"
    assert get_task("rg").extract("<think><answer>x</answer></think>") is None


def test_a_mock_supergpqa_run_has_wrong_answers(tmp_path: Path) -> None:
    path = verl_file(tmp_path / "gpqa.parquet", [gpqa_row(i) for i in range(6)])
    result = evaluate(str(path), out=tmp_path / "run", n=4, k=2, t=2, backend="mock",
                      mock_accuracy=0.3, mock_quality=0.5)  # fmt: skip
    answers = [a for r in read_jsonl(tmp_path / "run" / "problems.jsonl")
               for a in r["steps"][0]["answers"]]  # fmt: skip
    assert set(answers) <= set("ABCD") and "B" in answers and set(answers) - {"B"}
    assert 0.0 < result.summary["metrics"]["mean_acc"] < 1.0


def test_whole_candidates_go_in_when_they_fit() -> None:
    thinking = ["<think>" + "a " * 100 + "</think> \\boxed{1}", "<think>b b</think> \\boxed{2}"]

    def count(text: str) -> int:
        return len(text.split())

    whole = fit_with_policy("auto", thinking, 20, 1000, 100, count)
    assert whole.candidates == thinking and whole.truncated == 0
    tight = fit_with_policy("auto", thinking, 20, 160, 60, count)  # 80 tokens for both
    assert all("<think>" not in c for c in tight.candidates) and tight.truncated == 0
    assert fit_with_policy("strip", thinking, 20, 1000, 100, count).candidates == [
        "\\boxed{1}",
        "\\boxed{2}",
    ]
    assert fit_with_policy("keep", thinking, 20, 160, 60, count).truncated == 1


def test_the_engine_shows_whole_candidates_and_the_old_flag_still_works(tmp_path: Path) -> None:
    def script(request: GenerationRequest) -> str:
        return "<think>let me see</think> \\boxed{4}"

    problems = [Problem("p", "What is 2+2?", "4", "math")]
    for policy, kept in (("auto", True), ("strip", False)):
        backend = MockBackend(script=script, context_tokens=4096)
        evaluate(problems, out=tmp_path / policy, n=2, k=2, t=2, think=policy, backend=backend,
                 backend_config=BackendConfig(backend="mock"))  # fmt: skip
        agg = [r.messages[0]["content"] for r in backend.calls if r.meta["step"] == 2]
        assert all(("<think>let me see</think>" in a) is kept for a in agg)
    assert RSAConfig(keep_think=True).think == "keep"
    assert RSAConfig(keep_think=False).think == "strip"


def test_self_verify_follows_the_reference(tmp_path: Path) -> None:
    def script(request: GenerationRequest) -> str:
        if request.meta.get("phase") == "verify":
            assert request.messages[0]["content"].endswith('Only output "True" or "False".')
            assert (request.temperature, request.max_tokens) == (0.1, 10)
            return "The solution is not correct" if request.meta["slot"] else "False... True"
        return "\\boxed{4}" if request.meta["slot"] == 0 else "\\boxed{5}"

    problems = [Problem("p", "What is 2+2?", "4", "math")]
    result = evaluate(problems, out=tmp_path / "sv", method="self-verify", n=3,
                      backend=MockBackend(script=script),
                      backend_config=BackendConfig(backend="mock"))  # fmt: skip
    record = read_jsonl(tmp_path / "sv" / "problems.jsonl")[0]
    assert record["verify"]["verdicts"] == [True, None, None]  # "not correct" is not True
    assert result.summary["metrics"]["verified_acc"] == 1.0


def test_the_budget_counts_judgements_by_their_tokens() -> None:
    assert apply_method("self-verify", {}, 16)["n"] == 15  # 15 x (8192 + 10) <= 16 x 8192
    assert apply_method("self-verify", {"max_tokens": 100}, 20, verify_max_tokens=100)["n"] == 10
    assert apply_method("majority", {}, 16)["n"] == 16


def test_summaries_are_journaled_and_shown(tmp_path: Path) -> None:
    problems = [Problem("p", "What is 2+2?", "4", "math")]
    backend = MockBackend()
    evaluate(problems, out=tmp_path / "s", n=2, k=2, t=2, summarize_candidates=True,
             backend=backend, backend_config=BackendConfig(backend="mock"))  # fmt: skip
    summaries = [r for r in backend.calls if r.meta.get("phase") == "summarize"]
    assert len(summaries) == 2 and all(r.meta["step"] == 1 for r in summaries)
    agg = [r.messages[0]["content"] for r in backend.calls if r.meta.get("step") == 2
           and r.meta.get("phase") is None]  # fmt: skip
    assert agg and all(a.count("Summary: the candidate's approach") == 2 for a in agg)
    journal = Journal(tmp_path / "s" / "journal.sqlite")
    try:
        assert journal.count("summarize") == 2
    finally:
        journal.close()
    again = MockBackend()
    evaluate(problems, out=tmp_path / "s", resume=True, n=2, k=2, t=2, summarize_candidates=True,
             backend=again, backend_config=BackendConfig(backend="mock"))  # fmt: skip
    assert again.calls == []


def test_reasoning_effort_travels_with_every_request(tmp_path: Path) -> None:
    backend = MockBackend()
    evaluate([Problem("p", "1+1?", "2", "math")], out=tmp_path / "r", n=2, k=2, t=2,
             reasoning_effort="high", backend=backend,
             backend_config=BackendConfig(backend="mock"))  # fmt: skip
    assert backend.calls and all(r.reasoning_effort == "high" for r in backend.calls)


@pytest.mark.parametrize("text", ["\\boxed{B: 4000 cal}", "The answer is B.", "\\boxed{(B)}"])
def test_decorated_letters_score_zero_as_in_the_reference(text: str) -> None:
    problem = Problem("m", "Q?", "B", "mcq")
    assert get_task("mcq").grade(problem, text).score == 0.0
