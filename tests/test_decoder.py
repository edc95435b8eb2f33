"""The blockwise gene decoder and the CSR graph products against plain torch."""

import numpy as np
import pytest
import torch

from perturbsim.module import SimpleGraphConv, _decoder
from perturbsim.module._decoder import gene_decoder

NAMES = ["base", "shift", "ln_weight", "ln_bias", "weight", "bias", "fold"]


def _plain_decoder(base, shift, norm_weight, norm_bias, weight, bias, fold, eps=1e-5):
    """The decoder as a plain composition of torch operations (autograd's gradients)."""
    x = base.unsqueeze(1) + shift.unsqueeze(0)
    e = torch.relu(torch.nn.functional.layer_norm(x, (x.shape[-1],), norm_weight, norm_bias, eps))
    return torch.bmm(torch.relu(torch.nn.functional.linear(e, weight, bias)), fold)


def _inputs(n_genes: int, n_sets: int, h: int, k: int, dtype: torch.dtype, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    shapes = [(n_genes, h), (n_sets, h), (h,), (h,), (2 * h, h), (2 * h,), (n_genes, 2 * h, k)]
    tensors = [torch.randn(s, generator=g, dtype=dtype) for s in shapes]
    tensors[2] = tensors[2].abs() + 0.5  # LayerNorm weight
    return [t.requires_grad_() for t in tensors]


@pytest.mark.parametrize("k", [1, 2])
@pytest.mark.parametrize("block_bytes", [1, 700, 1 << 30])
def test_gene_decoder_matches_plain_torch_values_and_gradients(monkeypatch, k, block_bytes):
    # 1 byte: blocks of the minimum 16 genes; 700: ~3 genes -> 16; huge: one block
    monkeypatch.setattr(_decoder, "BLOCK_BYTES", block_bytes)
    inputs = _inputs(53, 5, 4, k, torch.float64)
    out = gene_decoder(*inputs)
    expect = _plain_decoder(*inputs)
    torch.testing.assert_close(out, expect, rtol=1e-12, atol=1e-12)
    weights = torch.randn(
        out.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1)
    )
    got = torch.autograd.grad((out * weights).sum(), inputs)
    want = torch.autograd.grad((expect * weights).sum(), inputs)
    for name, a, b in zip(NAMES, got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10, msg=name)


def test_gene_decoder_gradcheck(monkeypatch):
    monkeypatch.setattr(_decoder, "BLOCK_BYTES", 1)  # several blocks
    inputs = _inputs(35, 3, 3, 2, torch.float64, seed=2)
    assert torch.autograd.gradcheck(gene_decoder, inputs)


def test_gene_decoder_without_gradients_matches_and_float32_agrees(monkeypatch):
    monkeypatch.setattr(_decoder, "BLOCK_BYTES", 1)
    inputs = [t.detach().float() for t in _inputs(40, 6, 8, 1, torch.float64, seed=3)]
    with torch.no_grad():
        out = gene_decoder(*inputs)
    assert out.shape == (40, 6, 1) and out.grad_fn is None
    torch.testing.assert_close(out, _plain_decoder(*inputs), rtol=1e-5, atol=1e-5)


def _random_graph(n: int, seed: int):
    rng = np.random.default_rng(seed)
    src = np.repeat(np.arange(n), 3)
    return src, rng.integers(0, n, src.size), rng.uniform(0.1, 1.0, src.size)


def test_graph_products_match_dense_and_follow_new_buffers():
    n = 30
    torch.manual_seed(0)
    conv = SimpleGraphConv(4, 2, graph=_random_graph(n, 0), n_nodes=n, hops=2)
    adjacency = torch.sparse_coo_tensor(
        conv.adj_indices, conv.adj_values, (n, n), check_invariants=True
    )
    dense = adjacency.to_dense().double()
    x = torch.randn(n, 4, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(n, 4, dtype=torch.float64)
    (conv.propagate(x) * weights).sum().backward()
    torch.testing.assert_close(conv.propagate(x.detach()), dense @ dense @ x.detach())
    # the gradient is the transposed product (the graph is not symmetric)
    assert not torch.allclose(dense, dense.T)
    torch.testing.assert_close(x.grad, dense.T @ dense.T @ weights)
    # loading other edge weights in place replaces the cached CSR matrices
    src, dst, w = _random_graph(n, 0)
    other = SimpleGraphConv(4, 2, graph=(src, dst, w[::-1].copy()), n_nodes=n, hops=2)
    assert not torch.equal(other.adj_values, conv.adj_values)
    conv.load_state_dict(other.state_dict())
    torch.testing.assert_close(conv.propagate(x.detach()), other.propagate(x.detach()))


def test_gene_decoder_differentiates_when_only_some_inputs_require_gradients(monkeypatch):
    # a frozen gene embedding and LayerNorm (requires_grad off): the rest still learns
    monkeypatch.setattr(_decoder, "BLOCK_BYTES", 1)
    inputs = _inputs(40, 4, 4, 2, torch.float64, seed=4)
    for frozen in (0, 2, 3):
        inputs[frozen] = inputs[frozen].detach()
    out = gene_decoder(*inputs)
    expect = _plain_decoder(*inputs)
    assert out.requires_grad
    trained = [t for t in inputs if t.requires_grad]
    got = torch.autograd.grad(out.sum(), trained)
    want = torch.autograd.grad(expect.sum(), trained)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_gene_decoder_blocks_are_16_genes_at_least_on_the_cpu_and_all_genes_off_it():
    cpu, gpu = torch.device("cpu"), torch.device("cuda")  # a device named, none needed
    assert _decoder._block_size(5000, 33, 128, cpu) == _decoder.BLOCK_BYTES // (33 * 128 * 4)
    assert _decoder._block_size(5000, 4096, 4096, cpu) == 16  # one gene's hidden layer: 64 MB
    assert _decoder._block_size(5000, 33, 128, gpu) == 5000
