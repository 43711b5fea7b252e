"""recursa: Recursive Self-Aggregation (arXiv 2509.26626) for any LLM."""

from recursa.api import solve, solve_async
from recursa.backends import Backend, Completion, Dispatcher, GenerationRequest
from recursa.config import BackendConfig, RSAConfig
from recursa.engine import Engine
from recursa.errors import BackendError, RecursaError, UsageError
from recursa.result import Candidate, SolveResult, StepResult
from recursa.runs import EvalConfig, EvalResult, evaluate, evaluate_async
from recursa.tasks import Grade, Problem, Task, get_task

__version__ = "0.1.0"

__all__ = [
    "Backend",
    "BackendConfig",
    "BackendError",
    "Candidate",
    "Completion",
    "Dispatcher",
    "Engine",
    "EvalConfig",
    "EvalResult",
    "GenerationRequest",
    "Grade",
    "Problem",
    "RSAConfig",
    "RecursaError",
    "SolveResult",
    "StepResult",
    "Task",
    "UsageError",
    "__version__",
    "evaluate",
    "evaluate_async",
    "get_task",
    "solve",
    "solve_async",
]
