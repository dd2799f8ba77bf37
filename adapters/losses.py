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
