"""Each loss on small cases with known answers."""

import numpy as np
import pytest
import torch

from mmpipe.adapters.gradnorm import GradNorm
from mmpipe.adapters.losses import (
    center,
    hsic,
    hsic_biased,
    hsic_unbiased,
    independence_loss,
    info_nce,
    orthogonality_loss,
    rbf_kernel,
    rbf_kernels,
)
from mmpipe.adapters.training import Plateau


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_rbf_kernel_median_heuristic_and_batching():
    x = torch.randn(50, 3, generator=_gen())
    k = rbf_kernel(x)
    sq = torch.cdist(x, x).pow(2)
    sigma_sq = sq[torch.triu(torch.ones(50, 50, dtype=torch.bool), diagonal=1)].median()
    torch.testing.assert_close(k, torch.exp(-sq / (2 * sigma_sq)), atol=1e-5, rtol=1e-5)
    assert torch.allclose(torch.diagonal(k), torch.ones(50))
    y = torch.randn(50, 5, generator=_gen(1))
    batched = rbf_kernels([x, y])
    torch.testing.assert_close(batched[0], k, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(batched[1], rbf_kernel(y), atol=1e-5, rtol=1e-5)


def test_biased_hsic_is_the_papers_trace_formula():
    n = 40
    x, y = torch.randn(n, 2, generator=_gen()), torch.randn(n, 3, generator=_gen(1))
    k, l_kernel = rbf_kernel(x), rbf_kernel(y)
    h = torch.eye(n) - torch.ones(n, n) / n
    expected = torch.trace(k @ h @ l_kernel @ h) / (n - 1) ** 2
    torch.testing.assert_close(hsic_biased(center(k), l_kernel), expected, atol=1e-6, rtol=1e-5)


def test_unbiased_hsic_matches_song_et_al():
    n = 30
    k = rbf_kernel(torch.randn(n, 2, generator=_gen())).double().numpy()
    lk = rbf_kernel(torch.randn(n, 2, generator=_gen(1))).double().numpy()
    kt, lt = k - np.diag(np.diag(k)), lk - np.diag(np.diag(lk))
    one = np.ones(n)
    expected = (np.trace(kt @ lt) + (one @ kt @ one) * (one @ lt @ one) / ((n - 1) * (n - 2))
                - 2 / (n - 2) * one @ kt @ lt @ one) / (n * (n - 3))
    assert float(hsic_unbiased(torch.from_numpy(k), torch.from_numpy(lk))) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("estimator", ["biased", "unbiased"])
def test_hsic_near_zero_for_independent_and_positive_for_dependent(estimator):
    x = torch.randn(400, 2, generator=_gen())
    independent = torch.randn(400, 2, generator=_gen(1))
    dependent = torch.cat([x[:, :1] ** 2, x[:, 1:] + 0.1 * torch.randn(400, 1, generator=_gen(2))], dim=1)
    small, large = float(hsic(x, independent, estimator)), float(hsic(x, dependent, estimator))
    assert abs(small) < 0.005
    assert large > 10 * max(abs(small), 1e-4)


def test_independence_loss_sums_the_three_pairs_of_eq5():
    zs = [torch.randn(60, r, generator=_gen(i)) for i, r in enumerate((3, 2, 3, 4))]
    z_s1, z_m1, z_s2, z_m2 = zs
    expected = hsic(z_s1, z_m1) + hsic(z_s2, z_m2) + hsic(z_m1, z_m2)
    torch.testing.assert_close(independence_loss(z_s1, z_m1, z_s2, z_m2), expected, atol=1e-6, rtol=1e-5)
    expected_u = hsic(z_s1, z_m1, "unbiased") + hsic(z_s2, z_m2, "unbiased") + hsic(z_m1, z_m2, "unbiased")
    torch.testing.assert_close(independence_loss(z_s1, z_m1, z_s2, z_m2, "unbiased"), expected_u, atol=1e-6,
                               rtol=1e-5)


def test_orthogonality_loss():
    q, _ = torch.linalg.qr(torch.randn(6, 6, generator=_gen()))
    shared, specific = q[:3], q[3:]
    assert float(orthogonality_loss([(shared, specific)])) == pytest.approx(0.0, abs=1e-6)
    overlap = torch.cat([q[2:3], q[3:5]])  # shares one direction with `shared`
    assert float(orthogonality_loss([(shared, overlap)])) == pytest.approx(1.0, abs=1e-5)
    assert float(orthogonality_loss([(shared, overlap), (shared, 2 * overlap)])) == pytest.approx(3.0, abs=1e-5)


def test_info_nce_lower_for_matched_than_shuffled_pairs():
    anchors = torch.randn(128, 8, generator=_gen())
    matched = anchors + 0.1 * torch.randn(128, 8, generator=_gen(1))
    shuffled = matched[torch.randperm(128, generator=_gen(2))]
    assert info_nce(anchors, matched, 0.1) < 0.5 * info_nce(anchors, shuffled, 0.1)
    # uniform logits give exactly log N
    assert float(info_nce(torch.zeros(16, 4) + 1, torch.ones(16, 4), 0.1)) == pytest.approx(np.log(16), rel=1e-5)


def test_gradnorm_combines_gradients_and_balances_weights():
    w = torch.nn.Parameter(torch.tensor([1.0, 1.0]))
    gradnorm = GradNorm(2, alpha=1.5, lr=0.05)
    for _ in range(60):
        losses = [100 * (w**2).sum(), (w**2).sum()]  # the first loss has 100x the gradient
        gradnorm.backward(losses, [w], [w])
        w.grad = None
    assert gradnorm.weights[0] < 0.2 * gradnorm.weights[1]
    assert float(gradnorm.weights.detach().sum()) == pytest.approx(2.0, rel=1e-5)
    # the parameter gradient is Σ w_i ∇L_i with the updated weights
    losses = [100 * (w**2).sum(), (w**2).sum()]
    weights_before = gradnorm.weights.detach().clone()
    gradnorm.backward(losses, [w], [w])
    after = gradnorm.weights.detach()
    expected = (after[0] * 100 + after[1]) * 2 * w.detach()
    torch.testing.assert_close(w.grad, expected)
    assert not torch.equal(weights_before, after)


def test_plateau_needs_patience_stale_epochs():
    plateau = Plateau(patience=3, min_rel_improvement=0.01)
    assert [plateau.update(v) for v in (10.0, 9.0, 8.95, 8.94, 8.0, 7.99, 7.98)] == [False] * 7
    assert plateau.update(7.97) is True  # 7.99, 7.98, 7.97 are each < 1 % better than 8.0


def test_lower_median_matches_torch_median():
    from mmpipe.adapters.losses import lower_median

    for shape in ((7,), (3, 10), (2, 3, 33)):
        values = torch.rand(shape, generator=_gen())
        assert torch.equal(lower_median(values), values.median(dim=-1).values)
