"""Flags generated from the settings models, so each setting is declared once."""

from __future__ import annotations

import argparse
import os
import types
import typing
from typing import Any, Literal

from pydantic import BaseModel, SecretStr

from recursa.config import BackendConfig, RSAConfig, build_configs, load_config_file
from recursa.errors import UsageError

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


def add_settings_flags(parser: argparse.ArgumentParser, skip: frozenset[str] = frozenset()) -> None:
    """The RSA and backend flags shared by solve, eval and serve, plus --config; `skip`
    leaves out settings a command decides itself (eval takes each problem's task from the
    benchmark)."""
    rsa = parser.add_argument_group("RSA settings")
    add_model_flags(rsa, RSAConfig, skip)
    backend = parser.add_argument_group("backend settings")
    add_model_flags(backend, BackendConfig)
    backend.add_argument(
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


def settings_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """Config file values, then flags on top, then OPENAI_API_KEY if no key was given."""
    values: dict[str, Any] = load_config_file(args.config) if args.config else {}
    fields = set(RSAConfig.model_fields) | set(BackendConfig.model_fields)
    for name in fields:
        if name in vars(args):
            value = getattr(args, name)
            if isinstance(value, list) and all(isinstance(v, tuple) for v in value):
                # KEY=JSON flags go on top of the config file's mapping, key by key.
                base = values.get(name)
                value = {**(base if isinstance(base, dict) else {}), **dict(value)}
            values[name] = value
    if getattr(args, "api_key_file", None):
        values["api_key"] = read_key_file(args.api_key_file)
    if values.get("api_key") is None and os.environ.get("OPENAI_API_KEY"):
        values["api_key"] = os.environ["OPENAI_API_KEY"]
    return values


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
