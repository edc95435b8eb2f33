"""scanpy's numba kernels leave torch's thread count as they found it.

numba's OpenMP layer resets the thread count torch reads on its first use in a process,
so each call runs in a fresh one: a fit after it would otherwise sum in another order.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

CALLS = {
    "setup(normalize=True)": (
        "a = ps.ds.simulate(size='tiny', seed=0); a.X = a.layers['counts'].copy(); "
        "ps.pp.setup(a, perturbation_key='condition', control='control', normalize=True)"
    ),
    "rank_de(method='wilcoxon')": (
        "ps.pp.rank_de(ps.ds.norman2019_subset(), method='wilcoxon', key_added='w')"
    ),
    "pl.phenotype_landscape": (
        "a = ps.ds.norman2019_subset(); "
        "p = ps.Additive(a).fit().predict_pairs(['KLF1', 'MAP2K6', 'MAPK1', 'TGFBR2'], gi=False); "
        "ps.pl.phenotype_landscape(a, p, n_neighbors=5)"
    ),
}


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="numba starts as many threads as cores")
@pytest.mark.parametrize("call", list(CALLS))
def test_torch_keeps_its_thread_count(call):
    code = (
        "import matplotlib; matplotlib.use('Agg'); import torch, perturbsim as ps; "
        f"before = torch.get_num_threads(); {CALLS[call]}; "
        "print(before, torch.get_num_threads())"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("NUMBA_NUM_THREADS", None)
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-2:] == ["1", "1"]
