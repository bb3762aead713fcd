"""The probe: linear transforms of concept features and the odd-one-out likelihood, for many problems at once.

For features ``X`` (concepts x p) and a transform ``W``, concepts map to ``Z = X W^T`` and similarities are dot
products ``S = Z Z^T``. For a triplet (i, j, k) the logits are ``[S_jk, S_ik, S_ij] / T`` (the pair left out names
the odd one) and ``P(odd = position) = softmax(logits)``. The loss is the cross-entropy averaged over judgments plus
``lambda * penalty(W)``, the shrinkage toward a scalar matrix of Avitan & Golan (2025):

* ``full`` (p x p) and ``diagonal``: ``||W - (tr W / p) I||_F^2``;
* ``rectangular`` (k x p, initialised as the first k rows of I): ``||W^T W - (tr(W^T W) / p) I||_F^2``, as the
  reference code does for non-square W;
* ``zero_shot``: W = I, nothing to fit.

A batch holds ``B`` independent problems (one parameter vector each) that share ``X`` but may use different
triplet sets (indexed by ``data``) and penalties. Logits come from gathers on the precomputed ``Z = X W^T``: rows of
``Z`` (of ``X`` first when the triplets touch fewer concepts than exist), or entries of the Gram matrix ``Z Z^T``
once the gathered rows would take more memory than the Gram matrix.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from cortexbench.errors import InputError

from .triplets import TripletCounts

TRANSFORMS = ("zero_shot", "diagonal", "rectangular", "full")


@dataclass(frozen=True)
class Transform:
    """A transform family for ``p`` input features (``k`` output dimensions for ``rectangular``)."""

    kind: str
    p: int
    k: int

    @classmethod
    def make(cls, kind: str, p: int, rectangular_k: int = 30) -> Transform:
        if kind not in TRANSFORMS:
            raise InputError(f"transform must be one of {TRANSFORMS}, got {kind!r}")
        k = min(int(rectangular_k), p) if kind == "rectangular" else p
        if k < 1:
            raise InputError(f"rectangular_k must be at least 1, got {rectangular_k}")
        return cls(kind, int(p), int(k))

    @property
    def n_params(self) -> int:
        return {"zero_shot": 0, "diagonal": self.p, "rectangular": self.k * self.p, "full": self.p * self.p}[self.kind]

    def initial(self, batch: int, dtype: torch.dtype, device: str | torch.device) -> torch.Tensor:
        """The identity start of the reference code: I (full), ones (diagonal), the first k rows of I (rectangular)."""
        if self.kind == "zero_shot":
            return torch.zeros(batch, 0, dtype=dtype, device=device)
        if self.kind == "diagonal":
            return torch.ones(batch, self.p, dtype=dtype, device=device)
        eye = torch.eye(self.k, self.p, dtype=dtype, device=device).reshape(-1)
        return eye.expand(batch, -1).clone()

    def embed(self, features: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """``Z = X W^T`` for each problem: (B, n, k) from features (n, p) and params (B, n_params)."""
        if self.kind == "zero_shot":
            return features.expand(params.shape[0], -1, -1)
        if self.kind == "diagonal":
            return features.unsqueeze(0) * params.unsqueeze(1)
        weights = params.view(-1, self.k, self.p)
        return torch.matmul(features, weights.transpose(1, 2))

    def penalty(self, params: torch.Tensor) -> torch.Tensor:
        """Squared distance of W (or W^T W) from the nearest scalar matrix, per problem (B,)."""
        if self.kind == "zero_shot":
            return params.new_zeros(params.shape[0])
        if self.kind == "diagonal":
            return ((params - params.mean(dim=1, keepdim=True)) ** 2).sum(dim=1)
        weights = params.view(-1, self.k, self.p)
        if self.kind == "rectangular" and self.k != self.p:
            weights = torch.matmul(weights.transpose(1, 2), weights)
        scale = torch.diagonal(weights, dim1=1, dim2=2).sum(dim=1) / self.p
        eye = torch.eye(self.p, dtype=params.dtype, device=params.device)
        return ((weights - scale[:, None, None] * eye) ** 2).sum(dim=(1, 2))

    def matrix(self, params: torch.Tensor) -> torch.Tensor:
        """W as a (B, k, p) matrix (the diagonal transform as a diagonal matrix)."""
        if self.kind == "zero_shot":
            return torch.eye(self.p, dtype=params.dtype, device=params.device).expand(params.shape[0], -1, -1)
        if self.kind == "diagonal":
            return torch.diag_embed(params)
        return params.view(-1, self.k, self.p)


@dataclass
class TripletBatch:
    """Triplet sets padded to one length on the solver's device: ``index`` (D, n, 3) concept rows, ``counts``
    (D, n, 3) judgments per position (0 for padding), ``total`` (D,) judgments per set."""

    index: torch.Tensor
    counts: torch.Tensor
    total: torch.Tensor

    @classmethod
    def stack(cls, sets: list[TripletCounts], dtype: torch.dtype, device: str | torch.device) -> TripletBatch:
        if not sets:
            raise InputError("no triplet sets to stack")
        n = max(1, max(len(s) for s in sets))
        index = np.zeros((len(sets), n, 3), dtype=np.int64)
        index[:, :, 1], index[:, :, 2] = 1, 2                  # padding: a valid triplet with zero weight
        counts = np.zeros((len(sets), n, 3), dtype=np.float64)
        for d, s in enumerate(sets):
            index[d, : len(s)] = s.triplets
            counts[d, : len(s)] = s.counts
        total = counts.sum(axis=(1, 2))
        if (total <= 0).any():
            empty = int(np.flatnonzero(total <= 0)[0])
            raise InputError(f"triplet set {empty} of {len(sets)} has no judgments (too few triplets in a split?)")
        return cls(torch.as_tensor(index, device=device), torch.as_tensor(counts, dtype=dtype, device=device),
                   torch.as_tensor(total, dtype=dtype, device=device))

    @property
    def n_triplets(self) -> int:
        return int(self.index.shape[1])


def similarities(z: torch.Tensor, index: torch.Tensor, mode: str = "auto") -> torch.Tensor:
    """``[S_jk, S_ik, S_ij]`` for every triplet: z (B, n_concepts, k), index (B, n, 3) -> (B, n, 3)."""
    batch, n_concepts, _ = z.shape
    if mode == "auto":
        # gather rows while the gathered rows (3 n k) take less memory than the Gram matrix (n_concepts^2)
        mode = "gram" if 3 * index.shape[1] * z.shape[2] > n_concepts * n_concepts else "rows"
    if mode == "gram":
        gram = torch.matmul(z, z.transpose(1, 2)).reshape(batch, -1)
        i, j, k = index.unbind(-1)
        pairs = torch.stack([j * n_concepts + k, i * n_concepts + k, i * n_concepts + j], dim=-1)
        return gram.gather(1, pairs.reshape(batch, -1)).view(index.shape)
    rows = torch.gather(z, 1, index.reshape(batch, -1, 1).expand(-1, -1, z.shape[2])).view(*index.shape, -1)
    zi, zj, zk = rows.unbind(2)
    return torch.stack([(zj * zk).sum(-1), (zi * zk).sum(-1), (zi * zj).sum(-1)], dim=-1)


def tie_shares(logits: torch.Tensor) -> torch.Tensor:
    """1 / (number of maxima) at each maximal logit, 0 elsewhere."""
    best = logits == logits.max(dim=-1, keepdim=True).values
    return best / best.sum(dim=-1, keepdim=True)


class TripletObjective:
    """Loss, gradient, accuracy and choice probabilities of many probe problems sharing one feature matrix."""

    def __init__(self, features: torch.Tensor, transform: Transform, *, mode: str = "auto"):
        if features.ndim != 2 or features.shape[1] != transform.p:
            raise InputError(f"features must be (concepts, {transform.p}), got {tuple(features.shape)}")
        if mode not in ("auto", "rows", "gram"):
            raise InputError(f"mode must be 'auto', 'rows' or 'gram', got {mode!r}")
        self.features, self.transform, self.mode = features, transform, mode

    def logits(self, params: torch.Tensor, index: torch.Tensor, temperature: torch.Tensor | float = 1.0
               ) -> torch.Tensor:
        """(B, n, 3) logits for params (B, n_params) and per-problem triplets index (B, n, 3)."""
        n_concepts = self.features.shape[0]
        if self.mode != "gram" and 3 * index.shape[1] < n_concepts and self.transform.kind != "zero_shot":
            # few triplets: transform only the concepts they use
            rows = self.features[index.reshape(index.shape[0], -1)]                      # (B, 3n, p)
            if self.transform.kind == "diagonal":
                z = rows * params.unsqueeze(1)
            else:
                z = torch.matmul(rows, params.view(-1, self.transform.k, self.transform.p).transpose(1, 2))
            zi, zj, zk = z.view(index.shape[0], index.shape[1], 3, -1).unbind(2)
            s = torch.stack([(zj * zk).sum(-1), (zi * zk).sum(-1), (zi * zj).sum(-1)], dim=-1)
        else:
            s = similarities(self.transform.embed(self.features, params), index, self.mode)
        if isinstance(temperature, torch.Tensor) and temperature.ndim == 1:
            temperature = temperature[:, None, None]
        return s / temperature

    def loss(self, params: torch.Tensor, data: TripletBatch, data_ids: torch.Tensor, lambdas: torch.Tensor
             ) -> torch.Tensor:
        """Mean cross-entropy over judgments + lambda * penalty, per problem (B,)."""
        counts = data.counts[data_ids]
        logp = torch.log_softmax(self.logits(params, data.index[data_ids]), dim=-1)
        cross_entropy = -(counts * logp).sum(dim=(1, 2)) / data.total[data_ids]
        if self.transform.kind == "zero_shot":
            return cross_entropy
        return cross_entropy + lambdas.to(params.dtype) * self.transform.penalty(params)

    def value_and_grad(self, params: torch.Tensor, data: TripletBatch, data_ids: torch.Tensor,
                       lambdas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss (float64, B) and its gradient (B, n_params); each problem's loss depends on its own params only."""
        with torch.enable_grad():
            x = params.detach().requires_grad_(True)
            value = self.loss(x, data, data_ids, lambdas)
            (grad,) = torch.autograd.grad(value.sum(), x)
        return value.detach().double(), grad

    @torch.no_grad()
    def correct(self, params: torch.Tensor, data: TripletBatch, data_ids: torch.Tensor) -> torch.Tensor:
        """Judgments predicted correctly by the arg-max logit per problem (B,), float64; tied maxima share the
        credit equally (the expected accuracy of a random tie-break), so the triplets' order does not matter."""
        return (data.counts[data_ids] * tie_shares(self.logits(params, data.index[data_ids]))).sum(dim=(1, 2)).double()

    @torch.no_grad()
    def probabilities(self, params: torch.Tensor, index: torch.Tensor, temperature: torch.Tensor | float
                      ) -> torch.Tensor:
        """Choice probabilities (B, n, 3) at the given temperature(s)."""
        return torch.softmax(self.logits(params, index, temperature), dim=-1)
