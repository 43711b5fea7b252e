"""Validated settings. The CLI maps its flags onto these fields; YAML config files hold them too."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from recursa.backends import BACKENDS, BackendOptions, backend_options
from recursa.backends.admission import InFlightEstimate
from recursa.errors import UsageError
from recursa.final_selection import SELECTIONS
from recursa.registry import UnknownName
from recursa.tasks import TASKS
from recursa.think import keep_think_alias

OptionsT = TypeVar("OptionsT", bound=BackendOptions)


class RSAConfig(BaseModel):
    """The algorithm's settings for one RSA run (paper defaults)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    n: int = Field(16, ge=1, description="Population size N: candidates kept at every step.")
    k: int = Field(4, ge=1, description="Aggregation-set size K: candidates shown per new one.")
    t: int = Field(10, ge=1, description="Number of steps T (1 = plain parallel sampling).")
    task: str = Field(
        "general",
        description="Task family: prompt and answer format (a name in the task registry).",
        json_schema_extra={"registry": "tasks"},
    )
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
    selection: str = Field(
        "majority",
        description="Final answer: majority vote, a random member of the last step, or verify "
        "(the model judges each final candidate; the majority among those judged correct).",
        json_schema_extra={"registry": "selections"},
    )
    verify_temperature: float = Field(
        0.1,
        ge=0.0,
        description="selection verify: sampling temperature of the judgements (the reference's).",
    )
    verify_max_tokens: int = Field(
        10,
        ge=1,
        description="selection verify: maximum tokens of one True/False judgement (the "
        "reference's).",
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

    @field_validator("task")
    @classmethod
    def _known_task(cls, name: str) -> str:
        return TASKS.validate(name)

    @field_validator("selection")
    @classmethod
    def _known_selection(cls, name: str) -> str:
        return SELECTIONS.validate(name)

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


class BackendConfig(BaseModel):
    """How to reach the model: what every backend and the dispatcher share, plus `options`,
    the chosen backend's own settings (each backend declares them in its own file, as a
    `BackendOptions` model). Options may be given flat (`BackendConfig(backend="mock",
    mock_accuracy=0.5)`), as config files and flags give them."""

    model_config = ConfigDict(extra="forbid")

    backend: str = Field(
        "llamacpp",
        description="Model backend (a name in the backend registry).",
        json_schema_extra={"registry": "backends"},
    )
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
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="Backend options by name (each backend's own settings model).",
    )

    @model_validator(mode="before")
    @classmethod
    def _flat_options(cls, data: Any) -> Any:
        """Option names given beside the shared settings go into `options`."""
        if not isinstance(data, dict):
            return data
        shared = set(cls.model_fields)
        flat = {k: v for k, v in data.items() if k not in shared}
        if not flat:
            return data
        given = data.get("options")
        options = dict(given) if isinstance(given, dict) else {}
        options.update(flat)
        return {**{k: v for k, v in data.items() if k in shared}, "options": options}

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, name: str) -> str:
        return BACKENDS.validate(name)

    @model_validator(mode="after")
    def _valid_options(self) -> BackendConfig:
        models = backend_options()
        owners = option_owners(models)
        for name in self.options:
            if name not in owners:
                raise ValueError(f"unknown setting {name!r}")
        for model in {owners[name] for name in self.options}:
            try:
                self.options_for(model)
            except ValidationError as exc:
                raise ValueError(validation_message(exc)) from None
        return self

    def options_for(self, model: type[OptionsT]) -> OptionsT:
        """The options model filled from `options` (its defaults for what is not given)."""
        return model(**{k: v for k, v in self.options.items() if k in model.model_fields})

    def recorded(self) -> dict[str, Any]:
        """What a run records (settings.json, `solve --json`): the shared settings (never the
        API key) and the chosen backend's options with their defaults, plus any other options
        given, flat."""
        out = self.model_dump(mode="json", exclude={"api_key", "options"})
        for model in self._applying_options():
            out.update(self.options_for(model).model_dump(mode="json"))
        for name, value in self.options.items():
            out.setdefault(name, value)
        return out

    def _applying_options(self) -> list[type[BackendOptions]]:
        """The chosen backend's options model, then those of the backends its options name
        (ray: the engine each replica runs)."""
        models = backend_options()
        own = models.get(self.backend)
        if own is None:
            return []
        found = [own]
        options = self.options_for(own)
        for name, field in own.model_fields.items():
            extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
            inner = models.get(str(getattr(options, name))) if extra.get("registry") else None
            if inner is not None and inner not in found:
                found.append(inner)
        return found


def resumable_settings() -> frozenset[str]:
    """Backend settings that change how fast a run goes, not what it produces (a resume may
    change them): the shared timing and retry settings, and options marked `resumable`."""
    names = {
        "concurrency",
        "max_tokens_in_flight",
        "in_flight_estimate",
        "timeout",
        "max_retries",
        "retry_base_delay",
        "retry_max_delay",
    }
    for model in backend_options().values():
        for name, field in model.model_fields.items():
            extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
            if extra.get("resumable"):
                names.add(name)
    return frozenset(names)


def option_owners(models: dict[str, type[BackendOptions]]) -> dict[str, type[BackendOptions]]:
    """Option name -> the options model that declares it."""
    owners: dict[str, type[BackendOptions]] = {}
    for model in models.values():
        for name in model.model_fields:
            owners.setdefault(name, model)
    return owners


def backend_option_names() -> set[str]:
    """Every option name any registered backend declares."""
    return set(option_owners(backend_options()))


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


def merge_settings(given: Iterable[BaseModel | None], values: Mapping[str, Any]) -> dict[str, Any]:
    """The one way settings combine: the fields set in the given models, in order, then the
    flat `values` on top (the library's keywords, a command's config file and flags)."""
    merged: dict[str, Any] = {}
    for model in given:
        if model is not None:
            merged.update(model.model_dump(exclude_unset=True))
    merged.update(values)
    return merged


def backend_setting_names() -> set[str]:
    """Names a flat mapping may use for backend settings: shared fields and options."""
    return _field_names(BackendConfig) | backend_option_names()


def backend_config(values: Mapping[str, Any]) -> BackendConfig:
    """The BackendConfig from the backend settings among flat `values` (others ignored)."""
    names = backend_setting_names()
    try:
        return BackendConfig(**{k: v for k, v in values.items() if k in names})
    except ValidationError as exc:
        raise UsageError(validation_message(exc)) from exc


def build_configs(values: Mapping[str, Any]) -> tuple[RSAConfig, BackendConfig]:
    """Split a flat mapping between the two models; unknown names and bad values are errors."""
    rsa_fields = _field_names(RSAConfig)
    unknown = sorted(set(values) - rsa_fields - backend_setting_names())
    if unknown:
        raise UsageError(f"unknown setting {unknown[0]!r}")
    try:
        rsa = RSAConfig(**{k: v for k, v in values.items() if k in rsa_fields})
    except ValidationError as exc:
        raise UsageError(validation_message(exc)) from exc
    return rsa, backend_config(values)


def validation_message(exc: ValidationError) -> str:
    """One sentence from pydantic's first error, naming the setting."""
    err = exc.errors()[0]
    cause = (err.get("ctx") or {}).get("error")
    if isinstance(cause, UnknownName):  # the registry's own sentence says it all
        return str(cause)
    loc = ".".join(str(p) for p in err.get("loc", ()))
    msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
    if loc and "key" in loc:  # api_key, upstream_api_key: never echo a secret
        return f"invalid setting {loc}: {msg}"
    if loc:
        return f"invalid setting {loc}={err.get('input')!r}: {msg}"
    return msg
