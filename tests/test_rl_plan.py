"""`recursa rl train --dry-run` and the defaults for one 80 GB GPU (docs/RL.md's arithmetic).

The 4B model is Qwen3-4B-Instruct-2507's config.json shape (no weights: the dry run loads
none); TRL's real RLOOConfig checks the arguments the run would pass.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recursa.cli import main
from recursa.rl.memory import GIB, Architecture, estimate
from recursa.rl.train import TrainSettings, rloo_arguments
from tests.test_rl_train import tiny_data

pytest.importorskip("trl")

#: Qwen/Qwen3-4B-Instruct-2507's config.json (the sizes that matter).
QWEN3_4B = {
    "architectures": ["Qwen3ForCausalLM"],
    "model_type": "qwen3",
    "hidden_size": 2560,
    "intermediate_size": 9728,
    "num_hidden_layers": 36,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "vocab_size": 151936,
    "tie_word_embeddings": True,
    "max_position_embeddings": 262144,
    "torch_dtype": "bfloat16",
}
#: Its safetensors index: total_size 8,044,936,192 bytes of bf16 = this many parameters.
QWEN3_4B_PARAMETERS = 4_022_468_096


@pytest.fixture
def qwen4b(tmp_path: Path) -> Path:
    model = tmp_path / "qwen3-4b"
    model.mkdir()
    (model / "config.json").write_text(json.dumps(QWEN3_4B))
    return model


def dry_run(tmp_path: Path, model: Path, *flags: str) -> tuple[int, str, str]:
    import contextlib
    import io

    data = tiny_data(tmp_path / "data")
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        args = ["rl", "train", "--data", str(data), "--model", str(model)]
        code = main([*args, "--out", str(tmp_path / "run"), "--dry-run", *flags])
    return code, out.getvalue(), err.getvalue()


def test_the_parameter_count_matches_the_published_checkpoint() -> None:
    from transformers import AutoConfig

    arch = Architecture.from_config(AutoConfig.for_model(**QWEN3_4B))
    assert arch.parameters == QWEN3_4B_PARAMETERS
    assert arch.kv_bytes_per_token(2) == 2 * 36 * 8 * 128 * 2  # 144 KiB per token in bf16


def test_dry_run_prints_trl_settings_dtype_and_memory_and_trains_nothing(
    tmp_path: Path, qwen4b: Path
) -> None:
    code, out, err = dry_run(tmp_path, qwen4b)
    assert code == 0, err
    for line in (
        "  per_device_train_batch_size = 1",
        "  gradient_accumulation_steps = 1024",  # 256 prompts x 4 rollouts
        "  generation_batch_size = 4",  # one prompt's rollouts per generate, not 1,024
        "  max_completion_length = 8192",
        "  gradient_checkpointing = True",
        "  bf16 = True",
        "  use_vllm = False",
    ):
        assert line in out.splitlines(), line
    assert "dtype bfloat16" in out and "4.02 B parameters" in out
    assert "KV cache       23.1 GiB  one generation batch: 4 sequences x 41,984 tokens" in out
    assert "peak           53.0 GiB" in out and "-> fits in 80.0 GiB" in out
    # bf16 weights at lr 1e-6: most AdamW updates round away, and the dry run says so.
    assert "larger than 0.00026 in magnitude (most of them) round away" in out
    assert not (tmp_path / "run").exists()


def test_use_vllm_passes_the_context_and_a_share_that_fits_beside_training(
    tmp_path: Path, qwen4b: Path
) -> None:
    code, out, err = dry_run(tmp_path, qwen4b, "--use-vllm")
    assert code == 0, err
    assert "  vllm_max_model_length = 41984" in out.splitlines()  # 33,792 + 8,192
    assert "  vllm_gpu_memory_utilization = 0.25" in out.splitlines()
    assert "  vllm_mode = 'colocate'" in out.splitlines()
    assert "-> fits in 80.0 GiB" in out


def test_float32_weights_do_not_fit_and_the_dry_run_says_so(tmp_path: Path, qwen4b: Path) -> None:
    code, out, _ = dry_run(tmp_path, qwen4b, "--dtype", "float32")
    assert code == 0
    assert "dtype float32" in out and "does NOT fit in 80.0 GiB" in out
    assert "round away" not in out


def test_the_defaults_fit_80_gb_for_a_4b_model_at_the_paper_lengths() -> None:
    """The arithmetic of docs/RL.md, from the settings' own defaults."""
    from transformers import AutoConfig

    s = TrainSettings(data="d", model="m", out="o")
    arch = Architecture.from_config(AutoConfig.for_model(**QWEN3_4B))
    args = rloo_arguments(s, Path("o"), cuda=True, quiet=True, bf16_gpu=True)
    plan = estimate(
        arch,
        dtype="bfloat16",
        prompt_tokens=s.prompt_limit,
        response_tokens=s.response_limit,
        generation_batch=args["generation_batch_size"],
        micro_batch=s.micro_batch_size,
        gradient_checkpointing=s.gradient_checkpointing,
    )
    assert (s.prompt_limit, s.response_limit) == (33792, 8192)
    assert plan.weights + plan.gradients + plan.optimizer == 8 * QWEN3_4B_PARAMETERS
    assert plan.kv_cache == 4 * 41984 * 147456
    assert plan.peak < 60 * GIB  # 53 GiB: room on an 80 GB GPU
    # TRL's own default generation batch (the whole step: 1,024 sequences) would need TBs.
    whole_step = estimate(
        arch,
        dtype="bfloat16",
        prompt_tokens=s.prompt_limit,
        response_tokens=s.response_limit,
        generation_batch=s.prompts_per_step * s.rollouts,
        micro_batch=s.micro_batch_size,
        gradient_checkpointing=s.gradient_checkpointing,
    )
    assert whole_step.kv_cache > 5000 * GIB and whole_step.peak > 80 * GIB


def test_trl_accepts_the_arguments(tmp_path: Path) -> None:
    from trl import RLOOConfig

    for use_vllm in (False, True):
        s = TrainSettings(data="d", model="m", out="o", use_vllm=use_vllm)
        config = RLOOConfig(**rloo_arguments(s, tmp_path, cuda=False, quiet=True))
        assert config.generation_batch_size == (16 if use_vllm else 4)
        assert config.steps_per_generation == config.generation_batch_size  # micro-batch 1
        assert config.vllm_max_model_length == (41984 if use_vllm else None)


def test_a_generation_batch_that_splits_groups_is_one_sentence(
    tmp_path: Path, qwen4b: Path
) -> None:
    code, _, err = dry_run(tmp_path, qwen4b, "--generation-batch-size", "6")
    assert code == 2
    assert "generation_batch_size (6) must be a multiple of rollouts" in err


def test_a_gguf_policy_with_use_vllm_is_refused(
    tmp_path: Path, bundled_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["rl", "train", "--data", str(tiny_data(tmp_path / "d")), "--model", str(bundled_model)]
    code = main([*args, "--out", str(tmp_path / "o"), "--use-vllm", "--dry-run"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert "a GGUF policy cannot be sampled by TRL's vLLM" in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err


def test_the_bf16_rounding_note_matches_torchs_adamw() -> None:
    """The dry run's note, checked on torch itself: one AdamW step at lr 1e-6 leaves a bf16
    weight above lr x 256 unchanged and moves one below it."""
    import torch

    from recursa.rl.plan import BF16_MANTISSA_BITS

    lr = 1e-6
    threshold = lr * 2**BF16_MANTISSA_BITS
    weights = torch.tensor([0.03, 4 * threshold, threshold / 4], dtype=torch.bfloat16)
    p = torch.nn.Parameter(weights.clone())
    opt = torch.optim.AdamW([p], lr=lr, weight_decay=0.0)
    p.grad = torch.ones_like(p)
    opt.step()
    moved = (p.detach() != weights).tolist()
    assert moved == [False, False, True]


def test_the_papers_hub_dataset_needs_no_download_for_a_dry_run(
    tmp_path: Path, qwen4b: Path
) -> None:
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        args = ["rl", "train", "--data", "RSA-RL/DeepScaleR-RG-Aggregator-RL"]
        code = main([*args, "--model", str(qwen4b), "--out", str(tmp_path / "run"), "--dry-run"])
    assert code == 0 and "nothing is loaded or trained" in out.getvalue()
