"""Flags generated from the settings models, so each setting is declared once."""

from __future__ import annotations

import argparse
import os
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, SecretStr

from recursa.backends import BACKENDS, backend_options
from recursa.benchmarks import BENCHMARKS
from recursa.config import (
    BackendConfig,
    RSAConfig,
    backend_setting_names,
    build_configs,
    load_config_file,
)
from recursa.errors import UsageError
from recursa.final_selection import SELECTIONS
from recursa.registry import Registry
from recursa.runs.methods import METHODS
from recursa.tasks import TASKS

#: Extra spellings for some settings (the paper's letters first).
ALIASES: dict[str, list[str]] = {
    "n": ["-n", "--population"],
    "k": ["-k", "--subset"],
    "t": ["-t", "--steps"],
}
#: Settings the solve-like commands do not expose as flags.
HIDDEN: set[str] = set()


def _plain_type(annotation: Any) -> tuple[Any, list[str] | None]:
    """The scalar type behind Optional[...] and Literal choices."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _plain_type(args[0])
    if origin is Literal:
        return str, [str(a) for a in typing.get_args(annotation)]
    if annotation is SecretStr:
        return str, None
    return annotation, None


def add_model_flags(
    parser: Any, model: type[BaseModel], skip: frozenset[str] = frozenset()
) -> None:
    """One flag per field; defaults are SUPPRESSed so only what the user typed is seen."""
    for name, field in model.model_fields.items():
        if name in skip or name in HIDDEN:
            continue
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        flags = ALIASES.get(name) or [str(extra.get("flag") or f"--{name.replace('_', '-')}")]
        kind, choices = _plain_type(field.annotation)
        metavar = str(extra.get("metavar") or name.upper())
        default = None if field.is_required() else field.default
        desc = field.description or ""
        if extra.get("registry"):
            desc = f"{desc} Registered: {', '.join(registry_names(str(extra['registry'])))}."
        shown = "" if default is None else f" (default: {default})"
        if field.is_required():
            shown = " (required)"
        if typing.get_origin(kind) is dict:  # repeatable KEY=JSON pairs
            parser.add_argument(
                *flags,
                dest=name,
                type=_key_value,
                action="append",
                default=argparse.SUPPRESS,
                metavar=metavar,
                help=f"{desc} (repeatable)",
            )
            continue
        if kind is bool:
            parser.add_argument(
                *flags,
                dest=name,
                action=argparse.BooleanOptionalAction,
                default=argparse.SUPPRESS,
                help=f"{desc}{shown}",
            )
            continue
        parser.add_argument(
            *flags,
            dest=name,
            type=kind,
            choices=choices,
            default=argparse.SUPPRESS,
            metavar=None if choices else metavar,
            help=f"{desc}{shown}",
        )


def _key_value(text: str) -> tuple[str, Any]:
    from recursa.backends.openai_options import parse_request_param

    try:
        return parse_request_param(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def registry_names(kind: str) -> list[str]:
    """The names a registry holds, for --help (kind: backends, tasks, selections, methods,
    benchmarks)."""
    registries: dict[str, Registry[Any]] = {
        "backends": BACKENDS,
        "tasks": TASKS,
        "selections": SELECTIONS,
        "methods": METHODS,
        "benchmarks": BENCHMARKS,
    }
    return registries[kind].names()


def add_backend_flags(parser: argparse.ArgumentParser) -> None:
    """The shared backend flags, then each backend's own options under its own heading."""
    backend = parser.add_argument_group("backend settings (every backend)")
    add_model_flags(backend, BackendConfig, frozenset({"options"}))
    for name, model in backend_options().items():
        add_model_flags(parser.add_argument_group(f"{name} backend settings"), model)


def add_settings_flags(parser: argparse.ArgumentParser, skip: frozenset[str] = frozenset()) -> None:
    """The RSA and backend flags shared by solve, eval and serve, plus --config; `skip`
    leaves out settings a command decides itself (eval takes each problem's task from the
    benchmark)."""
    rsa = parser.add_argument_group("RSA settings")
    add_model_flags(rsa, RSAConfig, skip)
    add_backend_flags(parser)
    parser.add_argument_group("backend settings (every backend)").add_argument(
        "--api-key-file",
        metavar="FILE",
        default=None,
        help="read --api-key from the first line of FILE, so that it is not on the command "
        "line (or set OPENAI_API_KEY)",
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        default=None,
        help="YAML file of settings (same names as the flags); flags override it",
    )


def read_settings(
    args: argparse.Namespace,
    names: Iterable[str],
    *,
    env: Mapping[str, str] | None = None,
    empty_is_a_value: frozenset[str] = frozenset(),
    key_files: Mapping[str, str] | None = None,
    file_names_only: bool = False,
    command: str = "",
) -> dict[str, Any]:
    """The one settings path of every command: the --config file's values, the flags the
    user typed on top (flag defaults are suppressed, so only typed ones are seen), keys read
    from files (`key_files`: setting -> the flag naming its file), then environment
    variables (`env`: setting -> variable) for settings still unset (set but empty counts
    only for `empty_is_a_value`). With `file_names_only`, a config-file setting outside
    `names` is an error."""
    config = getattr(args, "config", None)
    values: dict[str, Any] = load_config_file(config) if config else {}
    known = set(names)
    if file_names_only:
        unknown = sorted(set(values) - known)
        if unknown:
            where = f" for recursa {command}" if command else ""
            raise UsageError(f"unknown setting {unknown[0]!r}{where}")
    for name in known:
        if name in vars(args):
            value = getattr(args, name)
            if isinstance(value, list) and all(isinstance(v, tuple) for v in value):
                # KEY=JSON flags go on top of the config file's mapping, key by key.
                base = values.get(name)
                value = {**(base if isinstance(base, dict) else {}), **dict(value)}
            values[name] = value
    for name, flag in (key_files or {}).items():
        path = getattr(args, flag, None)
        if path:
            values[name] = read_key_file(path)
    for name, variable in (env or {}).items():
        set_but_empty = name in empty_is_a_value and variable in os.environ
        if values.get(name) is None and (os.environ.get(variable) or set_but_empty):
            values[name] = os.environ[variable]
    return values


def settings_from_args(args: argparse.Namespace, extra: Iterable[str] = ()) -> dict[str, Any]:
    """Solve-like commands: RSA and backend settings (plus `extra` names), --api-key-file,
    then OPENAI_API_KEY when no key was given."""
    names = set(RSAConfig.model_fields) | backend_setting_names() | set(extra)
    return read_settings(
        args, names, env={"api_key": "OPENAI_API_KEY"}, key_files={"api_key": "api_key_file"}
    )


def read_key_file(path: str) -> str:
    """A key from a file (its first line), so that it never appears on a command line."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.readline().strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise UsageError(f"cannot read the key file {path}: {reason}") from exc


def configs_from_args(args: argparse.Namespace) -> tuple[RSAConfig, BackendConfig]:
    return build_configs(settings_from_args(args))


def sandbox_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The code-sandbox settings the user typed (flags made from SandboxConfig)."""
    from recursa.sandbox import SandboxConfig

    return {name: getattr(args, name) for name in SandboxConfig.model_fields if name in vars(args)}
