"""What a registered benchmark is: a name, a description and a loader with its options.

A loader is called as `loader(arg, **options)`: `arg` is the text after `NAME:` (empty for
a bare `NAME`), `options` are `LoadOptions`' fields. It returns a `Dataset`, or any iterable
of `Problem`s (a plugin's loader), which `load_benchmark` checks row by row with each problem's
task family and collects into a Dataset.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from recursa.benchmarks.base import Dataset
from recursa.tasks import Problem

Loader = Callable[..., Dataset | Iterable[Problem]]


class LoadOptions(BaseModel):
    """The loader options every benchmark is offered (each uses those that apply to it)."""

    model_config = ConfigDict(extra="forbid")

    limit: int | None = Field(None, ge=1, description="Keep the first N problems.")
    size: int | None = Field(None, description="Generated or sampled problems.")
    seed: int = Field(0, description="Seed of procedural generation.")
    strict: bool = Field(False, description="A row missing what its task needs is an error.")
    since: str | None = Field(None, description="Contest date on or after (YYYY-MM-DD).")
    until: str | None = Field(None, description="Contest date on or before (YYYY-MM-DD).")
    benchmark_format: Literal["auto", "lcb"] = Field("auto", description="Local file schema.")


@dataclass(frozen=True)
class BenchmarkSpec:
    """A registered benchmark. `takes_arg`: written `NAME:ARG` (rg:TASK,...), else `NAME`;
    `uses`: the options beyond limit, size, seed and strict it understands (since, until)."""

    name: str
    description: str
    loader: Loader
    takes_arg: bool = False
    uses: frozenset[str] = field(default_factory=frozenset)
    #: How the name is written in lists of choices ("rg:TASK[,TASK...]").
    usage: str = ""

    @property
    def shown(self) -> str:
        return self.usage or (f"{self.name}:ARG" if self.takes_arg else self.name)
