"""Representational similarity analysis in torch, batched over many RDMs at once.

Conventions: an RDM batch is ``(..., n, n)``; its condensed form is the upper triangle without the diagonal in
row-major order (``scipy.spatial.distance.squareform`` order). Comparisons take ``(A, m)`` and ``(B, m)``
condensed batches and return the ``(A, B)`` matrix of all pairs in one matrix product: Pearson r, Spearman rho
(Pearson r of ranks, ties averaged) and Kendall's tau-a (rsatoolbox's choice for RDMs with ties; Nili et al. 2014),
which is computed exactly as a product of pairwise sign matrices, in blocks.
"""
from __future__ import annotations

import torch

from cortexbench.errors import InputError

DISTANCES = ("correlation", "euclidean")
COMPARISONS = ("spearman", "pearson", "kendall")
#: Entries of the sign blocks built at once by :func:`kendall_tau_a` (bounds memory; 2^24 keeps float32 sums exact).
KENDALL_BLOCK = 1 << 24


def as_tensor(x, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float64) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.to(device=device, dtype=dtype)
    values = getattr(x, "values", x)  # xarray -> numpy
    return torch.as_tensor(values, dtype=dtype, device=device)


def rdm(features: torch.Tensor, distance: str = "correlation", zscore: bool = False) -> torch.Tensor:
    """Dissimilarities between stimuli (rows). ``correlation``: 1 - Pearson r across features.

    ``zscore`` first standardises every feature (column) across stimuli, constant columns becoming 0 (Net2Brain's
    default RDMs).
    """
    if features.ndim < 2:
        raise InputError(f"features must be (..., stimulus, feature), got shape {tuple(features.shape)}")
    if not torch.isfinite(features).all():
        raise InputError("features contain NaN or infinite values; remove or impute them before computing an RDM")
    if zscore:
        features = zscore_features(features)
    if distance == "correlation":
        centred = features - features.mean(dim=-1, keepdim=True)
        norms = centred.norm(dim=-1, keepdim=True)
        if (norms == 0).any():
            bad = (norms.squeeze(-1) == 0).nonzero()[:5].tolist()
            raise InputError(f"correlation distance is undefined for stimuli whose features are constant "
                             f"(index {bad}); use distance='euclidean' or drop those stimuli")
        unit = centred / norms
        out = 1.0 - unit @ unit.transpose(-1, -2)
    elif distance == "euclidean":
        out = torch.cdist(features, features)
    else:
        raise InputError(f"distance must be one of {DISTANCES}, got {distance!r}")
    out = 0.5 * (out + out.transpose(-1, -2))
    out.diagonal(dim1=-2, dim2=-1).zero_()
    return out


def zscore_features(features: torch.Tensor) -> torch.Tensor:
    """Each column standardised across stimuli (population std); constant columns become 0."""
    centred = features - features.mean(-2, keepdim=True)
    std = centred.pow(2).mean(-2, keepdim=True).sqrt()
    return torch.where(std > 0, centred / torch.where(std > 0, std, torch.ones_like(std)), torch.zeros_like(centred))


def upper(rdms: torch.Tensor) -> torch.Tensor:
    """Condensed upper triangles ``(..., n (n - 1) / 2)`` in squareform order."""
    n = rdms.shape[-1]
    if rdms.shape[-2] != n:
        raise InputError(f"RDMs must be square, got shape {tuple(rdms.shape)}")
    i, j = torch.triu_indices(n, n, offset=1, device=rdms.device)
    return rdms[..., i, j]


def rankdata(x: torch.Tensor) -> torch.Tensor:
    """Ranks along the last dimension with ties averaged (as ``scipy.stats.rankdata``), 1-based."""
    sorted_x, order = torch.sort(x, dim=-1, stable=True)
    m = x.shape[-1]
    positions = torch.arange(1, m + 1, dtype=x.dtype, device=x.device).expand_as(sorted_x)
    new_group = torch.ones_like(sorted_x, dtype=torch.bool)
    new_group[..., 1:] = sorted_x[..., 1:] != sorted_x[..., :-1]
    group = new_group.cumsum(-1) - 1                       # group index of each sorted element
    sums = torch.zeros_like(sorted_x).scatter_add_(-1, group, positions)
    counts = torch.zeros_like(sorted_x).scatter_add_(-1, group, torch.ones_like(sorted_x))
    mean_rank = sums.gather(-1, group) / counts.gather(-1, group)
    return torch.empty_like(x).scatter_(-1, order, mean_rank)


def pearson_matrix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson r between every row of ``a`` (A, m) and every row of ``b`` (B, m): (A, B)."""
    a = a - a.mean(-1, keepdim=True)
    b = b - b.mean(-1, keepdim=True)
    na, nb = a.norm(dim=-1, keepdim=True), b.norm(dim=-1, keepdim=True)
    if (na == 0).any() or (nb == 0).any():
        raise InputError("cannot correlate a constant RDM (all dissimilarities equal)")
    return (a / na) @ (b / nb).transpose(-1, -2)


def kendall_tau_a(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Kendall's tau-a of every row of ``a`` (A, m) with every row of ``b`` (B, m): (A, B).

    tau-a = (concordant - discordant) / (m (m - 1) / 2); tied pairs count as neither, and the denominator does not
    shrink with ties (unlike tau-b), so a model predicting ties is not rewarded (Nili et al. 2014). Computed as
    sum_ij sign(a_i - a_j) sign(b_i - b_j) over blocks of i: one matrix product per block, exact in float32 because
    every partial sum is an integer below 2^24.
    """
    m = a.shape[-1]
    if m < 2:
        raise InputError("Kendall's tau needs at least 2 dissimilarities")
    rows = max(1, KENDALL_BLOCK // (m * max(a.shape[0], b.shape[0], 1)))
    rows = min(rows, max(1, (1 << 24) // m))
    total = torch.zeros(a.shape[0], b.shape[0], dtype=torch.float64, device=a.device)
    for start in range(0, m, rows):
        sa = torch.sign(a[:, start:start + rows, None] - a[:, None, :]).float().reshape(a.shape[0], -1)
        sb = torch.sign(b[:, start:start + rows, None] - b[:, None, :]).float().reshape(b.shape[0], -1)
        total += (sa @ sb.T).double()
    return total / (m * (m - 1))  # every unordered pair was counted twice


def compare(a: torch.Tensor, b: torch.Tensor, method: str = "spearman") -> torch.Tensor:
    """Similarity of condensed RDMs: every row of ``a`` (A, m) with every row of ``b`` (B, m)."""
    if a.shape[-1] != b.shape[-1]:
        raise InputError(f"RDMs differ in size: {a.shape[-1]} vs {b.shape[-1]} dissimilarities "
                         "(were they computed on the same stimuli?)")
    if method == "spearman":
        return pearson_matrix(rankdata(a), rankdata(b))
    if method == "pearson":
        return pearson_matrix(a, b)
    if method == "kendall":
        return kendall_tau_a(a, b)
    raise InputError(f"comparison must be one of {COMPARISONS}, got {method!r}")


def compare_paired(a: torch.Tensor, b: torch.Tensor, method: str = "spearman") -> torch.Tensor:
    """Similarity of row ``i`` of ``a`` with row ``i`` of ``b`` for all rows: ``(..., m), (..., m) -> (...)``."""
    if method == "kendall":
        a, b = torch.broadcast_tensors(a, b)
        flat_a, flat_b = a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1])
        values = torch.stack([kendall_tau_a(flat_a[i:i + 1], flat_b[i:i + 1])[0, 0] for i in range(len(flat_a))])
        return values.reshape(a.shape[:-1])
    if method == "spearman":
        a, b = rankdata(a), rankdata(b)
    elif method != "pearson":
        raise InputError(f"comparison must be one of {COMPARISONS}, got {method!r}")
    a = a - a.mean(-1, keepdim=True)
    b = b - b.mean(-1, keepdim=True)
    return (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1))


def loso_ceiling(subject_rdms: torch.Tensor, method: str = "spearman") -> tuple[torch.Tensor, torch.Tensor]:
    """Leave-one-subject-out noise ceiling of ``(S, n, n)`` RDMs (Nili et al. 2014).

    Returns per-subject (lower, upper) bounds: each subject's RDM compared with the mean RDM of the *other*
    subjects (lower) and with the mean of *all* subjects (upper). A model cannot expect to beat these.

    The lower bound is ``ceilings.subjects.loso_subject_scores`` with the RDM comparison as the metric (both take
    the mean of the others from ``ceilings.subjects.leave_one_out_means``); this entry point exists because it keeps
    tensors on their device and compares all subjects in one batched call, and it adds the upper bound. Naming:
    Nili et al. call this predictor the *lower* bound of the ceiling; Höfling et al. (and ``ceilings.subjects``)
    call the same leave-one-subject-out mean predictor the *upper* ceiling, against their pairwise lower one.
    """
    return loso_ceiling_condensed(upper(subject_rdms), method)


def loso_ceiling_condensed(vectors: torch.Tensor, method: str = "spearman") -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`loso_ceiling` on condensed ``(S, m)`` RDMs (e.g. bootstrap resamples)."""
    from cortexbench.plugins.metrics.ceilings.subjects import leave_one_out_means

    lower = compare_paired(vectors, leave_one_out_means(vectors), method)
    upper_bound = compare(vectors, vectors.mean(0, keepdim=True), method)[:, 0]
    return lower, upper_bound


def bootstrap_samples(n: int, n_bootstrap: int, seed: int) -> torch.Tensor:
    """``(n_bootstrap, n)`` stimulus indices drawn with replacement."""
    from cortexbench.plugins.metrics.ceilings.resampling import resample_indices

    return resample_indices(n, n_bootstrap, seed)


def pair_weights(samples: torch.Tensor, n: int) -> torch.Tensor:
    """How often each original pair {a, b} (a < b) occurs in the condensed RDM of each resample: ``c_a * c_b``.

    A resample's condensed RDM is exactly the original pairs repeated with these multiplicities; pairs of a stimulus
    with its own copy (distance 0 in every RDM, which would inflate every correlation) are left out.
    """
    counts = torch.zeros(samples.shape[0], n, dtype=torch.float64, device=samples.device)
    counts.scatter_add_(1, samples, torch.ones_like(samples, dtype=torch.float64))
    i, j = torch.triu_indices(n, n, offset=1, device=samples.device)
    return counts[:, i] * counts[:, j]


def weighted_ranks(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Average ranks of ``values`` (K, m) in the multisets given by ``weights`` (B, m): (K, B, m).

    Equal to ranking each resample's expanded vector (copies of one pair tie with each other), but each row of
    ``values`` is sorted once for all resamples: ranks are cumulative weights in the original order.
    """
    sorted_values, order = torch.sort(values, dim=-1)
    new_group = torch.ones_like(sorted_values, dtype=torch.bool)
    new_group[..., 1:] = sorted_values[..., 1:] != sorted_values[..., :-1]
    w = weights[:, order].permute(1, 0, 2)                                                      # (K, B, m)
    # no tied values (the usual case for real-valued RDMs): no grouping needed
    rank_sorted = _sorted_ranks(w, None if bool(new_group.all()) else new_group.unsqueeze(1))
    return torch.empty_like(rank_sorted).scatter_(-1, order.unsqueeze(1).expand_as(rank_sorted), rank_sorted)


def weighted_ranks_each(values: torch.Tensor, weights: torch.Tensor, tied: torch.Tensor | None = None
                        ) -> torch.Tensor:
    """Average ranks of each row of ``values`` (K, H, P) in the multiset given by its own ``weights`` (H, P).

    The per-subset counterpart of :func:`weighted_ranks`: when every resample keeps only a small subset of the pairs
    (a stimulus half holds about a tenth of them), sorting each compacted row is cheaper than a pass over all pairs.
    Entries of weight 0 (padding) must hold ``+inf`` so that they sort last; their ranks are meaningless. ``tied``
    (K,) marks the rows that may hold equal values among positive weights (ties averaged, as
    ``scipy.stats.rankdata`` on the expanded multiset); other rows take the faster tie-free path. None: check.
    """
    sorted_values, order = torch.sort(values, dim=-1)
    w = weights.unsqueeze(0).expand(values.shape[0], -1, -1).gather(-1, order)
    ranks = _sorted_ranks(w)
    if tied is None:
        tied = ((sorted_values[..., 1:] == sorted_values[..., :-1]) & torch.isfinite(sorted_values[..., 1:])
                ).flatten(1).any(1)
    if bool(tied.any()):
        rows = tied.nonzero().squeeze(1)
        sv = sorted_values[rows]
        new_group = torch.ones_like(sv, dtype=torch.bool)
        new_group[..., 1:] = sv[..., 1:] != sv[..., :-1]
        ranks[rows] = _sorted_ranks(w[rows], new_group)
    return torch.empty_like(ranks).scatter_(-1, order, ranks)


def _sorted_ranks(w: torch.Tensor, new_group: torch.Tensor | None = None) -> torch.Tensor:
    """Average ranks of sorted entries counted ``w`` (..., m) times each; ``new_group`` (broadcastable to ``w``)
    marks where a new value starts, so that tied entries share their group's mean rank (None: no ties)."""
    if new_group is None:
        return w.cumsum(-1) - (w - 1) / 2
    group = (new_group.cumsum(-1) - 1).expand_as(w)
    group_weight = torch.zeros_like(w).scatter_add_(-1, group, w)
    before = group_weight.cumsum(-1) - group_weight
    return before.gather(-1, group) + (group_weight.gather(-1, group) + 1) / 2


def weighted_paired_correlation(a: torch.Tensor, b: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Pearson r of ``a`` and ``b`` (..., B, m) with each entry counted ``weights`` (B, m) times: (..., B)."""
    total = weights.sum(-1, keepdim=True)
    a = a - (a * weights).sum(-1, keepdim=True) / total
    b = b - (b * weights).sum(-1, keepdim=True) / total
    return (weights * a * b).sum(-1) / ((weights * a * a).sum(-1) * (weights * b * b).sum(-1)).sqrt()


def bootstrap_rsa(model_rdm: torch.Tensor, subject_rdms: torch.Tensor, samples: torch.Tensor,
                  method: str = "spearman", ceiled: bool = True, chunk: int = 256) -> torch.Tensor:
    """Per-resample score: mean over subjects of r(model, subject), divided by the resample's LOSO ceiling.

    ``samples`` (B, n) are stimulus indices drawn with replacement. Pairs of a stimulus with its own copy are
    dropped. Vectorized over resamples (``chunk`` at a time, to bound memory) through pair multiplicities, so no
    resample is ever re-sorted.
    """
    if method not in COMPARISONS:
        raise InputError(f"comparison must be one of {COMPARISONS}, got {method!r}")
    n = model_rdm.shape[-1]
    model = upper(model_rdm).unsqueeze(0)                                   # (1, m)
    subjects = upper(subject_rdms)                                          # (S, m)
    others = subjects
    if ceiled:
        from cortexbench.plugins.metrics.ceilings.subjects import leave_one_out_means

        others = leave_one_out_means(subjects)
    out = []
    for start in range(0, samples.shape[0], chunk):
        weights = pair_weights(samples[start:start + chunk], n)             # (B, m)
        if method == "spearman":
            ranked = [weighted_ranks(v, weights) for v in (model, subjects, others)]
        else:
            ranked = [v.unsqueeze(1).expand(-1, weights.shape[0], -1) for v in (model, subjects, others)]
        score = weighted_paired_correlation(ranked[0], ranked[1], weights).mean(0)
        if ceiled:
            score = score / weighted_paired_correlation(ranked[1], ranked[2], weights).mean(0)
        out.append(score)
    return torch.cat(out)


def permutation_test(model_rdms: torch.Tensor, brain_rdms: torch.Tensor, method: str = "spearman", *,
                     n_permutations: int = 1000, random_state: int = 0, exact: bool = False, batch: int = 256):
    """Stimulus-label permutation test of RDM similarity (Kriegeskorte et al. 2008; Nili et al. 2014).

    ``model_rdms`` ``(A, n, n)`` and ``brain_rdms`` ``(B, n, n)`` (or single RDMs). The brain RDMs' rows and columns
    are permuted together; for Pearson and Spearman the null needs no re-ranking (permuting entries permutes ranks),
    so each batch of permutations is one gather and one matrix product. ``exact=True`` enumerates all n!
    permutations (small n). Returns ``(observed (A, B), null (P, A, B), p (A, B))`` with the one-sided p-value
    (1 + #{null >= observed}) / (1 + P), or the exact p-value.
    """
    from cortexbench.plugins.metrics.ceilings import resampling

    model_rdms, brain_rdms = _batch(model_rdms), _batch(brain_rdms)
    n = brain_rdms.shape[-1]
    if model_rdms.shape[-1] != n:
        raise InputError(f"model RDMs are {model_rdms.shape[-1]} x {model_rdms.shape[-1]} but brain RDMs {n} x {n}; "
                         "they must describe the same stimuli")
    a, b = upper(model_rdms), upper(brain_rdms)
    observed = compare(a, b, method)
    perms = (resampling.all_permutations(n) if exact
             else resampling.random_permutations(n, n_permutations, random_state)).to(brain_rdms.device)
    i, j = torch.triu_indices(n, n, offset=1, device=brain_rdms.device)
    if method in ("pearson", "spearman"):
        prep = rankdata if method == "spearman" else (lambda x: x)
        a_unit = _unit(prep(a))
        b_full = _square(_unit(prep(b)), n, i, j)                                    # (B, n, n) of the prepared b
        nulls = []
        batch = max(1, min(batch, (1 << 27) // (b_full.shape[0] * i.numel())))  # <= 1 GiB of permuted RDMs
        for start in range(0, len(perms), batch):
            p = perms[start:start + batch]
            permuted = b_full[:, p[:, i], p[:, j]]                                   # (B, P, m)
            nulls.append(torch.einsum("am,bpm->pab", a_unit, permuted))
    elif method == "kendall":
        nulls = [kendall_tau_a(a, brain_rdms[:, p][:, :, p][:, i, j])[None] for p in perms]
    else:
        raise InputError(f"comparison must be one of {COMPARISONS}, got {method!r}")
    null = torch.cat(nulls)
    test = resampling.exact_p_value if exact else resampling.permutation_p_value
    return observed, null, torch.as_tensor(test(observed.cpu().numpy(), null.cpu().numpy()))


def _batch(rdms) -> torch.Tensor:
    rdms = as_tensor(rdms, getattr(rdms, "device", "cpu"))
    return rdms[None] if rdms.ndim == 2 else rdms


def _unit(x: torch.Tensor) -> torch.Tensor:
    x = x - x.mean(-1, keepdim=True)
    norm = x.norm(dim=-1, keepdim=True)
    if (norm == 0).any():
        raise InputError("cannot correlate a constant RDM (all dissimilarities equal)")
    return x / norm


def _square(condensed: torch.Tensor, n: int, i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
    full = torch.zeros(*condensed.shape[:-1], n, n, dtype=condensed.dtype, device=condensed.device)
    full[..., i, j] = condensed
    full[..., j, i] = condensed
    return full
