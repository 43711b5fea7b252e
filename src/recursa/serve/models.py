"""Model names: the request's `model` chooses the upstream model, and may set N, K and T.

`MODEL` (an upstream model's id) runs RSA on that model with the server's defaults, as does
`rsa/MODEL`; `rsa-n8-k3-t4/MODEL` sets N, K and T (any of the three may be left out:
`rsa-t2/MODEL`) for clients that cannot send an `rsa` object (the `llm` CLI, chat UIs). A name
without `/MODEL` (`rsa`, `rsa-n8-k3-t4`), or no `model` at all, means the server's default
model (`--model`, else the first the upstream lists). GET /v1/models lists, for each upstream
model, the three spellings `MODEL`, `rsa/MODEL` and `rsa-nN-kK-tT/MODEL` with the server's
defaults.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from recursa.config import RSAConfig

_RSA_NAME = re.compile(r"^rsa(?:-n(?P<n>\d+))?(?:-k(?P<k>\d+))?(?:-t(?P<t>\d+))?(?:/(?P<m>.+))?$")


@dataclass(frozen=True)
class ModelChoice:
    """What a request's model name asks for: an upstream model (None: the server's default)
    and N/K/T settings from an `rsa-...` prefix."""

    upstream: str | None
    settings: dict[str, int] = field(default_factory=dict)


def parse_model_name(name: str | None) -> ModelChoice:
    if not name:
        return ModelChoice(None)
    match = _RSA_NAME.match(name)
    if match is None:
        return ModelChoice(name)
    settings = {k: int(match[k]) for k in ("n", "k", "t") if match[k] is not None}
    return ModelChoice(match["m"] or None, settings)


def rsa_spelling(model: str, defaults: RSAConfig) -> str:
    """`rsa-nN-kK-tT/MODEL` with the server's defaults."""
    return f"rsa-n{defaults.n}-k{defaults.k}-t{defaults.t}/{model}"


def model_entries(upstream_list: dict[str, Any], defaults: RSAConfig) -> dict[str, Any]:
    """The upstream's model list with each model's two RSA spellings after it."""
    entries: list[Any] = []
    for item in upstream_list.get("data") or []:
        entries.append(item)
        model_id = item.get("id") if isinstance(item, dict) else None
        if isinstance(model_id, str) and model_id:
            for spelled in (f"rsa/{model_id}", rsa_spelling(model_id, defaults)):
                entries.append({**item, "id": spelled, "root": model_id})
    return {**upstream_list, "object": "list", "data": entries}


def upstream_ids(upstream_list: dict[str, Any]) -> list[str]:
    """The model ids an upstream's list names."""
    ids = []
    for item in upstream_list.get("data") or []:
        model_id = item.get("id") if isinstance(item, dict) else None
        if isinstance(model_id, str) and model_id:
            ids.append(model_id)
    return ids
