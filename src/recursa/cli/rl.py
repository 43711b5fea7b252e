"""`recursa rl build-data | train | verl-config`: aggregation-aware RL (docs/RL.md)."""

from __future__ import annotations

import argparse
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from recursa.cli.options import add_model_flags
from recursa.config import BackendConfig, load_config_file, validation_message
from recursa.errors import UsageError

M = TypeVar("M", bound=BaseModel)

#: Settings that only a config file can hold (no flag).
FILE_ONLY = frozenset({"trl"})


def _config_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="FILE",
        default=None,
        help="YAML file of settings (same names as the flags); flags override it",
    )


def register(sub: Any) -> None:
    rl = sub.add_parser(
        "rl",
        help="aggregation-aware RL: training data, TRL training, verl launch script",
        description="Aggregation-aware RL (the paper's RLOO training on aggregation prompts): "
        "build the training mixture, train on one machine with TRL, or write a verl launch "
        "script for a GPU cluster. See docs/RL.md.",
    )
    rl_sub = rl.add_subparsers(dest="rl_command", metavar="SUBCOMMAND", required=True)

    from recursa.rl.data import BuildSettings

    build = rl_sub.add_parser(
        "build-data",
        help="build train/val parquet of plain and aggregation prompts (verl RL schema)",
        description="Sample candidates from the reference backend (or reuse an eval run's), "
        "build aggregation prompts of K candidates each with the inference prompt builder, "
        "mix them with plain prompts and write OUT/train.parquet and OUT/val.parquet.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    data = build.add_argument_group("data settings")
    data.add_argument(
        "--source",
        dest="source",
        action="append",
        default=argparse.SUPPRESS,
        metavar="SOURCE[@COUNT]",
        help=BuildSettings.model_fields["source"].description,
    )
    add_model_flags(data, BuildSettings, skip=frozenset({"source"}))
    add_model_flags(build.add_argument_group("backend settings"), BackendConfig)
    _config_flag(build)
    build.set_defaults(run=run, rl_run=run_build)

    from recursa.rl.train import TrainSettings

    train = rl_sub.add_parser(
        "train",
        help="RLOO training with TRL on one machine (paper defaults)",
        description="Train a policy with TRL's RLOOTrainer on build-data output: 4 rollouts "
        "per prompt, lr 1e-6, no KL, rewards from the evaluation graders. Checkpoints go to "
        "OUT/checkpoint-STEP, the final model to OUT/final, per-step rewards to "
        "OUT/rewards.jsonl.",
    )
    add_model_flags(train.add_argument_group("training settings"), TrainSettings, FILE_ONLY)
    _config_flag(train)
    train.set_defaults(run=run, rl_run=run_train)

    from recursa.rl.verl import VerlSettings

    verl = rl_sub.add_parser(
        "verl-config",
        help="write a bash launch script for verl's PPO trainer (RLOO, paper settings)",
        description="Write a ready bash script that runs verl's PPO entry point with the RLOO "
        "estimator, the paper's settings and recursa's reward function.",
    )
    add_model_flags(verl.add_argument_group("verl settings"), VerlSettings)
    _config_flag(verl)
    verl.set_defaults(run=run, rl_run=run_verl)


def settings_values(args: argparse.Namespace, *models: type[BaseModel]) -> dict[str, Any]:
    """Config file values with the flags the user typed on top; unknown names are errors."""
    values: dict[str, Any] = load_config_file(args.config) if args.config else {}
    names: set[str] = set()
    for model in models:
        names |= set(model.model_fields)
    unknown = sorted(set(values) - names)
    if unknown:
        raise UsageError(f"unknown setting {unknown[0]!r}")
    for name in names:
        if name in vars(args):
            values[name] = getattr(args, name)
    return values


def build_settings(model: type[M], values: dict[str, Any]) -> M:
    """The model from the values that belong to it; a missing or bad value is one sentence."""
    mine = {k: v for k, v in values.items() if k in model.model_fields}
    for name, field in model.model_fields.items():
        if field.is_required() and mine.get(name) is None:
            flag = name.replace("_", "-")
            raise UsageError(f"--{flag} is required (or '{name}:' in the --config file)")
    try:
        return model(**mine)
    except ValidationError as exc:
        raise UsageError(validation_message(exc)) from exc


def run(args: argparse.Namespace) -> int:
    code: int = args.rl_run(args)
    return code


def run_build(args: argparse.Namespace) -> int:
    from recursa.rl.data import BuildSettings, build_data

    values = settings_values(args, BuildSettings, BackendConfig)
    settings = build_settings(BuildSettings, values)
    backend = build_settings(BackendConfig, values)
    result = build_data(settings, backend, quiet=args.quiet)
    print(
        f"wrote {result.train_rows} training and {result.val_rows} validation rows "
        f"({result.aggregation_rows} aggregation prompts; {result.generated} candidates "
        f"generated, {result.reused} reused) to {result.out_dir}"
    )
    return 0


def run_train(args: argparse.Namespace) -> int:
    from recursa.rl.train import TrainSettings, train

    settings = build_settings(TrainSettings, settings_values(args, TrainSettings))
    if settings.dry_run:
        from recursa.rl.plan import dry_run

        print(dry_run(settings))
        return 0
    result = train(settings, quiet=args.quiet)
    print(
        f"trained {result.steps} steps on {result.rows} prompts"
        + (f" ({result.dropped_rows} too long, dropped)" if result.dropped_rows else "")
        + f"; final model in {result.final_dir}, rewards per step in {result.reward_log}"
    )
    return 0


def run_verl(args: argparse.Namespace) -> int:
    from recursa.rl.verl import VerlSettings, write_script

    settings = build_settings(VerlSettings, settings_values(args, VerlSettings))
    path = write_script(settings)
    print(f"wrote {path}; run it with: bash {path}")
    return 0
