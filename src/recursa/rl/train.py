"""Aggregation-aware RL on one machine: TRL's `RLOOTrainer` with the paper's settings.

RLOO (leave-one-out baseline) with 4 rollouts per prompt, learning rate 1e-6, no KL term
(beta 0, so no reference model is loaded), 256 prompts per optimiser step, rewards from
`recursa.rl.rewards.correctness` (the evaluation graders). Defaults fit one 80 GB GPU for a
4B model at the paper's lengths (docs/RL.md): bf16 weights where the GPU has bf16, gradient
checkpointing, one completion per micro-batch, one prompt's rollouts per `generate`
(`recursa.rl.memory` estimates the memory; `--dry-run` prints it). Prompts longer than
`max_prompt_length` tokens are dropped before training (verl's `filter_overlong_prompts`):
cutting an aggregation prompt would cut its instructions or candidates. Checkpoints go to
`OUT/checkpoint-STEP`, the final model to `OUT/final`, and every logged step's metrics
(reward mean and std, loss, lengths) to `OUT/rewards.jsonl` besides TRL's own logging.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from recursa.errors import MissingDependencyError, UsageError
from recursa.rl.model import is_gguf_file
from recursa.rl.rewards import correctness

log = logging.getLogger("recursa")

REWARD_LOG = "rewards.jsonl"
FINAL_DIR = "final"
#: Columns a verl-schema training file must have.
REQUIRED_COLUMNS = ("prompt", "data_source", "reward_model")


def default_prompt_length(k: int, max_tokens: int) -> int:
    """Room for an aggregation prompt: K candidates of `max_tokens` each plus 1024 tokens for
    the problem and instructions (the paper: 4 x 8192 + 1024 = 33,792)."""
    return k * max_tokens + 1024


class TrainSettings(BaseModel):
    """`recursa rl train`: RLOO with TRL on one machine (paper defaults)."""

    model_config = ConfigDict(extra="forbid")

    data: str = Field(
        description="Training data: a directory holding train.parquet (verl RL schema, as "
        "'recursa rl build-data' writes it), one parquet file, or a Hugging Face hub dataset "
        "OWNER/NAME in that schema, e.g. the paper's RSA-RL/DeepScaleR-RG-Aggregator-RL."
    )
    model: str = Field(
        description="Policy to train: a Hugging Face model directory or name, or a GGUF file "
        "(dequantised on load)."
    )
    out: str = Field(description="Output directory: checkpoints, final model, rewards.jsonl.")
    rollouts: int = Field(4, ge=2, description="Completions sampled per prompt (RLOO group).")
    learning_rate: float = Field(1e-6, gt=0, description="AdamW learning rate.")
    beta: float = Field(0.0, ge=0, description="KL coefficient (0: no KL, no reference model).")
    k: int = Field(4, ge=1, description="Candidates per aggregation prompt (sizes prompts).")
    max_tokens: int = Field(8192, ge=1, description="Tokens per candidate (sizes prompts).")
    max_prompt_length: int | None = Field(
        None,
        ge=1,
        description="Longest prompt in tokens; longer rows are dropped "
        "(default: K x max_tokens + 1024).",
    )
    max_response_length: int | None = Field(
        None, ge=1, description="Most tokens per sampled completion (default: max_tokens)."
    )
    prompts_per_step: int = Field(256, ge=1, description="Prompts per optimiser step.")
    micro_batch_size: int = Field(
        1, ge=1, description="Completions per forward/backward pass on each device."
    )
    generation_batch_size: int | None = Field(
        None,
        ge=1,
        description="Completions sampled together, all devices (default: one prompt's "
        "rollouts; 4 prompts' with --use-vllm).",
    )
    steps: int = Field(300, ge=1, description="Optimiser steps.")
    save_steps: int = Field(50, ge=1, description="Save a checkpoint every this many steps.")
    save_total_limit: int | None = Field(
        None, ge=1, description="Keep at most this many checkpoints (default: all)."
    )
    temperature: float = Field(1.0, gt=0, description="Sampling temperature of the rollouts.")
    seed: int = Field(0, description="Seed for sampling, shuffling and initialisation.")
    gradient_checkpointing: bool = Field(
        True, description="Recompute activations in the backward pass (less memory)."
    )
    bf16: bool | None = Field(
        None, description="bf16 mixed precision (default: on when the GPU supports it)."
    )
    dtype: Literal["auto", "bfloat16", "float32"] = Field(
        "auto",
        description="Dtype of the policy's weights, gradients and AdamW states (auto: "
        "bfloat16 on a bf16 GPU, else float32).",
    )
    use_vllm: bool = Field(
        False, description="Sample rollouts with vLLM beside training (needs a GPU and vllm)."
    )
    vllm_gpu_memory_utilization: float = Field(
        0.25, gt=0, lt=1, description="Share of GPU memory vLLM takes beside training."
    )
    dry_run: bool = Field(
        False,
        description="Print the resolved TRL settings, dtype and a GPU memory estimate; "
        "load and train nothing.",
    )
    gpu_memory_gb: float | None = Field(
        None,
        gt=0,
        description="--dry-run: plan for a GPU of this many GiB (default: this machine's CUDA "
        "GPU, else an 80 GiB one).",
    )
    resume: bool = Field(False, description="Continue from the last checkpoint in --out.")
    trl: dict[str, Any] = Field(
        default_factory=dict,
        description="Further RLOOConfig fields, by TRL's names (config file only).",
    )

    @model_validator(mode="after")
    def _whole_groups(self) -> TrainSettings:
        if self.micro_batch_size > self.prompts_per_step * self.rollouts:
            raise ValueError(
                f"micro_batch_size ({self.micro_batch_size}) exceeds the completions per step "
                f"({self.prompts_per_step} prompts x {self.rollouts} rollouts)"
            )
        if self.use_vllm and is_gguf_file(Path(self.model).expanduser()):
            raise ValueError(
                "a GGUF policy cannot be sampled by TRL's vLLM (it loads the model by name and "
                "is sent Hugging Face weights), so convert it to a Hugging Face directory or "
                "drop --use-vllm"
            )
        return self

    @property
    def prompt_limit(self) -> int:
        return self.max_prompt_length or default_prompt_length(self.k, self.max_tokens)

    @property
    def response_limit(self) -> int:
        return self.max_response_length or self.max_tokens


@dataclass
class TrainResult:
    """Where a training run left its outputs."""

    out_dir: Path
    final_dir: Path
    reward_log: Path
    steps: int
    rows: int
    dropped_rows: int


def data_file(data: str) -> Path:
    """The training parquet file named by --data (a file, or DIR/train.parquet)."""
    path = Path(data).expanduser()
    if path.is_dir():
        path = path / "train.parquet"
    if not path.is_file():
        raise UsageError(
            f"training data {path} does not exist (build it with 'recursa rl build-data')"
        )
    return path


def data_files(data: str) -> list[Path]:
    """The training parquet files named by --data: a local file or DIR/train.parquet, or a
    hub dataset's train files (downloaded, `recursa.rl.hub_data`)."""
    from recursa.rl.hub_data import download, is_hub_name

    return download(data) if is_hub_name(data) else [data_file(data)]


def load_rows(path: Path | Sequence[Path]) -> Any:
    """The parquet file(s) as one in-memory `datasets.Dataset` (no cache files written)."""
    if not isinstance(path, Path):
        import pyarrow as pa

        tables = [load_rows(p).data.table for p in path]
        from datasets import Dataset
        from datasets.table import InMemoryTable

        return Dataset(InMemoryTable(pa.concat_tables(tables, promote_options="default")))
    try:
        import pyarrow.parquet as pq
        from datasets import Dataset
        from datasets.table import InMemoryTable
    except ImportError as exc:
        raise MissingDependencyError("datasets", "rl") from exc
    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several kinds for files that are not parquet
        raise UsageError(f"training data {path} is not a readable parquet file: {exc}") from exc
    missing = [c for c in REQUIRED_COLUMNS if c not in table.column_names]
    if missing:
        raise UsageError(
            f"training data {path} lacks the column {missing[0]!r} of the verl RL schema"
        )
    if table.num_rows == 0:
        raise UsageError(f"training data {path} has no rows")
    return Dataset(InMemoryTable(table))


def prompt_lengths(tokenizer: Any, prompts: Sequence[Any]) -> list[int]:
    """Tokens of each chat prompt as the trainer will see it (chat template, generation cue)."""
    lengths = []
    for prompt in prompts:
        ids = tokenizer.apply_chat_template(
            list(prompt), add_generation_prompt=True, tokenize=True, return_dict=False
        )
        if isinstance(ids, dict) or hasattr(ids, "keys"):
            ids = ids["input_ids"]
        lengths.append(len(ids))
    return lengths


def drop_long_prompts(dataset: Any, tokenizer: Any, limit: int) -> tuple[Any, int]:
    """The rows whose prompt fits `limit` tokens, and how many were dropped."""
    lengths = prompt_lengths(tokenizer, dataset["prompt"])
    keep = [i for i, n in enumerate(lengths) if n <= limit]
    dropped = len(lengths) - len(keep)
    if not keep:
        raise UsageError(
            f"every prompt is longer than max_prompt_length ({limit} tokens; the shortest has "
            f"{min(lengths)})"
        )
    if dropped:
        log.warning("dropped %d of %d prompts longer than %d tokens", dropped, len(lengths), limit)
        dataset = dataset.select(keep)
    return dataset, dropped


def _world_size() -> int:
    return max(1, int(os.environ.get("WORLD_SIZE", "1")))


def gradient_accumulation(settings: TrainSettings, world: int) -> int:
    """Micro-batches per optimiser step so that one step sees prompts_per_step x rollouts."""
    completions = settings.prompts_per_step * settings.rollouts
    per_pass = settings.micro_batch_size * world
    if completions % per_pass:
        raise UsageError(
            f"prompts_per_step x rollouts ({completions}) must be a multiple of "
            f"micro_batch_size x devices ({per_pass})"
        )
    return completions // per_pass


def generation_batch(settings: TrainSettings, world: int) -> int:
    """Completions TRL samples in one `generate` (all devices): the setting, else the smallest
    whole number of prompt groups (one; four with vLLM, whose KV cache is paged in its own
    share) that splits into micro-batches and divides the step's completions."""
    completions = settings.prompts_per_step * settings.rollouts
    step = math.lcm(settings.rollouts, settings.micro_batch_size * world)
    if settings.generation_batch_size is not None:
        n = settings.generation_batch_size
        if n % step or completions % n:
            raise UsageError(
                f"generation_batch_size ({n}) must be a multiple of rollouts and of "
                f"micro_batch_size x devices (so of {step}) and divide the completions per "
                f"step ({completions})"
            )
        return n
    want = settings.rollouts * (4 if settings.use_vllm else 1)
    n = max(step, -(-want // step) * step)
    while n < completions and completions % n:
        n += step
    return min(n, completions)


def training_dtype(settings: TrainSettings, cuda: bool, bf16_gpu: bool) -> str:
    """The policy's dtype: the setting, else bfloat16 on a GPU that has it, else float32."""
    if settings.dtype != "auto":
        return settings.dtype
    return "bfloat16" if cuda and bf16_gpu else "float32"


def rloo_arguments(
    settings: TrainSettings, out: Path, cuda: bool, quiet: bool, bf16_gpu: bool | None = None
) -> dict[str, Any]:
    """Keyword arguments for TRL's RLOOConfig (settings, then the `trl` passthrough)."""
    bf16_ok = cuda if bf16_gpu is None else bf16_gpu
    bf16 = settings.bf16 if settings.bf16 is not None else (cuda and bf16_ok)
    world = _world_size()
    args: dict[str, Any] = {
        "output_dir": str(out),
        "num_generations": settings.rollouts,
        "learning_rate": settings.learning_rate,
        "beta": settings.beta,
        "max_completion_length": settings.response_limit,
        "per_device_train_batch_size": settings.micro_batch_size,
        "gradient_accumulation_steps": gradient_accumulation(settings, world),
        "generation_batch_size": generation_batch(settings, world),
        "max_steps": settings.steps,
        "save_strategy": "steps",
        "save_steps": settings.save_steps,
        "save_total_limit": settings.save_total_limit,
        "logging_steps": 1,
        "temperature": settings.temperature,
        "top_p": 1.0,
        "top_k": 0,
        "seed": settings.seed,
        "gradient_checkpointing": settings.gradient_checkpointing,
        "bf16": bf16,
        "use_cpu": not cuda,
        "use_vllm": settings.use_vllm,
        "report_to": "none",
        "disable_tqdm": quiet,
    }
    if settings.use_vllm:
        args.update(
            vllm_mode="colocate",
            vllm_max_model_length=settings.prompt_limit + settings.response_limit,
            vllm_gpu_memory_utilization=settings.vllm_gpu_memory_utilization,
        )
    args.update(settings.trl)
    return args


def reward_log_callback(path: Path) -> Any:
    """A TrainerCallback that appends each logged step's metrics to a JSONL file."""
    from transformers import TrainerCallback

    class RewardLog(TrainerCallback):
        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **_: Any) -> None:
            if not logs or "reward" not in logs or not state.is_world_process_zero:
                return
            record: dict[str, Any] = {"step": int(state.global_step)}
            for key, value in logs.items():
                if isinstance(value, (int, float)) and math.isfinite(float(value)):
                    record[key] = value
            with path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(record, sort_keys=True) + "\n")

    return RewardLog()


RewardFunction = Callable[..., list[float | None]]


def train(
    settings: TrainSettings,
    *,
    reward_funcs: Sequence[RewardFunction] | None = None,
    quiet: bool = False,
) -> TrainResult:
    """Train the policy with RLOO; returns where the checkpoints and logs are."""
    try:
        import torch
        from transformers.trainer_utils import get_last_checkpoint
        from trl import RLOOConfig, RLOOTrainer
    except ImportError as exc:
        raise MissingDependencyError("trl", "rl") from exc
    from recursa.rl.model import load_policy

    out = Path(settings.out).expanduser()
    dataset = load_rows(data_files(settings.data))
    out.mkdir(parents=True, exist_ok=True)
    cuda = torch.cuda.is_available()
    bf16_gpu = cuda and torch.cuda.is_bf16_supported()
    try:
        args = RLOOConfig(**rloo_arguments(settings, out, cuda, quiet, bf16_gpu))
    except (TypeError, ValueError) as exc:
        raise UsageError(f"TRL refused the training settings: {exc}") from exc
    dtype = getattr(torch, training_dtype(settings, cuda, bf16_gpu))
    model, tokenizer = load_policy(settings.model, dtype)
    dataset, dropped = drop_long_prompts(dataset, tokenizer, settings.prompt_limit)
    reward_log = out / REWARD_LOG
    checkpoint = get_last_checkpoint(str(out)) if settings.resume else None
    if not settings.resume:
        reward_log.unlink(missing_ok=True)
    funcs: list[Any] = list(reward_funcs) if reward_funcs else [correctness]
    trainer = RLOOTrainer(
        model=model,
        reward_funcs=funcs,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        callbacks=[reward_log_callback(reward_log)],
    )
    if quiet:
        from transformers import PrinterCallback

        trainer.remove_callback(PrinterCallback)  # the per-step dicts on stdout
    trainer.train(resume_from_checkpoint=checkpoint)
    final = out / FINAL_DIR
    trainer.save_model(str(final))
    tokenizer.save_pretrained(str(final))
    return TrainResult(
        out_dir=out,
        final_dir=final,
        reward_log=reward_log,
        steps=int(trainer.state.global_step),
        rows=len(dataset),
        dropped_rows=dropped,
    )
