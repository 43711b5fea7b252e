"""Training data named by a Hugging Face hub dataset (`--data OWNER/NAME`), such as the
paper's released aggregation-aware RL set, RSA-RL/DeepScaleR-RG-Aggregator-RL (verl RL
schema: `data_source`, `prompt`, `ability`, `reward_model`, `extra_info`).

`rl train` downloads the dataset's parquet files (huggingface_hub's `snapshot_download`, which
caches them and honours HF_HUB_OFFLINE and HF_ENDPOINT) and trains on its train split;
`rl verl-config` writes a script that does the download on the machine that runs it.
"""

from __future__ import annotations

import re
from pathlib import Path

from recursa.errors import MissingDependencyError, RecursaError, UsageError

PAPER_RL_DATASET = "RSA-RL/DeepScaleR-RG-Aggregator-RL"
_HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def is_hub_name(data: str) -> bool:
    """Whether --data names a hub dataset (OWNER/NAME) rather than a local path."""
    return bool(_HUB_NAME.match(data)) and not Path(data).expanduser().exists()


def train_files(directory: Path) -> list[Path]:
    """The train split's parquet files in a downloaded dataset (every parquet file when no
    file name says "train"), sorted."""
    files = sorted(p for p in directory.rglob("*.parquet") if p.is_file())
    train = [p for p in files if "train" in p.relative_to(directory).as_posix().lower()]
    return train or files


def download(name: str) -> list[Path]:
    """The hub dataset's train parquet files, downloaded (or from the local cache)."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:
        raise MissingDependencyError("huggingface_hub", "rl") from exc
    try:
        local = snapshot_download(repo_id=name, repo_type="dataset", allow_patterns=["*.parquet"])
    except Exception as exc:  # network errors, a missing repository, offline without a cache
        raise RecursaError(
            f"could not download the training data {name} from the Hugging Face hub "
            f"({type(exc).__name__}); download it elsewhere and pass its parquet file"
        ) from exc
    files = train_files(Path(local))
    if not files:
        raise UsageError(f"the hub dataset {name} holds no parquet files")
    return files


#: The bash words that make the verl launch script download a hub dataset and name its train
#: files as a hydra list (`[a,b]`), on the machine that runs the script.
SCRIPT_DOWNLOAD = (
    "$(python3 -c 'import sys; from pathlib import Path; "
    "from huggingface_hub import snapshot_download; "
    'd = Path(snapshot_download(repo_id=sys.argv[1], repo_type="dataset", '
    'allow_patterns=["*.parquet"])); '
    'f = sorted(p for p in d.rglob("*.parquet")); '
    't = [p for p in f if "train" in p.relative_to(d).as_posix().lower()] or f; '
    'print("[" + ",".join(str(p) for p in t) + "]")\' {name})'
)
