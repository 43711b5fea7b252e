"""Validated settings. The CLI maps its flags onto these fields; YAML config files hold them too."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from recursa.backends.admission import InFlightEstimate
from recursa.backends.openai_options import OpenAIOptions
from recursa.errors import UsageError
from recursa.think import keep_think_alias

TaskName = Literal["general", "math", "rg", "mcq", "code", "arc"]
SelectionName = Literal["majority", "random"]


class RSAConfig(BaseModel):
    """The algorithm's settings for one RSA run (paper defaults)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    n: int = Field(16, ge=1, description="Population size N: candidates kept at every step.")
    k: int = Field(4, ge=1, description="Aggregation-set size K: candidates shown per new one.")
    t: int = Field(10, ge=1, description="Number of steps T (1 = plain parallel sampling).")
    task: TaskName = Field("general", description="Task family: prompt and answer format.")
    seed: int = Field(0, description="Run seed: fixes subsets, sampling seeds and tie-breaks.")
    temperature: float = Field(1.0, ge=0.0, description="Sampling temperature.")
    top_p: float | None = Field(None, gt=0.0, le=1.0, description="Nucleus sampling (off).")
    max_tokens: int = Field(8192, ge=1, description="Maximum new tokens per generation.")
    think: Literal["keep", "strip", "auto"] = Field(
        "auto",
        description="<think> blocks of candidates shown for aggregation: 'keep' them, 'strip' "
        "them, or 'auto': whole candidates when the K of them fit the context window, "
        "stripped only when they do not (then tails are kept, as the context policy says).",
    )
    keep_think: bool | None = Field(
        None, description="Deprecated: --keep-think is --think keep, --no-keep-think --think strip."
    )
    summarize_candidates: bool = Field(
        False,
        description="Before each aggregation step, the model summarises every candidate of the "
        "previous step; aggregation prompts show the summaries (the reference's --summarize-cot).",
    )
    reasoning_effort: Literal["low", "medium", "high"] | None = Field(
        None,
        description="Reasoning effort for models that take one (gpt-oss): sent with every "
        "request, as the backend's server or chat template expects (default: not sent).",
    )
    selection: SelectionName = Field(
        "majority", description="Final answer: majority vote, or a random member of the last step."
    )
    early_stop: str | None = Field(
        None,
        description="Stop refining a problem once the same answer holds all ('unanimous') or a "
        "share F > 0.5 ('agree:F') of the population at two steps running (default off).",
    )
    sync_steps: bool = Field(
        False,
        description="Step barrier across problems (the reference code's schedule; slower).",
    )

    @model_validator(mode="before")
    @classmethod
    def _keep_think_alias(cls, data: Any) -> Any:
        return keep_think_alias(data)

    @model_validator(mode="after")
    def _k_within_n(self) -> RSAConfig:
        if self.k > self.n:
            raise ValueError(
                f"K ({self.k}) cannot exceed the population size N ({self.n}): "
                "subsets are drawn without replacement"
            )
        if self.early_stop is not None:
            early_stop_fraction(self.early_stop)
        return self


def early_stop_fraction(rule: str) -> float:
    """The agreement fraction an early-stop rule asks for ('unanimous' is 1.0). F must be a
    strict majority (over 0.5): a smaller share can be tied with another answer's."""
    if rule == "unanimous":
        return 1.0
    if rule.startswith("agree:"):
        try:
            value = float(rule.split(":", 1)[1])
        except ValueError:
            value = -1.0
        if 0.5 < value <= 1.0:
            return value
    raise ValueError(f"early stop must be 'unanimous' or 'agree:F' with 0.5 < F <= 1, not {rule!r}")


BackendName = Literal["llamacpp", "openai", "mock", "vllm", "ray"]
EngineName = Literal["vllm", "openai", "llamacpp", "mock"]  # what a Ray replica runs


class BackendConfig(OpenAIOptions):
    """How to reach the model. The openai backend's own fields come from `OpenAIOptions`
    (recursa/backends/openai_options.py)."""

    model_config = ConfigDict(extra="forbid")

    backend: BackendName = Field("llamacpp", description="Model backend.")
    model: str | None = Field(
        None,
        description="Model: a GGUF path (llamacpp; default the bundled SmolLM2-135M-Instruct), "
        "the served model name (openai), or a Hugging Face name or local path (vllm).",
    )
    base_url: str | None = Field(
        None, description="OpenAI-compatible server URL, e.g. http://127.0.0.1:8000/v1."
    )
    api_key: SecretStr | None = Field(
        None, description="API key for the server (default: the OPENAI_API_KEY variable)."
    )
    concurrency: int | None = Field(
        None, ge=1, description="Requests in flight at once (default: the backend's own)."
    )
    max_tokens_in_flight: int | None = Field(
        None,
        ge=1,
        description="Admission control: most tokens (prompt + expected decode) in flight at "
        "once, e.g. the engine's KV-cache size (default: no limit).",
    )
    in_flight_estimate: InFlightEstimate = Field(
        "max_tokens",
        description="Expected decode per request for --max-tokens-in-flight: max_tokens, or "
        "usage (the mean completion length reported so far).",
    )
    timeout: float = Field(600.0, gt=0, description="Seconds before one request times out.")
    max_retries: int = Field(
        6, ge=0, description="Retries of a failed request (429, 5xx, timeouts, dropped links)."
    )
    retry_base_delay: float = Field(
        0.5,
        ge=0.0,
        description="Seconds of the first retry's back-off; doubled per retry, full jitter.",
    )
    retry_max_delay: float = Field(
        30.0,
        ge=0.0,
        description="Longest back-off between retries in seconds (a Retry-After may ask up to "
        "4 times this).",
    )
    context_tokens: int | None = Field(
        None, ge=64, description="Context window in tokens used to fit aggregation prompts."
    )
    n_ctx: int | None = Field(
        None, ge=64, description="llamacpp: context window to allocate (default 8192)."
    )
    n_threads: int | None = Field(None, ge=1, description="llamacpp: CPU threads.")
    tensor_parallel_size: int | None = Field(
        None, ge=1, description="vllm: GPUs each model copy is split across (default 1)."
    )
    data_parallel_size: int | None = Field(
        None, ge=1, description="vllm: model copies serving requests side by side (default 1)."
    )
    gpu_memory_utilization: float | None = Field(
        None, gt=0.0, le=1.0, description="vllm: share of GPU memory vLLM may take (default 0.9)."
    )
    max_model_len: int | None = Field(
        None, ge=64, description="vllm: context window (default: the model's own)."
    )
    max_num_seqs: int | None = Field(
        None, ge=1, description="vllm: most sequences decoded together (default: vLLM's)."
    )
    mock_latency: float = Field(0.0, ge=0.0, description="mock: seconds per request.")
    mock_accuracy: float = Field(
        0.3, ge=0.0, le=1.0, description="mock: chance a fresh sample is correct."
    )
    mock_quality: float = Field(
        0.6,
        ge=0.0,
        le=1.0,
        description="mock: chance an aggregation picks a correct candidate when one is shown.",
    )
    # -- ray: engine replicas as Ray actors (docs/DISTRIBUTED.md) --------------------------------
    ray_address: str | None = Field(
        None,
        description="ray: cluster to join ('auto', 'HOST:6379', 'ray://HOST:10001') or 'local' "
        "for a new local instance (default: RAY_ADDRESS, else local).",
    )
    replicas: int = Field(1, ge=1, description="ray: engine replicas, one Ray actor each.")
    engine: EngineName = Field("vllm", description="ray: the backend every replica runs.")
    replica_gpus: float | None = Field(
        None,
        ge=0,
        description="ray: GPUs per replica (default: vllm's tensor x data parallel size, else 0).",
    )
    replica_cpus: float = Field(1.0, ge=0, description="ray: CPUs reserved per replica.")
    replica_restarts: int = Field(
        3, ge=-1, description="ray: times Ray restarts a dead replica (-1: without limit)."
    )


def _field_names(model: type[BaseModel]) -> set[str]:
    return set(model.model_fields)


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML settings file: a flat mapping of setting names (flag names, '_' or '-')."""
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"config file {p} does not exist")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise UsageError(f"config file {p} is not UTF-8 text") from exc
    except yaml.YAMLError as exc:
        raise UsageError(f"config file {p} is not valid YAML ({_yaml_problem(exc)})") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UsageError(
            f"config file {p} must hold a mapping of settings, not a {type(data).__name__}"
        )
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """PyYAML's multi-line report as one clause: the problem and where it is."""
    problem = getattr(exc, "problem", None) or type(exc).__name__
    mark = getattr(exc, "problem_mark", None)
    if mark is not None:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return str(problem)


def build_configs(values: dict[str, Any]) -> tuple[RSAConfig, BackendConfig]:
    """Split a flat mapping between the two models; unknown names and bad values are errors."""
    rsa_fields, backend_fields = _field_names(RSAConfig), _field_names(BackendConfig)
    unknown = sorted(set(values) - rsa_fields - backend_fields)
    if unknown:
        raise UsageError(f"unknown setting {unknown[0]!r}")
    try:
        rsa = RSAConfig(**{k: v for k, v in values.items() if k in rsa_fields})
        backend = BackendConfig(**{k: v for k, v in values.items() if k in backend_fields})
    except ValidationError as exc:
        raise UsageError(validation_message(exc)) from exc
    return rsa, backend


def validation_message(exc: ValidationError) -> str:
    """One sentence from pydantic's first error, naming the setting."""
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err.get("loc", ()))
    msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
    if loc and "key" in loc:  # api_key, upstream_api_key: never echo a secret
        return f"invalid setting {loc}: {msg}"
    if loc:
        return f"invalid setting {loc}={err.get('input')!r}: {msg}"
    return msg
