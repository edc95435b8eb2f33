"""Train the reference GEARS (PyPI ``cell-gears`` 0.1.2) on files written by compare_reference.py.

Run only by the python of ``benchmarks/.venv-reference`` (made by ``reference_env.sh``),
as a subprocess of ``benchmarks/compare_reference.py``; never imported by perturbsim or its
tests. It talks to the driver only through files:

``--inputs`` holds ``screen.h5ad`` (the reference's layout: ``obs['condition']`` as
``A+ctrl`` / ``A+B`` / ``ctrl``, ``obs['cell_type']``, ``var['gene_name']``),
``split.json`` (``train`` / ``val`` / ``test`` conditions in those labels), ``gene2go.json``
(gene -> GO terms) and ``go_edges.csv`` (the GO graph, built by perturbsim, in the columns
of the reference's ``go_essential_all.csv``). This script lays them out in the reference's
data folder as the files it would otherwise download (``gene2go_all.pkl``,
``essential_all_data_pert_genes.pkl``, ``go_essential_all/go_essential_all.csv``) and the
custom split as the pickle ``prepare_split(split='custom')`` reads, then runs the
reference's own pipeline: ``PertData.new_data_process`` (DE genes, one graph per cell),
``prepare_split``, ``get_dataloader(32, 128)``, ``GEARS.model_initialize()`` with its
defaults, and

- with ``--epochs E``: ``GEARS.train(epochs=E)``, timed whole (its default is 20);
- with ``--steps N``: on a fresh model, ``N`` optimiser steps exactly as ``GEARS.train``
  takes them (its loss, Adam, gradient clipping), timed after 2 warm-up steps, and the
  reference's per-epoch evaluation (``evaluate`` + ``compute_metrics``) timed on
  ``--eval-batches`` batches, from which an epoch is estimated.

``--device cuda`` trains and predicts on the GPU (the reference's own ``device`` argument);
its clocks then wait for the GPU's queued work before they read the time.

Then it predicts the test conditions with ``GEARS.predict`` (mean over ``--predict-cells``
random control cells, 300 in the reference) and writes ``result.json`` (timings, sizes,
peak RSS) and ``predictions.npz`` (``conditions``, ``genes``, ``mean``) to ``--out``.
"""

from __future__ import annotations

import argparse
import functools
import importlib.metadata
import json
import math
import pickle
import random
import resource
import time
from pathlib import Path

import numpy as np
import pandas as pd
import scanpy as sc
import torch
import torch.nn as nn
import torch.optim as optim
from gears import GEARS, PertData
from gears import gears as gears_module
from gears.inference import compute_metrics, evaluate
from gears.utils import loss_fct
from scipy import sparse
from torch_geometric.data import DataLoader

BATCH_SIZE = 32
"""The batch size of the reference's examples and paper."""
TEST_BATCH_SIZE = 128
WARM_UP_STEPS = 2


def _peak_rss_gb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3)


def _seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 (the reference draws from numpy's global state)
    torch.manual_seed(seed)


class _SeriesIndexableCSR(sparse.csr_matrix):
    """A CSR matrix that also takes a boolean pandas Series as a row index.

    The reference indexes its sparse ``X`` with ``obs.condition == 'ctrl'`` (``GEARS``'s
    constructor); scipy >= 1.15 refuses a Series there. Reading the Series as its values is
    what older scipy did, so the reference computes the same control mean either way.
    """

    def __getitem__(self, key: object) -> object:
        if isinstance(key, pd.Series):
            key = key.to_numpy()
        return super().__getitem__(key)


def lay_out(inputs: Path, work: Path) -> Path:
    """The reference's data folder, with our GO files where it would download its own."""
    work.mkdir(parents=True, exist_ok=False)
    gene2go = json.loads((inputs / "gene2go.json").read_text())
    with open(work / "gene2go_all.pkl", "wb") as f:
        pickle.dump({gene: set(terms) for gene, terms in gene2go.items()}, f)
    with open(work / "essential_all_data_pert_genes.pkl", "wb") as f:
        pickle.dump(sorted(gene2go), f)
    (work / "go_essential_all").mkdir()
    edges = pd.read_csv(inputs / "go_edges.csv")
    edges.to_csv(work / "go_essential_all" / "go_essential_all.csv", index=False)
    split = json.loads((inputs / "split.json").read_text())
    split_path = work / "split.pkl"
    with open(split_path, "wb") as f:
        pickle.dump({k: split[k] for k in ("train", "val", "test")}, f)
    return split_path


def _synchronize() -> None:
    """Wait for the GPU's queued work, if torch has a GPU (a no-op on the CPU)."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()


class Clock:
    """Wall and CPU seconds (all threads of this process) of a ``with`` block, the GPU's
    queued work included."""

    def __enter__(self) -> Clock:
        _synchronize()
        self.wall, self.cpu = -time.perf_counter(), -time.process_time()
        return self

    def __exit__(self, *_: object) -> None:
        _synchronize()
        self.wall += time.perf_counter()
        self.cpu += time.process_time()

    def record(self, result: dict, name: str, per: int = 1, digits: int = 2) -> None:
        result[f"{name}_s"] = round(self.wall / per, digits)
        result[f"{name}_cpu_s"] = round(self.cpu / per, digits)


def train_steps(model: GEARS, steps: int) -> Clock:
    """``steps`` optimiser steps as the body of ``GEARS.train`` takes them, after warm-up."""
    network = model.model
    network.train()
    optimizer = optim.Adam(network.parameters(), lr=1e-3, weight_decay=5e-4)
    loader = model.dataloader["train_loader"]
    batches = iter(loader)
    clock = Clock()
    for step in range(steps + WARM_UP_STEPS):
        if step == WARM_UP_STEPS:
            clock.__enter__()
        try:
            batch = next(batches)
        except StopIteration:
            batches = iter(loader)
            batch = next(batches)
        batch.to(model.device)
        optimizer.zero_grad()
        pred = network(batch)
        loss = loss_fct(
            pred,
            batch.y,
            batch.pert,
            ctrl=model.ctrl_expression,
            dict_filter=model.dict_filter,
            direction_lambda=model.config["direction_lambda"],
        )
        loss.backward()
        nn.utils.clip_grad_value_(network.parameters(), clip_value=1.0)
        optimizer.step()
    clock.__exit__()
    return clock


def evaluation_batches(model: GEARS, n_batches: int, seed: int) -> tuple[Clock, int]:
    """The reference's per-epoch evaluation (``evaluate`` + ``compute_metrics``) on random
    training cells, and the number of batches.

    Random, not the first cells: the training cells come ordered by condition, and a batch of
    control cells skips the perturbation part of the network.
    """
    cells = model.dataloader["train_loader"].dataset
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(cells), size=min(len(cells), n_batches * BATCH_SIZE), replace=False)
    loader = DataLoader([cells[i] for i in chosen], batch_size=BATCH_SIZE, shuffle=False)
    with Clock() as clock:
        compute_metrics(evaluate(loader, model.model, False, model.device))
    return clock, math.ceil(chosen.size / BATCH_SIZE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True, help="a new folder")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=0, help="full training; 0: none")
    parser.add_argument("--steps", type=int, default=0, help="timed steps; 0: none")
    parser.add_argument("--eval-batches", type=int, default=20)
    parser.add_argument("--predict-cells", type=int, default=300)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no GPU here")
    if args.predict_cells != 300:
        gears_module.create_cell_graph_dataset_for_prediction = functools.partial(
            gears_module.create_cell_graph_dataset_for_prediction, num_samples=args.predict_cells
        )
    _seed(args.seed)
    result: dict = {
        "versions": {
            name: importlib.metadata.version(name)
            for name in ("cell-gears", "torch", "torch_geometric", "scipy", "numpy")
        },
        "torch_threads": torch.get_num_threads(),
        "device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu",
        "seed": args.seed,
    }

    with Clock() as clock:
        split_path = lay_out(args.inputs, args.work)
        adata = sc.read_h5ad(args.inputs / "screen.h5ad")
        pert_data = PertData(str(args.work))
        pert_data.new_data_process(dataset_name="screen", adata=adata)
        pert_data.prepare_split(split="custom", seed=args.seed, split_dict_path=str(split_path))
        pert_data.get_dataloader(batch_size=BATCH_SIZE, test_batch_size=TEST_BATCH_SIZE)
        pert_data.adata.X = _SeriesIndexableCSR(pert_data.adata.X)
    clock.record(result, "preprocess")
    sizes = {k: len(v.dataset) for k, v in pert_data.dataloader.items()}
    result.update(
        cells=adata.n_obs,
        genes=adata.n_vars,
        train_cells=sizes["train_loader"],
        val_cells=sizes["val_loader"],
        test_cells=sizes["test_loader"],
        go_nodes=len(pert_data.pert_names),
    )

    model = None
    if args.epochs:
        torch.manual_seed(args.seed)
        model = GEARS(pert_data, device=args.device)
        with Clock() as clock:
            model.model_initialize()
        clock.record(result, "graphs")
        with Clock() as clock:
            model.train(epochs=args.epochs)
        clock.record(result, "train")
        clock.record(result, "epoch", per=args.epochs)
        result["epochs"] = args.epochs
        result["peak_rss_gb_after_training"] = _peak_rss_gb()
    if args.steps:
        torch.manual_seed(args.seed)
        timed = GEARS(pert_data, device=args.device)
        with Clock() as clock:
            timed.model_initialize()
        if "graphs_s" not in result:
            clock.record(result, "graphs")
        train_steps(timed, args.steps).record(result, "step", per=args.steps, digits=4)
        result["timed_steps"] = args.steps
        clock, n_batches = evaluation_batches(timed, args.eval_batches, args.seed)
        clock.record(result, "eval_batch", per=n_batches, digits=4)
        result["eval_batches_timed"] = n_batches
        result["peak_rss_gb_after_steps"] = _peak_rss_gb()
        if model is None:  # predict with the partly trained network
            timed.best_model = timed.model
            model = timed
    if model is None:
        raise SystemExit("nothing to do: give --epochs or --steps")

    split = json.loads((args.inputs / "split.json").read_text())
    test = split["test"]
    queries = [[g for g in c.split("+") if g != "ctrl"] for c in test]
    with Clock() as clock:
        predicted = model.predict(queries)
    clock.record(result, "predict")
    result["predict_cells"] = args.predict_cells
    mean = np.stack([predicted["_".join(q)] for q in queries]).astype(np.float32)
    args.out.mkdir(parents=True, exist_ok=True)
    np.savez(
        args.out / "predictions.npz",
        conditions=np.array(test, dtype=str),
        genes=np.array(model.gene_list, dtype=str),
        mean=mean,
    )
    result["peak_rss_gb"] = _peak_rss_gb()
    if args.device == "cuda":
        result["peak_gpu_memory_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 3)
    (args.out / "result.json").write_text(json.dumps(result))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
