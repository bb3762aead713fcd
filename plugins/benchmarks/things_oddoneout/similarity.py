"""Triplet similarities from the embedded *used* concepts, with hand-written gradients and a cost model.

Every problem ``b`` of a batch has its embedded used concepts ``Z_b`` (u x k, :mod:`.objective`) and its triplets as
local row numbers ``(i, j, k)``. The logits need only the three dot products ``[z_j.z_k, z_i.z_k, z_i.z_j]`` per
triplet. Two ways to get them, both processed in chunks of triplets so that memory stays bounded at any N:

* ``rows``: gather the three rows of each triplet of the chunk, take their 3 x 3 Gram matrix; the gradient goes back
  to ``Z`` row by row (``dz_i = g_ij z_j + g_ik z_k``, ...) with ``index_add_``. Cost grows with the triplets.
* ``gram``: the Gram matrix ``G = Z Z^T`` (u x u) once per evaluation, entries gathered per triplet; the gradient
  scatters into ``dG`` and returns as ``dZ = (dG + dG^T) Z``. Cost grows with u^2, not with the triplets.

:func:`plan` picks the cheaper one from a FLOP model in which moving one gathered or scattered element costs as
much as ``flops_per_move`` arithmetic operations, the device's balance of matrix-product speed and memory bandwidth.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

#: Arithmetic operations a matrix product does in the time one element is moved to or from memory by a gather or a
#: scatter. H100: ~50 TFLOP/s fp32 (SIMT) against ~3.3 TB/s, i.e. ~60 operations per 4-byte element; 2-core CPU:
#: ~60 GFLOP/s against ~10 GB/s in the kernels that gather. TF32 makes matrix products ~8x cheaper on an H100.
FLOPS_PER_MOVE = {"cuda": 64.0, "cpu": 64.0}
TF32_SPEEDUP = 8.0

#: Element moves per triplet and feature for ``rows``: the gather of 3 rows (read + write), the 3 x 3 products (read),
#: the gradient rows (write), and their ``index_add_`` (read + read-modify-write of Z's gradient).
ROW_MOVES = {True: 3 * (2 + 1 + 1 + 3), False: 3 * (2 + 1)}
#: Moves per triplet independent of k (indices, similarities, weights, gradients), and per Gram entry (the product's
#: write, the zero-filled gradient, its symmetrisation).
TRIPLET_MOVES = {True: 40, False: 20}
GRAM_MOVES = {True: 6, False: 1}


@dataclass(frozen=True)
class Cost:
    """FLOP-equivalents of the triplet part of one evaluation of one problem, for each way."""

    rows: float
    gram: float

    @property
    def best(self) -> str:
        return "rows" if self.rows <= self.gram else "gram"


def cost(n_used: int, n_triplets: int, k: int, *, device_type: str = "cpu", tf32: bool = False,
         backward: bool = True) -> Cost:
    """Cost of the similarities (and their gradient with ``backward``) of ``n_triplets`` triplets on ``n_used``
    embedded concepts of ``k`` dimensions. The embedding ``Z = X W^T`` and ``dW = dZ^T X`` are common to both ways
    and left out."""
    per_move = FLOPS_PER_MOVE.get(device_type, FLOPS_PER_MOVE["cpu"])
    matmul = (2 if backward else 1) * 2.0 * n_used * n_used * k
    if tf32 and device_type == "cuda":
        matmul /= TF32_SPEEDUP
    rows = n_triplets * (ROW_MOVES[backward] * k + TRIPLET_MOVES[backward]) * per_move
    gram = matmul + (GRAM_MOVES[backward] * n_used * n_used + TRIPLET_MOVES[backward] * n_triplets) * per_move
    return Cost(rows, gram)


def plan(n_used: int, n_triplets: int, k: int, *, device_type: str = "cpu", tf32: bool = False,
         backward: bool = True) -> str:
    """``"rows"`` or ``"gram"``, whichever :func:`cost` finds cheaper."""
    return cost(n_used, n_triplets, k, device_type=device_type, tf32=tf32, backward=backward).best


def chunk_size(mode: str, batch: int, k: int, workspace: int) -> int:
    """Triplets per chunk so that a chunk's temporaries take about ``workspace`` elements."""
    per_triplet = (9 * k + 40) if mode == "rows" else 40
    return max(1, int(workspace) // max(1, batch * per_triplet))


# pair (row, column) positions of [s_jk, s_ik, s_ij] in a triplet's 3 x 3 Gram matrix, flattened, both triangles
_PAIRS = torch.tensor([5, 2, 1])
_SYMMETRIC = torch.tensor([5, 7, 2, 6, 1, 3])


class RowSimilarities:
    """``rows``: per-chunk gathers of the triplets' rows of Z (B, u, k); gradient accumulated into dZ."""

    def __init__(self, z: torch.Tensor, grad: bool):
        self.batch, self.n_used, self.k = z.shape
        self.flat = z.reshape(-1, self.k)
        self.offset = (torch.arange(self.batch, device=z.device) * self.n_used).view(-1, 1, 1)
        self.dz = torch.zeros_like(self.flat) if grad else None
        self.pairs, self.symmetric = _PAIRS.to(z.device), _SYMMETRIC.to(z.device)
        self._rows: torch.Tensor | None = None
        self._where: torch.Tensor | None = None

    def __call__(self, local: torch.Tensor) -> torch.Tensor:
        """(B, c, 3) local rows -> (B, c, 3) similarities ``[s_jk, s_ik, s_ij]``."""
        where = (local + self.offset).reshape(-1)
        rows = self.flat.index_select(0, where).view(-1, 3, self.k)
        gram = torch.bmm(rows, rows.transpose(1, 2)).view(-1, 9)
        if self.dz is not None:
            self._rows, self._where = rows, where
        return gram[:, self.pairs].view(local.shape)

    def backward(self, g: torch.Tensor) -> None:
        """Add the gradient of ``sum(g * s)`` for the chunk of the last call (g: (B, c, 3))."""
        rows = self._rows
        pair_grad = rows.new_zeros(rows.shape[0], 9)
        pair_grad[:, self.symmetric] = g.reshape(-1, 3).repeat_interleave(2, dim=1)
        self.dz.index_add_(0, self._where, torch.bmm(pair_grad.view(-1, 3, 3), rows).view(-1, self.k))
        self._rows = self._where = None

    def grad(self) -> torch.Tensor:
        return self.dz.view(self.batch, self.n_used, self.k)


class GramSimilarities:
    """``gram``: entries of ``G = Z Z^T`` (B, u, u) gathered per chunk; gradient scattered into dG."""

    def __init__(self, z: torch.Tensor, grad: bool):
        self.z = z if grad else None
        self.batch, self.n_used, _ = z.shape
        self.gram = torch.bmm(z, z.transpose(1, 2)).view(self.batch, -1)
        self.dgram = torch.zeros_like(self.gram) if grad else None
        self._pairs: torch.Tensor | None = None

    def __call__(self, local: torch.Tensor) -> torch.Tensor:
        i, j, k = local.unbind(-1)
        u = self.n_used
        pairs = torch.stack([j * u + k, i * u + k, i * u + j], dim=-1).view(self.batch, -1)
        if self.dgram is not None:
            self._pairs = pairs
        return self.gram.gather(1, pairs).view(local.shape)

    def backward(self, g: torch.Tensor) -> None:
        self.dgram.scatter_add_(1, self._pairs, g.reshape(self.batch, -1))
        self._pairs = None

    def grad(self) -> torch.Tensor:
        self.gram = None                                              # free it before the symmetrised gradient
        dgram = self.dgram.view(self.batch, self.n_used, self.n_used)
        self.dgram = None
        return torch.bmm(dgram + dgram.transpose(1, 2), self.z)


def make(mode: str, z: torch.Tensor, grad: bool) -> RowSimilarities | GramSimilarities:
    return RowSimilarities(z, grad) if mode == "rows" else GramSimilarities(z, grad)
