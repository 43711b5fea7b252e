"""Record the published requirements of vLLM, TRL and verl releases into
tests/published_requirements.json (run by hand where a package index is reachable):

    python tests/published_requirements.py

Each release's METADATA is read the way pip reads it: `pip install --dry-run --no-deps
--report` for the vLLM wheels (pip fetches and discards the wheel; nothing is installed),
`pip download --no-deps` for the small TRL and verl wheels. The JSON is what
tests/test_packaging_compat.py checks recursa's extras and docs/BACKENDS.md against.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

OUT = Path(__file__).with_name("published_requirements.json")
#: Every vLLM release from 0.10.0 to 0.33.0.
VLLM = """0.10.0 0.10.1 0.10.1.1 0.10.2 0.11.0 0.11.1 0.11.2 0.12.0 0.13.0 0.14.0 0.14.1 0.15.0
0.15.1 0.16.0 0.17.0 0.17.1 0.18.0 0.18.1 0.19.0 0.19.1 0.20.0 0.20.1 0.20.2 0.21.0 0.22.0
0.22.1 0.23.0 0.24.0 0.25.0 0.25.1 0.26.0 0.27.0 0.27.1 0.28.0 0.29.0 0.30.0 0.31.0 0.32.0
0.33.0""".split()  # noqa: SIM905
TRL = ["1.16.0"]
VERL = ["0.8.0", "0.9.0", "0.9.1"]
PIP = [sys.executable, "-m", "pip", "-q"]
DRY_RUN = ["--no-cache-dir", "--dry-run", "--no-deps", "--ignore-installed"]
WANTED = frozenset({"torch", "transformers", "vllm", "trl"})


def _pick(requires: list[str]) -> dict[str, dict[str, str]]:
    """{extra or "": {package: specifier}} for the packages the table is about."""
    from packaging.requirements import Requirement

    picked: dict[str, dict[str, str]] = {}
    for line in requires:
        req = Requirement(line)
        if req.name.lower() not in WANTED:
            continue
        marker = str(req.marker or "")
        extra = re.search(r"extra\s*==\s*['\"]([^'\"]+)['\"]", marker)
        spec = ",".join(sorted(str(s) for s in req.specifier))
        picked.setdefault(extra.group(1) if extra else "", {})[req.name.lower()] = spec
    return picked


def _vllm(version: str) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        subprocess.run(
            [*PIP, "install", *DRY_RUN, "--report", str(report), f"vllm=={version}"],
            check=True,
        )
        meta = json.loads(report.read_text())["install"][0]["metadata"]
    return {"requires_python": meta.get("requires_python", ""), **_pick(meta["requires_dist"])}


def _wheel(package: str, version: str) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [*PIP, "download", "--no-deps", "-d", tmp, f"{package}=={version}"],
            check=True,
        )
        wheel = next(Path(tmp).glob("*.whl"))
        with zipfile.ZipFile(wheel) as zf:
            name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
            text = zf.read(name).decode()
    requires = [
        ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("Requires-Dist:")
    ]
    python = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in text.splitlines()
            if ln.startswith("Requires-Python:")
        ),
        "",
    )
    return {"requires_python": python, **_pick(requires)}


def main() -> None:
    data = {
        "vllm": {v: _vllm(v) for v in VLLM},
        "trl": {v: _wheel("trl", v) for v in TRL},
        "verl": {v: _wheel("verl", v) for v in VERL},
    }
    OUT.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
