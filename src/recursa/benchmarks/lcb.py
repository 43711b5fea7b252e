"""LiveCodeBench code generation (livecodebench/code_generation_lite): hub releases or a
local file in the same schema (.jsonl, .json or .parquet).

Each row holds `question_content`, `starter_code`, `public_test_cases` (a JSON list),
`private_test_cases` (base64 of zlib of a pickled JSON string, or plain JSON), `metadata`
(JSON with `func_name` for functional problems), `contest_date`, `platform`, `difficulty`.
Private tests are decoded without running pickle code: the unpickler refuses every global
and only a `str` result is accepted, then parsed as JSON.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import pickle
import zlib
from collections.abc import Iterable, Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

from recursa.benchmarks.base import Dataset, RowSkip
from recursa.benchmarks.spec import BenchmarkSpec
from recursa.errors import MissingDependencyError, RecursaError, UsageError
from recursa.tasks.base import Problem

HUB_REPO = "livecodebench/code_generation_lite"
#: Each release holds every problem up to it: release_vN is test.jsonl .. testN.jsonl.
RELEASES = {
    f"release_v{n}": ["test.jsonl", *(f"test{i}.jsonl" for i in range(2, n + 1))]
    for n in range(1, 7)
}
DEFAULT_RELEASE = "release_v6"
REQUIRED_COLUMNS = frozenset({"question_content", "public_test_cases"})
#: Decompressed private tests larger than this are refused (a zlib bomb guard).
MAX_PRIVATE_BYTES = 1 << 30


class _RefuseGlobals(pickle.Unpickler):
    """An unpickler that can build only plain data: any class or function is refused."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


_PICKLE_ERRORS = (
    pickle.UnpicklingError,
    EOFError,
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    RecursionError,
)


def _tests_list(value: Any, what: str) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        raise UsageError(f"{what} must be a JSON list of test objects")
    return value


def decode_private_tests(raw: Any, what: str = "private_test_cases") -> list[dict[str, Any]]:
    """The private tests of one row: plain JSON, or base64(zlib(pickle(JSON string))).
    Anything else, including a pickle of anything but a string, is a UsageError."""
    if raw is None or raw == "":
        return []
    if isinstance(raw, list):
        return _tests_list(raw, what)
    if not isinstance(raw, str):
        raise UsageError(f"{what} must be a string, not {type(raw).__name__}")
    text = raw.strip()
    if text.startswith("["):
        try:
            return _tests_list(json.loads(text), what)
        except ValueError:
            pass
    try:
        packed = base64.b64decode(text, validate=True)
        inflater = zlib.decompressobj()
        blob = inflater.decompress(packed, MAX_PRIVATE_BYTES)
    except (binascii.Error, ValueError, zlib.error) as exc:
        raise UsageError(f"{what} is neither JSON nor base64 of zlib data ({exc})") from exc
    if inflater.unconsumed_tail:
        raise UsageError(f"{what} decompresses to more than {MAX_PRIVATE_BYTES >> 20} MiB")
    try:
        value = _RefuseGlobals(io.BytesIO(blob)).load()
    except _PICKLE_ERRORS as exc:
        raise UsageError(f"{what} holds a pickle that is not a plain string: {exc}") from exc
    if not isinstance(value, str):
        raise UsageError(
            f"{what} holds a pickled {type(value).__name__}; only a JSON string is accepted"
        )
    try:
        return _tests_list(json.loads(value), what)
    except ValueError as exc:
        raise UsageError(f"{what} holds a string that is not JSON ({exc})") from exc


def _json_field(row: dict[str, Any], name: str, default: Any, what: str) -> Any:
    value = row.get(name)
    if value is None or value == "":
        return default
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError as exc:
        raise UsageError(f"{what}: {name} is not valid JSON ({exc})") from exc


def parse_date(value: Any) -> date | None:
    """A contest date ("2025-03-01T00:00:00", "2025-03-01" or a date) or None."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = str(value).strip().replace("Z", "+00:00")
    try:
        return datetime.fromisoformat(text).date()
    except ValueError:
        try:
            return date.fromisoformat(text[:10])
        except ValueError:
            return None


def as_date(value: date | str | None, flag: str) -> date | None:
    """A --since/--until value as a date; a malformed one is a UsageError."""
    if value is None or isinstance(value, date):
        return value
    parsed = parse_date(value)
    if parsed is None:
        raise UsageError(f"{flag} must be a date like 2025-02-01, not {value!r}")
    return parsed


def in_window(row: dict[str, Any], since: date | None, until: date | None) -> bool:
    """Whether a row's contest date lies in [since, until]; rows without a date are kept
    only when no window is set."""
    if since is None and until is None:
        return True
    day = parse_date(row.get("contest_date"))
    if day is None:
        return False
    return (since is None or day >= since) and (until is None or day <= until)


def problem_from_row(row: dict[str, Any], index: int = 0) -> Problem:
    """One LiveCodeBench row as a code Problem; tests and func_name go into `meta`."""
    pid = str(row.get("question_id") or row.get("id") or f"lcb-{index}")
    what = f"problem {pid}"
    missing = sorted(c for c in REQUIRED_COLUMNS if c not in row)
    if missing:
        raise UsageError(f"{what} lacks the LiveCodeBench column {missing[0]!r}")
    public = _tests_list(
        _json_field(row, "public_test_cases", [], what), f"{what}: public_test_cases"
    )
    private = decode_private_tests(row.get("private_test_cases"), f"{what}: private_test_cases")
    metadata = _json_field(row, "metadata", {}, what)
    if not isinstance(metadata, dict):
        raise UsageError(f"{what}: metadata must be a JSON object")
    day = parse_date(row.get("contest_date"))
    return Problem(
        id=pid,
        question=str(row["question_content"]),
        answer=None,
        task="code",
        meta={
            "title": row.get("question_title"),
            "platform": row.get("platform"),
            "difficulty": row.get("difficulty"),
            "contest_id": row.get("contest_id"),
            "contest_date": day.isoformat() if day else None,
            "starter_code": row.get("starter_code") or "",
            "func_name": metadata.get("func_name"),
            "public_tests": public,
            "private_tests": private,
        },
    )


def lcb_row_problem(index: int, row: Any) -> Problem | RowSkip:
    """A LiveCodeBench row as a problem, or the reason it cannot be used (for local files)."""
    if not isinstance(row, dict):
        return RowSkip(f"row is a {type(row).__name__}, not an object")
    try:
        return problem_from_row(row, index)
    except UsageError as exc:
        return RowSkip(str(exc))


def looks_like_lcb(columns: Iterable[str]) -> bool:
    """Whether a file's columns are LiveCodeBench's (for format detection)."""
    return set(columns) >= REQUIRED_COLUMNS


def iter_rows(path: Path) -> Iterator[dict[str, Any]]:
    """The rows of a .jsonl, .json (a list of objects) or .parquet file, streamed."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError as exc:
            raise MissingDependencyError("pyarrow", "eval") from exc
        for batch in pq.ParquetFile(path).iter_batches(batch_size=64):
            yield from batch.to_pylist()
        return
    if suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise UsageError(f"{path} is not valid JSON ({exc})") from exc
        if not isinstance(data, list):
            raise UsageError(f"{path} must hold a JSON list of problems")
        yield from data
        return
    if suffix != ".jsonl":
        raise UsageError(f"{path}: a LiveCodeBench file must be .jsonl, .json or .parquet")
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if line.strip():
                try:
                    yield json.loads(line)
                except ValueError as exc:
                    raise UsageError(f"{path}, line {number}: not valid JSON ({exc})") from exc


def load_lcb_file(
    path: str | Path,
    *,
    since: date | str | None = None,
    until: date | str | None = None,
    limit: int | None = None,
) -> list[Problem]:
    """Problems from a local file in LiveCodeBench's schema, within the date window."""
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"benchmark file {p} does not exist")
    return _select(iter_rows(p), as_date(since, "--since"), as_date(until, "--until"), limit)


def _select(
    rows: Iterable[Any], since: date | None, until: date | None, limit: int | None
) -> list[Problem]:
    problems: list[Problem] = []
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            raise UsageError(f"row {index + 1} is not an object")
        if in_window(row, since, until):
            problems.append(problem_from_row(row, index))
            if limit is not None and len(problems) >= limit:
                break
    return problems


def load_lcb_hub(
    release: str = DEFAULT_RELEASE,
    *,
    since: date | str | None = None,
    until: date | str | None = None,
    limit: int | None = None,
) -> list[Problem]:
    """A LiveCodeBench release from the Hugging Face hub (downloaded once, then cached by
    huggingface_hub), within the date window."""
    if release not in RELEASES:
        raise UsageError(f"unknown LiveCodeBench release {release!r}; one of {sorted(RELEASES)}")
    start, end = as_date(since, "--since"), as_date(until, "--until")
    try:
        from huggingface_hub import hf_hub_download
    except ImportError as exc:
        raise MissingDependencyError("huggingface_hub", "eval") from exc
    paths = []
    for name in RELEASES[release]:
        try:
            paths.append(Path(hf_hub_download(HUB_REPO, name, repo_type="dataset")))
        except Exception as exc:  # offline, proxy, auth: each library raises its own
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise RecursaError(
                f"cannot download {HUB_REPO} ({release}, {name}) from the Hugging Face hub "
                f"({reason[:200]}); pass a local file in the same schema instead"
            ) from exc
    return _select((row for p in paths for row in iter_rows(p)), start, end, limit)


def _load_v6(
    arg: str, *, since: str | None, until: str | None, limit: int | None, **_: Any
) -> Dataset:
    return Dataset(
        name="lcb-v6",
        problems=load_lcb_hub("release_v6", since=since, until=until, limit=limit),
    )


SPEC_V6 = BenchmarkSpec(
    "lcb-v6",
    "LiveCodeBench release_v6 (livecodebench/code_generation_lite on the hub; "
    "--since/--until pick contest dates)",
    _load_v6,
    uses=frozenset({"since", "until"}),
)
