"""Evaluation runs: the journal, the runner (`evaluate`), methods, metrics and reports."""

from recursa.runs.journal import Journal
from recursa.runs.runner import EvalResult, evaluate, evaluate_async
from recursa.runs.settings import EvalConfig

__all__ = ["EvalConfig", "EvalResult", "Journal", "evaluate", "evaluate_async"]
