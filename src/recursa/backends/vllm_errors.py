"""vLLM's failures as recursa's errors, for every supported vLLM release (0.10 to 0.33).

vLLM's exception classes moved between releases, so they are matched by class name along the
exception's MRO, never imported (vllm is optional and these names are stable):

- Request validation: a plain `ValueError` (0.10), `VLLMValidationError(ValueError)` (0.26),
  `VLLMValidationError(VLLMClientError)`, no longer a `ValueError` (0.31+;
  `vllm/exceptions.py`). Every `VLLMClientError` is the request's fault, so it becomes a
  `UsageError` (one sentence, exit 2): retrying the same request cannot help.
- A dead engine: `EngineDeadError` (V1, `vllm/v1/engine/exceptions.py`) or
  `AsyncEngineDeadError` (V0 `vllm/engine/async_llm_engine.py`). The engine never serves again
  in this process: `BackendDeadError`, which a Ray replica answers by exiting so that Ray
  restarts it (`recursa.backends.ray_replica`).
- Transient: `EngineGenerateError` ("Recoverable"), `RetryableRequestError` (0.33: a paused
  engine or a request-level fault safe to retry), and the admission-control rejections
  `QueueOverflowError` / `MaxQueuedTokensError` (0.31+): `RetryableError`.
- Anything else ends the run, naming the exception.

Finish reasons: "stop" and "length" are finished candidates; "repetition" (0.26+, the
repetition detector stopped the sequence) is kept as it is. "abort" (the engine aborted the
request) and "error" (0.26+: a retryable request-level internal error) are not candidates:
they are retried (`FINISH_REASON_STRINGS` in `vllm/v1/engine/__init__.py`).
"""

from __future__ import annotations

from recursa.backends.base import BackendDeadError, RetryableError
from recursa.errors import BackendError, RecursaError, UsageError

DEAD = frozenset({"EngineDeadError", "AsyncEngineDeadError"})
RETRYABLE = frozenset(
    {"EngineGenerateError", "RetryableRequestError", "QueueOverflowError", "MaxQueuedTokensError"}
)
#: The request's own fault. `ValueError` last: vLLM < 0.31 raised it for bad requests.
REFUSED = frozenset({"VLLMClientError", "VLLMValidationError", "ValueError"})
#: Finish reasons that mean the request did not produce a candidate.
UNFINISHED = frozenset({"abort", "error"})


def _names(exc: BaseException) -> list[str]:
    return [cls.__name__ for cls in type(exc).__mro__]


def _sentence(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def engine_error(exc: Exception, description: str) -> Exception:
    """The recursa error for an exception raised by vLLM (or its tokenizer) on one request."""
    if isinstance(exc, (RecursaError, RetryableError)):
        return exc
    names = _names(exc)
    # The first match along the MRO wins: VLLMValidationError is also a ValueError in 0.26.
    for name in names:
        if name in DEAD:
            return BackendDeadError(
                f"{description}'s engine died ({name}); see vLLM's log above for the cause"
            )
        if name in RETRYABLE:
            return RetryableError(f"{description} failed a request ({name}: {_sentence(exc)})")
        if name in REFUSED:
            return UsageError(f"{description} refused a request: {_sentence(exc)}")
    return BackendError(
        f"{description} failed ({type(exc).__name__}: {_sentence(exc)}); see vLLM's log above"
    )


def unfinished(finish_reason: str | None, description: str, request_id: str) -> Exception | None:
    """A RetryableError when a final output's finish reason is not a finished candidate."""
    if finish_reason in UNFINISHED:
        return RetryableError(
            f"{description} ended {request_id} with finish reason {finish_reason!r}"
        )
    return None
