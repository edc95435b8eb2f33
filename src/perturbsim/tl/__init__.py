"""Tools: metrics, evaluation, genetic interactions, cell fitness and experiment design."""

from ..pp._gi import GIRules, gi_per_gene, gi_scores, gi_split_half, summed_pairs
from . import _metrics as metrics
from ._design import active_learning_summary, default_candidates, design, measured_conditions
from ._evaluate import evaluate
from ._fitness import FitnessResult, FitnessSplit, fitness_evaluate, fitness_split
from ._gi_precision import gi_per_gene_auprc, gi_precision
from ._gi_truth import truth_profiles
from ._metrics import METRICS, Metric, MetricInputs, list_metrics, register_metric, score
from ._result import EvaluationResult

__all__ = [
    "METRICS",
    "EvaluationResult",
    "FitnessResult",
    "FitnessSplit",
    "GIRules",
    "Metric",
    "MetricInputs",
    "active_learning_summary",
    "default_candidates",
    "design",
    "evaluate",
    "fitness_evaluate",
    "fitness_split",
    "gi_per_gene",
    "gi_per_gene_auprc",
    "gi_precision",
    "gi_scores",
    "gi_split_half",
    "list_metrics",
    "measured_conditions",
    "metrics",
    "register_metric",
    "score",
    "summed_pairs",
    "truth_profiles",
]
