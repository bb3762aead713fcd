"""Centred kernel alignment (CKA) in torch: single pairs, and many pairs at once on the GPU.

Definitions (each checked against its source in the tests):

* CKA(K, L) = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)) for kernel (Gram) matrices of the same stimuli.
* Biased HSIC (Gretton et al. 2005): tr(K H L H) / (n - 1)^2 with H = I - 11^T / n; the constant cancels in CKA.
* Unbiased HSIC (Song et al. 2012), "debiased CKA": computed as the inner product of U-centred kernels
  (Szekely & Rizzo 2014; the form of Kornblith et al.'s reference code), which equals n (n - 3) HSIC_1; needs n >= 4.
* Linear kernel K = X X^T. RBF kernel K = exp(-||x_i - x_j||^2 / (2 sigma^2)) with either a fixed sigma (Shen et al.
  2025: their "kernel size" is sigma itself, the same sigma for both sides, features z-scored per column with the
  unbiased std + 1e-8) or sigma = threshold x median distance, where the median is taken over all n^2 squared distances
  including the zero diagonal (Kornblith et al. 2019, ``gram_rbf``), so each side gets its own sigma.

The many-pairs grid (:func:`rbf_cka_grid`, :func:`cka_grid`) never loops over pairs. For each representation it stores
its base matrix once (squared distances or the Gram matrix, float32, as upper-triangular tiles: about n^2 / 2
numbers), and per kernel setting builds every centred kernel once as a flattened tile vector; the Frobenius products
of the full centred kernels are then one (blocked) matrix product per chunk of pairs. See :class:`_Tiles`.
"""
from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Iterator, Sequence

import torch

from cortexbench.device import available_memory
from cortexbench.errors import InputError
from cortexbench.plugins.metrics.rsa.functional import as_tensor

HSIC_ESTIMATORS = ("biased", "unbiased")
KERNELS = ("linear", "rbf")
ZSCORE_EPS = 1e-8
#: Shen et al.'s kernel sizes (sigma) for NSD: 12, 20, ..., 100; 36 is their headline.
SHEN_SIGMAS = tuple(range(12, 101, 8))
#: Working memory for kernel chunks when the device is the CPU (bytes).
CPU_BUDGET = 2 << 30
#: Target tile edge of the tiled triangle layout, and the most tiles per edge (see :class:`_Tiles`).
TILE, MAX_TILES = 512, 16
#: Products summed in float32 before the sums are added in float64 (see :func:`_inner`).
ACCUMULATE = 1 << 13


# --- single pairs (full n x n matrices; the reference the grid is tested against) -------------------------------


def zscore_columns(x: torch.Tensor, eps: float = ZSCORE_EPS) -> torch.Tensor:
    """Shen et al.'s feature normalisation: (x - mean) / (unbiased std + eps) per column; constant columns become 0."""
    if x.shape[0] < 2:
        raise InputError(f"z-scoring needs at least 2 stimuli, got {x.shape[0]}")
    return (x - x.mean(0, keepdim=True)) / (x.std(0, keepdim=True) + eps)


def gram_linear(x: torch.Tensor) -> torch.Tensor:
    return x @ x.T


def squared_distances(x: torch.Tensor) -> torch.Tensor:
    """Full matrix of squared Euclidean distances between rows, exactly symmetric with a zero diagonal."""
    sq = (x * x).sum(1)
    d = (sq[:, None] + sq[None, :] - 2.0 * (x @ x.T)).clamp_min_(0.0)
    d = 0.5 * (d + d.T)
    d.fill_diagonal_(0.0)
    return d


def median_squared_distance(d: torch.Tensor) -> torch.Tensor:
    """``numpy.median`` of all n^2 entries of a squared-distance matrix (diagonal zeros included, as Kornblith)."""
    flat = d.flatten()
    total = flat.numel()
    if total % 2:
        return torch.kthvalue(flat, total // 2 + 1).values.double()
    low = torch.kthvalue(flat, total // 2).values.double()
    return 0.5 * (low + torch.kthvalue(flat, total // 2 + 1).values.double())


def gram_rbf(x: torch.Tensor, sigma: float | None = None, threshold: float | None = None) -> torch.Tensor:
    """RBF kernel with a fixed ``sigma`` or ``sigma = threshold * sqrt(median squared distance)``."""
    d = squared_distances(x)
    if sigma is not None:
        return torch.exp(-d / (2.0 * float(sigma) ** 2))
    median = median_squared_distance(d).to(d.dtype)
    if median <= 0:
        raise InputError("the median squared distance is 0 (most stimuli are identical), so sigma = threshold x "
                         "median distance is 0; pass a fixed sigma instead")
    return torch.exp(-d / (2.0 * float(threshold) ** 2 * median))


def center_gram(k: torch.Tensor, unbiased: bool = False) -> torch.Tensor:
    """H K H (biased) or the U-centred kernel of Szekely & Rizzo 2014 with a zero diagonal (unbiased)."""
    n = k.shape[0]
    if not unbiased:
        means = k.mean(0)
        return k - means[:, None] - means[None, :] + means.mean()
    _require_unbiased_size(n)
    k = k.clone()
    k.fill_diagonal_(0.0)
    means = k.sum(0) / (n - 2)
    means = means - means.sum() / (2 * (n - 1))
    k = k - means[:, None] - means[None, :]
    k.fill_diagonal_(0.0)
    return k


def cka_from_grams(k: torch.Tensor, l: torch.Tensor, debiased: bool = False) -> float:
    """CKA of two kernel matrices of the same stimuli."""
    if k.shape != l.shape or k.shape[0] != k.shape[1]:
        raise InputError(f"kernel matrices must be square and of equal size, got {tuple(k.shape)} and {tuple(l.shape)}")
    kc, lc = center_gram(k, debiased), center_gram(l, debiased)
    nk, nl = torch.linalg.vector_norm(kc), torch.linalg.vector_norm(lc)
    _require_nonzero(nk, "source")
    _require_nonzero(nl, "target")
    return float((kc * lc).sum() / (nk * nl))


def linear_cka(X, Y, debiased: bool = False, *, device: str | torch.device = "cpu") -> float:
    """Linear CKA (Kornblith et al. 2019); ``debiased`` uses the unbiased HSIC estimator (Song et al. 2012)."""
    return cka_from_grams(*_grams(X, Y, "linear", None, None, False, debiased, device), debiased)


def rbf_cka(X, Y, sigma: float | None = None, threshold: float | None = None, zscore: bool = False,
            debiased: bool = False, *, device: str | torch.device = "cpu") -> float:
    """RBF CKA with a fixed ``sigma`` (both sides) or ``threshold`` x median distance (each side; default 1.0)."""
    return cka_from_grams(*_grams(X, Y, "rbf", sigma, threshold, zscore, debiased, device), debiased)


def permutation_test(X, Y, *, kernel: str = "linear", sigma: float | None = None, threshold: float | None = None,
                     zscore: bool = False, debiased: bool = False, n_permutations: int = 1000, random_state: int = 0,
                     exact: bool = False, batch: int = 64, device: str | torch.device = "cpu"):
    """Stimulus-label permutation test of CKA: ``(observed, null (P,), p)``, one-sided (greater).

    Centring commutes with permuting rows and columns together, so each permutation only re-indexes the centred
    target kernel; a batch of permutations is one gather and one reduction. ``exact=True`` enumerates all n!.
    """
    from cortexbench.plugins.metrics.ceilings import resampling

    if kernel not in KERNELS:
        raise InputError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    k, l = _grams(X, Y, kernel, sigma, threshold, zscore, debiased, device)
    kc, lc = center_gram(k, debiased), center_gram(l, debiased)
    norm = torch.linalg.vector_norm(kc) * torch.linalg.vector_norm(lc)
    _require_nonzero(norm, "source or target")
    observed = float((kc * lc).sum() / norm)
    n = kc.shape[0]
    perms = (resampling.all_permutations(n) if exact
             else resampling.random_permutations(n, n_permutations, random_state)).to(kc.device)
    batch = max(1, min(batch, (1 << 27) // (n * n)))  # <= 1 GiB of permuted kernels at a time
    null = torch.cat([(lc[p[:, :, None], p[:, None, :]] * kc).sum((1, 2)) / norm
                      for p in perms.split(batch)]).cpu().numpy()
    test = resampling.exact_p_value if exact else resampling.permutation_p_value
    return observed, null, float(test(observed, null))


def _grams(X, Y, kernel: str, sigma, threshold, zscore: bool, debiased: bool, device):
    x, y = _pair(X, Y, device, 4 if debiased else 2)
    if zscore:
        x, y = zscore_columns(x), zscore_columns(y)
    if kernel == "linear":
        if sigma is not None or threshold is not None:
            raise InputError("sigma and threshold apply to the RBF kernel only")
        return gram_linear(x), gram_linear(y)
    sigma, threshold = _bandwidth(sigma, threshold)
    return gram_rbf(x, sigma, threshold), gram_rbf(y, sigma, threshold)


# --- many pairs --------------------------------------------------------------------------------------------------


def rbf_cka_grid(layers: Iterable[torch.Tensor], regions: Sequence[torch.Tensor], sigmas: Sequence[float], *,
                 zscore: bool = True, hsic: str = "biased", device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float32, chunk_size: int | None = None) -> torch.Tensor:
    """RBF CKA of every layer with every region at every sigma: a ``(n_layers, n_regions, n_sigmas)`` float64 tensor.

    Shen et al.'s procedure: features z-scored per column (unbiased std + 1e-8), K = exp(-d^2 / (2 sigma^2)) with the
    same sigma on both sides, biased HSIC. ``layers`` is consumed one at a time (a generator is fine; only each layer's
    condensed squared distances are kept). Distances are computed once per representation and shared by all sigmas;
    region kernels are built once per sigma. ``dtype`` is the storage and matrix-product precision of the centred
    kernels (float32; bfloat16 halves memory and traffic, accumulating in float32; float64 for reference runs).
    ``chunk_size`` caps how many kernels are held per side (default: from free device memory).
    """
    if not len(sigmas):
        raise InputError("rbf_cka_grid: give at least one sigma")
    return cka_grid(layers, regions, kernel="rbf", sigmas=sigmas, zscore=zscore, hsic=hsic, device=device,
                    dtype=dtype, chunk_size=chunk_size)


def cka_grid(sources: Iterable, targets: Sequence, *, kernel: str = "linear", sigmas: Sequence[float] | None = None,
             thresholds: Sequence[float] | None = None, zscore: bool = False, hsic: str = "biased",
             device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32, chunk_size: int | None = None,
             tf32: bool = False) -> torch.Tensor:
    """CKA of every source with every target: ``(n_sources, n_targets, n_settings)`` float64 on the CPU.

    Settings are ``sigmas`` (fixed, same on both sides) or ``thresholds`` (x each side's median distance) for the RBF
    kernel, and a single setting for the linear kernel. ``tf32`` lets float32 matrix products use TF32 on CUDA.
    """
    if kernel not in KERNELS:
        raise InputError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    if hsic not in HSIC_ESTIMATORS:
        raise InputError(f"hsic must be one of {HSIC_ESTIMATORS}, got {hsic!r}")
    if dtype not in (torch.float64, torch.float32, torch.bfloat16, torch.float16):
        raise InputError(f"dtype must be float64, float32, bfloat16 or float16, got {dtype}")
    settings = _settings(kernel, sigmas, thresholds)
    device = torch.device(device)
    base_dtype = torch.float64 if dtype == torch.float64 else torch.float32
    targets = list(targets)
    if not targets:
        raise InputError("cka_grid: no targets (regions) given")
    first = _features(targets[0], "target 0", device, base_dtype)
    n = first.shape[0]
    _require_size(n, hsic)
    tiles = _Tiles(n, device)
    prepare = _Preparer(tiles, kernel, zscore, base_dtype, settings)
    source_bases = [prepare(x, f"source {i}") for i, x in enumerate(_iterate(sources))]
    if not source_bases:
        raise InputError("cka_grid: no sources (layers) given")
    out = torch.empty(len(source_bases), len(targets), len(settings), dtype=torch.float64)
    itemsize = torch.empty((), dtype=dtype).element_size()
    target_chunk, source_chunk, build_chunk = _chunks(chunk_size, len(targets), len(source_bases), tiles.size,
                                                      itemsize, base_dtype, device)
    builder = _Builder(tiles, kernel, hsic, dtype, build_chunk)
    for t0 in range(0, len(targets), target_chunk):
        t_ids = range(t0, min(t0 + target_chunk, len(targets)))
        target_bases = [prepare(first if t == 0 else targets[t], f"target {t}") for t in t_ids]
        t_names = [f"target {t}" for t in t_ids]
        for s in range(len(settings)):
            t_vecs, t_norms = builder.build(target_bases, s, t_names)
            for s0 in range(0, len(source_bases), source_chunk):
                s_ids = range(s0, min(s0 + source_chunk, len(source_bases)))
                s_vecs, s_norms = builder.build([source_bases[i] for i in s_ids], s, [f"source {i}" for i in s_ids])
                inner = tiles.inner(s_vecs, t_vecs, tf32)
                out[s_ids.start:s_ids.stop, t_ids.start:t_ids.stop, s] = (
                    inner / (s_norms[:, None] * t_norms[None, :])).cpu()
                del s_vecs
            del t_vecs
        del target_bases
    return out


# --- internals -----------------------------------------------------------------------------------------------------


class _Tiles:
    """A symmetric n x n matrix stored as its upper-triangular tiles.

    The (zero-padded) matrix is cut into ``nb x nb`` tiles of ``b x b``; the ``T = nb (nb + 1) / 2`` tiles on and above
    the diagonal are kept as a ``(T, b, b)`` block, the ``nb`` diagonal tiles first. Flattened, the Frobenius product
    of two full matrices is (diagonal part) . (diagonal part) + 2 (off-diagonal part) . (off-diagonal part). Every
    step (kernel, row means, centring) is a dense batched operation: no scatter, no gather of single entries.
    ``nb`` is chosen near n / TILE with the least padding (none when possible).
    """

    def __init__(self, n: int, device: torch.device):
        self.n = n
        start = max(1, min(MAX_TILES, math.ceil(n / TILE)))
        candidates = range(max(1, start // 2), min(MAX_TILES, 2 * start) + 1)
        self.nb = min(candidates, key=lambda nb: (nb * math.ceil(n / nb) - n, -nb))  # least padding, then most tiles
        self.b = math.ceil(n / self.nb)
        self.padded = self.nb * self.b
        a, b = torch.triu_indices(self.nb, self.nb, device=device)
        order = torch.argsort((a != b).to(torch.int8), stable=True)  # diagonal tiles first
        self.a, self.bcol = a[order], b[order]
        self.count = self.a.numel()
        self.size = self.count * self.b * self.b
        self.diagonal_size = self.nb * self.b * self.b  # the first entries of a flattened tile block
        valid = torch.arange(self.padded, device=device) < n
        self.valid = valid.view(self.nb, self.b)
        self.needs_mask = self.padded != n

    def from_full(self, full: torch.Tensor) -> torch.Tensor:
        """``(n, n)`` -> ``(T, b, b)`` upper tiles (padding is zero)."""
        pad = self.padded - self.n
        if pad:
            full = torch.nn.functional.pad(full, (0, pad, 0, pad))
        grid = full.view(self.nb, self.b, self.nb, self.b).transpose(1, 2)
        return grid[self.a, self.bcol]

    def mask_(self, k: torch.Tensor) -> torch.Tensor:
        """Zero the padded rows and columns of a ``(..., T, b, b)`` batch, in place."""
        if self.needs_mask:
            rows = self.valid[self.a].to(k.dtype)
            cols = self.valid[self.bcol].to(k.dtype)
            k.mul_(rows[:, :, None]).mul_(cols[:, None, :])
        return k

    def zero_diagonal_(self, k: torch.Tensor) -> torch.Tensor:
        k[..., :self.nb, :, :].diagonal(dim1=-2, dim2=-1).zero_()
        return k

    def row_sums(self, k: torch.Tensor) -> torch.Tensor:
        """Row sums of the full symmetric matrices of a ``(c, T, b, b)`` batch: ``(c, nb, b)``."""
        sums = torch.zeros(k.shape[0], self.nb, self.b, dtype=k.dtype, device=k.device)
        sums.index_add_(1, self.a, k.sum(-1))
        # column sums of the off-diagonal tiles are the row sums of their mirror images below the diagonal
        sums.index_add_(1, self.bcol[self.nb:], k[:, self.nb:].sum(-2))
        return sums

    def inner(self, a: torch.Tensor, b: torch.Tensor, tf32: bool) -> torch.Tensor:
        """Frobenius products of the full matrices behind flattened tile blocks ``(A, size)`` and ``(B, size)``."""
        d = self.diagonal_size
        return _inner(a[:, :d], b[:, :d], tf32) + 2.0 * _inner(a[:, d:], b[:, d:], tf32)

    def norms(self, vecs: torch.Tensor) -> torch.Tensor:
        d = self.diagonal_size
        return (_norms(vecs[:, :d]) ** 2 + 2.0 * _norms(vecs[:, d:]) ** 2).sqrt()


class _Base:
    """One representation's tiled base matrix (squared distances or Gram) and its per-setting kernel parameter."""

    __slots__ = ("tiles", "gammas")

    def __init__(self, tiles: torch.Tensor, gammas: list[float]):
        self.tiles, self.gammas = tiles, gammas


class _Preparer:
    def __init__(self, tiles: _Tiles, kernel: str, zscore: bool, dtype: torch.dtype, settings: list[tuple[str, float]]):
        self.tiles, self.kernel, self.zscore, self.dtype, self.settings = tiles, kernel, zscore, dtype, settings

    def __call__(self, x, what: str) -> _Base:
        x = _features(x, what, self.tiles.valid.device, self.dtype)
        if x.shape[0] != self.tiles.n:
            raise InputError(f"{what} has {x.shape[0]} stimuli but the first target has {self.tiles.n}; every "
                             "representation must hold the same stimuli in the same order")
        if self.zscore:
            x = zscore_columns(x)
        with _full_precision():
            full = x @ x.T
        if self.kernel == "linear":
            return _Base(self.tiles.from_full(full), [1.0])
        sq = full.diagonal().clone()
        full.mul_(-2.0).add_(sq[:, None]).add_(sq[None, :]).clamp_min_(0.0).fill_diagonal_(0.0)
        median = None
        if any(kind == "threshold" for kind, _ in self.settings):
            median = float(median_squared_distance(full))
            if median <= 0:
                raise InputError(f"{what}: the median squared distance is 0 (most stimuli identical), so "
                                 "threshold x median distance is 0; use a fixed sigma")
        gammas = [1.0 / (2.0 * value ** 2 * (median if kind == "threshold" else 1.0)) for kind, value in self.settings]
        return _Base(self.tiles.from_full(full), gammas)


class _Builder:
    """Centred kernels of many representations at one setting, as flattened tile vectors plus their norms."""

    def __init__(self, tiles: _Tiles, kernel: str, hsic: str, dtype: torch.dtype, chunk: int):
        self.tiles, self.kernel, self.hsic, self.dtype, self.chunk = tiles, kernel, hsic, dtype, chunk

    def build(self, bases: list[_Base], setting: int, names: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        tiles = self.tiles
        base_dtype = bases[0].tiles.dtype
        vecs = torch.empty(len(bases), tiles.count, tiles.b, tiles.b, dtype=self.dtype, device=tiles.valid.device)
        for start in range(0, len(bases), self.chunk):
            part = bases[start:start + self.chunk]
            target = vecs[start:start + len(part)]
            # same precision: centre in place in the output; otherwise in a working buffer, then round once
            work = target if self.dtype == base_dtype else torch.empty_like(target, dtype=base_dtype)
            self._centred_into(work, part, setting)
            if work is not target:
                target.copy_(work)
            del work
        vecs = vecs.view(len(bases), -1)
        norms = self.tiles.norms(vecs)
        bad = (~torch.isfinite(norms)) | (norms <= 0)
        if bad.any():
            name = names[int(bad.nonzero()[0])]
            raise InputError(f"{name}: its centred kernel is zero (the representation is constant across stimuli, "
                             "or the kernel width makes every entry equal); CKA is undefined. Drop constant "
                             "representations or change sigma")
        return vecs, norms

    def _centred_into(self, k: torch.Tensor, bases: list[_Base], setting: int) -> None:
        """Write the centred kernels of ``bases`` into ``k`` (``(c, T, b, b)``; padding zeroed)."""
        tiles, n = self.tiles, self.tiles.n
        for i, base in enumerate(bases):
            if self.kernel == "rbf":
                torch.mul(base.tiles, -base.gammas[setting], out=k[i])
            else:
                k[i].copy_(base.tiles)
        if self.kernel == "rbf":
            k.exp_()
        tiles.mask_(k)
        if self.hsic == "biased":
            means = tiles.row_sums(k) / n                                            # (c, nb, b)
            grand = means.sum((1, 2)) / n
            k.sub_(means[:, tiles.a, :, None] - grand[:, None, None, None]).sub_(means[:, tiles.bcol, None, :])
        else:  # U-centring (Szekely & Rizzo 2014): zero diagonal, means over n - 2
            tiles.zero_diagonal_(k)
            means = tiles.row_sums(k) / (n - 2)
            means -= (means.sum((1, 2)) / (2 * (n - 1)))[:, None, None]
            k.sub_(means[:, tiles.a, :, None]).sub_(means[:, tiles.bcol, None, :])
            tiles.zero_diagonal_(k)
        tiles.mask_(k)


def _inner(a: torch.Tensor, b: torch.Tensor, tf32: bool) -> torch.Tensor:
    """``a @ b.T`` in float64, from products summed in float32 over blocks of ``ACCUMULATE`` entries.

    A single float32 dot product over n^2 / 2 terms loses about sqrt(n^2 / 2) x 6e-8 of relative accuracy (1e-4 at
    n = 2000, more at NSD size). Blocks of 8192 keep that at ~5e-6; the blocks are one strided batched product and
    their sums are added in float64. Low-precision inputs (bf16) are multiplied with float32 accumulation.
    """
    if a.dtype == torch.float64:
        return a @ b.T
    rows_a, rows_b, width = a.shape[0], b.shape[0], a.shape[1]
    block = ACCUMULATE
    full = width // block
    out = torch.zeros(rows_a, rows_b, dtype=torch.float64, device=a.device)
    # bound the (blocks, A, B) float32 partials and any float32 copy of the (blocks, A + B, block) inputs
    step = max(1, min((256 << 20) // (4 * rows_a * rows_b), (512 << 20) // (4 * (rows_a + rows_b) * block)))
    with _full_precision(allow_tf32=tf32):
        for start in range(0, full, step):
            stop = min(full, start + step)
            pa = a[:, start * block:stop * block].reshape(rows_a, stop - start, block).transpose(0, 1)
            pb = b[:, start * block:stop * block].reshape(rows_b, stop - start, block).transpose(0, 1)
            out += _bmm32(pa, pb.transpose(1, 2)).sum(0, dtype=torch.float64)
        if full * block < width:
            rest_a, rest_b = a[:, full * block:], b[:, full * block:]
            out += _bmm32(rest_a[None], rest_b.T[None])[0].double()
    return out


def _bmm32(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Batched product with a float32 result, whatever the (float32 or half) storage type."""
    if x.dtype == torch.float32:
        return torch.bmm(x, y)
    if x.is_cuda:
        try:
            return torch.bmm(x, y, out_dtype=torch.float32)
        except (RuntimeError, TypeError):  # older torch: up-cast this block instead
            pass
    return torch.bmm(x.float(), y.float())


def _norms(vecs: torch.Tensor) -> torch.Tensor:
    """Euclidean norms of the rows in float64, from float32 norms of blocks of ``ACCUMULATE`` entries."""
    if vecs.dtype == torch.float64:
        return torch.linalg.vector_norm(vecs, dim=1)
    block = ACCUMULATE
    full = vecs.shape[1] // block * block
    squares = torch.zeros(vecs.shape[0], dtype=torch.float64, device=vecs.device)
    rows = max(1, (256 << 20) // (4 * max(1, vecs.shape[1])))  # bound any float32 copy of low-precision rows
    for start in range(0, vecs.shape[0], rows):
        part = vecs[start:start + rows]
        if full:
            blocks = torch.linalg.vector_norm(part[:, :full].reshape(part.shape[0], -1, block), dim=2,
                                              dtype=torch.float32)
            squares[start:start + rows] += blocks.double().pow(2).sum(1)
        if full < vecs.shape[1]:
            squares[start:start + rows] += torch.linalg.vector_norm(part[:, full:], dim=1,
                                                                    dtype=torch.float32).double().pow(2)
    return squares.sqrt()


@contextlib.contextmanager
def _full_precision(allow_tf32: bool = False) -> Iterator[None]:
    """Distances need true float32 products (TF32 would lose the small distances), whatever the global setting."""
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = allow_tf32
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous


def _settings(kernel: str, sigmas, thresholds) -> list[tuple[str, float]]:
    if kernel == "linear":
        if sigmas is not None or thresholds is not None:
            raise InputError("sigmas and thresholds apply to the RBF kernel only")
        return [("linear", 1.0)]
    if (sigmas is None) == (thresholds is None):
        raise InputError("the RBF kernel needs either sigmas (fixed, both sides) or thresholds (x median distance)")
    kind, values = ("sigma", sigmas) if sigmas is not None else ("threshold", thresholds)
    values = [float(v) for v in values]
    if not values or any(not math.isfinite(v) or v <= 0 for v in values):
        raise InputError(f"{kind}s must be positive and finite, got {values}")
    return [(kind, v) for v in values]


def _bandwidth(sigma, threshold) -> tuple[float | None, float | None]:
    if sigma is not None and threshold is not None:
        raise InputError("give either sigma or threshold, not both")
    if sigma is None and threshold is None:
        threshold = 1.0  # Kornblith et al.'s default
    value = sigma if sigma is not None else threshold
    if not math.isfinite(float(value)) or float(value) <= 0:
        raise InputError(f"{'sigma' if sigma is not None else 'threshold'} must be positive, got {value}")
    return sigma, threshold


def _features(x, what: str, device, dtype) -> torch.Tensor:
    x = as_tensor(x, device, dtype)
    if x.ndim != 2:
        raise InputError(f"{what} must be a (stimulus, feature) matrix, got shape {tuple(x.shape)}")
    if x.shape[1] == 0:
        raise InputError(f"{what} has no features")
    if not torch.isfinite(x).all():
        raise InputError(f"{what} contains NaN or infinite values; remove or impute them before computing CKA")
    return x


def _pair(X, Y, device, min_n: int) -> tuple[torch.Tensor, torch.Tensor]:
    x = _features(X, "X", device, torch.float64)
    y = _features(Y, "Y", device, torch.float64)
    if x.shape[0] != y.shape[0]:
        raise InputError(f"X has {x.shape[0]} stimuli but Y has {y.shape[0]}; CKA compares the same stimuli")
    _require_size(x.shape[0], "unbiased" if min_n == 4 else "biased")
    return x, y


def _require_size(n: int, hsic: str) -> None:
    if hsic == "unbiased":
        _require_unbiased_size(n)
    elif n < 2:
        raise InputError(f"CKA needs at least 2 stimuli, got {n}")


def _require_unbiased_size(n: int) -> None:
    if n < 4:
        raise InputError(f"the unbiased (debiased) HSIC estimator needs at least 4 stimuli (it divides by n - 3), "
                         f"got {n}; use the biased estimator or more stimuli")


def _require_nonzero(norm: torch.Tensor, what: str) -> None:
    if not torch.isfinite(norm) or norm <= 0:
        raise InputError(f"the {what} centred kernel is zero (constant representation); CKA is undefined")


def _iterate(sources) -> Iterator:
    if isinstance(sources, torch.Tensor) and sources.ndim == 2:
        raise InputError("sources must be an iterable of (stimulus, feature) matrices, not a single matrix")
    yield from sources


def _chunks(chunk_size: int | None, n_targets: int, n_sources: int, size: int, itemsize: int,
            base_dtype: torch.dtype, device: torch.device) -> tuple[int, int, int]:
    """How many target kernels, source kernels, and kernels per centring step to hold at once."""
    base_item = torch.empty((), dtype=base_dtype).element_size()
    if device.type == "cuda":
        budget = int(available_memory(device) * 0.7)
    else:
        budget = CPU_BUDGET
    build = max(1, min(32, int(0.1 * budget) // (size * base_item)))
    if chunk_size is not None:
        if chunk_size < 1:
            raise InputError(f"chunk_size must be at least 1, got {chunk_size}")
        return min(chunk_size, n_targets), min(chunk_size, n_sources), min(build, chunk_size)
    # a target holds its base and its kernel for the whole sigma loop; sources are built a chunk at a time
    target_chunk = max(1, min(n_targets, int(0.6 * budget) // (size * (base_item + itemsize))))
    source_chunk = max(1, min(n_sources, int(0.2 * budget) // (size * itemsize)))
    return target_chunk, source_chunk, build
