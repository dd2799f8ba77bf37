"""GradNorm (Chen et al., 2018): learn loss weights so every loss trains at a similar rate.

With weights w_i (Σ w_i = T), shared parameters W, G_i = ||∇_W w_i L_i|| = w_i ||∇_W L_i||,
L̃_i = L_i / L_i(0) and r_i = L̃_i / mean(L̃), the weights minimise Σ_i |G_i − mean(G) · r_i^α|
(target held constant), then are renormalised to sum to T. α = 1.5 by default (MultiLoReFT §3.2
uses GradNorm to avoid hand-tuning λ in Eq. 4).

Because G_i is linear in w_i, ∂G_i/∂w_i = ||∇_W L_i|| needs no second-order graph; and the
per-loss gradients computed for the norms are combined into the model's gradient
Σ_i w_i ∇L_i directly, so a step costs one backward pass per loss and nothing more.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


class GradNorm:
    def __init__(self, n_losses: int, alpha: float = 1.5, lr: float = 0.025,
                 device: torch.device | str = "cpu") -> None:
        self.alpha, self.lr = alpha, lr
        self.weights = torch.ones(n_losses, device=device, requires_grad=True)
        self.optimizer = torch.optim.Adam([self.weights], lr=lr)
        self.initial: torch.Tensor | None = None

    def named_weights(self, names: Sequence[str]) -> dict[str, float]:
        """The current weights by loss name (``names`` in the order of the losses): what the
        training curves record (`staged.Stage.weights`)."""
        return dict(zip(names, self.weights.detach().tolist(), strict=True))

    def backward(self, losses: list[torch.Tensor], params: list[torch.nn.Parameter],
                 shared: list[torch.nn.Parameter]) -> None:
        """Set ``p.grad = Σ_i w_i ∇_p L_i`` for every p in ``params`` and update the weights.

        losses: the T current losses; shared: the subset of params whose gradient norms are balanced.
        """
        shared_ids = {id(p) for p in shared}
        per_loss = [torch.autograd.grad(loss, params, retain_graph=i < len(losses) - 1, allow_unused=True)
                    for i, loss in enumerate(losses)]
        norms = torch.stack([
            torch.sqrt(sum((g.pow(2).sum() for g, p in zip(grads, params, strict=True)
                            if g is not None and id(p) in shared_ids), torch.zeros((), device=self.weights.device)))
            for grads in per_loss
        ])  # (T,) ||∇_W L_i||
        values = torch.stack([loss.detach() for loss in losses]).clamp_min(1e-12)
        if self.initial is None:
            self.initial = values
        if len(losses) > 1:
            ratios = values / self.initial
            target = ((self.weights.detach() * norms).mean() * (ratios / ratios.mean()).pow(self.alpha))
            balance = (self.weights * norms - target).abs().sum()
            self.optimizer.zero_grad()
            balance.backward()
            self.optimizer.step()
            with torch.no_grad():
                self.weights.clamp_(min=1e-4)
                self.weights.mul_(len(losses) / self.weights.sum())
        weights = self.weights.detach()
        for index, param in enumerate(params):
            grads = [w * per_loss[i][index] for i, w in enumerate(weights) if per_loss[i][index] is not None]
            param.grad = torch.stack(grads).sum(0) if grads else None
