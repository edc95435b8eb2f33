"""Tools: metrics of predicted perturbation profiles and the evaluation runner."""

from . import _metrics as metrics
from ._evaluate import EvaluationResult, evaluate
from ._metrics import METRICS, Metric, list_metrics, register_metric, score

__all__ = [
    "METRICS",
    "EvaluationResult",
    "Metric",
    "evaluate",
    "list_metrics",
    "metrics",
    "register_metric",
    "score",
]
