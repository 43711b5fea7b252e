"""Local benchmark files: JSON lines, JSON and parquet, simple or verl schema (detected per row)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from recursa.benchmarks.base import Dataset, RowSkip, collect
from recursa.benchmarks.rows import row_problem
from recursa.errors import MissingDependencyError, UsageError
from recursa.tasks import Problem

SUFFIXES = (".jsonl", ".json", ".parquet")
_LIST_KEYS = ("data", "rows", "problems", "examples")
_PARQUET_COLUMNS = (
    {"question"},
    {"problem"},
    {"data_source", "prompt"},
    {"question_content", "public_test_cases"},
)


def looks_like_file(spec: str) -> bool:
    return spec.lower().endswith(SUFFIXES) or Path(spec).exists()


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc


def _jsonl_rows(path: Path) -> Iterator[tuple[int, Any]]:
    index = 0
    for line in _read_text(path).splitlines():
        if not line.strip():
            continue
        try:
            yield index, json.loads(line)
        except ValueError as exc:
            yield index, RowSkip(f"line is not valid JSON ({exc})")
        index += 1


def _json_rows(path: Path) -> list[tuple[int, Any]]:
    try:
        data = json.loads(_read_text(path))
    except ValueError as exc:
        raise UsageError(f"{path} is not valid JSON: {exc}") from exc
    if isinstance(data, dict):
        for key in _LIST_KEYS:
            if isinstance(data.get(key), list):
                data = data[key]
                break
        else:
            if data and all(isinstance(v, dict) for v in data.values()):
                # a mapping of id -> row: the key is the row's own id
                data = [{"id": k, **v} if "id" not in v else v for k, v in data.items()]
    if not isinstance(data, list):
        raise UsageError(
            f"{path} must hold a list of rows (or an object with a 'data' list), "
            f"not a {type(data).__name__}"
        )
    return list(enumerate(data))


def _parquet_rows(path: Path) -> list[tuple[int, Any]]:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise MissingDependencyError("pyarrow", "eval") from exc
    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ...
        raise UsageError(f"{path} is not a readable parquet file: {exc}") from exc
    columns = set(table.column_names)
    if not any(need <= columns for need in _PARQUET_COLUMNS):
        raise UsageError(
            f"{path} has columns {sorted(columns)}; a benchmark needs 'question' (or 'problem') "
            "and 'answer', or the verl columns 'data_source', 'prompt' and 'reward_model'"
        )
    return list(enumerate(table.to_pylist()))


def read_rows(path: Path) -> list[tuple[int, Any]]:
    """(row index, row) pairs; a row that did not decode is a RowSkip in place of the row."""
    if not path.is_file():
        raise UsageError(f"benchmark file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        rows = list(_jsonl_rows(path))
    elif suffix == ".json":
        rows = _json_rows(path)
    elif suffix == ".parquet":
        rows = _parquet_rows(path)
    else:
        raise UsageError(f"benchmark file {path} must end in .jsonl, .json or .parquet")
    if not rows:
        raise UsageError(f"benchmark file {path} holds no rows")
    return rows


def load_file(
    spec: str,
    *,
    limit: int | None,
    strict: bool,
    since: str | None = None,
    until: str | None = None,
    benchmark_format: str = "auto",
) -> Dataset:
    """Load a local file; rows missing what their task needs are skipped (or, strict, an error).
    With `since`/`until`, only rows whose `contest_date` lies in the window (LiveCodeBench)."""
    from recursa.benchmarks.lcb import as_date, in_window, lcb_row_problem

    path = Path(spec).expanduser()
    start, end = as_date(since, "--since"), as_date(until, "--until")

    def problems() -> Iterator[tuple[int, Problem | RowSkip]]:
        for index, row in read_rows(path):
            if isinstance(row, RowSkip):
                yield index, row
            elif (start or end) and not (isinstance(row, dict) and in_window(row, start, end)):
                continue
            elif benchmark_format == "lcb":
                yield index, lcb_row_problem(index, row)
            else:
                yield index, row_problem(index, row)

    return collect(spec, problems(), strict=strict, limit=limit)
