"""recursa: Recursive Self-Aggregation (arXiv 2509.26626) for any LLM."""

from recursa.api import solve, solve_async
from recursa.backends import (
    Backend,
    BackendOptions,
    BackendSpec,
    Completion,
    Dispatcher,
    GenerationRequest,
)
from recursa.backends.base import ProblemContext, current_problem
from recursa.benchmarks import BenchmarkSpec, Dataset
from recursa.config import BackendConfig, RSAConfig
from recursa.engine import Engine
from recursa.errors import BackendError, RecursaError, UsageError
from recursa.final_selection import Selected, Selection, SelectionContext
from recursa.result import Candidate, SolveResult, StepResult
from recursa.runs import EvalConfig, EvalResult, evaluate, evaluate_async
from recursa.runs.methods import Method
from recursa.tasks import Grade, Problem, RowSkip, Task, get_task

__version__ = "0.1.0"

__all__ = [
    "Backend",
    "BackendConfig",
    "BackendError",
    "BackendOptions",
    "BackendSpec",
    "BenchmarkSpec",
    "Candidate",
    "Completion",
    "Dataset",
    "Dispatcher",
    "Engine",
    "EvalConfig",
    "EvalResult",
    "GenerationRequest",
    "Grade",
    "Method",
    "Problem",
    "ProblemContext",
    "RSAConfig",
    "RecursaError",
    "RowSkip",
    "Selected",
    "Selection",
    "SelectionContext",
    "SolveResult",
    "StepResult",
    "Task",
    "UsageError",
    "__version__",
    "current_problem",
    "evaluate",
    "evaluate_async",
    "get_task",
    "solve",
    "solve_async",
]
