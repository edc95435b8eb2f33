"""Tools: metrics of predicted perturbation profiles."""

from . import _metrics as metrics
from ._metrics import METRICS, Metric, list_metrics, register_metric, score

__all__ = ["METRICS", "Metric", "list_metrics", "metrics", "register_metric", "score"]
