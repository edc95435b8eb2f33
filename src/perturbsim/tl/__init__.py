"""Tools: metrics of predicted perturbation profiles and the evaluation runner."""

from . import _metrics as metrics
from ._evaluate import evaluate
from ._metrics import METRICS, Metric, MetricInputs, list_metrics, register_metric, score
from ._result import EvaluationResult

__all__ = [
    "METRICS",
    "EvaluationResult",
    "Metric",
    "MetricInputs",
    "evaluate",
    "list_metrics",
    "metrics",
    "register_metric",
    "score",
]
