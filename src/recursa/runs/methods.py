"""Evaluation methods as settings of the one engine, and how a generation budget sets them.

| method | engine settings | with `--budget B` (generations per problem) |
| --- | --- | --- |
| `rsa` | N, K, T as given | T = B / N |
| `majority` | T = 1 (independent samples, majority vote) | N = B |
| `self-refine` | K = 1 | T = B / N |
| `single-aggregation` | T = 2 | N = B / 2 |
| `self-verify` | T = 1, then one True/False judgement per sample | N = floor(B x M / (M + V)) |

The budget counts generated tokens in units of one generation (M = max tokens): a sample may
write M tokens, a judgement only V = `verify_max_tokens` (10), so N samples and their N
judgements cost N x (M + V) / M generations and self-verify takes the largest N that fits
(B = 16 at M = 8192: N = 15; each judgement also reads its candidate, prompt tokens that the
budget, like the paper's, does not count). For the other methods B must divide evenly; a
setting the method fixes (or the budget derives) may be given only with the value it implies.
"""

from __future__ import annotations

from typing import Any, Literal

from recursa.config import RSAConfig
from recursa.errors import UsageError

MethodName = Literal["rsa", "majority", "self-refine", "single-aggregation", "self-verify"]
METHODS: tuple[str, ...] = ("rsa", "majority", "self-refine", "single-aggregation", "self-verify")

_FLAGS = {"n": "-n", "k": "-k", "t": "-t"}


def _default(name: str) -> int:
    value = RSAConfig.model_fields[name].default
    assert isinstance(value, int)
    return value


def _fix(values: dict[str, Any], name: str, value: int, why: str) -> None:
    given = values.get(name)
    if given is not None and int(given) != value:
        raise UsageError(f"{why} sets {name.upper()} = {value}; drop {_FLAGS[name]} {given}")
    values[name] = value


def _divide(budget: int, by: int, method: str, what: str) -> int:
    if budget < by or budget % by:
        raise UsageError(
            f"--budget {budget} does not divide into {what} for method {method}; "
            f"use a multiple of {by}"
        )
    return budget // by


def verify_population_size(budget: int, max_tokens: int, verify_max_tokens: int) -> int:
    """Self-verify's N for a budget: the largest N with N x (M + V) <= B x M."""
    n = budget * max_tokens // (max_tokens + verify_max_tokens)
    if n < 1:
        raise UsageError(
            f"--budget {budget} leaves no room for one sample and its judgement with method "
            "self-verify"
        )
    return n


def apply_method(
    method: str,
    values: dict[str, Any],
    budget: int | None,
    *,
    verify_max_tokens: int = 10,
) -> dict[str, Any]:
    """The flat settings with the method's N, K, T filled in (see the module table)."""
    if method not in METHODS:
        raise UsageError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    out = dict(values)
    n = int(out.get("n") or _default("n"))
    if method == "rsa":
        if budget is not None:
            _fix(out, "t", _divide(budget, n, method, f"N = {n} per step"), "--budget")
    elif method == "majority":
        _fix(out, "t", 1, "method majority")
        if budget is not None:
            _fix(out, "n", budget, "--budget")
    elif method == "self-refine":
        _fix(out, "k", 1, "method self-refine")
        if budget is not None:
            _fix(out, "t", _divide(budget, n, method, f"N = {n} per step"), "--budget")
    elif method == "single-aggregation":
        _fix(out, "t", 2, "method single-aggregation")
        if budget is not None:
            _fix(out, "n", _divide(budget, 2, method, "two steps"), "--budget")
    else:  # self-verify
        _fix(out, "t", 1, "method self-verify")
        if budget is not None:
            max_tokens = int(out.get("max_tokens") or _default("max_tokens"))
            n = verify_population_size(budget, max_tokens, verify_max_tokens)
            _fix(out, "n", n, "--budget")
    # K only matters from step 2 on; keep it valid (K <= N) when the user left it unset.
    if "k" not in values and int(out.get("t") or _default("t")) == 1:
        out["k"] = 1
    return out


def generations_per_problem(method: str, config: RSAConfig) -> int:
    """Model calls per problem (without early stop)."""
    calls = config.n * config.t
    return calls + config.n if method == "self-verify" else calls
