"""The reference code's way of fitting one probe: ``torch.optim.LBFGS`` per problem, one problem after another.

This is the peer the batched solver is checked and timed against (tests and ``bench/things_recovery.py``): an
``nn.Parameter`` W initialised as in the reference, ``LBFGS(lr=1, max_iter=150, max_eval=450, tolerance_grad=1e-7,
tolerance_change=1e-4, history_size=50, line_search_fn="strong_wolfe")`` and up to 100 ``step`` calls stopped when
the returned loss changes by less than 1e-7 relatively. With :class:`TripletObjective` (batch of one) any
difference from the batched solver comes from the optimiser alone; with :class:`DenseObjective`, the reference
code's own loss computation (``CogModel.forward`` with ``work_with_S_matrix``), it is the paper's code path.
"""
from __future__ import annotations

import torch

from .lbfgs import LBFGSOptions
from .objective import Transform, TripletBatch, TripletObjective


class DenseObjective:
    """The reference code's loss: ``Z = X W^T`` for every concept, the full concepts x concepts Gram matrix, its
    entries gathered per triplet, mean cross-entropy over judgments + lambda * the scalar-matrix penalty, and the
    gradient by autograd. It has the attributes :func:`fit_one` reads (``features``, ``transform``, ``loss``)."""

    def __init__(self, features: torch.Tensor, transform: Transform):
        self.features, self.transform = features, transform

    def similarities(self, params: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """(B, n, 3) entries ``[S_jk, S_ik, S_ij]`` of ``S = Z Z^T`` for params (B, n_params), triplets (B, n, 3)."""
        weights = self.transform.matrix(params)                                   # (B, k, p)
        z = torch.matmul(self.features, weights.transpose(1, 2))                  # (B, concepts, k)
        gram = torch.matmul(z, z.transpose(1, 2)).flatten(1)
        n = self.features.shape[0]
        i, j, k = index.unbind(-1)
        pairs = torch.stack([j * n + k, i * n + k, i * n + j], dim=-1)
        return gram.gather(1, pairs.flatten(1)).view(index.shape)

    def loss(self, params: torch.Tensor, data: TripletBatch, data_ids: torch.Tensor, lambdas: torch.Tensor
             ) -> torch.Tensor:
        logp = torch.log_softmax(self.similarities(params, data.index[data_ids]), dim=-1)
        cross_entropy = -(data.counts[data_ids] * logp).sum(dim=(1, 2)) / data.total[data_ids]
        if self.transform.kind == "zero_shot":
            return cross_entropy
        weights = self.transform.matrix(params)
        if self.transform.kind == "rectangular" and self.transform.k != self.transform.p:
            weights = weights.transpose(1, 2) @ weights
        scale = torch.diagonal(weights, dim1=1, dim2=2).sum(dim=1) / self.transform.p
        eye = torch.eye(self.transform.p, dtype=params.dtype, device=params.device)
        return cross_entropy + lambdas * ((weights - scale[:, None, None] * eye) ** 2).sum(dim=(1, 2))


def fit_one(objective: TripletObjective | DenseObjective, data: TripletBatch, data_id: int, lam: float,
            options: LBFGSOptions = LBFGSOptions(), x0: torch.Tensor | None = None) -> tuple[torch.Tensor, int]:
    """Fit one problem; returns (params, optimizer steps taken)."""
    features = objective.features
    start = objective.transform.initial(1, features.dtype, features.device)[0] if x0 is None else x0.clone()
    if objective.transform.kind == "zero_shot":
        return start, 0
    weights = torch.nn.Parameter(start)
    optimizer = torch.optim.LBFGS([weights], lr=options.lr, max_iter=options.max_iter, max_eval=options.max_eval,
                                  tolerance_grad=options.tolerance_grad, tolerance_change=options.tolerance_change,
                                  history_size=options.history_size, line_search_fn="strong_wolfe")
    ids = torch.tensor([data_id], device=features.device)
    lams = torch.tensor([lam], dtype=features.dtype, device=features.device)

    def closure():
        optimizer.zero_grad()
        loss = objective.loss(weights.unsqueeze(0), data, ids, lams)[0]
        loss.backward()
        return loss

    losses: list[float] = []
    for epoch in range(options.max_epochs):
        losses.append(float(optimizer.step(closure).detach()))
        if epoch > 1:
            change = abs(losses[-2] - losses[-1]) / (max(abs(losses[-2]), abs(losses[-1])) + 1e-10)
            if change < options.epoch_rtol:
                break
    return weights.detach(), len(losses)
