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


# -- S3 (issue 15): each loss against its formula on small cases ----------------------------------
def _loop_info_nce(a, b, tau):
    """−mean_i log( e^{cos(a_i, b_i)/τ} / Σ_j e^{cos(a_i, b_j)/τ} ), written out with loops."""
    a, b = a.double().numpy(), b.double().numpy()
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    total = 0.0
    for i in range(len(a)):
        scores = [a[i] @ b[j] / tau for j in range(len(b))]
        total -= scores[i] - np.log(np.sum(np.exp(scores)))
    return total / len(a)


def test_s3_intra_and_cross_modal_info_nce_known_answers():
    from mmpipe.adapters.losses import cross_modal_info_nce, intra_modal_info_nce

    basis = torch.eye(3)  # orthonormal rows: cos = 1 on the pair, 0 elsewhere
    expected = -np.log(np.e / (np.e + 2))  # τ = 1, N = 3, both directions alike
    assert float(cross_modal_info_nce(basis, 2 * basis, 1.0)) == pytest.approx(expected, rel=1e-6)
    # the sum over modalities of each modality's symmetric InfoNCE between its two views
    assert float(intra_modal_info_nce([(basis, basis), (basis, 3 * basis)], 1.0)) == pytest.approx(2 * expected, rel=1e-6)
    z1, z2 = torch.randn(6, 4, generator=_gen()), torch.randn(6, 4, generator=_gen(1))
    v1, v2 = torch.randn(6, 5, generator=_gen(2)), torch.randn(6, 5, generator=_gen(3))
    both = 0.5 * (_loop_info_nce(z1, z2, 0.2) + _loop_info_nce(z2, z1, 0.2))
    assert float(cross_modal_info_nce(z1, z2, 0.2)) == pytest.approx(both, rel=1e-5)
    intra = both + 0.5 * (_loop_info_nce(v1, v2, 0.2) + _loop_info_nce(v2, v1, 0.2))
    assert float(intra_modal_info_nce([(z1, z2), (v1, v2)], 0.2)) == pytest.approx(intra, rel=1e-5)


def test_s3_importance_loss_is_the_squared_cv_of_summed_probabilities():
    from mmpipe.adapters.losses import importance_loss, squared_cv

    assert float(squared_cv(torch.tensor([1.0, 2.0, 3.0]))) == pytest.approx((2 / 3) / 4)  # population variance
    probs = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])  # Imp = (2.5, 1.5)
    assert float(importance_loss(probs)) == pytest.approx(0.25 / 4)
    assert float(importance_loss(torch.full((5, 4), 0.25))) == pytest.approx(0.0)


def test_s3_load_loss_uses_the_kth_noisy_logit_and_the_normal_cdf():
    from math import erf, sqrt

    from mmpipe.adapters.losses import load_loss

    logits = torch.tensor([[1.0, 0.0, -1.0], [0.0, 2.0, 0.5]])
    noisy = torch.tensor([[1.2, 0.1, -0.5], [0.3, 1.5, 0.9]])
    sigma, k = 0.5, 2
    phi = lambda v: 0.5 * (1 + erf(v / sqrt(2)))  # noqa: E731
    load = np.zeros(3)
    for row in range(2):
        threshold = sorted(noisy[row].tolist(), reverse=True)[k - 1]  # 0.1, then 0.9
        load += [1 - phi((threshold - h) / sigma) for h in logits[row].tolist()]
    expected = load.var() / load.mean() ** 2
    assert float(load_loss(logits, noisy, k, sigma)) == pytest.approx(expected, rel=1e-5)
    given = torch.tensor([[0.1], [0.9]])
    assert float(load_loss(logits, noisy, k, sigma, threshold=given)) == pytest.approx(expected, rel=1e-5)


def test_s3_local_and_global_entropy_losses():
    from mmpipe.adapters.losses import global_entropy_loss, local_entropy_loss

    uniform, one_hot = torch.full((3, 4), 0.25), torch.eye(4)[:3]
    assert float(local_entropy_loss(uniform)) == pytest.approx(np.log(4), rel=1e-6)
    assert float(local_entropy_loss(one_hot)) == pytest.approx(0.0, abs=1e-6)
    assert float(local_entropy_loss(torch.cat([uniform[:1], one_hot[:1]]))) == pytest.approx(np.log(4) / 2, rel=1e-6)
    # confident tokens on different experts: the marginal is uniform, −H(p̄) = −log 2
    assert float(global_entropy_loss(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))) == pytest.approx(-np.log(2), rel=1e-6)
    assert float(global_entropy_loss(torch.tensor([[1.0, 0.0], [1.0, 0.0]]))) == pytest.approx(0.0, abs=1e-6)


def _loop_supcon(a, c, labels, tau, same_view):
    a, c = a.double().numpy(), c.double().numpy()
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    c = c / np.linalg.norm(c, axis=1, keepdims=True)
    losses = []
    for i in range(len(a)):
        others = [j for j in range(len(c)) if not (same_view and j == i)]
        positives = [j for j in others if labels[j] == labels[i]]
        if not positives:
            continue
        log_norm = np.log(sum(np.exp(a[i] @ c[j] / tau) for j in others))
        losses.append(-np.mean([a[i] @ c[p] / tau - log_norm for p in positives]))
    return np.mean(losses)


def test_s3_supcon_matches_khosla_l_out_in_both_directions():
    from mmpipe.adapters.losses import supcon_loss, task_sufficiency_loss

    z1, z2 = torch.randn(7, 3, generator=_gen()), torch.randn(7, 3, generator=_gen(1))
    labels = torch.tensor([0, 1, 0, 2, 1, 0, 3])  # class 2 and 3 have no positive within a view: skipped
    for same_view, (a, c) in ((True, (z1, z1)), (False, (z1, z2))):
        expected = _loop_supcon(a, c, labels.tolist(), 0.5, same_view)
        assert float(supcon_loss(a, c, labels, 0.5, same_view)) == pytest.approx(expected, rel=1e-5)
    four = np.mean([_loop_supcon(a, c, labels.tolist(), 0.5, a is c) for a, c in ((z1, z1), (z2, z2), (z1, z2), (z2, z1))])
    assert float(task_sufficiency_loss(z1, z2, labels, 0.5)) == pytest.approx(four, rel=1e-5)
    # two rows per class, aligned within a class and orthogonal across: the cross-modal known answer
    e = torch.eye(2)
    a = torch.stack([e[0], e[0], e[1], e[1]])
    expected = -(1.0 - np.log(2 * np.e + 2))  # τ = 1: each anchor has 2 positives at cos 1 and 2 at cos 0
    assert float(supcon_loss(a, a, torch.tensor([0, 0, 1, 1]), 1.0, False)) == pytest.approx(expected, rel=1e-6)
    assert float(supcon_loss(a, a, torch.tensor([0, 1, 2, 3]), 1.0, True)) == 0.0  # no positives at all


def test_s3_compactness_is_minus_the_cosine_to_the_normalised_class_mean():
    from mmpipe.adapters.losses import compactness_loss, information_minimality_loss

    labels = torch.tensor([0, 0, 1, 1])
    tight = torch.tensor([[2.0, 0.0], [1.0, 0.0], [0.0, 3.0], [0.0, 1.0]])  # each class one direction
    assert float(compactness_loss(tight, tight, labels)) == pytest.approx(-1.0)
    spread = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])  # class means at 45°
    assert float(compactness_loss(spread, spread, labels)) == pytest.approx(-np.cos(np.pi / 4), rel=1e-6)
    z1, z2 = torch.randn(8, 3, generator=_gen()), torch.randn(8, 3, generator=_gen(1))
    y = torch.tensor([0, 1, 0, 1, 1, 2, 2, 0])
    n1, n2 = z1 / z1.norm(dim=1, keepdim=True), z2 / z2.norm(dim=1, keepdim=True)

    def expected(anchors, members):
        total = 0.0
        for i in range(8):
            centre = members[y == y[i]].mean(0)  # the batch mean, anchor's own row included
            total += float(anchors[i] @ (centre / centre.norm()))
        return -total / 8

    assert float(compactness_loss(z1, z2, y)) == pytest.approx(expected(n1, n2), rel=1e-5)
    four = np.mean([expected(a, m) for a, m in ((n1, n1), (n2, n2), (n1, n2), (n2, n1))])
    assert float(information_minimality_loss(z1, z2, y)) == pytest.approx(four, rel=1e-5)


# -- DLF -------------------------------------------------------------------------------------------
def test_dlf_task_loss_is_the_weighted_sum_of_l1_means():
    from mmpipe.adapters.losses import dlf_task_loss

    y = torch.tensor([1.0, -2.0, 0.5])
    predictions = {"output": torch.tensor([2.0, -2.0, 0.0]), "text": torch.tensor([1.0, 0.0, 0.5]),
                   "unused": torch.tensor([9.0, 9.0, 9.0])}
    # output: (1 + 0 + 0.5) / 3 = 0.5; text: (0 + 2 + 0) / 3 = 2/3; a prediction without a weight is left out
    value = dlf_task_loss(predictions, y, {"output": 1.0, "text": 3.0})
    assert float(value) == pytest.approx(0.5 + 3 * 2 / 3)


def test_masked_mse_reads_only_the_valid_steps():
    from mmpipe.adapters.losses import masked_mse

    prediction, target = torch.zeros(2, 3, 2), torch.zeros(2, 3, 2)
    prediction[0, 0] = torch.tensor([1.0, 3.0])  # valid: (1 + 9) / 2 per step
    prediction[1, 2] = 100.0  # padding: ignored
    mask = torch.tensor([[True, True, False], [True, False, False]])
    assert float(masked_mse(prediction, target, mask)) == pytest.approx(10.0 / (3 * 2))
    full = torch.ones(2, 3, dtype=torch.bool)
    assert float(masked_mse(prediction, target, full)) == pytest.approx(float((prediction - target).pow(2).mean()))


def test_soft_orthogonality_is_the_hinged_cosine_per_step_and_chunk():
    from mmpipe.adapters.losses import soft_orthogonality_loss

    s = torch.tensor([[[1.0, 0.0, 1.0, 0.0], [1.0, 1.0, 0.0, 0.0], [5.0, 5.0, 5.0, 5.0]]])  # (1, 3, 4)
    c = torch.tensor([[[1.0, 0.0, -1.0, 0.0], [2.0, 2.0, 0.0, 0.0], [-5.0, 5.0, 0.0, 1.0]]])
    mask = torch.tensor([[True, True, False]])  # the third step is padding
    # whole vectors: cos 0 and cos 1 → mean(max(0, ·)) = 0.5
    assert float(soft_orthogonality_loss(s, c, mask, 4)) == pytest.approx(0.5, abs=1e-6)
    # chunks of 2: step 1 → cos 1, cos −1; step 2 → cos 1, and 0 for the all-zero chunks → (1 + 0 + 1 + 0) / 4
    assert float(soft_orthogonality_loss(s, c, mask, 2)) == pytest.approx(0.5, abs=1e-6)
    # the code's CosineEmbeddingLoss with target −1 (margin 0) on random valid steps
    a, b = torch.randn(2, 5, 6, generator=_gen()), torch.randn(2, 5, 6, generator=_gen(1))
    full = torch.ones(2, 5, dtype=torch.bool)
    reference = torch.nn.CosineEmbeddingLoss()(a.reshape(-1, 3), b.reshape(-1, 3), -torch.ones(20))
    assert float(soft_orthogonality_loss(a, b, full, 3)) == pytest.approx(float(reference), rel=1e-5)


def test_dlf_triplet_loss_matches_its_formula_by_brute_force():
    from mmpipe.adapters.losses import dlf_triplet_loss

    features = torch.randn(9, 4, generator=_gen())
    labels = torch.tensor([1.0, 1.0, -0.4, 1.0, -0.4, 2.6, 0.0, 0.0, 3.0])  # 2.6 and 3.0: no positive
    unit = features / features.norm(dim=1, keepdim=True)
    cos = unit @ unit.T
    per_anchor = []
    for a in range(9):
        positives = [p for p in range(9) if p != a and labels[p] == labels[a]]
        negatives = [n for n in range(9) if labels[n] != labels[a]]
        if positives and negatives:
            terms = [max(0.0, 0.15 * abs(float(labels[a] - labels[n])) - float(cos[a, p]) + float(cos[a, n]))
                     for p in positives for n in negatives]
            per_anchor.append(sum(terms) / len(terms))
    assert len(per_anchor) == 7
    assert float(dlf_triplet_loss(features, labels, 0.15)) == pytest.approx(np.mean(per_anchor), rel=1e-5)
    # no anchor with both a positive and a negative: zero, and still differentiable
    lonely = torch.randn(3, 4, requires_grad=True)
    value = dlf_triplet_loss(lonely, torch.tensor([0.0, 1.0, 2.0]), 0.15)
    value.backward()
    assert float(value.detach()) == 0.0 and lonely.grad is not None
