"""Every key under which perturbsim writes into an AnnData, and the label conventions.

This module is the AnnData contract of the screen: no other module spells a key perturbsim
writes into a user's screen. The README's table "What is written where" lists the same keys.
Tables perturbsim returns as new AnnData objects or data frames name their own columns where
they are made: measured profiles (:func:`perturbsim.pp.measured_profiles`: ``.obs["n_cells"]``,
``.layers["delta"]`` and ``.layers["mean_variance"]``, ``.var["control_mean_variance"]``),
predicted interactions (:meth:`perturbsim.models.PerturbationModel.predict_pairs`: the
columns of :func:`perturbsim.tl.gi_scores`) and simulated screens' ``.obs``/``.var``
(:func:`perturbsim.ds.simulate`).

``.obs``
    ``perturbsim_condition`` (:data:`CONDITION`): canonical perturbation label of each cell
    (sorted gene set joined by ``+``; control cells are ``ctrl``).
    ``perturbsim_n_targets`` (:data:`N_TARGETS`): number of perturbed genes of the cell's
    condition (0 = control).
    ``perturbsim_split`` (:data:`SPLIT`): ``train``, ``val``, ``test`` or ``excluded``.
    ``perturbsim_subgroup`` (:data:`SUBGROUP`): split subgroup of the cell's condition
    (``train``, ``val``, ``unseen_single``, ``combo_seen0``, ...).
``.var``
    ``perturbsim_original_id`` (:data:`ORIGINAL_ID`): the original ``var_names``, kept when
    :func:`perturbsim.pp.setup` replaces them by a column of gene symbols.
``.layers``
    ``counts`` (:data:`COUNTS_LAYER`): the raw counts, kept when :func:`perturbsim.pp.setup`
    normalises them (``normalize=True``; ``X`` is then log-normalised and scanpy records
    ``.uns["log1p"]``).
``.varp``
    ``perturbsim_gram`` (:data:`GRAM`): gene x gene second moments of the co-expression cells
    (:func:`perturbsim.pp.pseudobulk`).
``.uns["perturbsim"]`` (:data:`UNS`)
    ``"setup"`` (:data:`SETUP`): parsing options and label summary (:func:`perturbsim.pp.setup`).
    ``"split"`` (:data:`SPLIT_UNS`): the split's conditions per set and test subgroup
    (:func:`perturbsim.pp.split`).
    ``"pseudobulk"`` (:data:`PSEUDOBULK`): per-condition statistics
    (:func:`perturbsim.pp.pseudobulk`).
    ``"de"`` (:data:`DE`, the default ``key_added`` of :func:`perturbsim.pp.rank_de`): top
    differentially expressed genes per condition.

Predictions (:meth:`perturbsim.models.PerturbationModel.predict`, one row per perturbation)
    ``.layers["delta"]`` (:data:`DELTA_LAYER`): change over control;
    ``.layers["variance"]`` (:data:`VARIANCE_LAYER`): predictive variance, when the model has
    one, and its summary ``.obs["uncertainty"]`` (:data:`PRED_UNCERTAINTY`);
    ``.obs["support"]``, ``.obs["unsupported"]`` and ``.obs["generic"]`` (:data:`PRED_SUPPORT`,
    :data:`PRED_UNSUPPORTED`, :data:`PRED_GENERIC`) for models that know how closely a
    perturbation's genes are tied to measured ones; ``.obs["n_targets"]`` (:data:`PRED_N_TARGETS`);
    ``.uns["perturbsim"]["model"]`` (:data:`PRED_MODEL`). Per-cell predictions
    (``sample``) label cells in ``.obs["perturbation"]`` (:data:`SAMPLE_PERTURBATION`).
Simulated screens (:func:`perturbsim.ds.simulate`)
    ``.uns["simulation"]`` (:data:`SIMULATION`): parameters, GO-like terms, the network and
    the noiseless truth of every single and pair.
Files for cell-eval (:func:`perturbsim.io.export_cell_eval`)
    ``.obs["target_gene"]`` (:data:`CELL_EVAL_PERT_COL`, cell-eval's default ``--pert-col``),
    control cells labelled ``non-targeting`` (:data:`CELL_EVAL_CONTROL`, its default
    ``--control-pert``).
"""

UNS = "perturbsim"
CONDITION = "perturbsim_condition"
N_TARGETS = "perturbsim_n_targets"
SPLIT = "perturbsim_split"
SUBGROUP = "perturbsim_subgroup"
ORIGINAL_ID = "perturbsim_original_id"
GRAM = "perturbsim_gram"
COUNTS_LAYER = "counts"
SETUP = "setup"
SPLIT_UNS = "split"
PSEUDOBULK = "pseudobulk"
DE = "de"
DE_FIELDS = ("method", "conditions", "scores")
"""Fields of every DE ranking :func:`perturbsim.pp.rank_de` stores, under any ``key_added``:
how an entry of ``.uns["perturbsim"]`` is known for one."""
OWN_UNS = (SETUP, SPLIT_UNS, PSEUDOBULK)
"""``.uns["perturbsim"]`` entries of setup, split and statistics: never a ``key_added``."""
DERIVED_UNS = (SPLIT_UNS, PSEUDOBULK, DE)
"""``.uns["perturbsim"]`` entries that depend on the split: :func:`perturbsim.tl.evaluate`
leaves them out of the screen it splits once per seed. A later :func:`perturbsim.pp.split`
leaves them in place (stored statistics are checked against the screen where they are read,
:func:`perturbsim.pp._pseudobulk.current_stats`); :func:`perturbsim.pp.setup` run with other labels
drops them and the DE rankings under any key (:data:`DE_FIELDS`)."""

DELTA_LAYER = "delta"
VARIANCE_LAYER = "variance"
MEAN_VARIANCE_LAYER = "mean_variance"
"""Measured profiles' squared standard error of each condition's mean expression."""
CONTROL_MEAN_VARIANCE = "control_mean_variance"
"""Measured profiles' ``.var`` column: the squared standard error of the control's mean,
which every change shares (kept when the ``ctrl`` row is not among the profiles)."""
PRED_N_TARGETS = "n_targets"
PRED_UNCERTAINTY = "uncertainty"
PRED_SUPPORT = "support"
PRED_UNSUPPORTED = "unsupported"
PRED_GENERIC = "generic"
PRED_MODEL = "model"
SAMPLE_PERTURBATION = "perturbation"
SIMULATION = "simulation"
CELL_EVAL_PERT_COL = "target_gene"
CELL_EVAL_CONTROL = "non-targeting"

CONTROL = "ctrl"
SEP = "+"
