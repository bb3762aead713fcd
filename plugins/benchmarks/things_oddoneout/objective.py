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
triplet sets (indexed by ``data``) and penalties. The work of one evaluation scales with what the triplets use:

1. ``Z_b = X_used W_b^T`` only for the u concepts that problem b's triplets touch (a fold's training triplets use
   at most ~865 of the 1854 THINGS concepts);
2. the 3 dot products per triplet, in chunks of triplets, from gathered rows of ``Z_b`` or from its u x u Gram
   matrix, whichever :mod:`.similarity`'s FLOP model finds cheaper;
3. the gradient by hand: ``dL/dS`` per triplet, scattered to ``dZ``, then ``dW = dZ^T X_used`` plus the penalty's
   gradient. Nothing of size B x N x k or B x 1854^2 is ever formed.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from cortexbench.errors import InputError

from . import similarity
from .triplets import TripletCounts

TRANSFORMS = ("zero_shot", "diagonal", "rectangular", "full")
MODES = ("auto", "rows", "gram")
#: Elements that one chunk of triplets may hold in temporaries, unless the caller sizes it (``fitting`` does).
DEFAULT_WORKSPACE = 2 ** 24


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

    def embed(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """``Z_b = X_b W_b^T``: (B, u, k) from each problem's concept rows x (B, u, p) and params (B, n_params)."""
        if self.kind == "zero_shot":
            return x
        if self.kind == "diagonal":
            return x * params.unsqueeze(1)
        return torch.bmm(x, params.view(-1, self.k, self.p).transpose(1, 2))

    def pullback(self, x: torch.Tensor, dz: torch.Tensor) -> torch.Tensor:
        """The gradient with respect to the params (B, n_params) of a loss whose gradient in Z is ``dz``."""
        if self.kind == "zero_shot":
            return dz.new_zeros(dz.shape[0], 0)
        if self.kind == "diagonal":
            return (dz * x).sum(dim=1)
        return torch.bmm(dz.transpose(1, 2), x).reshape(dz.shape[0], -1)

    def penalty(self, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Squared distance of W (or W^T W) from the nearest scalar matrix (B,), and its gradient (B, n_params).

        With ``D = M - (tr M / p) I``, ``d||D||^2 / dM = 2 D`` because ``tr D = 0`` (the scale's own derivative
        cancels); for ``M = W^T W`` the chain rule gives ``4 W D``."""
        if self.kind == "zero_shot":
            return params.new_zeros(params.shape[0]), params.new_zeros(params.shape[0], 0)
        if self.kind == "diagonal":
            centred = params - params.mean(dim=1, keepdim=True)
            return (centred ** 2).sum(dim=1), 2 * centred
        weights = params.view(-1, self.k, self.p)
        square = self.kind == "full" or self.k == self.p
        matrix = weights if square else torch.bmm(weights.transpose(1, 2), weights)
        scale = torch.diagonal(matrix, dim1=1, dim2=2).sum(dim=1) / self.p
        deviation = matrix.clone()
        deviation.diagonal(dim1=1, dim2=2).sub_(scale[:, None])
        value = (deviation ** 2).sum(dim=(1, 2))
        grad = 2 * deviation if square else 4 * torch.bmm(weights, deviation)
        return value, grad.reshape(params.shape[0], -1)

    def matrix(self, params: torch.Tensor) -> torch.Tensor:
        """W as a (B, k, p) matrix (the diagonal transform as a diagonal matrix)."""
        if self.kind == "zero_shot":
            return torch.eye(self.p, dtype=params.dtype, device=params.device).expand(params.shape[0], -1, -1)
        if self.kind == "diagonal":
            return torch.diag_embed(params)
        return params.view(-1, self.k, self.p)


def used_concepts(index: torch.Tensor, n_concepts: int) -> tuple[torch.Tensor, torch.Tensor]:
    """For triplets ``index`` (D, n, 3): ``concepts`` (D, u), each row's used concepts ascending (padded with unused
    ones up to the largest u), and ``position`` (D, n_concepts), a used concept's row in ``concepts``."""
    rows = index.shape[0]
    used = torch.zeros(rows, n_concepts, dtype=torch.bool, device=index.device)
    used.scatter_(1, index.reshape(rows, -1), True)
    n_used = max(1, int(used.sum(dim=1).max()))
    concepts = torch.argsort((~used).to(torch.uint8), dim=1, stable=True)[:, :n_used]
    return concepts, torch.cumsum(used, dim=1) - 1


@dataclass
class TripletBatch:
    """Triplet sets padded to one length on the solver's device: ``index`` (D, n, 3) concept rows, ``counts``
    (D, n, 3) judgments per position (0 for padding), ``total`` (D,) judgments per set; ``concepts`` and
    ``position`` (:func:`used_concepts`) say which concepts each set uses."""

    index: torch.Tensor
    counts: torch.Tensor
    total: torch.Tensor
    concepts: torch.Tensor
    position: torch.Tensor

    @classmethod
    def stack(cls, sets: list[TripletCounts], dtype: torch.dtype, device: str | torch.device) -> TripletBatch:
        if not sets:
            raise InputError("no triplet sets to stack")
        n = max(1, max(len(s) for s in sets))
        index = np.zeros((len(sets), n, 3), dtype=np.int64)
        counts = np.zeros((len(sets), n, 3), dtype=np.float64)
        for d, s in enumerate(sets):
            index[d, : len(s)] = s.triplets
            index[d, len(s):] = s.triplets[0] if len(s) else (0, 1, 2)   # padding: a used triplet, zero weight
            counts[d, : len(s)] = s.counts
        total = counts.sum(axis=(1, 2))
        if (total <= 0).any():
            empty = int(np.flatnonzero(total <= 0)[0])
            raise InputError(f"triplet set {empty} of {len(sets)} has no judgments (too few triplets in a split?)")
        index_t = torch.as_tensor(index, device=device)
        concepts, position = used_concepts(index_t, int(index.max()) + 1)
        return cls(index_t, torch.as_tensor(counts, dtype=dtype, device=device),
                   torch.as_tensor(total, dtype=dtype, device=device), concepts, position)

    @property
    def n_triplets(self) -> int:
        return int(self.index.shape[1])

    @property
    def n_used(self) -> int:
        return int(self.concepts.shape[1])


def tie_shares(logits: torch.Tensor) -> torch.Tensor:
    """1 / (number of maxima) at each maximal logit, 0 elsewhere."""
    best = logits == logits.max(dim=-1, keepdim=True).values
    return best / best.sum(dim=-1, keepdim=True)


@contextmanager
def matmul_precision(device: torch.device, tf32: bool) -> Iterator[None]:
    """fp32 matrix products on CUDA in TF32 (``tf32``) or in full IEEE precision, whatever the global setting; the
    setting is restored afterwards. Uses the legacy flag, as the CKA metric does: torch refuses to mix the two APIs."""
    if device.type != "cuda":
        yield
        return
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = bool(tf32)
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous


class _HandGradient(torch.autograd.Function):
    """The loss with the hand-written gradient as its backward, so that ``torch.optim`` and ``gradcheck`` can use it."""

    @staticmethod
    def forward(ctx, params: torch.Tensor, evaluate: Callable) -> torch.Tensor:
        value, grad = evaluate(params.detach(), True)
        ctx.save_for_backward(grad)
        return value

    @staticmethod
    def backward(ctx, grad_value: torch.Tensor):
        (grad,) = ctx.saved_tensors
        return grad_value[:, None] * grad, None


class TripletObjective:
    """Loss, gradient, accuracy and choice probabilities of many probe problems sharing one feature matrix.

    ``mode`` picks how triplet similarities are formed (``auto``: the cheaper by :func:`similarity.plan`);
    ``workspace`` bounds the elements a chunk of triplets may hold; ``tf32`` allows TF32 matrix products on CUDA."""

    def __init__(self, features: torch.Tensor, transform: Transform, *, mode: str = "auto",
                 workspace: int = DEFAULT_WORKSPACE, tf32: bool = False):
        if features.ndim != 2 or features.shape[1] != transform.p:
            raise InputError(f"features must be (concepts, {transform.p}), got {tuple(features.shape)}")
        if mode not in MODES:
            raise InputError(f"mode must be one of {MODES}, got {mode!r}")
        self.features, self.transform, self.mode = features, transform, mode
        self.workspace, self.tf32 = int(workspace), bool(tf32)

    def path(self, n_used: int, n_triplets: int, backward: bool = True) -> str:
        """How the similarities of ``n_triplets`` triplets on ``n_used`` concepts are formed: ``rows`` or ``gram``."""
        if self.mode != "auto":
            return self.mode
        return similarity.plan(n_used, n_triplets, self.transform.k, device_type=self.features.device.type,
                               tf32=self.tf32, backward=backward)

    def _chunks(self, mode: str, batch: int, n: int) -> list[tuple[int, int]]:
        size = similarity.chunk_size(mode, batch, self.transform.k, self.workspace)
        return [(start, min(start + size, n)) for start in range(0, n, size)]

    def _precision(self):
        return matmul_precision(self.features.device, self.tf32)

    @staticmethod
    def _local(position: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        return position.gather(1, index.reshape(index.shape[0], -1)).view(index.shape)

    @torch.no_grad()
    def logits(self, params: torch.Tensor, index: torch.Tensor, temperature: torch.Tensor | float = 1.0
               ) -> torch.Tensor:
        """(B, n, 3) logits for params (B, n_params) and per-problem triplets index (B, n, 3)."""
        batch, n = index.shape[0], index.shape[1]
        concepts, position = used_concepts(index, self.features.shape[0])
        out = torch.empty(index.shape, dtype=params.dtype, device=params.device)
        with self._precision():
            z = self.transform.embed(self.features[concepts], params)
            mode = self.path(concepts.shape[1], n, backward=False)
            sims = similarity.make(mode, z, grad=False)
            for start, stop in self._chunks(mode, batch, n):
                out[:, start:stop] = sims(self._local(position, index[:, start:stop]))
        if isinstance(temperature, torch.Tensor) and temperature.ndim == 1:
            temperature = temperature[:, None, None]
        return out / temperature

    def _evaluate(self, params: torch.Tensor, data: TripletBatch, data_ids: torch.Tensor, lambdas: torch.Tensor,
                  grad: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Loss (B,) in the params' dtype and, with ``grad``, its gradient (B, n_params)."""
        batch = params.shape[0]
        wanted, grad = grad, grad and self.transform.n_params > 0
        position = data.position[data_ids]
        with torch.no_grad(), self._precision():
            x = self.features[data.concepts[data_ids]]                                    # (B, u, p)
            mode = self.path(data.n_used, data.n_triplets, backward=grad)
            sims = similarity.make(mode, self.transform.embed(x, params), grad)
            cross_entropy = params.new_zeros(batch)
            for start, stop in self._chunks(mode, batch, data.n_triplets):
                counts = data.counts[data_ids, start:stop]
                logp = torch.log_softmax(sims(self._local(position, data.index[data_ids, start:stop])), dim=-1)
                cross_entropy -= (counts * logp).sum(dim=(1, 2))
                if grad:       # d(-sum counts * log softmax(s)) / ds = softmax(s) * (judgments) - counts
                    sims.backward(logp.exp() * counts.sum(dim=-1, keepdim=True) - counts)
            total = data.total[data_ids]
            value = cross_entropy / total
            if self.transform.kind == "zero_shot":
                return value, (params.new_zeros(batch, 0) if wanted else None)
            lams = lambdas.to(params.dtype)
            penalty, penalty_grad = self.transform.penalty(params)
            value = value + lams * penalty
            if not grad:
                return value, None
            dz = sims.grad() / total[:, None, None]
            return value, self.transform.pullback(x, dz) + lams[:, None] * penalty_grad

    def loss(self, params: torch.Tensor, data: TripletBatch, data_ids: torch.Tensor, lambdas: torch.Tensor
             ) -> torch.Tensor:
        """Mean cross-entropy over judgments + lambda * penalty, per problem (B,); differentiable in ``params``
        through the hand-written gradient."""
        def evaluate(x: torch.Tensor, grad: bool):
            return self._evaluate(x, data, data_ids, lambdas, grad)

        if torch.is_grad_enabled() and params.requires_grad:
            return _HandGradient.apply(params, evaluate)
        return evaluate(params, False)[0]

    def value_and_grad(self, params: torch.Tensor, data: TripletBatch, data_ids: torch.Tensor,
                       lambdas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss (float64, B) and its gradient (B, n_params); each problem's loss depends on its own params only."""
        value, grad = self._evaluate(params.detach(), data, data_ids, lambdas, True)
        return value.double(), grad

    @torch.no_grad()
    def correct(self, params: torch.Tensor, data: TripletBatch, data_ids: torch.Tensor) -> torch.Tensor:
        """Judgments predicted correctly by the arg-max logit per problem (B,), float64; tied maxima share the
        credit equally (the expected accuracy of a random tie-break), so the triplets' order does not matter."""
        batch = params.shape[0]
        position = data.position[data_ids]
        right = torch.zeros(batch, dtype=torch.float64, device=params.device)
        with self._precision():
            z = self.transform.embed(self.features[data.concepts[data_ids]], params)
            mode = self.path(data.n_used, data.n_triplets, backward=False)
            sims = similarity.make(mode, z, grad=False)
            for start, stop in self._chunks(mode, batch, data.n_triplets):
                shares = tie_shares(sims(self._local(position, data.index[data_ids, start:stop])))
                right += (data.counts[data_ids, start:stop] * shares).sum(dim=(1, 2)).double()
        return right

    @torch.no_grad()
    def probabilities(self, params: torch.Tensor, index: torch.Tensor, temperature: torch.Tensor | float
                      ) -> torch.Tensor:
        """Choice probabilities (B, n, 3) at the given temperature(s)."""
        return torch.softmax(self.logits(params, index, temperature), dim=-1)
