"""Loss functions as small pure functions (each testable alone).

References: the MultiLoReFT paper ("MultiLoReFT: decoupling shared and modality-specific subspaces
via low-rank representation fine-tuning") §3.2, Eq. 5–7;
Gretton et al. 2007 (HSIC); Song et al. 2012 (unbiased HSIC); van den Oord et al. 2018 (InfoNCE).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def lower_median(values: torch.Tensor) -> torch.Tensor:
    """torch.median over the last dim (the lower median for even counts). On the CPU through
    numpy's O(n) partition: torch's CPU median sorts, and was 30 % of a MultiLoReFT step."""
    if values.device.type != "cpu":
        return values.median(dim=-1).values
    k = (values.shape[-1] + 1) // 2 - 1
    array = values.detach().numpy()
    return torch.from_numpy(np.partition(array, k, axis=-1)[..., k].copy())


def rbf_kernel(x: torch.Tensor, bandwidth: float | None = None) -> torch.Tensor:
    """k(a, b) = exp(-||a - b||² / (2σ²)); σ² = median of the pairwise (i < j) squared distances
    (the median heuristic) unless ``bandwidth`` (σ) is given. The bandwidth is not differentiated
    through. Batched: x (..., n, r) → (..., n, n)."""
    norms = x.pow(2).sum(-1)  # (..., n)
    # expanded form rather than cdist: cdist's gradient is NaN at the zero diagonal distances
    sq = (norms[..., :, None] + norms[..., None, :] - 2 * x @ x.transpose(-1, -2)).clamp_min(0)  # (..., n, n)
    if bandwidth is None:
        with torch.no_grad():
            rows, cols = torch.triu_indices(x.shape[-2], x.shape[-2], offset=1, device=x.device)
            sigma_sq = lower_median(sq[..., rows, cols]).clamp_min(1e-12)  # (...,)
    else:
        sigma_sq = torch.full(x.shape[:-2], bandwidth**2, device=x.device, dtype=x.dtype)
    return torch.exp(-sq / (2 * sigma_sq[..., None, None]))


def rbf_kernels(components: list[torch.Tensor]) -> torch.Tensor:
    """RBF kernels of several (n, r_k) components in one batched op → (k, n, n). Zero-padding to a
    common width leaves every pairwise distance unchanged."""
    width = max(z.shape[1] for z in components)
    padded = torch.stack([F.pad(z, (0, width - z.shape[1])) for z in components])  # (k, n, width)
    return rbf_kernel(padded)


def center(kernel: torch.Tensor) -> torch.Tensor:
    """H K H with H = I − 11ᵀ/n, computed without forming H. (..., n, n) → (..., n, n)."""
    return (kernel - kernel.mean(-2, keepdim=True) - kernel.mean(-1, keepdim=True)
            + kernel.mean((-2, -1), keepdim=True))


def hsic_biased(k_centered: torch.Tensor, l_kernel: torch.Tensor) -> torch.Tensor:
    """The paper's estimator tr(K H L H) / (n − 1)² = tr(HKH · L) / (n − 1)², from K already centred."""
    n = k_centered.shape[-1]
    return (k_centered * l_kernel).sum((-2, -1)) / (n - 1) ** 2


def hsic_unbiased(k_kernel: torch.Tensor, l_kernel: torch.Tensor) -> torch.Tensor:
    """Song et al. (2012): 1/(n(n−3)) [tr(K̃L̃) + 1ᵀK̃1·1ᵀL̃1/((n−1)(n−2)) − 2/(n−2)·1ᵀK̃L̃1],
    K̃, L̃ = the kernels with zeroed diagonals. Needs n ≥ 4; may be slightly negative."""
    n = k_kernel.shape[0]
    k_tilde = k_kernel - torch.diag_embed(torch.diagonal(k_kernel))
    l_tilde = l_kernel - torch.diag_embed(torch.diagonal(l_kernel))
    k_rows, l_rows = k_tilde.sum(1), l_tilde.sum(1)  # (n,)
    trace = (k_tilde * l_tilde).sum()
    total = k_rows.sum() * l_rows.sum() / ((n - 1) * (n - 2))
    cross = 2.0 / (n - 2) * (k_rows @ l_rows)
    return (trace + total - cross) / (n * (n - 3))


def hsic(x: torch.Tensor, y: torch.Tensor, estimator: str = "biased") -> torch.Tensor:
    """HSIC(X, Y) with RBF kernels and median-heuristic bandwidths. x: (n, p), y: (n, q)."""
    k_x, k_y = rbf_kernel(x), rbf_kernel(y)
    return hsic_biased(center(k_x), k_y) if estimator == "biased" else hsic_unbiased(k_x, k_y)


def independence_loss(z_s1: torch.Tensor, z_m1: torch.Tensor, z_s2: torch.Tensor, z_m2: torch.Tensor,
                      estimator: str = "biased") -> torch.Tensor:
    """Eq. 5: HSIC(z_s1, z_m1) + HSIC(z_s2, z_m2) + HSIC(z_m1, z_m2); the four kernels are computed
    once, in one batched op, and each centred once."""
    k_s1, k_m1, k_s2, k_m2 = rbf_kernels([z_s1, z_m1, z_s2, z_m2])
    if estimator == "unbiased":
        return hsic_unbiased(k_s1, k_m1) + hsic_unbiased(k_s2, k_m2) + hsic_unbiased(k_m1, k_m2)
    centered = center(torch.stack([k_s1, k_s2, k_m1]))  # (3, n, n)
    return hsic_biased(centered, torch.stack([k_m1, k_m2, k_m2])).sum()


def orthogonality_loss(pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """Eq. 6: Σ ||R_s R_mᵀ||_F over (R_s (r_s, d), R_m (r_m, d)) pairs."""
    return sum(torch.linalg.matrix_norm(shared @ specific.T) for shared, specific in pairs)


def info_nce(anchors: torch.Tensor, candidates: torch.Tensor, temperature: float) -> torch.Tensor:
    """Eq. 7 for one modality, with cosine similarity:
    −mean_a log softmax_b(cos(anchor_a, candidate_b) / τ)[a].

    anchors, candidates: (N, d); row a of each is the same sample (the positive pair), every
    other row of the batch is a negative.
    """
    anchors, candidates = F.normalize(anchors, dim=1), F.normalize(candidates, dim=1)
    logits = anchors @ candidates.T / temperature  # (N, N)
    return F.cross_entropy(logits, torch.arange(len(anchors), device=anchors.device))


# -- baselines -------------------------------------------------------------------------------------
def symmetric_info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """CLIP's loss (Radford et al. 2021): ½ [InfoNCE(a → b) + InfoNCE(b → a)], cosine similarity.
    a, b: (N, r); row i of each is the same sample."""
    return 0.5 * (info_nce(a, b, temperature) + info_nce(b, a, temperature))


def discriminator_loss(joint_logits: torch.Tensor, marginal_logits: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of a discriminator that labels joint pairs 1 and pairs drawn from the
    product of marginals 0. Logits: (N, 1) each."""
    return (F.binary_cross_entropy_with_logits(joint_logits, torch.ones_like(joint_logits))
            + F.binary_cross_entropy_with_logits(marginal_logits, torch.zeros_like(marginal_logits)))


def fooling_loss(joint_logits: torch.Tensor, marginal_logits: torch.Tensor) -> torch.Tensor:
    """The encoders' side of the adversarial game: the discriminator's loss with the labels
    flipped, minimised when joint pairs look like marginal ones and vice versa (at the optimum
    of the game the discriminator outputs ½ everywhere: shared and unique are independent)."""
    return discriminator_loss(marginal_logits, joint_logits)


def latent_norm_penalty(*latents: torch.Tensor) -> torch.Tensor:
    """Σ_k mean_i ||z_k,i||²: keeps optimised latents from growing to shrink the decoders' weights."""
    return sum(z.pow(2).sum(1).mean() for z in latents)


# -- S3 (Specialization, Selection, Sparsification via MoE) ----------------------------------------
# The S3 paper (Choi & Kwak, ICML 2026): §5.1 Eq. 24–27 (InfoNCE), Appendix F Eq. 93–105 (routing
# losses, after V-MoE, Riquelme et al. 2021, and LIMoE, Mustafa et al. 2022), §5.2 Eq. 29–33
# (SupCon, Khosla et al. 2020; vMF compactness). Routing losses take the rows of *valid* tokens
# only: the caller drops padding before calling them.
def intra_modal_info_nce(views: list[tuple[torch.Tensor, torch.Tensor]], temperature: float) -> torch.Tensor:
    """S3's L_intra (Eq. 25, read as two stochastic views of each modality):
    Σ_m ½ [InfoNCE(z_m → z'_m) + InfoNCE(z'_m → z_m)], cosine similarity at temperature τ.

    views: one (z_m, z'_m) pair per modality, each (N, d_m); row i of both is sample i.
    """
    return sum(symmetric_info_nce(first, second, temperature) for first, second in views)


def cross_modal_info_nce(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """S3's L_cross (Eq. 26): ½ [InfoNCE(z_1 → z_2) + InfoNCE(z_2 → z_1)], cosine similarity at τ,
    the paired sample the positive and every other row of the batch a negative. z1, z2: (N, d)."""
    return symmetric_info_nce(z1, z2, temperature)


def squared_cv(values: torch.Tensor) -> torch.Tensor:
    """CV²(v) = Var(v) / Mean(v)² with the population variance (1/n), over the last dim
    (written directly, as V-MoE does: a std's gradient is undefined at 0). (..., E) → (...)."""
    mean = values.mean(-1)
    return values.var(-1, unbiased=False) / mean.pow(2)


def importance_loss(probs: torch.Tensor) -> torch.Tensor:
    """Appendix F.1 (Eq. 94–95, squared CV as in V-MoE): Imp_e = Σ_x p_e(x), loss = CV²(Imp).

    probs: (n, E) softmax(W_r x) of the clean router logits, one row per valid token.
    """
    return squared_cv(probs.sum(0))


def load_loss(logits: torch.Tensor, noisy_logits: torch.Tensor, k: int, noise_std: float,
              threshold: torch.Tensor | None = None) -> torch.Tensor:
    """Appendix F.2 (Eq. 96–101, V-MoE's reading): with noisy logits h̃ = h + ε, ε ~ N(0, σ²),
    threshold(x) = the k-th largest h̃(x); p_e(x) = P(h_e(x) + ε' ≥ threshold(x)) =
    1 − Φ((threshold(x) − h_e(x)) / σ) for a fresh ε'; load_e = Σ_x p_e(x); loss = CV²(load).

    logits, noisy_logits: (n, E) clean and noisy router logits of the valid tokens; σ > 0.
    ``threshold`` (n, 1), when the caller already has the k-th largest noisy logits (a router's
    top-k), saves sorting again. The threshold is not differentiated through (it comes from the
    sampled noise).
    """
    if threshold is None:
        threshold = noisy_logits.topk(k, dim=-1).values[:, -1:]  # (n, 1)
    threshold = threshold.detach()
    selected = torch.special.ndtr((logits - threshold) / noise_std)  # (n, E) = 1 − Φ((thr − h) / σ)
    return squared_cv(selected.sum(0))


def entropy(probs: torch.Tensor) -> torch.Tensor:
    """Shannon entropy (nats) over the last dim, 0 · log 0 = 0. (..., E) → (...)."""
    return -(probs * probs.clamp_min(1e-30).log()).sum(-1)


def local_entropy_loss(probs: torch.Tensor) -> torch.Tensor:
    """Appendix F.3 (Eq. 103): mean over tokens of H(p(x)); minimising it sharpens each token's
    routing. probs: (n, E)."""
    return entropy(probs).mean()


def global_entropy_loss(probs: torch.Tensor) -> torch.Tensor:
    """Appendix F.4 (Eq. 104–105): −H(p̄) with p̄ = mean over tokens of p(x); minimising it spreads
    the marginal expert usage (no LIMoE threshold: S3 defines the plain entropy). probs: (n, E)."""
    return -entropy(probs.mean(0))


def supcon_loss(anchors: torch.Tensor, candidates: torch.Tensor, labels: torch.Tensor, temperature: float,
                same_view: bool) -> torch.Tensor:
    """Supervised contrastive loss (Khosla et al. 2020, L_out; S3 Eq. 29) of one direction::

        s_ij = cos(a_i, c_j) / τ
        A(i) = {j ≠ i} if same_view else every j;   P(i) = {j ∈ A(i) : y_j = y_i}
        ℓ_i  = −1/|P(i)| Σ_{p ∈ P(i)} [s_ip − log Σ_{j ∈ A(i)} exp s_ij]
        loss = mean of ℓ_i over the anchors with |P(i)| > 0

    With ``same_view`` (intra-modal: anchors and candidates are the same rows) a sample is never its
    own positive; across modalities its paired row is a positive (same label). anchors (N, d_a),
    candidates (N, d_c) with d_a = d_c, labels (N,) integer classes. 0 when no anchor has a positive.
    """
    logits = F.normalize(anchors, dim=1) @ F.normalize(candidates, dim=1).T / temperature  # (N, N)
    n = len(labels)
    allowed = torch.ones(n, n, dtype=torch.bool, device=logits.device)
    if same_view:
        allowed.fill_diagonal_(False)
    positive = (labels[:, None] == labels[None, :]) & allowed  # (N, N)
    log_prob = logits - logits.masked_fill(~allowed, float("-inf")).logsumexp(1, keepdim=True)  # (N, N)
    counts = positive.sum(1)  # (N,)
    has = counts > 0
    per_anchor = -(log_prob * positive).sum(1)[has] / counts[has]  # (n_has,)
    return per_anchor.mean() if bool(has.any()) else logits.sum() * 0.0


def task_sufficiency_loss(z1: torch.Tensor, z2: torch.Tensor, labels: torch.Tensor,
                          temperature: float) -> torch.Tensor:
    """S3's L_TS (Eq. 30): the mean of SupCon over the four directions 1→1, 2→2 (intra-modal,
    self excluded) and 1→2, 2→1 (inter-modal). z1, z2: (N, d); labels: (N,)."""
    return (supcon_loss(z1, z1, labels, temperature, True) + supcon_loss(z2, z2, labels, temperature, True)
            + supcon_loss(z1, z2, labels, temperature, False) + supcon_loss(z2, z1, labels, temperature, False)) / 4


def compactness_loss(anchors: torch.Tensor, members: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """S3's vMF compactness (Eq. 31, E.3 Eq. 82–92, equal concentrations)::

        μ̂_y = normalise(mean_{j : y_j = y} normalise(m_j))        (class mean direction, anchor's
                                                                   own row included: the batch mean)
        loss = −mean_i cos(a_i, μ̂_{y_i})

    anchors (N, d), members (N, d) (the same or the other modality), labels (N,) integer classes.
    """
    classes, index = labels.unique(return_inverse=True)  # (C,), (N,)
    sums = torch.zeros(len(classes), members.shape[1], dtype=members.dtype, device=members.device)
    sums = sums.index_add(0, index, F.normalize(members, dim=1))  # (C, d); the norm drops the 1/|class|
    centres = F.normalize(sums, dim=1)  # (C, d)
    return -(F.normalize(anchors, dim=1) * centres[index]).sum(1).mean()


def information_minimality_loss(z1: torch.Tensor, z2: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """S3's L_IM (Eq. 32): compactness averaged over the four (anchor, class-mean) modality pairs
    (1, 1), (2, 2), (1, 2), (2, 1). z1, z2: (N, d); labels: (N,)."""
    return (compactness_loss(z1, z1, labels) + compactness_loss(z2, z2, labels)
            + compactness_loss(z1, z2, labels) + compactness_loss(z2, z1, labels)) / 4


# -- DLF (Disentangled-Language-Focused MSA) -------------------------------------------------------
# The DLF paper (Wang et al., AAAI 2025) Eq. 4, 6–8, 13–14, as its public code (pwang322/DLF)
# computes them: L1 task terms, MSE reconstruction / specific consistency, the hinge triplet over
# the shared features with a label-gap margin, and the cosine soft orthogonality. Sequence losses
# take a (B, T) mask of the valid steps: padding never enters a loss.
def dlf_task_loss(predictions: dict[str, torch.Tensor], y: torch.Tensor, weights: dict[str, float]) -> torch.Tensor:
    """DLF's L_MSA (Eq. 13–14 with L1 for every term): Σ_k w_k · mean_i |ŷ_k,i − y_i|.
    predictions: name → (B,); y (B,); weights: name → w_k (its keys are the terms summed)."""
    return sum(w * (predictions[k] - y).abs().mean() for k, w in weights.items())


def masked_mse(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the valid steps: Σ_{b,t valid} Σ_c (p − q)² / (n_valid · C).
    prediction, target (B, T, C); mask (B, T) bool."""
    weights = mask.to(prediction.dtype)[:, :, None]  # (B, T, 1)
    return ((prediction - target).pow(2) * weights).sum() / (weights.sum() * prediction.shape[-1]).clamp_min(1)


def soft_orthogonality_loss(specific: torch.Tensor, shared: torch.Tensor, mask: torch.Tensor, chunk: int
                            ) -> torch.Tensor:
    """DLF's L_o for one modality: mean over the valid steps, and over the d/chunk pieces of each
    step's vectors, of max(0, cos(s, c)) (CosineEmbeddingLoss with target −1 and margin 0;
    cos = s·c / √((‖s‖² + ε)(‖c‖² + ε)), ε = 1e-12). specific, shared (B, T, d); mask (B, T) bool."""
    s = specific[mask].reshape(-1, chunk)  # (n_valid · d / chunk, chunk)
    c = shared[mask].reshape(-1, chunk)
    eps = 1e-12
    cos = (s * c).sum(1) / ((s.pow(2).sum(1) + eps) * (c.pow(2).sum(1) + eps)).sqrt()
    return cos.clamp_min(0).mean()


def dlf_triplet_loss(features: torch.Tensor, labels: torch.Tensor, margin_scale: float) -> torch.Tensor:
    """DLF's L_m (the code's HingeLoss): for each anchor a, positives P(a) = the other rows with
    exactly the same label, negatives N(a) = the rows with another label, and

        ℓ_a = mean_{p ∈ P(a), n ∈ N(a)} max(0, μ·|y_a − y_n| − cos(f_a, f_p) + cos(f_a, f_n)),
        L_m = mean of ℓ_a over the anchors that have a positive and a negative (0 if none).

    features (n, d), labels (n,); μ = ``margin_scale``."""
    unit = F.normalize(features, dim=1)
    sim = unit @ unit.T  # (n, n) cosine similarities
    same = labels[:, None] == labels[None, :]  # (n, n)
    positive = same & ~torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    negative = ~same
    margin = margin_scale * (labels[:, None] - labels[None, :]).abs()  # (n, n): [anchor, negative]
    hinge = F.relu(margin[:, None, :] - sim[:, :, None] + sim[:, None, :])  # (n, n, n): [a, p, n]
    pairs = positive[:, :, None] & negative[:, None, :]  # (n, n, n)
    counts = positive.sum(1) * negative.sum(1)  # (n,) pairs per anchor
    anchors = counts > 0
    if not bool(anchors.any()):
        return features.sum() * 0.0
    per_anchor = (hinge * pairs).sum((1, 2)) / counts.clamp_min(1)  # (n,)
    return per_anchor[anchors].mean()
