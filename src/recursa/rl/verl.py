"""A bash launch script for verl's PPO entry point with the RLOO estimator (clusters).

The script runs `python3 -m verl.trainer.main_ppo` with hydra overrides that encode the
paper's aggregation-aware RL settings: RLOO advantages, 4 rollouts per prompt, lr 1e-6,
256 prompts per step, no KL (neither a KL loss nor a KL reward penalty), about 300 steps,
prompts up to K x max_tokens + 1024 tokens and responses up to max_tokens, vLLM rollouts,
and `recursa.rl.rewards.compute_score` as the custom reward function
(`reward.custom_reward_function.*`). vLLM's context (`rollout.max_model_len`) is prompt +
response: left unset, verl sizes it to the model's whole window (262,144 positions for
Qwen3-4B-Instruct-2507).

Supported verl: 0.8.0 to 0.9.x (`SUPPORTED_VERL`); the override keys are checked against the
trainer configuration those releases ship (tests/test_rl_verl_hydra.py). verl 0.8.0 still
copied a top-level `custom_reward_function` into `reward.`; 0.9.0 and later read only
`reward.custom_reward_function`, so that is the key written. verl is never imported here: it
needs GPUs, and the script is meant for the machines that have them.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from recursa.errors import UsageError
from recursa.rl.hub_data import SCRIPT_DOWNLOAD, is_hub_name
from recursa.rl.train import default_prompt_length

#: The verl releases whose trainer configuration the overrides are checked against.
SUPPORTED_VERL = ">=0.8.0,<0.10"

#: How the script finds the reward file on the machine that runs it.
REWARD_FILE_LOOKUP = "$(python3 -c 'import recursa.rl.rewards as r; print(r.__file__)')"


class VerlSettings(BaseModel):
    """`recursa rl verl-config`: a verl launch script with the paper's settings."""

    model_config = ConfigDict(extra="forbid")

    data: str = Field(
        description="Directory with train.parquet (and val.parquet) from 'recursa rl build-data', "
        "or a Hugging Face hub dataset OWNER/NAME in the verl RL schema (the script downloads "
        "it), e.g. the paper's RSA-RL/DeepScaleR-RG-Aggregator-RL."
    )
    model: str = Field(description="Hugging Face model name or directory to train.")
    out: str = Field(description="Where to write the bash launch script.")
    nodes: int = Field(1, ge=1, description="Nodes in the Ray cluster (trainer.nnodes).")
    gpus_per_node: int = Field(8, ge=1, description="GPUs per node (trainer.n_gpus_per_node).")
    k: int = Field(4, ge=1, description="Candidates per aggregation prompt (sizes prompts).")
    max_tokens: int = Field(8192, ge=1, description="Tokens per candidate (sizes prompts).")
    max_prompt_length: int | None = Field(
        None, ge=1, description="data.max_prompt_length (default: K x max_tokens + 1024)."
    )
    max_response_length: int | None = Field(
        None, ge=1, description="data.max_response_length (default: max_tokens)."
    )
    rollouts: int = Field(4, ge=2, description="Completions per prompt (rollout.n).")
    learning_rate: float = Field(1e-6, gt=0, description="Actor learning rate.")
    batch_size: int = Field(256, ge=1, description="Prompts per step (data.train_batch_size).")
    mini_batch_size: int | None = Field(
        None, ge=1, description="Prompts per actor update (default: batch_size, one update)."
    )
    steps: int = Field(300, ge=1, description="Training steps (trainer.total_training_steps).")
    save_freq: int = Field(50, ge=1, description="Save a checkpoint every this many steps.")
    test_freq: int = Field(50, ge=1, description="Validate every this many steps.")
    tensor_parallel: int = Field(1, ge=1, description="vLLM tensor-parallel size per rollout.")
    gpu_memory_utilization: float = Field(
        0.6, gt=0, le=1, description="Share of GPU memory vLLM may take."
    )
    temperature: float = Field(1.0, gt=0, description="Rollout sampling temperature.")
    project: str = Field("recursa-rl", description="trainer.project_name.")
    experiment: str = Field("aggregation-aware-rloo", description="trainer.experiment_name.")
    checkpoint_dir: str | None = Field(
        None, description="trainer.default_local_dir (default: verl's checkpoints/PROJECT/EXP)."
    )

    @model_validator(mode="after")
    def _fits_the_cluster(self) -> VerlSettings:
        gpus = self.nodes * self.gpus_per_node
        if self.gpus_per_node % self.tensor_parallel:
            raise ValueError(
                f"gpus_per_node ({self.gpus_per_node}) must be a multiple of tensor_parallel "
                f"({self.tensor_parallel})"
            )
        mini = self.mini_batch_size or self.batch_size
        if mini > self.batch_size:
            raise ValueError(
                f"mini_batch_size ({mini}) cannot exceed batch_size ({self.batch_size})"
            )
        if (mini * self.rollouts) % gpus:
            raise ValueError(
                f"mini_batch_size x rollouts ({mini * self.rollouts}) must be a multiple of the "
                f"GPU count ({gpus})"
            )
        return self

    @property
    def prompt_limit(self) -> int:
        return self.max_prompt_length or default_prompt_length(self.k, self.max_tokens)

    @property
    def response_limit(self) -> int:
        return self.max_response_length or self.max_tokens


def has_rows(path: Path) -> bool:
    """Whether a parquet file exists and holds rows (existence alone without pyarrow)."""
    if not path.is_file():
        return False
    try:
        import pyarrow.parquet as pq
    except ImportError:
        return True
    try:
        return bool(pq.read_metadata(path).num_rows)
    except Exception:  # not parquet (yet): let verl report it where the script runs
        return True


def overrides_for_validation(data: Path, test_freq: int) -> list[tuple[str, object]]:
    """val.parquet when build-data wrote one with rows; else the training file, which verl
    still needs as a val set, and no periodic validation."""
    if has_rows(data / "val.parquet"):
        return [("data.val_files", '"$DATA_DIR/val.parquet"'), ("trainer.test_freq", test_freq)]
    return [("data.val_files", '"$DATA_DIR/train.parquet"'), ("trainer.test_freq", -1)]


def overrides(s: VerlSettings) -> list[tuple[str, str]]:
    """(hydra key, bash word) pairs; `$VARS` refer to the variables the script sets first."""
    seq = s.prompt_limit + s.response_limit
    if is_hub_name(s.data):  # the script downloads it: $TRAIN_FILES is a hydra list
        files: list[tuple[str, object]] = [
            ("data.train_files", '"$TRAIN_FILES"'),
            ("data.val_files", '"$TRAIN_FILES"'),
            ("trainer.test_freq", -1),
        ]
    else:
        files = [
            ("data.train_files", '"$DATA_DIR/train.parquet"'),
            *overrides_for_validation(Path(s.data).expanduser(), s.test_freq),
        ]
    items: list[tuple[str, object]] = [
        ("algorithm.adv_estimator", "rloo"),
        ("algorithm.use_kl_in_reward", "False"),
        *files,
        ("data.prompt_key", "prompt"),
        ("data.max_prompt_length", s.prompt_limit),
        ("data.max_response_length", s.response_limit),
        ("data.train_batch_size", s.batch_size),
        ("data.filter_overlong_prompts", "True"),
        ("data.truncation", "error"),
        ("actor_rollout_ref.model.path", '"$MODEL"'),
        ("actor_rollout_ref.model.use_remove_padding", "True"),
        ("actor_rollout_ref.model.enable_gradient_checkpointing", "True"),
        ("actor_rollout_ref.actor.optim.lr", f"{s.learning_rate:g}"),
        ("actor_rollout_ref.actor.ppo_mini_batch_size", s.mini_batch_size or s.batch_size),
        ("actor_rollout_ref.actor.use_dynamic_bsz", "True"),
        ("actor_rollout_ref.actor.ppo_max_token_len_per_gpu", seq),
        ("actor_rollout_ref.actor.use_kl_loss", "False"),
        ("actor_rollout_ref.actor.entropy_coeff", 0),
        ("actor_rollout_ref.rollout.name", "vllm"),
        ("actor_rollout_ref.rollout.n", s.rollouts),
        ("actor_rollout_ref.rollout.temperature", f"{s.temperature:g}"),
        ("actor_rollout_ref.rollout.top_p", 1.0),
        ("actor_rollout_ref.rollout.top_k", -1),
        ("actor_rollout_ref.rollout.tensor_model_parallel_size", s.tensor_parallel),
        ("actor_rollout_ref.rollout.gpu_memory_utilization", s.gpu_memory_utilization),
        ("actor_rollout_ref.rollout.max_model_len", seq),
        ("actor_rollout_ref.rollout.max_num_batched_tokens", seq),
        ("actor_rollout_ref.rollout.log_prob_use_dynamic_bsz", "True"),
        ("actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu", seq),
        # verl >= 0.8.0 reads reward.custom_reward_function; 0.9 dropped the top-level key.
        ("reward.custom_reward_function.path", '"$REWARD_FILE"'),
        ("reward.custom_reward_function.name", "compute_score"),
        ("trainer.nnodes", '"$NNODES"'),
        ("trainer.n_gpus_per_node", '"$GPUS_PER_NODE"'),
        ("trainer.total_training_steps", s.steps),
        ("trainer.total_epochs", 1000),
        ("trainer.save_freq", s.save_freq),
        ("trainer.val_before_train", "False"),
        ("trainer.project_name", shlex.quote(s.project)),
        ("trainer.experiment_name", shlex.quote(s.experiment)),
        ("trainer.logger", "'[console]'"),
    ]
    if s.checkpoint_dir:
        items.append(("trainer.default_local_dir", shlex.quote(s.checkpoint_dir)))
    return [(key, str(value)) for key, value in items]


def _dir_word(data: str) -> str:
    path = Path(data).expanduser()
    return str(path.resolve()) if path.exists() else data


def _data_lines(data: str) -> list[str]:
    """The script's data variables: DATA_DIR for build-data output; for a hub dataset,
    TRAIN_FILES, the downloaded train files as a hydra list."""
    if is_hub_name(data):
        download = SCRIPT_DOWNLOAD.format(name=shlex.quote(data))
        return [f"# Training data: the hub dataset {data}, downloaded here.",
                f'TRAIN_FILES="${{TRAIN_FILES:-{download}}}"']  # fmt: skip
    return [f'DATA_DIR="${{DATA_DIR:-{_dir_word(data)}}}"']


def render_script(s: VerlSettings) -> str:
    """The launch script's text."""
    lines = [
        "#!/usr/bin/env bash",
        "# Aggregation-aware RL (RSA, arXiv 2509.26626): verl PPO trainer, RLOO estimator.",
        "# Written by 'recursa rl verl-config'. Run it on the head node of a Ray cluster where",
        "# verl, vLLM and recursa are installed; extra hydra overrides may follow on the",
        "# command line, and the variables below may be set in the environment instead.",
        f"# Prompts: up to {s.prompt_limit} tokens (K={s.k} candidates x {s.max_tokens} + 1024"
        f" unless set); responses: up to {s.response_limit} tokens.",
        f"# For verl {SUPPORTED_VERL} (reward.custom_reward_function, rollout.max_model_len).",
        "set -euo pipefail",
        "",
        *_data_lines(s.data),
        f'MODEL="${{MODEL:-{s.model}}}"',
        f'NNODES="${{NNODES:-{s.nodes}}}"',
        f'GPUS_PER_NODE="${{GPUS_PER_NODE:-{s.gpus_per_node}}}"',
        f'REWARD_FILE="${{REWARD_FILE:-{REWARD_FILE_LOOKUP}}}"',
        "",
        "python3 -m verl.trainer.main_ppo \\",
    ]
    lines += [f"    {key}={value} \\" for key, value in overrides(s)]
    lines.append('    "$@"')
    return "\n".join(lines) + "\n"


def _unsafe(value: str) -> bool:
    return any(ch in value for ch in '"$`\\\n')


def write_script(s: VerlSettings) -> Path:
    """Write the launch script (executable) and return its path."""
    for name, value in (("data", s.data), ("model", s.model)):
        if _unsafe(value):
            raise UsageError(f"--{name} {value!r} holds characters the script cannot quote")
    out = Path(s.out).expanduser()
    if out.is_dir():
        raise UsageError(f"--out {out} is a directory; give the script's file name")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_script(s), encoding="utf-8")
    out.chmod(0o755)
    return out
