"""The hostile-input cases of tests/reliability/test_reliability_hostile.py: the files and
servers they point at (`Env`), the files themselves (`write_files`) and the table (`CASES`)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.helpers.fault_server import sum_dataset

KEY = "sk-hostile-0123456789abcdef"
MOCK = ["--backend", "mock", "-n", "2", "-k", "1", "-t", "2"]


@dataclass
class Env:
    """Files and servers the cases point at; `prev` is a finished run that must not change."""

    dir: Path
    work: Path
    prev: Path
    unfinished: Path
    gone: Path
    key_server: str
    huge_server: str
    utf8_server: str
    closed_url: str

    def __truediv__(self, name: str) -> str:
        return str(self.dir / name)

    def out(self) -> str:
        return str(self.work / "new-run")

    def openai(self, url: str) -> list[str]:
        # The key travels in OPENAI_API_KEY (set for every case), as recursa advises: on the
        # command line it would be visible to other users and recursa warns about it.
        return ["--backend", "openai", "--base-url", url, "--max-retries", "0"]


@dataclass
class Case:
    name: str
    argv: Callable[[Env], list[str]]
    code: int
    says: str
    #: Limit on the size of any file the process writes (a disk that fills up).
    fsize: int | None = None
    #: Changes the case's working directory first (it holds `data.jsonl`, `prev`'s data).
    prepare: Callable[[Env], None] | None = None


def rows(*lines: object) -> str:
    return "".join(json.dumps(line) + "\n" for line in lines)


def write_files(d: Path) -> None:
    (d / "ok.jsonl").write_text(rows({"question": "What is 1 + 2?", "answer": "3"}))
    (d / "other.jsonl").write_text(rows({"question": "What is 2 + 2?", "answer": "4"}))
    (d / "empty.jsonl").write_text("")
    (d / "trunc.json").write_text('[{"question": "What is 1 + 2?", "answer": "3"}, {"quest')
    (d / "trunc.jsonl").write_text(rows({"question": "What is 1 + 2?", "answer": "3"}) + '{"q')
    (d / "latin1.jsonl").write_bytes(
        '{"question": "Qu\'est-ce que é?", "answer": "3"}\n'.encode("latin-1")
    )
    (d / "fields.jsonl").write_text(rows({"answer": "3"}, {"text": "What?"}))
    (d / "types.jsonl").write_text(rows({"question": ["What", "is"], "answer": {"x": 1}}))
    (d / "answer-type.jsonl").write_text(rows({"question": "What is 1 + 2?", "answer": [3]}))
    (d / "empty-q.jsonl").write_text(rows({"question": "  ", "answer": "3"}))
    (d / "long.jsonl").write_text(rows({"question": "word " * 3000, "answer": "3"}))
    (d / "bad-ref.jsonl").write_text(rows({"question": "Simplify x.", "answer": "\\frac{1}{"}))
    (d / "bad-letter.jsonl").write_text(
        rows({"question": "Q?", "options": ["a", "b"], "answer": "Z"})
    )
    (d / "bad-task.jsonl").write_text(rows({"question": "Q?", "answer": "3", "task": "poetry"}))
    (d / "data.csv").write_text("question,answer\nWhat is 1 + 2?,3\n")
    (d / "bad.yaml").write_text("n: [1, 2\n")
    (d / "unknown.yaml").write_text("population_size: 4\n")
    (d / "model.gguf").write_text("this is a text file, not a model\n")
    (d / "trunc.gguf").write_bytes(b"GGUF\x03\x00\x00\x00" + b"\x00" * 64)
    (d / "a-file").write_text("a regular file\n")
    sum_dataset(d / "many.jsonl", 40)
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"foo": [1], "bar": ["x"]}), d / "columns.parquet")
    pq.write_table(pa.table({"question": ["What is 1 + 2?"], "answer": ["3"]}), d / "ok.parquet")
    whole = (d / "ok.parquet").read_bytes()
    (d / "trunc.parquet").write_bytes(whole[: len(whole) // 2])


CASES = [
    # CLI values of the wrong type or out of range
    Case(
        "n-not-a-number",
        lambda e: ["eval", e / "ok.jsonl", "--out", e.out(), *MOCK, "-n", "abc"],
        2,
        "invalid int value: 'abc'",
    ),
    Case(
        "n-zero", lambda e: ["eval", e / "ok.jsonl", "--out", e.out(), *MOCK, "-n", "0"], 2, "n=0"
    ),
    Case(
        "k-above-n",
        lambda e: ["eval", e / "ok.jsonl", "--out", e.out(), *MOCK, "-n", "2", "-k", "5"],
        2,
        "K (5) cannot exceed",
    ),
    Case(
        "temperature-negative",
        lambda e: ["eval", e / "ok.jsonl", "--out", e.out(), *MOCK, "--temperature", "-1"],
        2,
        "temperature=-1.0",
    ),
    Case(
        "top-p-above-1",
        lambda e: ["eval", e / "ok.jsonl", "--out", e.out(), *MOCK, "--top-p", "2"],
        2,
        "top_p=2.0",
    ),
    Case(
        "max-tokens-zero", lambda e: ["solve", "q", *MOCK, "--max-tokens", "0"], 2, "max_tokens=0"
    ),
    Case("timeout-zero", lambda e: ["solve", "q", *MOCK, "--timeout", "0"], 2, "timeout=0.0"),
    Case(
        "concurrency-zero",
        lambda e: ["solve", "q", *MOCK, "--concurrency", "0"],
        2,
        "concurrency=0",
    ),
    Case(
        "seed-not-an-int",
        lambda e: ["solve", "q", *MOCK, "--seed", "1.5"],
        2,
        "invalid int value: '1.5'",
    ),
    Case(
        "early-stop-unknown",
        lambda e: ["solve", "q", *MOCK, "--early-stop", "maybe"],
        2,
        "early stop must be",
    ),
    Case(
        "budget-zero",
        lambda e: ["eval", e / "ok.jsonl", "--out", e.out(), *MOCK, "--budget", "0"],
        2,
        "budget=0",
    ),
    Case(
        "retry-delay-negative",
        lambda e: ["solve", "q", *MOCK, "--retry-base-delay", "-1"],
        2,
        "retry_base_delay=-1.0",
    ),
    Case("n-ctx-too-small", lambda e: ["solve", "q", *MOCK, "--n-ctx", "10"], 2, "n_ctx=10"),
    Case(
        "config-missing",
        lambda e: ["solve", "q", *MOCK, "--config", e / "none.yaml"],
        2,
        "none.yaml does not exist",
    ),
    Case(
        "config-not-yaml",
        lambda e: ["solve", "q", *MOCK, "--config", e / "bad.yaml"],
        2,
        "is not valid YAML",
    ),
    Case(
        "config-unknown-setting",
        lambda e: ["solve", "q", *MOCK, "--config", e / "unknown.yaml"],
        2,
        "unknown setting 'population_size'",
    ),
    # unknown names
    Case(
        "unknown-benchmark",
        lambda e: ["eval", "aime26", "--out", e.out(), *MOCK],
        2,
        "unknown benchmark 'aime26'",
    ),
    Case(
        "unknown-rg-task",
        lambda e: ["eval", "rg:no_such_task", "--out", e.out(), *MOCK],
        2,
        "no task 'no_such_task'",
    ),
    Case(
        "unknown-method",
        lambda e: ["eval", e / "ok.jsonl", "--out", e.out(), *MOCK, "--method", "vote"],
        2,
        "unknown method 'vote'; choose one of rsa, majority",
    ),
    Case(
        "unknown-backend",
        lambda e: ["solve", "q", "--backend", "gpt"],
        2,
        "unknown backend 'gpt'; choose one of llamacpp",
    ),
    Case(
        "unknown-task",
        lambda e: ["solve", "q", *MOCK, "--task", "poetry"],
        2,
        "unknown task 'poetry'; choose one of general, math",
    ),
    Case(
        "unknown-task-in-a-row",
        lambda e: ["eval", e / "bad-task.jsonl", "--out", e.out(), *MOCK, "--strict"],
        2,
        "unknown task 'poetry'",
    ),
    # dataset files
    Case(
        "dataset-missing",
        lambda e: ["eval", e / "none.jsonl", "--out", e.out(), *MOCK],
        2,
        "none.jsonl does not exist",
    ),
    Case(
        "dataset-empty",
        lambda e: ["eval", e / "empty.jsonl", "--out", e.out(), *MOCK],
        2,
        "holds no rows",
    ),
    Case(
        "dataset-truncated-json",
        lambda e: ["eval", e / "trunc.json", "--out", e.out(), *MOCK],
        2,
        "is not valid JSON",
    ),
    Case(
        "dataset-truncated-jsonl",
        lambda e: ["eval", e / "trunc.jsonl", "--out", e.out(), *MOCK, "--strict"],
        2,
        "row 1 cannot be used: line is not valid JSON",
    ),
    Case(
        "dataset-truncated-parquet",
        lambda e: ["eval", e / "trunc.parquet", "--out", e.out(), *MOCK],
        2,
        "is not a readable parquet file",
    ),
    Case(
        "dataset-not-utf8",
        lambda e: ["eval", e / "latin1.jsonl", "--out", e.out(), *MOCK],
        2,
        "is not UTF-8 text",
    ),
    Case(
        "dataset-unknown-format",
        lambda e: ["eval", e / "data.csv", "--out", e.out(), *MOCK],
        2,
        "must end in .jsonl, .json or .parquet",
    ),
    Case(
        "parquet-wrong-columns",
        lambda e: ["eval", e / "columns.parquet", "--out", e.out(), *MOCK],
        2,
        "has columns ['bar', 'foo']",
    ),
    Case(
        "rows-missing-fields",
        lambda e: ["eval", e / "fields.jsonl", "--out", e.out(), *MOCK],
        2,
        "all 2 rows were skipped (row 0: row has neither question",
    ),
    Case(
        "rows-wrong-types",
        lambda e: ["eval", e / "types.jsonl", "--out", e.out(), *MOCK, "--strict"],
        2,
        "the question is a list, not text",
    ),
    Case(
        "answer-wrong-type",
        lambda e: ["eval", e / "answer-type.jsonl", "--out", e.out(), *MOCK, "--strict"],
        2,
        "the reference answer is a list",
    ),
    Case(
        "question-empty-in-a-row",
        lambda e: ["eval", e / "empty-q.jsonl", "--out", e.out(), *MOCK],
        2,
        "no question text",
    ),
    Case("question-empty", lambda e: ["solve", "", *MOCK], 2, "the question is empty"),
    Case(
        "question-beyond-context",
        lambda e: ["eval", e / "long.jsonl", "--out", e.out(), *MOCK, "--context-tokens", "512"],
        1,
        "problem '0': the problem takes 3011 tokens, more than the 512-token context window",
    ),
    Case(
        "ground-truth-unparseable",
        lambda e: ["eval", e / "bad-ref.jsonl", "--out", e.out(), *MOCK, "--strict"],
        2,
        "'\\\\frac{1}{' has unbalanced braces",
    ),
    Case(
        "ground-truth-not-an-option",
        lambda e: ["eval", e / "bad-letter.jsonl", "--out", e.out(), *MOCK, "--strict"],
        2,
        "answer 'Z' is not an option letter",
    ),
    # the run directory
    Case(
        "out-under-a-file",
        lambda e: ["eval", e / "ok.jsonl", "--out", e / "a-file/run", *MOCK],
        2,
        "cannot create the run directory",
    ),
    Case(
        "out-is-a-file",
        lambda e: ["eval", e / "ok.jsonl", "--out", e / "a-file", *MOCK],
        2,
        "exists and is not a directory",
    ),
    Case(
        "out-holds-another-run",
        lambda e: ["eval", e / "other.jsonl", "--out", str(e.prev), *MOCK],
        2,
        "already holds a run",
    ),
    Case(
        "resume-changed-settings",
        lambda e: ["eval", "data.jsonl", "--out", str(e.prev), *MOCK, "-t", "3", "--resume"],
        2,
        "used t=2, this command asks for t=3",
    ),
    Case(
        "resume-changed-data",
        lambda e: ["eval", "data.jsonl", "--out", str(e.prev), *MOCK, "--resume"],
        2,
        "the benchmark's problems differ",
        prepare=lambda e: shutil.copy(e.dir / "other.jsonl", e.work / "data.jsonl"),
    ),
    Case(
        "resume-nothing",
        lambda e: ["eval", e / "ok.jsonl", "--out", e.out(), *MOCK, "--resume"],
        2,
        "holds no run to resume",
    ),
    Case(
        "disk-full",
        lambda e: ["eval", e / "many.jsonl", "--out", e.out(), *MOCK, "-n", "4"],
        1,
        "disk I/O error",
        fsize=60_000,
    ),
    # models and servers
    Case(
        "model-not-gguf",
        lambda e: ["solve", "q", "--model", e / "model.gguf"],
        2,
        "is not a GGUF file",
    ),
    Case(
        "model-truncated-gguf",
        lambda e: ["solve", "q", "--model", e / "trunc.gguf"],
        2,
        "llama.cpp could not load model file",
    ),
    Case(
        "base-url-not-http",
        lambda e: ["solve", "q", "--backend", "openai", "--base-url", "ftp://x"],
        2,
        "must start with http:// or https://",
    ),
    Case(
        "server-unreachable",
        lambda e: ["eval", e / "ok.jsonl", "--out", e.out(), *MOCK, *e.openai(e.closed_url)],
        1,
        "kept failing after 1 attempt (last error: connection to",
    ),
    Case(
        "api-key-wrong",
        lambda e: ["eval", e / "ok.jsonl", "--out", e.out(), *MOCK, *e.openai(e.key_server)],
        1,
        "rejected the API key (HTTP 401)",
    ),
    Case(
        "completion-10-mb",
        lambda e: [
            "eval",
            e / "ok.jsonl",
            "--out",
            e.out(),
            *MOCK,
            *e.openai(e.huge_server),
            "--max-tokens",
            "64",
        ],
        1,
        "sent a completion of 10,485,760 characters for max_tokens=64",
    ),
    Case(
        "completion-not-utf8",
        lambda e: ["eval", e / "ok.jsonl", "--out", e.out(), *MOCK, *e.openai(e.utf8_server)],
        1,
        "malformed response",
    ),
    Case(
        "resume-api-key-wrong",
        lambda e: [
            "eval",
            e / "many.jsonl",
            "--out",
            str(e.unfinished),
            *MOCK,
            *e.openai(e.key_server),
            "--resume",
        ],
        1,
        "rejected the API key",
    ),
    Case(
        "resume-server-gone",
        lambda e: [
            "eval",
            e / "many.jsonl",
            "--out",
            str(e.gone),
            *MOCK,
            *e.openai(gone_url(e)),
            "--resume",
        ],
        1,
        "connection to",
    ),
]


def gone_url(e: Env) -> str:
    """The URL the `gone` run was made with; its server has been stopped since."""
    settings = json.loads((e.gone / "settings.json").read_text())
    return str(settings["backend"]["base_url"])
