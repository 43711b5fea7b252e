"""The LiveCodeBench loader: schema, date window, file formats, and pickle-free decoding."""

from __future__ import annotations

import base64
import json
import os
import pickle
import subprocess
import sys
import zlib
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from recursa.benchmarks.lcb import (
    decode_private_tests,
    load_lcb_file,
    load_lcb_hub,
    looks_like_lcb,
    problem_from_row,
)
from recursa.errors import UsageError
from tests.helpers.lcb_rows import encode_pickle, encode_private, functional_row, stdin_row


def _rows() -> list[dict[str, Any]]:
    return [
        stdin_row("p1", "2025-01-15T00:00:00"),
        functional_row("p2", "2025-02-10T00:00:00"),
        stdin_row("p3", "2025-03-20T00:00:00"),
    ]


def _jsonl(tmp_path: Path, rows: list[dict[str, Any]]) -> Path:
    path = tmp_path / "lcb.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_row_becomes_a_code_problem() -> None:
    problem = problem_from_row(functional_row())
    assert problem.task == "code" and problem.id == "two-sum"
    assert problem.meta["func_name"] == "twoSum"
    assert problem.meta["contest_date"] == "2025-04-01"
    assert problem.meta["public_tests"][0]["input"] == "[2,7,11,15]\n9"
    assert [t["output"] for t in problem.meta["private_tests"]] == ["[1, 2]", "[0, 1]"]
    assert problem.meta["starter_code"].startswith("class Solution")


def test_private_tests_decode_the_real_encoding() -> None:
    tests = [{"input": "1\n", "output": "2\n", "testtype": "stdin"}]
    assert decode_private_tests(encode_private(tests)) == tests
    assert decode_private_tests(json.dumps(tests)) == tests  # older rows: plain JSON
    assert decode_private_tests("") == []


def test_date_window(tmp_path: Path) -> None:
    path = _jsonl(tmp_path, _rows())
    assert [p.id for p in load_lcb_file(path)] == ["p1", "p2", "p3"]
    assert [p.id for p in load_lcb_file(path, since="2025-02-01")] == ["p2", "p3"]
    assert [p.id for p in load_lcb_file(path, until="2025-02-10")] == ["p1", "p2"]
    window = load_lcb_file(path, since=date(2025, 2, 1), until="2025-02-28")
    assert [p.id for p in window] == ["p2"]
    assert [p.id for p in load_lcb_file(path, limit=2)] == ["p1", "p2"]
    with pytest.raises(UsageError, match="--since must be a date"):
        load_lcb_file(path, since="last tuesday")


def test_json_and_parquet_files(tmp_path: Path) -> None:
    rows = _rows()
    as_json = tmp_path / "lcb.json"
    as_json.write_text(json.dumps(rows))
    assert [p.id for p in load_lcb_file(as_json)] == ["p1", "p2", "p3"]
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    as_parquet = tmp_path / "lcb.parquet"
    pq.write_table(pa.Table.from_pylist(rows), as_parquet)
    problems = load_lcb_file(as_parquet, since="2025-02-01")
    assert [p.id for p in problems] == ["p2", "p3"]
    assert problems[0].meta["private_tests"][0]["output"] == "[1, 2]"


def test_detection_and_schema_errors(tmp_path: Path) -> None:
    assert looks_like_lcb(stdin_row().keys())
    assert not looks_like_lcb(["problem", "answer"])
    broken = stdin_row()
    del broken["question_content"]
    with pytest.raises(UsageError, match="question_content"):
        problem_from_row(broken)
    bad_json = stdin_row()
    bad_json["public_test_cases"] = "[{"
    with pytest.raises(UsageError, match="public_test_cases is not valid JSON"):
        problem_from_row(bad_json)
    with pytest.raises(UsageError, match="does not exist"):
        load_lcb_file(tmp_path / "missing.jsonl")
    other = tmp_path / "lcb.csv"
    other.write_text("x")
    with pytest.raises(UsageError, match=r"\.jsonl, \.json or \.parquet"):
        load_lcb_file(other)


class _CreatesFile:
    """A pickle payload that would create a file when unpickled by plain pickle."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return (open, (self.path, "w"))


@pytest.mark.reliability
def test_malicious_pickle_is_refused_without_running(tmp_path: Path) -> None:
    target = tmp_path / "pwned.txt"
    payload = encode_pickle(_CreatesFile(str(target)))
    with pytest.raises(UsageError, match="not a plain string"):
        decode_private_tests(payload)
    assert not target.exists()
    row = stdin_row()
    row["private_test_cases"] = payload
    path = _jsonl(tmp_path, [row])
    with pytest.raises(UsageError, match="problem abc301_a: private_test_cases"):
        load_lcb_file(path)
    assert not target.exists()


@pytest.mark.reliability
@pytest.mark.parametrize(
    "value",
    [
        [{"input": "1", "output": "1"}],  # the tests themselves, not their JSON string
        {"input": "1"},
        b"[]",
        42,
        ("a", "b"),
    ],
)
def test_pickles_of_anything_but_a_string_are_refused(value: object) -> None:
    with pytest.raises(UsageError, match="only a JSON string is accepted"):
        decode_private_tests(encode_pickle(value))


@pytest.mark.reliability
def test_other_malformed_private_tests() -> None:
    with pytest.raises(UsageError, match="neither JSON nor base64"):
        decode_private_tests("not base64 at all!")
    with pytest.raises(UsageError, match="not JSON"):
        decode_private_tests(encode_pickle("this is no JSON"))
    with pytest.raises(UsageError, match="list of test objects"):
        decode_private_tests(encode_pickle(json.dumps({"input": "1"})))
    truncated = base64.b64encode(zlib.compress(pickle.dumps("[]")[:-2])).decode()
    with pytest.raises(UsageError, match="not a plain string"):
        decode_private_tests(truncated)


def test_unknown_release() -> None:
    with pytest.raises(UsageError, match="unknown LiveCodeBench release"):
        load_lcb_hub("release_v9")


def test_hub_without_network_fails_with_one_sentence(tmp_path: Path) -> None:
    pytest.importorskip("huggingface_hub")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    code = (
        "from recursa.benchmarks.lcb import load_lcb_hub\n"
        "from recursa.errors import RecursaError\n"
        "try:\n    load_lcb_hub()\nexcept RecursaError as exc:\n    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    message = out.stdout.strip()
    assert message.startswith("cannot download livecodebench/code_generation_lite (release_v6")
    assert "\n" not in message and "local file" in message
