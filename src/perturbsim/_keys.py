"""Keys under which perturbsim writes into an AnnData.

``.obs``
    ``perturbsim_condition``: canonical perturbation label of each cell (sorted gene set
    joined by ``+``; control cells are ``ctrl``).
    ``perturbsim_n_targets``: number of perturbed genes of the cell's condition (0 = control).
    ``perturbsim_split``: ``train``, ``val`` or ``test`` (after :func:`perturbsim.pp.split`).
    ``perturbsim_subgroup``: split subgroup of the cell's condition (``train``, ``val``,
    ``unseen_single``, ``combo_seen0``, ``combo_seen1``, ``combo_seen2``, ``seen_single``, ...).
``.uns["perturbsim"]``
    ``"setup"``: the parsing options and label summary (:func:`perturbsim.pp.setup`).
    ``"split"``: the split's conditions per set and test subgroup (:func:`perturbsim.pp.split`).
    ``"pseudobulk"``: per-condition statistics (:func:`perturbsim.pp.pseudobulk`).
    ``"de"``: top differentially expressed genes per condition (:func:`perturbsim.pp.rank_de`).
"""

UNS = "perturbsim"
CONDITION = "perturbsim_condition"
N_TARGETS = "perturbsim_n_targets"
SPLIT = "perturbsim_split"
SUBGROUP = "perturbsim_subgroup"
CONTROL = "ctrl"
SEP = "+"
