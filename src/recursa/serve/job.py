"""One request's RSA run, ready to start: what chat completions and responses share.

From a validated chat request: the upstream model its `model` names (and N/K/T from an
`rsa-...` name), the run's settings, the task (the proxy's open-question task for `general`,
see serve/open_task.py), the problem with the conversation as its history, and the fields sent
with every upstream generation (serve/params.py).
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

from recursa.config import RSAConfig
from recursa.engine import StepCallback
from recursa.result import SolveResult, StepResult
from recursa.serve.conversation import problem_from_messages
from recursa.serve.errors import APIError, bad_request
from recursa.serve.models import parse_model_name
from recursa.serve.open_task import OpenTask, json_format, upstream_format
from recursa.serve.params import upstream_params
from recursa.serve.reply import selected
from recursa.serve.schema import ChatRequest, rsa_config
from recursa.serve.upstream import Upstream
from recursa.tasks import Problem, Task, get_task


@dataclass
class Job:
    """Everything one run needs; `run` starts it."""

    upstream: Upstream
    config: RSAConfig
    task: Task
    problem: Problem
    params: dict[str, Any]
    #: The model name the reply carries: the request's, else the upstream default.
    model: str
    logprobs: bool

    async def run(self, on_step: StepCallback | None = None) -> SolveResult:
        if self.logprobs:
            on_step = _latest_logprobs_only(on_step)
        result = await self.upstream.solve(
            self.problem, self.config, on_step, task=self.task, params=self.params
        )
        if self.logprobs and selected(result).logprobs is None:
            raise bad_request(
                "logprobs: the upstream server returned no log-probabilities for the "
                "selected candidate; send the request without logprobs",
                code="unsupported_parameter",
                param="logprobs",
            )
        return result


def _latest_logprobs_only(on_step: StepCallback | None) -> StepCallback:
    """A step callback that drops the logprobs of every step but the latest (only the final
    population's are ever returned), so a run holds N candidates' logprobs, not N x T."""
    previous: list[StepResult] = []

    def keep(problem: Problem, step: StepResult) -> Awaitable[None] | None:
        for earlier in previous:
            for candidate in earlier.candidates:
                candidate.logprobs = None
        previous[:] = [step]
        return on_step(problem, step) if on_step is not None else None

    return keep


def task_for(config: RSAConfig, request: ChatRequest) -> Task:
    """The task a request runs: open questions for `general` (in the client's JSON format
    when it asks for one), else the task family by name."""
    json_reply = json_format(request.response_format)
    if config.task == "general":
        return OpenTask(json_reply)
    if json_reply is not None:
        raise bad_request(
            f"response_format {request.response_format.get('type')!r} needs task general "  # type: ignore[union-attr]
            f"(this request runs task {config.task}, whose answers have their own format)",
            param="response_format",
        )
    return get_task(config.task)


async def prepare(
    upstream: Upstream,
    defaults: RSAConfig,
    request: ChatRequest,
    max_generations: int,
    schema_format: str = "json_schema",
) -> Job:
    """The run a chat request asks for, or a 400/404 naming what is wrong. `schema_format`
    is how a JSON schema is sent upstream (ServeSettings.upstream_schema_format)."""
    choice = parse_model_name(request.model)
    config = rsa_config(defaults, request, max_generations, choice.settings)
    task = task_for(config, request)
    problem = problem_from_messages(request.messages, config.task)
    model = await upstream.model_for(choice.upstream)
    params = upstream_params(request.model_dump(exclude_none=True))
    params["model"] = model
    if request.response_format is not None:
        params["response_format"] = upstream_format(request.response_format, schema_format)
    if request.top_logprobs is not None and not request.logprobs:
        raise APIError(
            400, "top_logprobs needs logprobs: true", code="invalid_value", param="top_logprobs"
        )
    if request.logprobs and request.top_logprobs is None:
        # OpenAI's default, spelled out: llama-cpp-python's server returns no logprobs at all
        # without it.
        params["top_logprobs"] = 0
    return Job(
        upstream=upstream,
        config=config,
        task=task,
        problem=problem,
        params=params,
        model=request.model or model,
        logprobs=bool(request.logprobs),
    )
