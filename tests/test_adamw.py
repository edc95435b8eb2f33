"""perturbsim's AdamW: the update of torch.optim.AdamW without torch.optim's machinery."""

from __future__ import annotations

import subprocess
import sys

import torch

from perturbsim.train._adamw import AdamW


def _train(make_optimiser, *, fused: bool, steps: int = 25) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    weights = [
        torch.randn(7, 5, generator=generator).requires_grad_(),
        torch.randn(5, generator=generator).requires_grad_(),
        torch.randn(3, generator=generator).requires_grad_(),  # never gets a gradient
    ]
    optimiser = make_optimiser(weights)
    if isinstance(optimiser, AdamW):
        optimiser.fused = fused
    x = torch.randn(11, 7, generator=generator)
    for step in range(steps):
        optimiser.zero_grad()
        loss = ((x @ weights[0] + weights[1]) ** 2).mean()
        loss.backward()
        optimiser.step()
        if step == 10:  # the learning rate decays between steps
            if isinstance(optimiser, AdamW):
                optimiser.lr *= 0.5
            else:
                for group in optimiser.param_groups:
                    group["lr"] *= 0.5
    return [w.detach().clone() for w in weights]


def test_same_update_as_torch_fused_adamw_to_the_last_bit():
    ours = _train(lambda w: AdamW(w, lr=1e-2, weight_decay=5e-4), fused=True)
    theirs = _train(
        lambda w: torch.optim.AdamW(w, lr=1e-2, weight_decay=5e-4, fused=True), fused=True
    )
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_per_tensor_update_matches_torch_adamw():
    ours = _train(lambda w: AdamW(w, lr=1e-2, weight_decay=5e-4), fused=False)
    theirs = _train(
        lambda w: torch.optim.AdamW(w, lr=1e-2, weight_decay=5e-4, foreach=False), fused=False
    )
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    generator = torch.Generator().manual_seed(0)
    initial = [torch.randn(*shape, generator=generator) for shape in ((7, 5), (5,), (3,))]
    assert not torch.equal(ours[0], initial[0])  # it trained
    torch.testing.assert_close(ours[2], initial[2], rtol=0, atol=0)  # no gradient, no update


def test_training_does_not_import_torch_dynamo():
    code = (
        "import sys\n"
        "import perturbsim as ps\n"
        "ps.settings.progress = False\n"
        "adata = ps.ds.norman2019_subset()\n"
        "ps.pp.split(adata, seed=1)\n"
        "ps.GEARS(adata, seed=0).fit(max_epochs=2)\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"
