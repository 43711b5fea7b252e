"""recursa's GPU extras against the published requirements of vLLM, TRL and verl.

tests/published_requirements.json holds what each release's METADATA requires (recorded by
tests/published_requirements.py). A pin that no release satisfies, a range that admits a
release nobody checked, or a docs table that disagrees fails here rather than on a user's GPU
machine.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
DATA: dict[str, Any] = json.loads((ROOT / "tests" / "published_requirements.json").read_text())
VLLM_RELEASES = sorted(DATA["vllm"], key=Version)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    tomllib = pytest.importorskip("tomli")


def extras() -> dict[str, dict[str, SpecifierSet]]:
    """{extra: {package: specifier}} from pyproject.toml, recursa[...] references expanded."""
    raw = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]

    def expand(name: str) -> dict[str, SpecifierSet]:
        out: dict[str, SpecifierSet] = {}
        for line in raw[name]:
            req = Requirement(line)
            if req.name == "recursa":
                for inner in req.extras:
                    for pkg, spec in expand(inner).items():
                        out[pkg] = out.get(pkg, SpecifierSet()) & spec
            else:
                out[req.name] = out.get(req.name, SpecifierSet()) & req.specifier
        return out

    return {name: expand(name) for name in raw}


def pin(spec: str) -> str:
    """The version of an exact `==X` requirement."""
    match = re.fullmatch(r"==\s*([0-9.]+)", spec.strip())
    assert match, spec
    return match.group(1)


def torch_of(vllm: str) -> str:
    return pin(DATA["vllm"][vllm][""]["torch"])


def admitted(spec: SpecifierSet) -> list[str]:
    return [v for v in VLLM_RELEASES if Version(v) in spec]


def trl_vllm(trl: str) -> SpecifierSet:
    return SpecifierSet(DATA["trl"][trl]["vllm"]["vllm"])


def trl_release(spec: SpecifierSet) -> str:
    releases = [v for v in DATA["trl"] if Version(v) in spec]
    assert releases, f"no recorded TRL release satisfies {spec}"
    return max(releases, key=Version)


def rl_vllm_releases() -> list[str]:
    """vLLM releases `recursa[rl-vllm]` admits that also satisfy TRL and the torch pin."""
    e = extras()["rl-vllm"]
    trl = trl_release(e["trl"])
    torch = pin(str(e["torch"]))
    return [v for v in admitted(e["vllm"]) if Version(v) in trl_vllm(trl) and torch_of(v) == torch]


def test_the_vllm_extra_has_a_checked_upper_bound() -> None:
    spec = extras()["vllm"]["vllm"]
    releases = admitted(spec)
    assert releases, "no recorded vLLM release satisfies the vllm extra"
    newest = Version(VLLM_RELEASES[-1])
    # The next minor release after the newest recorded one is not admitted.
    assert Version(f"{newest.major}.{newest.minor + 1}.0") not in spec
    assert releases[0] == "0.10.0" and releases[-1] == VLLM_RELEASES[-1]


def test_every_rl_vllm_release_fits_trl_and_the_torch_pin() -> None:
    """TRL 1.16's `vllm` extra: vllm>=0.22,<=0.31; the rl extra's torch==2.13.0; each vLLM
    release pins one torch."""
    e = extras()["rl-vllm"]
    releases = admitted(e["vllm"])
    assert releases, "recursa[rl-vllm] admits no recorded vLLM release"
    assert releases == rl_vllm_releases(), "a vLLM release in the range clashes with TRL/torch"
    trl = trl_release(e["trl"])
    assert all(Version(v) in trl_vllm(trl) for v in releases)
    # The range is as wide as the constraints allow (no release that fits is left out).
    fits = [
        v
        for v in VLLM_RELEASES
        if Version(v) in trl_vllm(trl) and torch_of(v) == pin(str(e["torch"]))
    ]
    assert releases == fits


def test_the_rl_extras_transformers_range_meets_every_admitted_vllm() -> None:
    e = extras()["rl-vllm"]
    for v in rl_vllm_releases():
        theirs = SpecifierSet(DATA["vllm"][v][""]["transformers"])
        lower = min(
            (Version(s.version) for s in theirs if s.operator in (">=", "==")), default=None
        )
        assert lower is not None and lower in e["transformers"], (v, str(theirs))


def test_the_rl_extra_pins_a_torch_some_vllm_release_pins() -> None:
    torch = pin(str(extras()["rl"]["torch"]))
    assert any(torch_of(v) == torch for v in VLLM_RELEASES)


def compat_table() -> str:
    """docs/BACKENDS.md's compatibility table, from the recorded requirements."""
    e = extras()
    trl = trl_release(e["rl"]["trl"])
    rl_vllm = rl_vllm_releases()
    vllm_all = admitted(e["vllm"]["vllm"])
    torches = sorted({torch_of(v) for v in vllm_all}, key=Version)
    rows = [
        "| recursa extra | vLLM | torch | TRL | verl |",
        "| --- | --- | --- | --- | --- |",
        f"| `recursa[vllm]` | {vllm_all[0]} to {vllm_all[-1]} | the one each vLLM pins "
        f"({torches[0]} to {torches[-1]}) | | |",
        f"| `recursa[rl]` | | {pin(str(e['rl']['torch']))} | {trl} | |",
        f"| `recursa[rl-vllm]` | {rl_vllm[0]} to {rl_vllm[-1]} | "
        f"{pin(str(e['rl-vllm']['torch']))} | {trl} (vLLM {DATA['trl'][trl]['vllm']['vllm']}) | |",
    ]
    for verl, req in sorted(DATA["verl"].items(), key=lambda kv: Version(kv[0])):
        extra = req.get("vllm", {})
        torch = pin(extra["torch"]) if "torch" in extra else "the one vLLM pins"
        rows.append(
            f"| none: `rl verl-config` on a cluster with `verl[vllm]=={verl}` | "
            f"{extra.get('vllm', '')} | {torch} | | {verl} |"
        )
    return "\n".join(rows)


def vllm_table() -> str:
    """docs/BACKENDS.md's per-release table: the torch and transformers each vLLM requires."""
    rows = ["| vLLM | torch | transformers | Python |", "| --- | --- | --- | --- |"]
    for v in VLLM_RELEASES:
        req = DATA["vllm"][v]
        rows.append(
            f"| {v} | {torch_of(v)} | {req['']['transformers']} | {req['requires_python']} |"
        )
    return "\n".join(rows)


@pytest.mark.parametrize("table", [compat_table, vllm_table])
def test_backends_md_shows_the_tables_built_from_the_requirements(table: Any) -> None:
    docs = (ROOT / "docs" / "BACKENDS.md").read_text()
    assert table() in docs, "docs/BACKENDS.md is out of date; paste:\n" + table()
