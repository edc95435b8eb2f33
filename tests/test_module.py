from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from perturbsim._errors import PerturbsimError
from perturbsim.module import (
    MLP,
    GEARSLoss,
    GEARSNetwork,
    SimpleGraphConv,
    difference_moments,
    normalized_adjacency,
    pad_sets,
)

G, P, H = 40, 25, 16


def _graph(n: int, k: int, seed: int):
    """A symmetric k-nearest-neighbour-like graph with positive weights."""
    rng = np.random.default_rng(seed)
    src = np.repeat(np.arange(n), k)
    dst = rng.integers(0, n, n * k)
    w = rng.uniform(0.2, 1.0, n * k)
    keep = src != dst
    src, dst, w = src[keep], dst[keep], w[keep]
    return np.concatenate([src, dst]), np.concatenate([dst, src]), np.concatenate([w, w])


def _net(seed: int = 0, *, go_seed: int = 1, coexpr_seed: int = 2, **kw) -> GEARSNetwork:
    """A network whose second decoder is random, as after training (it starts at zero)."""
    torch.manual_seed(seed)
    net = GEARSNetwork(
        n_genes=G,
        n_perts=P,
        coexpr_graph=_graph(G, 4, coexpr_seed),
        go_graph=_graph(P, 3, go_seed),
        hidden=H,
        **kw,
    )
    with torch.no_grad():
        net.decoder2_self.uniform_(-0.5, 0.5)
        net.decoder2_state.uniform_(-0.5, 0.5)
    return net


def test_untrained_network_predicts_no_effect_but_has_gradients():
    torch.manual_seed(0)
    net = GEARSNetwork(
        n_genes=G, n_perts=P, coexpr_graph=_graph(G, 4, 2), go_graph=_graph(P, 3, 1), hidden=H
    )
    out = net(pad_sets([[4], [4, 9]])).effect
    assert torch.all(out == 0)
    (out * torch.randn_like(out)).sum().backward()
    assert net.decoder2_self.grad.abs().max() > 0
    assert net.decoder2_state.grad.abs().max() > 0


def test_mlp_ends_in_a_bare_linear_whose_output_can_be_negative():
    # hidden blocks are Linear -> LayerNorm -> ReLU; the output layer is a plain Linear, so
    # it can predict decreases (a ReLU after it would clip every negative change to 0)
    torch.manual_seed(0)
    mlp = MLP([4, 8, 3])
    kinds = [type(m) for m in mlp]
    assert kinds == [torch.nn.Linear, torch.nn.LayerNorm, torch.nn.ReLU, torch.nn.Linear]
    with torch.no_grad():
        out = mlp(torch.randn(64, 4))
    assert (out < 0).any() and (out > 0).any()


def _dense_norm(src, dst, w, n):
    a = np.zeros((n, n))
    np.add.at(a, (dst, src), w)
    loops = np.diag(a).copy()
    a[np.diag_indices(n)] = np.where(loops > 0, loops, 1.0)
    d = a.sum(1)
    return a / np.sqrt(d)[:, None] / np.sqrt(d)[None, :]


def test_normalized_adjacency_matches_dense():
    src, dst, w = _graph(12, 3, 0)
    # a duplicated edge (summed) and an explicit self-loop (kept)
    src, dst = np.concatenate([src, [src[0], 5]]), np.concatenate([dst, [dst[0], 5]])
    w = np.concatenate([w, [0.5, 2.0]])
    idx, val = normalized_adjacency(src, dst, w, 12)
    dense = torch.sparse_coo_tensor(idx, val.double(), (12, 12), check_invariants=True)
    dense = dense.to_dense().numpy()
    np.testing.assert_allclose(dense, _dense_norm(src, dst, w, 12), rtol=1e-6)
    # sorted, coalesced, no duplicates
    flat = idx[0] * 12 + idx[1]
    assert torch.all(flat[1:] > flat[:-1])


def test_normalized_adjacency_validates():
    with pytest.raises(PerturbsimError, match="out of range"):
        normalized_adjacency([0, 7], [1, 2], None, 5)
    with pytest.raises(PerturbsimError, match="non-negative"):
        normalized_adjacency([0], [1], [-0.5], 5)
    with pytest.raises(PerturbsimError, match="one value per edge"):
        normalized_adjacency([0, 1], [1, 2], [1.0], 5)
    # an edgeless graph is the identity
    idx, val = normalized_adjacency([], [], None, 4)
    eye = torch.sparse_coo_tensor(idx, val, (4, 4), check_invariants=True).to_dense()
    torch.testing.assert_close(eye, torch.eye(4))


@pytest.mark.parametrize("hops", [1, 2])
def test_simple_graph_conv_is_linear_of_propagated_features(hops):
    src, dst, w = _graph(15, 3, 1)
    torch.manual_seed(0)
    conv = SimpleGraphConv(6, 4, graph=(src, dst, w), n_nodes=15, hops=hops)
    x = torch.randn(15, 6, requires_grad=True)
    a = torch.from_numpy(_dense_norm(src, dst, w, 15)).float()
    expect = conv.linear(torch.linalg.matrix_power(a, hops) @ x)
    torch.testing.assert_close(conv(x), expect, rtol=1e-5, atol=1e-5)
    conv(x).sum().backward()
    assert x.grad.abs().sum() > 0 and conv.linear.weight.grad.abs().sum() > 0
    with pytest.raises(PerturbsimError, match="15 node rows"):
        conv(torch.randn(14, 6))


def test_pad_sets():
    out = pad_sets([[3], [1, 7, 2], []])
    assert out.dtype == torch.int64
    assert out.tolist() == [[3, -1, -1], [1, 7, 2], [-1, -1, -1]]
    assert pad_sets([[], []]).shape == (2, 1)
    with pytest.raises(PerturbsimError, match="-2"):
        pad_sets([[1, -2]])


def test_output_shapes_and_uncertainty():
    x = pad_sets([[0], [1, 2], [3, 4, 5], []])
    out = _net()(x)
    assert out.effect.shape == (4, G) and out.log_var is None
    out = _net(uncertainty=True)(x)
    assert out.effect.shape == (4, G) and out.log_var.shape == (4, G)
    assert torch.isfinite(out.effect).all() and torch.isfinite(out.log_var).all()


def test_control_set_has_zero_effect_and_perturbations_do_not():
    net = _net()
    out = net(pad_sets([[], [4], [4, 9], [], [1, 2, 3]])).effect
    # zero up to rounding: BLAS may round a row differently by its position in the batch
    assert out[0].abs().max() < 1e-6 and out[3].abs().max() < 1e-6
    for row in (1, 2, 4):
        assert out[row].abs().max() > 1e-4
    # sets of size 1, 2 and 3 give different predictions
    assert not torch.allclose(out[1], out[2]) and not torch.allclose(out[2], out[4])


def test_set_order_and_padding_invariance_and_batch_independence():
    net = _net()
    a = net(pad_sets([[3, 8, 11]])).effect
    b = net(pad_sets([[11, 3, 8]])).effect
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    # extra padding columns and other sets in the batch do not change a sample's output
    wide = torch.tensor([[8, -1, 11, -1, 3], [0, 1, -1, -1, -1], [-1, -1, -1, -1, -1]])
    c = net(wide).effect[:1]
    torch.testing.assert_close(a, c, rtol=1e-5, atol=1e-6)
    # train and eval mode agree (no running statistics)
    net.eval()
    torch.testing.assert_close(net(pad_sets([[3, 8, 11]])).effect, a, rtol=1e-5, atol=1e-6)


def test_gradient_reaches_embeddings_graphs_and_decoders():
    net = _net(uncertainty=True, n_gene_layers=2, n_pert_layers=2)
    out = net(pad_sets([[0, 5], [7], [12, 13, 14]]))
    (out.effect.square().sum() + out.log_var.sum()).backward()
    grads = {n: p.grad for n, p in net.named_parameters()}
    no_grad = [n for n, g in grads.items() if g is None or g.abs().sum() == 0]
    assert no_grad == [], no_grad
    for name in [
        "gene_emb",
        "pos_emb",
        "pert_emb",
        "coexpr_layers.0.linear.weight",
        "coexpr_layers.1.linear.weight",
        "go_layers.0.linear.weight",
        "go_layers.1.linear.weight",
        "decoder1_weight",
        "decoder2_state",
        "cross_gene.0.weight",
    ]:
        assert grads[name].abs().sum() > 0, name


def test_go_gradient_is_local_to_the_perturbed_neighbourhood():
    # a path graph 0 - 1 - 2 - ... : one SGConv hop mixes each node with its two neighbours
    chain = (np.r_[np.arange(P - 1), np.arange(1, P)], np.r_[np.arange(1, P), np.arange(P - 1)])
    net = _net(seed=0)
    net.go_layers[0] = SimpleGraphConv(H, H, graph=chain, n_nodes=P)
    net(pad_sets([[10], [20, 3]])).effect.square().sum().backward()
    touched = torch.nonzero(net.pert_emb.grad.abs().sum(1) > 0).flatten().tolist()
    assert touched == [2, 3, 4, 9, 10, 11, 19, 20, 21]


def test_deterministic_given_seed():
    x = pad_sets([[1], [2, 3]])
    a, b = _net(seed=5)(x).effect, _net(seed=5)(x).effect
    assert torch.equal(a, b)
    assert not torch.allclose(a, _net(seed=6)(x).effect)


def test_graphs_are_used():
    x = pad_sets([[1], [2, 3], [4, 10, 20]])
    ref = _net(seed=0)(x).effect
    other_go = _net(seed=0, go_seed=99)(x).effect
    other_coexpr = _net(seed=0, coexpr_seed=99)(x).effect
    assert (ref - other_go).abs().max() > 1e-4
    assert (ref - other_coexpr).abs().max() > 1e-4
    # with no GO layers, the GO graph has no influence
    a = _net(seed=0, n_pert_layers=0)(x).effect
    b = _net(seed=0, go_seed=99, n_pert_layers=0)(x).effect
    torch.testing.assert_close(a, b)


def test_safetensors_round_trip(tmp_path):
    net = _net(uncertainty=True)
    x = pad_sets([[1, 2], [3]])
    path = tmp_path / "net.safetensors"
    save_file(net.state_dict(), str(path))
    other = _net(seed=42, uncertainty=True)
    other.load_state_dict(load_file(str(path)))
    out_a, out_b = net(x), other(x)
    torch.testing.assert_close(out_a.effect, out_b.effect, rtol=0, atol=0)
    torch.testing.assert_close(out_a.log_var, out_b.log_var, rtol=0, atol=0)
    assert "coexpr_layers.0.adj_indices" in net.state_dict()


def test_input_validation():
    net = _net()
    with pytest.raises(PerturbsimError, match="out of range"):
        net(torch.tensor([[P]]))
    with pytest.raises(PerturbsimError, match="2-d"):
        net(torch.tensor([1, 2]))
    with pytest.raises(PerturbsimError, match="integer"):
        net(torch.tensor([[1.0]]))
    with pytest.raises(PerturbsimError, match="hidden"):
        GEARSNetwork(
            n_genes=G, n_perts=P, coexpr_graph=_graph(G, 2, 0), go_graph=_graph(P, 2, 0), hidden=0
        )


def test_network_learns_effects_with_moment_loss():
    """Network + loss end to end: fit 8 perturbations from simulated cells."""
    rng = np.random.default_rng(0)
    n_cells = 30
    ctrl = np.log1p(rng.poisson(3.0, (200, G)))
    sets = [[i] for i in range(6)] + [[0, 1], [2, 3]]
    true = rng.normal(0, 0.6, (len(sets), G)) * (rng.random((len(sets), G)) < 0.3)
    moments = []
    for b in range(len(sets)):
        y = np.maximum(np.log1p(rng.poisson(3.0, (n_cells, G))) + true[b], 0.0)
        moments.append(np.stack([np.mean(y**k, 0) for k in range(1, 5)]))
    pm = np.stack(moments, axis=1)
    cm = np.stack([np.mean(ctrl**k, 0) for k in range(1, 5)])
    dm = torch.from_numpy(difference_moments(pm, cm, 4))
    delta = dm[1].float()
    net = _net(seed=0)
    loss_fn = GEARSLoss()
    x = pad_sets(sets)
    opt = torch.optim.Adam(net.parameters(), lr=5e-3)
    # the loss cannot go below its value at the best effect, roughly the pseudobulk change
    floor = loss_fn(delta, mask=None, diff_moments=dm).total.item()
    first = loss_fn(net(x).effect, mask=None, diff_moments=dm).total.item()
    for _ in range(150):
        terms = loss_fn(net(x).effect, mask=None, diff_moments=dm)
        opt.zero_grad()
        terms.total.backward()
        opt.step()
    assert terms.total.item() - floor < 0.2 * (first - floor)
    with torch.no_grad():
        pred = net(x).effect
    corr = np.corrcoef(pred.flatten().numpy(), delta.flatten().numpy())[0, 1]
    assert corr > 0.8


def test_unknown_perturbations_are_represented_by_their_neighbours_only():
    net = _net()
    known = torch.ones(P, dtype=torch.bool)
    known[[3, 7]] = False
    net.set_known_perturbations(known)
    sets = pad_sets([[3], [7], [3, 5], [5], []])
    with torch.no_grad():
        before = net(sets).effect
        net.pert_emb[[3, 7]] = torch.randn(2, H) * 10
        after = net(sets).effect
        net.pert_emb[5] += 1.0  # a known node still matters
        moved = net(sets).effect
    torch.testing.assert_close(before, after)
    assert not torch.allclose(after[3], moved[3])


def test_dropping_a_node_equals_marking_it_unknown():
    net = _net()
    drop = torch.zeros(P, dtype=torch.bool)
    drop[[2, 4]] = True
    sets = pad_sets([[2], [4, 6], [6], []])
    with torch.no_grad():
        dropped = net(sets, drop=drop).effect
        net.set_known_perturbations(~drop)
        unknown = net(sets).effect
    torch.testing.assert_close(dropped, unknown)
    with pytest.raises(PerturbsimError, match="known must have shape"):
        net.set_known_perturbations(torch.ones(P + 1, dtype=torch.bool))
    with pytest.raises(PerturbsimError, match="drop must be a bool tensor"):
        net(sets, drop=torch.zeros(P))


def test_normalized_adjacency_refuses_the_index_one_past_the_nodes_and_convs_need_a_hop():
    # node indices run 0..n-1: n itself is out of range, refused in one message
    for src, dst in (([0, 5], [1, 2]), ([0, 1], [5, 2])):
        with pytest.raises(PerturbsimError, match=r"edge index out of range \[0, 5\): found 5"):
            normalized_adjacency(src, dst, None, 5)
    with pytest.raises(PerturbsimError, match="hops must be at least 1, got 0"):
        SimpleGraphConv(4, 4, graph=([0], [1]), n_nodes=3, hops=0)
