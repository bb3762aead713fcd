"""The reference code's way of fitting one probe: ``torch.optim.LBFGS`` per problem, one problem after another.

This is the peer the batched solver is checked and timed against (tests and ``bench/things_recovery.py``): an
``nn.Parameter`` W initialised as in the reference, ``LBFGS(lr=1, max_iter=150, max_eval=450, tolerance_grad=1e-7,
tolerance_change=1e-4, history_size=50, line_search_fn="strong_wolfe")`` and up to 100 ``step`` calls stopped when
the returned loss changes by less than 1e-7 relatively. The loss is the same :class:`TripletObjective` (batch of
one), so any difference between the two comes from the optimiser alone.
"""
from __future__ import annotations

import torch

from .lbfgs import LBFGSOptions
from .objective import TripletBatch, TripletObjective


def fit_one(objective: TripletObjective, data: TripletBatch, data_id: int, lam: float,
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
