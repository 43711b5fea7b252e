"""Evaluation settings, the run's recorded settings, and the check that a resume matches them."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from recursa.config import BackendConfig, RSAConfig, resumable_settings
from recursa.errors import UsageError
from recursa.runs.methods import METHODS
from recursa.sandbox import SandboxConfig
from recursa.tasks import Problem

#: Evaluation settings that change how fast a run goes, not what it produces (with the
#: backend's, `resumable_settings`): a resume may change them.
RESUMABLE_EVAL: frozenset[str] = frozenset({"eval.sandbox.max_parallel_tests"})


def resumable_changes() -> frozenset[str]:
    """Every recorded setting a resume may change, as settings.json's dotted keys."""
    return RESUMABLE_EVAL | {f"backend.{name}" for name in resumable_settings()}


class EvalConfig(BaseModel):
    """How a benchmark is evaluated, beside the RSA and backend settings."""

    model_config = ConfigDict(extra="forbid")

    method: str = Field(
        "rsa",
        description="rsa, majority (T=1, vote), self-refine (K=1), single-aggregation (T=2) "
        "or self-verify (T=1, the model judges each sample); any name in the method registry.",
        json_schema_extra={"registry": "methods"},
    )
    budget: int | None = Field(
        None,
        ge=1,
        description="Generations per problem; the method derives N or T from it "
        "(docs/EVALUATION.md), so methods compare on matched compute.",
        json_schema_extra={"metavar": "GENERATIONS"},
    )
    limit: int | None = Field(
        None,
        ge=1,
        description="Evaluate only the first N problems.",
        json_schema_extra={"metavar": "N"},
    )
    size: int | None = Field(
        None,
        ge=1,
        description="How many problems: per task for rg:TASK (default 100), in all for "
        "rg-games/rg-cognition (100, the paper's proportions), SuperGPQA (the paper's first N of "
        "1000), deepscaler (a seeded sample).",
        json_schema_extra={"metavar": "N"},
    )
    strict: bool = Field(
        False, description="Stop at the first unusable dataset row instead of skipping it."
    )
    since: str | None = Field(
        None,
        description="LiveCodeBench: only problems whose contest date is on or after this day.",
        json_schema_extra={"metavar": "YYYY-MM-DD"},
    )
    until: str | None = Field(
        None,
        description="LiveCodeBench: only problems whose contest date is on or before this day.",
        json_schema_extra={"metavar": "YYYY-MM-DD"},
    )
    benchmark_format: Literal["auto", "lcb"] = Field(
        "auto",
        description="Local files: 'auto' detects each row's schema (LiveCodeBench, simple or "
        "verl); 'lcb' reads every row as LiveCodeBench.",
    )
    sandbox: SandboxConfig = Field(
        default_factory=SandboxConfig,
        description="How code problems run their tests (the 'code sandbox' flags).",
    )

    @field_validator("method")
    @classmethod
    def _known_method(cls, name: str) -> str:
        return METHODS.validate(name)


def dataset_fingerprint(problems: list[Problem]) -> str:
    """A digest of the problems (ids, tasks, texts, references, grading data)."""
    h = hashlib.blake2b(digest_size=16)
    for p in problems:
        row = [p.id, p.task, p.question, p.answer, p.meta]
        h.update(json.dumps(row, sort_keys=True, default=str, ensure_ascii=False).encode())
        h.update(b"\n")
    return h.hexdigest()


def run_settings(
    benchmark: str,
    rsa: RSAConfig,
    backend: BackendConfig,
    evaluation: EvalConfig,
    dataset: dict[str, Any],
) -> dict[str, Any]:
    """What settings.json records (never the API key)."""
    return {
        "benchmark": benchmark,
        "eval": evaluation.model_dump(mode="json"),
        "rsa": rsa.model_dump(mode="json"),
        "backend": backend.recorded(),
        "dataset": dataset,
    }


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for key, value in obj.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): obj}


def check_same_run(recorded: dict[str, Any], current: dict[str, Any]) -> None:
    """UsageError naming the first setting in which a resume differs from the recorded run
    (the problems are compared once `current` holds the loaded dataset's fingerprint)."""
    old, new = _flatten(recorded), _flatten(current)
    resumable = resumable_changes()
    for key in sorted(set(old) | set(new)):
        if key in resumable or key.startswith("dataset."):
            continue
        if old.get(key) != new.get(key):
            name = key.split(".", 1)[-1]
            if key not in old:
                raise UsageError(
                    f"cannot resume: the run in this directory was made by a recursa without "
                    f"the setting {name} (this one uses {name}={new.get(key)!r}), so its "
                    "prompts or sampling may differ; choose another --out"
                )
            raise UsageError(
                f"cannot resume: the run in this directory used {name}={old.get(key)!r}, this "
                f"command asks for {name}={new.get(key)!r}; resume with the run's settings "
                "(see its settings.json) or choose another --out"
            )
    fingerprint = new.get("dataset.fingerprint")
    if fingerprint is not None and old.get("dataset.fingerprint") != fingerprint:
        raise UsageError(
            "cannot resume: the benchmark's problems differ from those of the run in this "
            "directory (the data file or the generator changed); choose another --out"
        )
