"""Evaluation methods as strategies over the one engine, and how a generation budget sets them.

| method | engine settings | with `--budget B` (generations per problem) |
| --- | --- | --- |
| `rsa` | N, K, T as given | T = B / N |
| `majority` | T = 1 (independent samples, majority vote) | N = B |
| `self-refine` | K = 1 | T = B / N |
| `single-aggregation` | T = 2 | N = B / 2 |
| `self-verify` | T = 1, selection verify (a judgement per sample) | N = floor(B x M / (M + V)) |

The budget counts generated tokens in units of one generation (M = max tokens): a sample may
write M tokens, a judgement only V = `verify_max_tokens` (10), so N samples and their N
judgements cost N x (M + V) / M generations and self-verify takes the largest N that fits
(B = 16 at M = 8192: N = 15; each judgement also reads its candidate, prompt tokens that the
budget, like the paper's, does not count). For the other methods B must divide evenly; a
setting the method fixes (or the budget derives) may be given only with the value it implies.
A method is one `Method` object in the `METHODS` registry (plugins: `recursa.methods`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Literal

from recursa.config import RSAConfig
from recursa.errors import UsageError
from recursa.final_selection import SELECTIONS
from recursa.registry import Registry

_FLAGS = {"n": "-n", "k": "-k", "t": "-t"}


def _default(name: str) -> Any:
    return RSAConfig.model_fields[name].default


def _fix(values: dict[str, Any], name: str, value: Any, why: str) -> None:
    given = values.get(name)
    if given is not None and given != value and str(given) != str(value):
        flag = _FLAGS.get(name, f"--{name.replace('_', '-')}")
        raise UsageError(f"{why} sets {name.upper()} = {value}; drop {flag} {given}")
    values[name] = value


def _divide(budget: int, by: int, method: str, what: str) -> int:
    if budget < by or budget % by:
        raise UsageError(
            f"--budget {budget} does not divide into {what} for method {method}; "
            f"use a multiple of {by}"
        )
    return budget // by


@dataclass(frozen=True)
class Method:
    """A baseline (or RSA itself) as settings of the engine.

    `fixed`: the settings the method sets (T = 1 for majority, a selection for self-verify);
    `budget`: which of N or T a generation budget B sets, B / (N per step) for "t" and
    B / (generations per sample) for "n"."""

    name: str
    description: str
    fixed: dict[str, Any] = field(default_factory=dict)
    budget: Literal["n", "t"] = "t"

    def generations(self, config: RSAConfig) -> int:
        """Model calls per problem (without early stop): N x T, plus what the final
        selection asks (verify: one judgement per final candidate)."""
        return config.n * config.t + SELECTIONS.get(config.selection).extra_generations(config.n)

    def apply(self, values: dict[str, Any], budget: int | None) -> dict[str, Any]:
        """The flat settings with the method's own and the budget's values filled in."""
        out = dict(values)
        for name, value in self.fixed.items():
            _fix(out, name, value, f"method {self.name}")
        if budget is not None:
            if self.budget == "t":
                n = int(out.get("n") or _default("n"))
                t = _divide(budget, n, self.name, f"N = {n} per step")
                _fix(out, "t", t, "--budget")
            else:
                _fix(out, "n", self._budget_n(out, budget), "--budget")
        # K only matters from step 2 on; keep it valid (K <= N) when the user left it unset.
        if "k" not in values and int(out.get("t") or _default("t")) == 1:
            out["k"] = 1
        return out

    def _budget_n(self, out: dict[str, Any], budget: int) -> int:
        """N for a budget: B / T samples of T generations each when the final selection
        asks nothing; with a selection that does (verify), the largest N whose samples and
        selection calls fit: N x (T + cost) <= B, the cost in generations of M tokens."""
        t = int(out.get("t") or _default("t"))
        selection = SELECTIONS.get(str(out.get("selection") or _default("selection")))
        max_tokens = int(out.get("max_tokens") or _default("max_tokens"))
        cost = selection.sample_cost(max_tokens, out)
        if not cost:
            if t == 1:
                return budget
            return _divide(budget, t, self.name, "two steps" if t == 2 else f"{t} steps")
        n = int(Fraction(budget) / (t + cost))
        if n < 1:
            raise UsageError(
                f"--budget {budget} leaves no room for one sample and its judgement with method "
                f"{self.name}"
            )
        return n


def _method(name: str, obj: object) -> Method:
    if not isinstance(obj, Method):
        raise TypeError(f"method {name!r} must be a recursa Method, not {obj!r}")
    return obj


METHODS: Registry[Method] = Registry("method", "recursa.methods", check=_method)
METHODS.add("rsa", Method("rsa", "RSA with N, K, T as given"))
METHODS.add("majority", Method("majority", "T=1, majority vote of N samples", {"t": 1}, budget="n"))
METHODS.add("self-refine", Method("self-refine", "K=1: each candidate refined", {"k": 1}))
METHODS.add(
    "single-aggregation",
    Method("single-aggregation", "T=2: one aggregation step", {"t": 2}, budget="n"),
)
METHODS.add(
    "self-verify",
    Method(
        "self-verify",
        "T=1, the model judges each sample",
        {"t": 1, "selection": "verify"},
        budget="n",
    ),
)


def apply_method(
    method: str,
    values: dict[str, Any],
    budget: int | None,
    *,
    verify_max_tokens: int | None = None,
) -> dict[str, Any]:
    """The flat settings with the method's N, K, T filled in (see the module table);
    `verify_max_tokens` is the setting of that name, given apart."""
    if verify_max_tokens is not None:
        values = {**values, "verify_max_tokens": verify_max_tokens}
    return METHODS.get(method).apply(values, budget)


def generations_per_problem(method: str, config: RSAConfig) -> int:
    """Model calls per problem (without early stop)."""
    return METHODS.get(method).generations(config)
