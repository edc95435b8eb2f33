"""How well predicted genetic interactions find the true ones: precision@k, recall, AUPRC.

Pair level (:func:`gi_precision`), after the GEARS paper's Fig. 3c (``get_prec_atk`` and
``get_topk_acc`` in ``paper/fig_utils.py`` of ``yhr91/GEARS_misc``): for each subtype, rank
the pairs by their predicted strength of that subtype (:meth:`GIRules.strength`: synergy by
magnitude, highest first; suppression by magnitude, lowest first; additive by
``|magnitude - 1|``, smallest first; redundancy by the redundancy score, highest first;
neomorphism by ``fit_corr``, lowest first; epistasis by ``equality``, lowest first) and
count how many of the top ``k`` are truly of the subtype. Gene level
(:func:`gi_per_gene_auprc`): the area under the precision-recall curve of the per-gene
deviations of :func:`gi_per_gene` against the true calls (Ahlmann-Eltze et al., Nat.
Methods 2025).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .._checks import check_count
from .._errors import PerturbsimError
from .._ranking import top_k_share
from ..pp._gi import ON_CUT, SUBTYPES, GIRules, check_rules, is_scored

PER_GENE_CALLS: tuple[str, ...] = ("synergy", "buffering")
"""Per-gene calls scored by :func:`gi_per_gene_auprc` (``"additive"`` is the negative)."""


def _scored(table: pd.DataFrame, name: str) -> pd.DataFrame:
    """Rows of a :func:`gi_scores` table that were scored (empty ``flag``), by pair.

    The pairs are the index, or a ``pair`` column (a table read back from CSV); each once.
    """
    if not isinstance(table, pd.DataFrame):
        raise PerturbsimError(
            f"{name} must be a DataFrame from gi_scores, got {type(table).__name__}"
        )
    if "pair" in table.columns:
        table = table.set_index("pair")
    repeated = table.index[table.index.duplicated()]
    if len(repeated):
        raise PerturbsimError(f"{name} lists the pair {repeated[0]!r} more than once")
    if "flag" in table.columns:
        return table[is_scored(table)]
    return table


def _top_k_share(strength: np.ndarray, k: int) -> np.ndarray:
    """:func:`~perturbsim._ranking.top_k_share`, strengths within :data:`ON_CUT` tied.

    The scores are solved to about ``1e-8`` (Theil-Sen leaves exactly additive pairs'
    magnitudes ~1e-9 apart), so closer strengths are one value.
    """
    return top_k_share(strength, k, ON_CUT)


def _expected_hits(strength: np.ndarray, member: np.ndarray, k: int) -> float:
    """Expected members (``member``: 1, 0 or a share) among the top ``k`` by ``strength``."""
    return float(member @ _top_k_share(strength, k))


def _r2(predicted: np.ndarray, true: np.ndarray) -> float:
    """Coefficient of determination of ``predicted`` for ``true`` (NaN pairs left out)."""
    ok = np.isfinite(predicted) & np.isfinite(true)
    if ok.sum() < 2:
        return np.nan
    residual = ((true[ok] - predicted[ok]) ** 2).sum()
    total = ((true[ok] - true[ok].mean()) ** 2).sum()
    return float(1 - residual / total) if total > 0 else np.nan


def gi_precision(
    predicted: pd.DataFrame,
    truth: pd.DataFrame,
    *,
    k: int = 10,
    rules: GIRules | None = None,
) -> pd.DataFrame:
    """Precision@k, recall@k and top-k accuracy of predicted interaction subtypes.

    Pairs scored in both tables (empty ``flag``) are compared. For each subtype, a pair is
    truly of it when the rule of ``rules`` holds on ``truth``'s scores, and the pairs are
    ranked by their predicted strength of it (:meth:`GIRules.strength`). Ties at the
    ``k``-th place count fractionally (the expectation over random orders of the tied
    pairs; strengths within ``1e-6`` of the ``k``-th, relative beyond ±1, are tied with
    it: the scores are solved to about ``1e-8``), so a score that is the same for every
    pair ranks as a random ranking does on average. The additive baseline
    (``ΔAB = ΔA + ΔB``: ``c1 = c2 = 1``, magnitude ``√2`` and ``fit_corr`` 1 for every
    pair) thus scores the random expectation for synergy, suppression, additive and
    neomorphism; only its distance correlations differ between pairs.

    Parameters
    ----------
    predicted
        :func:`gi_scores` of predicted profiles (or any table with its score columns),
        indexed by pair or with a ``pair`` column (as ``perturbsim gi`` writes it).
    truth
        :func:`gi_scores` of the measured profiles, or of a simulator's noiseless truth
        (indexed the same way).
    k
        Pairs taken from the top of each ranking (fewer when fewer pairs are compared).
    rules
        Which scores define and rank each subtype (:class:`GIRules`, defaults GEARS's).

    Returns
    -------
    Tidy DataFrame, one row per subtype (:data:`SUBTYPES`): ``subtype``, ``score`` (the
    column ranked), ``k`` (places taken), ``n_pairs`` (pairs compared: a pair whose truth
    scores NaN on the subtype's score, a pair without change to fit, is of no known
    subtype and left out of that subtype's row; none left: NaN figures), ``n_true``
    (truly of the subtype), ``precision_at_k`` (share of the top ``k`` truly of the
    subtype), ``recall_at_k`` (share of the true ones in the top ``k``; NaN without
    any), ``top_k_accuracy`` (share of the predicted top ``k`` among the true top ``k``
    by the truth's own strength, GEARS's ``get_topk_acc``; pairs tied in the truth at its
    ``k``-th place share its remaining places, as in the predicted ranking),
    ``random_precision`` (the expectation of a random ranking: the subtype's prevalence
    ``n_true / n_pairs``),
    ``random_recall`` and ``random_top_k_accuracy`` (both ``k / n_pairs``; the first NaN
    without a true pair, as ``recall_at_k``), and ``r2``
    (coefficient of determination of the predicted score for the true one over the
    compared pairs; can be negative).
    """
    rules = check_rules(rules)
    k = check_count("k", k)
    predicted, truth = _scored(predicted, "predicted"), _scored(truth, "truth")
    common = predicted.index.intersection(truth.index)
    if len(common) == 0:
        raise PerturbsimError("predicted and truth share no scored pair")
    predicted, truth = predicted.loc[common], truth.loc[common]
    rows = []
    for subtype in SUBTYPES:
        column = rules.score_column(subtype)
        # a truth pair whose score is NaN (no change to fit) is of no known subtype: left out
        known = np.isfinite(rules.strength(truth, subtype)[0].to_numpy(dtype=float))
        if not known.any():
            rows.append({"subtype": subtype, "score": column, "k": 0, "n_pairs": 0, "n_true": 0})
            continue
        pred_strength, _ = rules.strength(predicted[known], subtype)
        true_strength, _ = rules.strength(truth[known], subtype)
        member = rules.holds(truth[known], subtype).to_numpy()  # true_strength beyond the cut
        n_pairs = int(known.sum())
        places = min(int(k), n_pairs)
        n_true = int(member.sum())
        hits = _expected_hits(pred_strength.to_numpy(), member, places)
        true_top = _top_k_share(true_strength.to_numpy(dtype=float), places)  # ties shared
        rows.append(
            {
                "subtype": subtype,
                "score": column,
                "k": places,
                "n_pairs": n_pairs,
                "n_true": n_true,
                "precision_at_k": hits / places,
                "recall_at_k": hits / n_true if n_true else np.nan,
                "top_k_accuracy": _expected_hits(pred_strength.to_numpy(), true_top, places)
                / places,
                "random_precision": n_true / n_pairs,
                "random_recall": places / n_pairs if n_true else np.nan,
                "random_top_k_accuracy": places / n_pairs,
                "r2": _r2(
                    predicted.loc[known, column].to_numpy(float),
                    truth.loc[known, column].to_numpy(float),
                ),
            }
        )
    return pd.DataFrame(rows)


def random_average_precision(n: int, n_positive: int) -> float:
    """Expected average precision of a random ranking of ``n`` rows, ``n_positive`` positive.

    ``((R - 1) / (N - 1) · (N - H_N) + H_N) / N`` with ``H_N`` the ``N``-th harmonic number
    (Bestgen 2015): the share of positives ``R / N`` only when every row is positive; a
    single positive among 200 rows is found, on average, with 0.029, not 0.005. NaN without
    positives.

    Examples
    --------
    >>> round(random_average_precision(200, 2), 4), round(random_average_precision(4, 4), 4)
    (0.0343, 1.0)
    """
    if n_positive == 0:
        return np.nan
    harmonic = float(np.sum(1.0 / np.arange(1, n + 1)))
    spread = (n_positive - 1) / (n - 1) * (n - harmonic) if n > 1 else 0.0
    return (spread + harmonic) / n


def _average_precision(score: np.ndarray, positive: np.ndarray) -> float:
    """Area under the precision-recall curve as average precision, ties as one threshold.

    ``sum_t (R_t - R_{t-1}) P_t`` over the distinct scores ``t`` from the highest, as
    scikit-learn's ``average_precision_score``.
    """
    order = np.argsort(-score, kind="stable")
    score, positive = score[order], positive[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(score) != 0), len(score) - 1]
    true_pos = np.cumsum(positive)[last_of_tie]
    precision = true_pos / (last_of_tie + 1)
    recall_step = np.diff(np.r_[0, true_pos]) / positive.sum()
    return float((recall_step * precision).sum())


def gi_per_gene_auprc(predicted: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """Area under the precision-recall curve of per-gene interaction calls.

    Rows of two :func:`gi_per_gene` tables are matched on ``(pair, gene)``, leaving out
    those the truth left ``"untested"``. For ``"synergy"`` the predicted deviations rank
    the rows from the highest, for ``"buffering"`` from the lowest; the truth's ``call``
    says which rows are positive.

    Parameters
    ----------
    predicted
        :func:`gi_per_gene` of predicted profiles (its ``deviation`` is read).
    truth
        :func:`gi_per_gene` of measured profiles or a simulator's truth (its ``call``).

    Returns
    -------
    Tidy DataFrame, one row per call (:data:`PER_GENE_CALLS`): ``call``, ``n`` (rows
    compared), ``n_positive``, ``auprc`` (average precision, NaN without positives) and
    ``random_auprc`` (a random ranking's expectation: :func:`random_average_precision`,
    above the share of positives where they are few).
    """
    for name, table in (("predicted", predicted), ("truth", truth)):
        needed = {"pair", "gene", "deviation" if name == "predicted" else "call"}
        if not isinstance(table, pd.DataFrame) or not needed <= set(table.columns):
            raise PerturbsimError(
                f"{name} must be a gi_per_gene table with columns {sorted(needed)}"
            )
    for name, table in (("predicted", predicted), ("truth", truth)):
        repeated = table[table.duplicated(["pair", "gene"])]
        if len(repeated):
            first = repeated.iloc[0]
            raise PerturbsimError(
                f"{name} lists the gene {first['gene']!r} of pair {first['pair']!r} more than once"
            )
    merged = predicted[["pair", "gene", "deviation"]].merge(
        truth[["pair", "gene", "call"]], on=["pair", "gene"], how="inner"
    )
    if merged.empty:
        raise PerturbsimError("predicted and truth share no (pair, gene) row")
    merged = merged[
        np.isfinite(merged["deviation"].to_numpy(float)) & (merged["call"] != "untested")
    ]
    if merged.empty:
        raise PerturbsimError(
            "every (pair, gene) row predicted and truth share has a non-finite predicted "
            "deviation or is untested in the truth"
        )
    rows = []
    for call in PER_GENE_CALLS:
        positive = (merged["call"] == call).to_numpy()
        sign = 1.0 if call == "synergy" else -1.0
        score = sign * merged["deviation"].to_numpy(float)
        n_positive = int(positive.sum())
        rows.append(
            {
                "call": call,
                "n": len(merged),
                "n_positive": n_positive,
                "auprc": _average_precision(score, positive) if n_positive else np.nan,
                "random_auprc": random_average_precision(len(merged), n_positive),
            }
        )
    return pd.DataFrame(rows)
