"""Open questions as chat clients ask them: the proxy's task `general`.

A chat client's own messages say what it wants (DSPy's field markers, a system prompt, a JSON
schema), so the proxy adds no answer-format instruction of its own: a fresh sample sees the
client's conversation unchanged, and an aggregation prompt asks for one improved reply in the
form the client asked for. There is no extracted answer to vote on, so the final candidate is
chosen by a selection that needs none (serve/schema.py makes `random` the default here).

With `response_format` `json_object` or `json_schema` the aggregation prompt asks for one JSON
object (conforming to the schema), and the extracted answer is the parsed object in a canonical
spelling, so candidates that are the same object vote together (the default selection for
JSON replies is that vote, which never picks a reply that does not parse over one that does).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from recursa.context import strip_think
from recursa.serve.errors import bad_request
from recursa.tasks.base import Grade, Problem, Task, no_reference

_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)


@dataclass(frozen=True)
class JSONFormat:
    """A request's JSON response format: any object (`json_object`) or one schema's."""

    schema: dict[str, Any] | None = None
    name: str | None = None


def json_format(response_format: dict[str, Any] | None) -> JSONFormat | None:
    """The JSON format a `response_format` asks for (None for text), or a 400."""
    if response_format is None:
        return None
    kind = response_format.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return JSONFormat()
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        if not isinstance(spec, dict):
            raise bad_request(
                "response_format of type json_schema needs a json_schema object",
                param="response_format.json_schema",
            )
        schema = spec.get("schema")
        if schema is not None and not isinstance(schema, dict):
            raise bad_request(
                "response_format.json_schema.schema must be a JSON object",
                param="response_format.json_schema.schema",
            )
        name = spec.get("name")
        return JSONFormat(schema, name if isinstance(name, str) else None)
    raise bad_request(
        f"response_format type must be 'text', 'json_object' or 'json_schema', not {kind!r}",
        param="response_format.type",
    )


def upstream_format(response_format: dict[str, Any], style: str) -> dict[str, Any]:
    """`response_format` as the upstream takes it: unchanged, or with `style` 'json_object' a
    json_schema one as `{"type": "json_object", "schema": ...}` (llama-cpp-python's form)."""
    if style != "json_object" or response_format.get("type") != "json_schema":
        return response_format
    spec = response_format.get("json_schema") or {}
    schema = spec.get("schema") if isinstance(spec, dict) else None
    return {"type": "json_object", **({"schema": schema} if schema is not None else {})}


def parse_json_reply(text: str) -> Any:
    """The JSON value a reply holds (think blocks and a code fence around it allowed), or
    raise ValueError."""
    body = strip_think(text)
    fenced = _FENCE.match(body)
    return json.loads(fenced.group(1) if fenced else body)


class OpenTask(Task):
    """Open questions: no format instruction, no extracted answer (text), or one JSON object."""

    name = "general"

    def __init__(self, json_reply: JSONFormat | None = None) -> None:
        self.json_reply = json_reply
        if json_reply is None:
            self.format_hint = (
                "a complete reply to the problem, written for the person who asked it"
            )
        elif json_reply.schema is None:
            self.format_hint = "a single JSON object (valid JSON and nothing else)"
        else:
            self.format_hint = (
                "a single JSON object conforming to the JSON schema below (valid JSON and "
                "nothing else)"
            )

    def plain_prompt(self, problem: Problem) -> str:
        """The client's last message, unchanged."""
        return problem.question

    def closing_instruction(self, problem: Problem) -> str:
        """After the aggregation prompt's closing line: what the reply must be."""
        if self.json_reply is None:
            return (
                "Write only that reply, as the person who asked will read it: do not mention "
                "the candidate solutions."
            )
        if self.json_reply.schema is None:
            return "Reply with one JSON object and nothing else."
        schema = json.dumps(self.json_reply.schema, ensure_ascii=False)
        return (
            "Reply with one JSON object and nothing else, conforming to this JSON schema:\n"
            f"{schema}"
        )

    def format_instruction(self, problem: Problem) -> str:
        return self.closing_instruction(problem)

    def extract(self, text: str) -> str | None:
        """Text replies: None (nothing to vote on). JSON replies: the value, canonically."""
        if self.json_reply is None:
            return None
        try:
            value = parse_json_reply(text)
        except ValueError:
            return None
        return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))

    def key(self, answer: str) -> str:
        return answer

    def grade(self, problem: Problem, completion: str) -> Grade:
        return no_reference(self.extract(completion))
