"""The sandbox uses the strongest tier this machine allows, asserted rather than skipped: a
broken namespace setup must fail here, not quietly send model-written code to a weaker tier.

The expected tier is RECURSA_EXPECT_SANDBOX_TIER when set (`.ci/run` sets it), else what an
independent probe with util-linux's `unshare` says the machine supports."""

from __future__ import annotations

import pytest

from recursa.sandbox import Sandbox, SandboxConfig, SandboxUnavailable
from recursa.sandbox.runner import run_blocking
from tests.sandbox_tiers import expected_tier

pytestmark = pytest.mark.reliability


def test_auto_picks_the_strongest_tier_the_machine_supports() -> None:
    want = expected_tier()
    if want == "process":  # auto never settles for it: it must be asked for by name
        with pytest.raises(SandboxUnavailable, match="--isolation process"):
            run_blocking(Sandbox(SandboxConfig(isolation="auto")).isolation())
        return
    iso = run_blocking(Sandbox(SandboxConfig(isolation="auto")).isolation())
    assert iso.mode == want, (
        f"auto chose the {iso.mode!r} tier where {want!r} works: isolation is broken"
    )


def test_the_expected_tier_runs_a_program_when_asked_for_by_name() -> None:
    want = expected_tier()
    box = Sandbox(SandboxConfig(isolation=want))  # type: ignore[arg-type]
    iso = run_blocking(box.isolation())
    assert iso.mode == want
    if want != "process":
        assert iso.namespaces
