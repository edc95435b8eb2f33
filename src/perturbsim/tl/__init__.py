"""Tools: metrics and evaluation of predicted profiles, and genetic interactions of pairs."""

from ..pp._gi import GIRules, gi_per_gene, gi_scores
from . import _metrics as metrics
from ._evaluate import evaluate
from ._gi_precision import gi_per_gene_auprc, gi_precision
from ._gi_truth import truth_profiles
from ._metrics import METRICS, Metric, MetricInputs, list_metrics, register_metric, score
from ._result import EvaluationResult

__all__ = [
    "METRICS",
    "EvaluationResult",
    "GIRules",
    "Metric",
    "MetricInputs",
    "evaluate",
    "gi_per_gene",
    "gi_per_gene_auprc",
    "gi_precision",
    "gi_scores",
    "list_metrics",
    "metrics",
    "register_metric",
    "score",
    "truth_profiles",
]
