"""The verl launch script against verl's own trainer configuration, composed by hydra.

verl ships its trainer YAML in the package; it is installed here without its dependencies
(`pip install --no-deps verl`, see the Makefile), so hydra composes `ppo_trainer` exactly as
`python3 -m verl.trainer.main_ppo` would, in struct mode: an override of a key that does not
exist fails, as it would on the cluster. Nothing imports verl itself (it needs GPUs).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

from recursa.rl.verl import SUPPORTED_VERL
from tests.test_rl_verl import run_with_fake_python, write_script

hydra = pytest.importorskip("hydra")
omegaconf = pytest.importorskip("omegaconf")


def verl_config_dir() -> Path:
    spec = importlib.util.find_spec("verl")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("verl is not installed (make install puts it in with --no-deps)")
    return Path(next(iter(spec.submodule_search_locations))) / "trainer" / "config"


def verl_version() -> str:
    from importlib.metadata import version

    return version("verl")


def compose(overrides: list[str]) -> Any:
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(verl_config_dir()), version_base=None):
        return hydra_compose(config_name="ppo_trainer", overrides=overrides)


def script_overrides(tmp_path: Path, *flags: str) -> list[str]:
    script = write_script(tmp_path, *flags)
    argv = run_with_fake_python(script, tmp_path)
    assert argv[:2] == ["-m", "verl.trainer.main_ppo"]
    return argv[2:]


def test_the_installed_verl_is_a_supported_release() -> None:
    from packaging.specifiers import SpecifierSet

    verl_config_dir()
    assert verl_version() in SpecifierSet(SUPPORTED_VERL)


def test_every_override_is_a_key_of_verls_trainer_config(tmp_path: Path) -> None:
    overrides = script_overrides(tmp_path, "--nodes", "2", "--gpus-per-node", "4")
    cfg = compose(overrides)  # struct mode: an unknown key raises ConfigCompositionException
    assert omegaconf.OmegaConf.is_struct(cfg)
    resolved = omegaconf.OmegaConf.to_container(cfg, resolve=True)  # interpolations resolve
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    for override in parser.parse_overrides(overrides):
        node: Any = resolved
        for part in override.key_or_group.split("."):
            node = node[part]
        assert node == override.value(), override.key_or_group  # landed, with its type


def test_the_reward_lands_where_verl_reads_it(tmp_path: Path) -> None:
    """verl 0.9 reads `config.reward.custom_reward_function` (verl/trainer/ppo/reward.py:
    `config.reward.get("custom_reward_function")`) and no longer migrates the top-level key."""
    cfg = compose(script_overrides(tmp_path, "--gpus-per-node", "1"))
    assert cfg.reward.custom_reward_function.path == "/r/rw.py"  # REWARD_FILE of the helper
    assert cfg.reward.custom_reward_function.name == "compute_score"
    legacy = cfg.get("custom_reward_function")
    assert legacy is None or all(v is None for v in legacy.values())


def test_the_rollout_context_is_prompt_plus_response(tmp_path: Path) -> None:
    cfg = compose(script_overrides(tmp_path, "--gpus-per-node", "1", "-k", "4"))
    rollout = cfg.actor_rollout_ref.rollout
    assert cfg.data.max_prompt_length == 4 * 8192 + 1024
    assert rollout.max_model_len == cfg.data.max_prompt_length + cfg.data.max_response_length
    assert rollout.max_model_len == 41984


def test_a_misspelt_key_would_fail_on_the_cluster(tmp_path: Path) -> None:
    """The check has teeth: the key recursa wrote before (top level, verl < 0.8) composes only
    because 0.9 still ships it as a legacy stub, and a misspelt one is refused."""
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException, match="Could not override"):
        compose(["reward.custom_reward_functon.path=/r/rw.py"])
