"""Loading the policy to train: a Hugging Face model directory or name, or a GGUF file.

A GGUF file is dequantised on load (transformers' `gguf_file=` support, which needs the
`gguf` package). transformers then marks the model as quantized, and its Trainer refuses to
train a quantized model; the weights really are plain floats after dequantisation, so the
marks are cleared here. Checkpoints saved afterwards are ordinary Hugging Face directories.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from recursa.errors import MissingDependencyError, UsageError

if TYPE_CHECKING:
    import torch

GGUF_MAGIC = b"GGUF"


def is_gguf_file(path: Path) -> bool:
    """Whether `path` is a file that starts with the GGUF magic bytes."""
    if not path.is_file():
        return False
    with path.open("rb") as fh:
        return fh.read(4) == GGUF_MAGIC


def clear_quantization_marks(model: Any) -> None:
    """Forget that a dequantised GGUF model was 'quantized', so it trains and saves plainly."""
    for attr, value in (("hf_quantizer", None), ("is_quantized", False)):
        if hasattr(model, attr):
            setattr(model, attr, value)
    if hasattr(model, "quantization_method"):
        model.quantization_method = None
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")


def model_source(name: str) -> tuple[str, dict[str, Any]]:
    """(path or hub name, from_pretrained keywords) for a GGUF file, a directory or a name."""
    path = Path(name).expanduser()
    if path.is_file():
        if not is_gguf_file(path):
            raise UsageError(
                f"model file {path} is not a GGUF file; give a GGUF file, a Hugging Face model "
                "directory or a model name"
            )
        try:
            import gguf  # noqa: F401  (transformers needs it to read the file)
        except ImportError as exc:
            raise MissingDependencyError("gguf", "rl") from exc
        return str(path.parent), {"gguf_file": path.name}
    if path.is_dir():
        return str(path), {}
    return name, {}


def _load_error(name: str, exc: Exception) -> UsageError:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return UsageError(f"could not load model {name!r}: {first}")


def load_config(name: str) -> Any:
    """The model's transformers config (config.json, or a GGUF file's metadata); no weights."""
    try:
        from transformers import AutoConfig
    except ImportError as exc:
        raise MissingDependencyError("transformers", "rl") from exc
    source, kwargs = model_source(name)
    try:
        return AutoConfig.from_pretrained(source, **kwargs)
    except (OSError, ValueError) as exc:
        raise _load_error(name, exc) from exc


def load_policy(name: str, dtype: torch.dtype) -> tuple[Any, Any]:
    """(model, tokenizer) for training from a GGUF file, a model directory or a hub name.

    The tokenizer pads and truncates on the left, as TRL's trainers require."""
    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        raise MissingDependencyError("transformers", "rl") from exc
    source, kwargs = model_source(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, **kwargs)
    except (OSError, ValueError) as exc:
        raise _load_error(name, exc) from exc
    if "gguf_file" in kwargs:
        clear_quantization_marks(model)
    tokenizer.padding_side = "left"
    tokenizer.truncation_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer
