"""Each registry is the only source of its names: every registered name validates wherever
the setting is taken, and an unknown one gets the registry's own one-sentence error."""

from __future__ import annotations

import pytest

from recursa.backends import BACKENDS
from recursa.benchmarks import BENCHMARKS
from recursa.config import BackendConfig, RSAConfig, build_configs
from recursa.errors import UsageError
from recursa.final_selection import SELECTIONS
from recursa.runs.methods import METHODS, apply_method
from recursa.runs.runner import resolve_settings
from recursa.runs.settings import resumable_changes
from recursa.tasks import TASKS


def test_every_registered_backend_validates() -> None:
    for name in BACKENDS.names():
        assert BackendConfig(backend=name).backend == name
    for name in [n for n in BACKENDS.names() if n != "ray"]:
        assert BackendConfig(backend="ray", engine=name).options["engine"] == name


def test_every_registered_task_and_selection_validates() -> None:
    for name in TASKS.names():
        assert RSAConfig(task=name).task == name
    for name in SELECTIONS.names():
        assert RSAConfig(selection=name).selection == name


def test_every_registered_method_validates() -> None:
    for name in METHODS.names():
        _, _, ev = resolve_settings(None, None, None, {"method": name, "n": 4})
        assert ev.method == name


@pytest.mark.parametrize(
    ("values", "registry"),
    [
        ({"backend": "sglang"}, BACKENDS),
        ({"task": "poetry"}, TASKS),
        ({"selection": "best"}, SELECTIONS),
    ],
)
def test_unknown_names_get_the_registrys_sentence(values: dict[str, str], registry: object) -> None:
    with pytest.raises(UsageError) as caught:
        build_configs(values)
    name = next(iter(values.values()))
    assert str(caught.value) == registry.unknown(name)  # type: ignore[attr-defined]
    assert str(caught.value).startswith(f"unknown {registry.kind} {name!r}; choose one of ")  # type: ignore[attr-defined]


def test_unknown_method_engine_and_benchmark_get_the_registrys_sentence() -> None:
    with pytest.raises(UsageError) as caught:
        resolve_settings(None, None, None, {"method": "best-of-n"})
    assert str(caught.value) == METHODS.unknown("best-of-n")
    with pytest.raises(UsageError) as caught:
        apply_method("best-of-n", {}, None)
    assert str(caught.value) == METHODS.unknown("best-of-n")
    with pytest.raises(UsageError) as caught:
        build_configs({"backend": "ray", "engine": "sglang"})
    assert str(caught.value) == BACKENDS.unknown("sglang")
    with pytest.raises(UsageError, match=r"^unknown benchmark 'nope'; choose one of aime25, "):
        from recursa.benchmarks import load_benchmark

        load_benchmark("nope")
    assert "rg:TASK[,TASK...]" in BENCHMARKS.get("rg").shown


def test_a_name_added_to_a_registry_is_usable_at_once() -> None:
    """The old Literal lists made `BACKENDS["x"] = ...` fail validation; now one line works."""
    BACKENDS.add("mock-two", "recursa.backends.mock:SPEC")
    try:
        config = BackendConfig(backend="mock-two", mock_accuracy=0.5)
        assert config.options == {"mock_accuracy": 0.5}
        assert "mock-two" in BACKENDS.unknown("x")
    finally:
        BACKENDS.remove("mock-two")
    with pytest.raises(UsageError, match=r"^unknown backend 'mock-two'"):
        build_configs({"backend": "mock-two"})


def test_backend_options_belong_to_their_backend() -> None:
    config = BackendConfig(backend="mock", mock_latency=0.5)
    assert config.options == {"mock_latency": 0.5}
    recorded = config.recorded()
    assert recorded["mock_latency"] == 0.5 and recorded["mock_accuracy"] == 0.3
    assert "n_ctx" not in recorded and "api_key" not in recorded
    with pytest.raises(UsageError, match=r"^unknown setting 'mock_speed'$"):
        build_configs({"mock_speed": 2})
    with pytest.raises(UsageError, match=r"invalid setting mock_quality=1\.5"):
        build_configs({"backend": "mock", "mock_quality": 1.5})


def test_a_ray_run_records_its_engines_options_too() -> None:
    recorded = BackendConfig(backend="ray", engine="mock", replicas=2).recorded()
    assert (recorded["replicas"], recorded["engine"], recorded["mock_accuracy"]) == (2, "mock", 0.3)
    assert "n_ctx" not in recorded


def test_options_marked_resumable_may_change_on_resume() -> None:
    changes = resumable_changes()
    assert {"backend.mock_latency", "backend.n_threads", "backend.replicas"} <= changes
    assert "backend.mock_accuracy" not in changes and "backend.engine" not in changes
