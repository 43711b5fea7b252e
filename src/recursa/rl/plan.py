"""`recursa rl train --dry-run`: the resolved TRL settings, the dtype and a GPU memory estimate.

Nothing is loaded: the model's config (config.json, or a GGUF file's metadata) gives the
architecture, torch says which GPU this machine has (without one, the plan is for an 80 GB
CUDA GPU with bf16, or `--gpu-memory-gb`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recursa.errors import MissingDependencyError, RecursaError
from recursa.rl.memory import GIB, Architecture, MemoryPlan, estimate, gib
from recursa.rl.train import (
    TrainSettings,
    _world_size,
    data_file,
    rloo_arguments,
    training_dtype,
)

#: The GPU a plan assumes where this machine has none (an A100/H100 80 GB).
DEFAULT_GPU_GB = 80.0
#: Significant bits of a bfloat16 value (7 stored + the implicit one).
BF16_MANTISSA_BITS = 8


@dataclass(frozen=True)
class Gpu:
    name: str
    bytes: int
    bf16: bool
    present: bool


def this_gpu(settings: TrainSettings) -> Gpu:
    """The CUDA GPU here, or the one the plan assumes."""
    try:
        import torch
    except ImportError as exc:
        raise MissingDependencyError("torch", "rl") from exc
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        total = int(settings.gpu_memory_gb * GIB) if settings.gpu_memory_gb else props.total_memory
        return Gpu(props.name, total, torch.cuda.is_bf16_supported(), True)
    gb = settings.gpu_memory_gb or DEFAULT_GPU_GB
    return Gpu(f"an assumed {gb:g} GiB CUDA GPU with bf16 (none here)", int(gb * GIB), True, False)


def plan(
    settings: TrainSettings, arch: Architecture, gpu: Gpu
) -> tuple[dict[str, Any], str, MemoryPlan]:
    """(RLOOConfig keywords, dtype, memory plan) for a run on `gpu`."""
    out = Path(settings.out).expanduser()
    args = rloo_arguments(settings, out, cuda=True, quiet=False, bf16_gpu=gpu.bf16)
    dtype = training_dtype(settings, cuda=True, bf16_gpu=gpu.bf16)
    world = _world_size()
    share = int(settings.vllm_gpu_memory_utilization * gpu.bytes) if settings.use_vllm else 0
    memory = estimate(
        arch,
        dtype=dtype,
        prompt_tokens=settings.prompt_limit,
        response_tokens=settings.response_limit,
        generation_batch=max(1, int(args["generation_batch_size"]) // world),
        micro_batch=settings.micro_batch_size,
        gradient_checkpointing=bool(args["gradient_checkpointing"]),
        vllm_share_bytes=share,
    )
    return args, dtype, memory


def report(settings: TrainSettings) -> str:
    """The dry run's text."""
    from recursa.rl.hub_data import is_hub_name
    from recursa.rl.model import load_config

    if not is_hub_name(settings.data):  # a hub dataset is downloaded only when training
        data_file(settings.data)
    arch = Architecture.from_config(load_config(settings.model))
    gpu = this_gpu(settings)
    args, dtype, m = plan(settings, arch, gpu)
    lines = ["recursa rl train --dry-run: nothing is loaded or trained", "", "TRL RLOOConfig:"]
    lines += [f"  {key} = {value!r}" for key, value in args.items()]
    p = arch.parameters
    b = m.weights // p
    lines += [
        "",
        f"policy: {settings.model} ({p / 1e9:.2f} B parameters), dtype {dtype}",
        f"GPU: {gpu.name}, {gib(gpu.bytes)}",
        "memory estimate, one process:",
        f"  weights      {gib(m.weights):>10}  {p:,} x {b} bytes",
        f"  gradients    {gib(m.gradients):>10}  {p:,} x {b} bytes",
        f"  optimizer    {gib(m.optimizer):>10}  AdamW: 2 states x {b} bytes",
    ]
    if settings.use_vllm:
        lines.append(
            f"  vLLM         {gib(m.vllm_share):>10}  vllm_gpu_memory_utilization "
            f"{settings.vllm_gpu_memory_utilization:g} (its weights and KV cache)"
        )
    else:
        lines.append(f"  KV cache     {gib(m.kv_cache):>10}  one generation batch: {m.kv_detail}")
    lines.append(f"  activations  {gib(m.activations):>10}  {m.activation_detail}")
    rule = (
        "weights + gradients + optimizer + vLLM + activations"
        if settings.use_vllm
        else "weights + gradients + optimizer + max(KV cache, activations)"
    )
    verdict = "fits" if m.peak <= gpu.bytes else "does NOT fit"
    lines += [f"  peak         {gib(m.peak):>10}  {rule}", f"  -> {verdict} in {gib(gpu.bytes)}"]
    if dtype == "bfloat16":
        lines.append(bf16_rounding_note(float(args["learning_rate"])))
    return "\n".join(lines)


def bf16_rounding_note(learning_rate: float) -> str:
    """AdamW moves a weight by about the learning rate; a bf16 weight w only moves when that is
    at least half its spacing, w x 2^-8 (8 significant bits), i.e. when |w| <= lr x 256."""
    threshold = learning_rate * 2**BF16_MANTISSA_BITS
    return (
        f"note: bf16 weights keep no float32 master copy, so at learning rate {learning_rate:g}"
        f" AdamW updates of weights larger than {threshold:.2g} in magnitude (most of them)"
        " round away; --dtype float32 or verl-config avoids this (docs/RL.md)"
    )


def dry_run(settings: TrainSettings) -> str:
    try:
        return report(settings)
    except RecursaError:
        raise
    except (AttributeError, TypeError) as exc:  # a config without the usual size fields
        raise RecursaError(f"cannot estimate memory for {settings.model!r}: {exc}") from exc
