"""S3's MoE layer and MoE transformer encoder (adapters/moe.py, adapters/moe_transformer.py): top-k
routing, gates without renormalisation, Sparsification's exact pair count, the dispatch against a
naive every-expert oracle (both kernels, gradients included), padding invariance."""

import math

import pytest
import torch

from mmpipe.adapters.methods.s3 import RHOS
from mmpipe.adapters.moe import MoEFeedForward, kept_pairs
from mmpipe.adapters.moe_transformer import EncoderShape, MoESequenceEncoder


def _moe(kernel="auto", d=8, d_ff=32, granularity=4, expansion=2, dropout=0.0):
    torch.manual_seed(0)
    return MoEFeedForward(d, d_ff, granularity, expansion, dropout=dropout, kernel=kernel)


def test_experts_are_the_ffn_split_by_granularity():
    moe = _moe(d=8, d_ff=32, granularity=4, expansion=2)
    assert (moe.n_experts, moe.hidden, moe.top_k) == (8, 8, 4)  # N_E = E·G, d_ff / G, top-k = G
    assert moe.router.bias is None
    # active expert parameters per token equal one dense FFN of width d_ff (weights; biases per expert)
    assert moe.top_k * 2 * moe.d * moe.hidden == 2 * 8 * 32
    with pytest.raises(ValueError, match="not divisible"):
        MoEFeedForward(8, 30, 4, 2)


def test_router_keeps_exactly_the_top_k_experts_with_unrenormalised_softmax_gates():
    moe = _moe()
    x = torch.randn(40, 8)
    routing = moe.route(x)
    assert routing.experts.shape == (40, moe.top_k)
    assert all(len(set(row.tolist())) == moe.top_k for row in routing.experts)  # k distinct experts
    probs = routing.logits.softmax(-1)
    torch.testing.assert_close(routing.probs, probs)
    kth = probs.sort(-1, descending=True).values[:, moe.top_k - 1]
    assert bool((routing.gates >= kth[:, None] - 1e-7).all())  # the k largest
    torch.testing.assert_close(routing.gates, probs.gather(1, routing.experts))  # softmax over all N_E, no renorm
    assert bool((routing.gates.sum(1) < 1).all())


def test_router_noise_changes_the_selection_but_not_the_clean_probabilities():
    moe = _moe()
    x = torch.randn(200, 8)
    torch.manual_seed(1)
    noisy = moe.route(x, noise_std=0.5)
    clean = moe.route(x)
    assert moe.eval().route(x, noise_std=0.5).noisy_logits is None  # evaluation is deterministic
    moe.train()
    torch.testing.assert_close(noisy.probs, clean.probs)
    assert noisy.noisy_logits is not None and not torch.equal(noisy.experts, clean.experts)
    torch.testing.assert_close(noisy.gates, noisy.noisy_logits.softmax(-1).gather(1, noisy.experts))
    torch.testing.assert_close(MoEFeedForward.threshold(noisy), noisy.noisy_logits.topk(moe.top_k).values[:, -1:])


def test_kept_pairs_is_the_ceiling_without_floating_point_surprises():
    assert kept_pairs(10, 0.7) == 7  # 0.7 · 10 is 7.000000000000001 in floating point
    assert [kept_pairs(10, r) for r in RHOS] == [10, 9, 8, 7, 6, 5, 4, 3, 2, 1]
    assert kept_pairs(7, 0.5) == 4 and kept_pairs(3, 0.1) == 1 and kept_pairs(0, 0.5) == 0


@pytest.mark.parametrize("rho", RHOS)
def test_sparsification_keeps_exactly_the_largest_ceil_rho_n_pairs(rho):
    moe = _moe()
    with torch.no_grad():
        routing = moe.route(torch.randn(37, 8), keep=rho)
    n = routing.experts.numel()
    assert int(routing.kept.sum()) == math.ceil(round(rho * n, 9))
    scores = routing.logits.softmax(-1).gather(1, routing.experts)
    if rho < 1:
        assert float(scores[routing.kept].min()) >= float(scores[~routing.kept].max())
        assert bool((routing.gates[~routing.kept] == 0).all())
    torch.testing.assert_close(routing.gates[routing.kept], scores[routing.kept])  # the kept ones not renormalised


@pytest.mark.parametrize("kernel", ["grouped", "blocks"])
@pytest.mark.parametrize("keep", [1.0, 0.4])
def test_dispatch_equals_every_expert_on_every_token_then_masked(kernel, keep):
    moe = _moe(kernel)
    x = torch.randn(50, 8, requires_grad=True)
    y, routing = moe(x, noise_std=0.1, keep=keep)
    reference = moe.reference(x, routing)
    torch.testing.assert_close(y, reference, atol=1e-6, rtol=1e-5)
    grad = torch.randn_like(y)
    wanted = [x, moe.w1, moe.b1, moe.w2, moe.b2, moe.router.weight]
    ours = torch.autograd.grad(y, wanted, grad, retain_graph=True)
    theirs = torch.autograd.grad(reference, wanted, grad)
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


def test_the_auto_kernel_falls_back_to_blocks_for_unaligned_widths():
    assert _moe().uses_grouped_mm(torch.zeros(1, 8)) == hasattr(torch, "_grouped_mm")
    odd = MoEFeedForward(6, 12, 2, 2)  # rows of 6 floats are not a multiple of 16 bytes
    assert not odd.uses_grouped_mm(torch.zeros(1, 6))
    x = torch.randn(20, 6)
    y, routing = odd(x)
    torch.testing.assert_close(y, odd.reference(x, routing), atol=1e-6, rtol=1e-5)


def test_a_token_routed_nowhere_keeps_only_the_residual():
    moe = _moe()
    x = torch.randn(4, 8)
    y, routing = moe(x, keep=0.1)  # ⌈0.1 · 16⌉ = 2 pairs in all
    assert int(routing.kept.sum()) == 2
    untouched = ~routing.kept.any(1)
    assert bool(untouched.any()) and bool((y[untouched] == 0).all())


def _encoder(pooling="last"):
    torch.manual_seed(0)
    return MoESequenceEncoder(EncoderShape(5, 8, 2, 2, 32, 4, 2, None, "relu", 0.0, 0.0, pooling)).eval()


@pytest.mark.parametrize("pooling", ["last", "mean"])
@pytest.mark.parametrize("keep", [1.0, 0.5])
def test_padding_never_leaks_into_attention_routing_or_pooling(pooling, keep):
    encoder = _encoder(pooling)
    x = torch.randn(6, 4, 5)
    lengths = torch.tensor([4, 1, 3, 2, 4, 3])
    x = x * (torch.arange(4)[None, :, None] < lengths[:, None, None])
    longer = torch.cat([x, 100 * torch.randn(6, 5, 5)], 1)  # 5 more steps of large garbage
    longer[:, :4] = torch.where(torch.arange(4)[None, :, None] < lengths[:, None, None], x, 7.0)
    with torch.no_grad():
        z, routings = encoder(x, lengths, keep=keep)
        z_long, routings_long = encoder(longer, lengths, keep=keep)
    torch.testing.assert_close(z_long, z, atol=1e-5, rtol=1e-5)
    for a, b in zip(routings, routings_long, strict=True):
        assert len(a.probs) == len(b.probs) == int(lengths.sum())  # only valid tokens are routed
        assert torch.equal(a.kept.sum(), b.kept.sum())


def test_pooling_reads_the_last_valid_step_or_the_mean_of_valid_steps():
    x = torch.randn(3, 4, 5)
    lengths = torch.tensor([2, 4, 1])
    for pooling in ("last", "mean"):
        encoder = _encoder(pooling)
        with torch.no_grad():
            z, _ = encoder(x, lengths)
            for i, length in enumerate(lengths.tolist()):
                alone, _ = encoder(x[i:i + 1, :length], lengths[i:i + 1])
                torch.testing.assert_close(z[i:i + 1], alone, atol=1e-5, rtol=1e-5)
    last, mean = _encoder("last"), _encoder("mean")
    with torch.no_grad():  # one step: the mean is that step
        torch.testing.assert_close(last(x[:, :1], torch.ones(3, dtype=torch.long))[0],
                                   mean(x[:, :1], torch.ones(3, dtype=torch.long))[0])
