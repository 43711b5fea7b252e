"""`recursa serve`: an OpenAI-compatible proxy that answers with RSA over an upstream server."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import signal
import socket
import sys
from typing import Any

from recursa.cli.options import add_model_flags, read_key_file
from recursa.config import BackendConfig, RSAConfig, load_config_file
from recursa.errors import MissingDependencyError, RecursaError, UsageError
from recursa.serve.redact import redact_url, register_secrets
from recursa.serve.settings import ServeSettings

#: Upstream settings that make sense for a proxy (the backend is always `openai`; its URL and
#: key are --upstream and --upstream-api-key).
UPSTREAM_FIELDS = frozenset({"model", "concurrency", "timeout", "max_retries", "context_tokens"})
#: RSA settings a server default can take (the step barrier concerns batches of problems).
RSA_FIELDS = frozenset(RSAConfig.model_fields) - {"sync_steps"}
#: Help for upstream settings whose shared description speaks of other backends.
UPSTREAM_HELP = {
    "model": "The model name sent upstream (default: the first model the upstream lists).",
    "concurrency": "Most requests in flight to the upstream at once, across all clients "
    "(default: 16).",
}


def register(sub: Any) -> None:
    p = sub.add_parser(
        "serve",
        help="run an OpenAI-compatible proxy that answers with RSA",
        description="Serve POST /v1/chat/completions, POST /v1/responses, GET /v1/models and "
        "GET /health. Every chat completion runs RSA over the upstream OpenAI-compatible server "
        "and answers with the selected final candidate. The RSA flags set the server's "
        'defaults; a request overrides them with an "rsa" object in its body, e.g. '
        '{"rsa": {"n": 8, "k": 3, "t": 4, "task": "math"}}, or with a model name such as '
        "rsa-n8-k3-t4/MODEL. Sampling parameters (stop, penalties, response_format, ...) reach "
        "every upstream generation. See docs/SERVE.md.",
    )
    server = p.add_argument_group("server settings")
    add_model_flags(server, ServeSettings, skip=frozenset({"cors_origin"}))
    server.add_argument(
        "--cors-origin",
        dest="cors_origin",
        action="append",
        default=argparse.SUPPRESS,
        metavar="ORIGIN",
        help=ServeSettings.model_fields["cors_origin"].description,
    )
    upstream = p.add_argument_group("upstream settings")
    add_model_flags(
        upstream, BackendConfig, skip=frozenset(BackendConfig.model_fields) - UPSTREAM_FIELDS
    )
    for action in upstream._group_actions:
        action.help = UPSTREAM_HELP.get(action.dest, action.help)
    add_model_flags(
        p.add_argument_group("RSA defaults (a request's rsa object overrides them)"),
        RSAConfig,
        skip=frozenset(RSAConfig.model_fields) - RSA_FIELDS,
    )
    keys = p.add_argument_group("keys from files (nothing secret on the command line)")
    keys.add_argument(
        "--api-key-file",
        metavar="FILE",
        default=None,
        help="read --api-key from the first line of FILE (or set RECURSA_API_KEY)",
    )
    keys.add_argument(
        "--upstream-api-key-file",
        metavar="FILE",
        default=None,
        help="read --upstream-api-key from the first line of FILE (or set OPENAI_API_KEY)",
    )
    p.add_argument(
        "--config",
        metavar="FILE",
        default=None,
        help="YAML file of settings (same names as the flags); flags override it",
    )
    p.set_defaults(run=run)


def serve_configs(args: argparse.Namespace) -> tuple[ServeSettings, RSAConfig, BackendConfig]:
    """Config file, then flags, then the key variables: the proxy's three settings models."""
    values: dict[str, Any] = load_config_file(args.config) if args.config else {}
    serve_fields = set(ServeSettings.model_fields)
    known = serve_fields | RSA_FIELDS | UPSTREAM_FIELDS
    unknown = sorted(set(values) - known)
    if unknown:
        raise UsageError(f"unknown setting {unknown[0]!r} for recursa serve")
    for name in known:
        if name in vars(args):
            values[name] = getattr(args, name)
    for name, path in (
        ("api_key", args_value(args, "api_key_file")),
        (
            "upstream_api_key",
            args_value(args, "upstream_api_key_file"),
        ),
    ):
        if path is not None:
            values[name] = read_key_file(path)
    if values.get("upstream_api_key") is None and os.environ.get("OPENAI_API_KEY"):
        values["upstream_api_key"] = os.environ["OPENAI_API_KEY"]
    if values.get("api_key") is None and "RECURSA_API_KEY" in os.environ:
        # Set but empty is an empty key (refused), not "no key".
        values["api_key"] = os.environ["RECURSA_API_KEY"]
    settings = ServeSettings(**{k: v for k, v in values.items() if k in serve_fields})
    rsa = RSAConfig(**{k: v for k, v in values.items() if k in RSA_FIELDS})
    upstream = BackendConfig(
        backend="openai", **{k: v for k, v in values.items() if k in UPSTREAM_FIELDS}
    )
    return settings, rsa, upstream


def args_value(args: argparse.Namespace, name: str) -> Any:
    return getattr(args, name, None)


def loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


def listen(host: str, port: int) -> socket.socket:
    """A listening socket, so that a busy port is one clear sentence before anything starts."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    except socket.gaierror as exc:
        raise UsageError(f"cannot resolve the host {host!r}: {exc.strerror}") from exc
    try:
        return socket.create_server((host, port), family=family)
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise RecursaError(f"cannot listen on {host}:{port}: {reason}") from exc


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def run(args: argparse.Namespace) -> int:
    settings, rsa, upstream = serve_configs(args)
    try:
        import uvicorn

        from recursa.serve.app import create_app
        from recursa.serve.limits import install_log_filters, uvicorn_options
    except ImportError as exc:
        raise MissingDependencyError("the server (starlette, uvicorn)", "serve") from exc
    if settings.api_key is None and not loopback(settings.host):
        raise UsageError(
            f"recursa serve without an API key listens only on a loopback address, not "
            f"{settings.host}: set RECURSA_API_KEY or --api-key-file"
        )
    register_secrets(settings)
    app = create_app(settings, rsa, upstream)
    sock = listen(settings.host, settings.port)
    if not args.quiet:
        logging.getLogger("recursa.serve").setLevel(logging.INFO)
    print(
        f"recursa serve: {_url(sock)}/v1 answers with RSA (N={rsa.n}, K={rsa.k}, T={rsa.t}, "
        f"task {rsa.task}) over {redact_url(settings.upstream_url)}"
        f"{'' if settings.api_key else '; no --api-key: clients are not authenticated'}",
        file=sys.stderr,
        flush=True,
    )
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            log_level="warning" if args.quiet else "info",
            access_log=not args.quiet,
            timeout_graceful_shutdown=5,
            **uvicorn_options(settings),
        )
    )
    install_log_filters()
    previous = signal.signal(signal.SIGTERM, _terminated)
    how = ""
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        # uvicorn shuts down gracefully, then re-raises the Ctrl-C (or SIGTERM) it caught:
        # for a server that is the normal way to stop, not a failure.
        how = " (interrupted)"
    except Terminated:
        how = " (SIGTERM)"
    finally:
        signal.signal(signal.SIGTERM, previous)
        sock.close()
    print(f"recursa serve: stopped{how}", file=sys.stderr)
    return 0


class Terminated(Exception):
    """SIGTERM arrived; uvicorn has already shut down gracefully when it is raised."""


def _terminated(signum: int, frame: object) -> None:
    raise Terminated
