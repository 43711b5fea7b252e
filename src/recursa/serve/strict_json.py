"""Request JSON without the parser's traps: nesting past a small depth, integers of
thousands of digits, and the non-standard NaN/Infinity literals are refused as malformed
input (a 400 naming the problem) instead of ending in a RecursionError, a ValueError from
int() or an infinite temperature."""

from __future__ import annotations

import json
import math
import re
from typing import Any

#: Deepest nesting a request may have (OpenAI bodies need about 6).
MAX_DEPTH = 64
#: Longest number literal a request may have.
MAX_NUMBER_CHARS = 100

_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"')
_BRACKETS = bytes.maketrans(b"", b"")
_DELETE = bytes(set(range(256)) - set(b"[]{}"))


class MalformedJSON(ValueError):
    """JSON that is valid by the grammar but refused here."""


def nesting_depth(raw: bytes) -> int:
    """The deepest nesting of arrays and objects in `raw` (strings ignored)."""
    brackets = _STRINGS.sub(b"", raw).translate(_BRACKETS, _DELETE)
    depth = deepest = 0
    for byte in brackets:
        depth += 1 if byte in b"[{" else -1
        deepest = max(deepest, depth)
    return deepest


def _integer(text: str) -> int:
    if len(text) > MAX_NUMBER_CHARS:
        raise MalformedJSON(f"an integer with {len(text)} digits")
    return int(text)


def _float(text: str) -> float:
    if len(text) > MAX_NUMBER_CHARS:
        raise MalformedJSON(f"a number of {len(text)} characters")
    value = float(text)
    if not math.isfinite(value):
        raise MalformedJSON(f"the number {text[:20]} is out of range")
    return value


def _constant(text: str) -> Any:
    raise MalformedJSON(f"{text} is not a JSON number")


def loads(raw: bytes) -> Any:
    """Parse a request body; MalformedJSON (a ValueError) for what is refused here,
    json.JSONDecodeError and UnicodeDecodeError as json.loads raises them."""
    depth = nesting_depth(raw)
    if depth > MAX_DEPTH:
        raise MalformedJSON(f"nesting {depth} levels deep (the limit is {MAX_DEPTH})")
    try:
        return json.loads(raw, parse_int=_integer, parse_float=_float, parse_constant=_constant)
    except RecursionError as exc:  # defensive: the depth check comes first
        raise MalformedJSON("nesting too deep") from exc
