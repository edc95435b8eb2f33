"""AdamW without ``torch.optim``: the same update, without its 1.5 s first-use import.

``torch.optim.Optimizer`` imports ``torch._dynamo`` the first time an optimiser is built (its
``add_param_group`` is wrapped to be skipped by the compiler), about 1.5 s on a 2-core
machine: most of the whole training of a small screen (the bundled Norman subset trains in
about 0.5 s). :class:`AdamW` keeps the moment estimates itself and calls the kernel that
``torch.optim.AdamW(fused=True)`` calls on CPU and CUDA (``torch._fused_adamw_``), so the
update is the same to the last bit (a test compares them); on other devices it applies the
same update with per-tensor operations.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

FUSED_DEVICES = ("cpu", "cuda")
"""Devices with the fused AdamW kernel."""


class AdamW:
    """Decoupled-weight-decay Adam (Loshchilov & Hutter, ICLR 2019) over a list of tensors.

    Parameters
    ----------
    params
        The parameters to update (those with a gradient are updated at each step).
    lr
        Learning rate; the attribute :attr:`lr` may be changed between steps.
    weight_decay
        Decoupled weight decay.
    betas
        Decay rates of the first and second moment estimates.
    eps
        Added to the root of the second moment.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor],
        *,
        lr: float,
        weight_decay: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        self.params = list(params)
        self.lr = float(lr)
        self.weight_decay = float(weight_decay)
        self.betas = betas
        self.eps = eps
        self.fused = all(p.device.type in FUSED_DEVICES for p in self.params)
        self.exp_avg = [
            torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params
        ]
        self.exp_avg_sq = [
            torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params
        ]
        self.steps = [torch.zeros((), dtype=torch.float32, device=p.device) for p in self.params]

    def zero_grad(self) -> None:
        """Forget the gradients (set them to ``None``, as ``torch.optim`` does by default)."""
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        """One update of every parameter that has a gradient."""
        live = [i for i, p in enumerate(self.params) if p.grad is not None]
        if not live:
            return
        params = [self.params[i] for i in live]
        grads = [p.grad for p in params]
        exp_avg = [self.exp_avg[i] for i in live]
        exp_avg_sq = [self.exp_avg_sq[i] for i in live]
        steps = [self.steps[i] for i in live]
        beta1, beta2 = self.betas
        if self.fused:
            for device in {p.device for p in params}:
                on = [j for j, p in enumerate(params) if p.device == device]
                device_steps = [steps[j] for j in on]
                torch._foreach_add_(device_steps, 1)
                torch._fused_adamw_(
                    [params[j] for j in on],
                    [grads[j] for j in on],
                    [exp_avg[j] for j in on],
                    [exp_avg_sq[j] for j in on],
                    [],
                    device_steps,
                    amsgrad=False,
                    lr=self.lr,
                    beta1=beta1,
                    beta2=beta2,
                    weight_decay=self.weight_decay,
                    eps=self.eps,
                    maximize=False,
                    grad_scale=None,
                    found_inf=None,
                )
            return
        for p, g, m, v, t in zip(params, grads, exp_avg, exp_avg_sq, steps, strict=True):
            t.add_(1)
            step = float(t)
            p.mul_(1.0 - self.lr * self.weight_decay)
            m.lerp_(g, 1.0 - beta1)
            v.mul_(beta2).addcmul_(g, g, value=1.0 - beta2)
            denominator = (v.sqrt() / (1.0 - beta2**step) ** 0.5).add_(self.eps)
            p.addcdiv_(m, denominator, value=-self.lr / (1.0 - beta1**step))
