"""The held-out RSA procedure of :class:`~.rdm_benchmark.RDMBenchmark`, vectorised over stimulus resamples.

One procedure serves both the headline and its bootstrap, so that the error describes the headline:

1. split the (unique) stimuli into two halves, stratified by a label;
2. on each half, Spearman r of every model layer with every subject (mean over subjects), and the half's LOSO
   ceiling (each subject against the mean of the others, Nili et al. 2014);
3. per direction, choose the layer on one half and score it (ceiled or not) on the other.

A stimulus resample is a vector of counts (how often each stimulus was drawn); within a half, pair {a, b} counts
``c_a * c_b`` times and pairs of a stimulus with its own copy are left out, exactly as in the RSA metric's
``bootstrap_rsa``. The original data are counts of 1. Every half is compacted to the pairs it holds (about a tenth
of all pairs for a half of a resample) and ranked with its weights (``functional.weighted_ranks_each``); halves of
similar size are batched together.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from cortexbench.errors import InputError
from cortexbench.plugins.metrics.rsa import functional as F
from cortexbench.plugins.metrics.ceilings.subjects import leave_one_out_means

#: Entries (rows x pairs) of one batch of compacted halves: bounds memory at a few hundred MB in float64.
BATCH_ENTRIES = 1 << 22


def stratified_halves(labels: np.ndarray, members: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random halves of each row's member stimuli, stratified by ``labels``: ``(R, n)`` of 0, 1 or -1 (not a member).

    Within every label the members are shuffled and cut at ``len // 2``, plus one for a random half of the odd-sized
    groups, so both halves hold about half of every label (as ``len // 2 + coin``). ``labels`` (n,) are integer codes.
    """
    members = np.atleast_2d(members)
    rows, n = members.shape
    labels = np.asarray(labels)
    n_labels = int(labels.max()) + 1 if n else 0
    keys = np.where(members, rng.random((rows, n)), 2.0)               # non-members sort after every member
    order = np.argsort(labels[None, :] * 4.0 + keys, axis=1, kind="stable")
    position = np.empty_like(order)
    np.put_along_axis(position, order, np.arange(n)[None, :].repeat(rows, 0), axis=1)
    starts = np.concatenate([[0], np.cumsum(np.bincount(labels, minlength=n_labels))[:-1]])
    within = position - starts[labels][None, :]                         # rank of the member inside its label
    sizes = np.stack([np.bincount(labels, weights=m, minlength=n_labels) for m in members]).astype(int)
    cut = sizes // 2 + (sizes % 2) * rng.integers(0, 2, size=sizes.shape)
    half = (within >= np.take_along_axis(cut, np.broadcast_to(labels, (rows, n)), axis=1)).astype(np.int8)
    return np.where(members, half, np.int8(-1))


@dataclass
class RDMStack:
    """Rows ranked together: ``L`` model layers, then per region ``S`` subjects, then their LOSO means.

    ``rdms`` (K, n + 1, n + 1) carries one extra "stimulus" at index n whose dissimilarities are +inf: padding
    entries of compacted halves point there, so they sort last without masking.
    """

    rdms: torch.Tensor          # (K, n + 1, n + 1)
    tied: torch.Tensor          # (K,) rows with repeated values
    n_layers: int
    n_regions: int
    n_subjects: int
    loso: bool                  # the leave-one-out rows are present

    @classmethod
    def build(cls, model_rdms: torch.Tensor, subject_rdms: torch.Tensor, loso: bool) -> "RDMStack":
        """``model_rdms`` (L, n, n), ``subject_rdms`` (G, S, n, n) on one device."""
        g, s, n, _ = subject_rdms.shape
        rows = [model_rdms, subject_rdms.reshape(g * s, n, n)]
        if loso:
            if s < 2:
                raise InputError("a leave-one-subject-out ceiling needs at least 2 subjects")
            rows.append(leave_one_out_means(subject_rdms.transpose(0, 1)).transpose(0, 1).reshape(g * s, n, n))
        rdms = torch.cat(rows)
        sorted_values = torch.sort(F.upper(rdms), dim=-1).values
        tied = (sorted_values[:, 1:] == sorted_values[:, :-1]).any(1)
        padded = torch.nn.functional.pad(rdms, (0, 1, 0, 1), value=float("inf"))
        return cls(padded, tied, model_rdms.shape[0], g, s, loso)


def half_statistics(stack: RDMStack, assignment: np.ndarray, counts: np.ndarray
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per half: mean-over-subjects Spearman r of every layer ``(H, G, L)`` and the LOSO ceiling ``(H, G)``.

    ``assignment`` (R, n) from :func:`stratified_halves`, ``counts`` (R, n) stimulus multiplicities; halves are
    ordered (row, half 0, half 1). The ceiling is NaN without LOSO rows.
    """
    device, pad = stack.rdms.device, stack.rdms.shape[-1] - 1
    halves = [np.flatnonzero(assignment[r] == h) for r in range(len(assignment)) for h in (0, 1)]
    sizes = np.array([len(idx) for idx in halves])
    if (sizes < 3).any():
        raise InputError(f"a stimulus half holds {sizes.min()} stimuli; RSA on held-out halves needs at least 3 per "
                         "half (use more stimuli or a coarser stratification)")
    L, G, K = stack.n_layers, stack.n_regions, stack.rdms.shape[0]
    layer_r = torch.empty(len(halves), G, L, dtype=stack.rdms.dtype, device=device)
    ceiling = torch.full((len(halves), G), float("nan"), dtype=stack.rdms.dtype, device=device)
    by_size = np.argsort(sizes, kind="stable")                  # similar sizes together: little padding
    start = 0
    while start < len(by_size):
        t = int(sizes[by_size[start]])
        chunk = by_size[start:start + max(1, BATCH_ENTRIES // (K * t * (t - 1)))]
        t = int(sizes[chunk].max())
        index = np.full((len(chunk), t), pad, dtype=np.int64)
        mult = np.zeros((len(chunk), t))
        for row, h in enumerate(chunk):
            index[row, :sizes[h]] = halves[h]
            mult[row, :sizes[h]] = counts[h // 2, halves[h]]
        lr, ce = _compact_statistics(stack, torch.as_tensor(index, device=device),
                                     torch.as_tensor(mult, dtype=stack.rdms.dtype, device=device))
        target = torch.as_tensor(chunk, device=device)
        layer_r[target], ceiling[target] = lr, ce
        start += len(chunk)
    return layer_r, ceiling


def _compact_statistics(stack: RDMStack, index: torch.Tensor, mult: torch.Tensor):
    """Weighted Spearman statistics of a batch of halves padded to one size (padding has weight 0)."""
    L, G, S = stack.n_layers, stack.n_regions, stack.n_subjects
    i, j = torch.triu_indices(index.shape[1], index.shape[1], offset=1, device=index.device)
    w = mult[:, i] * mult[:, j]                                                     # (H, P)
    ranks = F.weighted_ranks_each(stack.rdms[:, index[:, i], index[:, j]], w, stack.tied)   # (K, H, P)
    # the weighted mean of the ranks of a multiset of W items is (W + 1) / 2; the weighted sum of squares of an
    # untied row is (W^3 - W - sum_e (w_e^3 - w_e)) / 12 (the copies of a pair tie with each other)
    total = w.sum(-1)
    centred = ranks - (total[:, None] + 1) / 2
    norm = ((total ** 3 - total - (w ** 3 - w).sum(-1)) / 12).sqrt().expand(ranks.shape[0], -1).clone()
    if bool(stack.tied.any()):
        norm[stack.tied] = (centred[stack.tied] ** 2 * w).sum(-1).sqrt()
    subjects = slice(L, L + G * S)
    weighted = centred[subjects] * w                                                # (G*S, H, P)
    cross = torch.bmm(centred[:L].transpose(0, 1), weighted.permute(1, 2, 0))      # (H, L, G*S)
    cross = cross / (norm[:L].T.unsqueeze(-1) * norm[subjects].T.unsqueeze(1))
    layer_r = cross.reshape(-1, L, G, S).mean(-1).transpose(1, 2)                  # (H, G, L)
    if not stack.loso:
        return layer_r, torch.full(layer_r.shape[:2], float("nan"), dtype=layer_r.dtype, device=layer_r.device)
    others = slice(L + G * S, L + 2 * G * S)
    lower = (weighted * centred[others]).sum(-1) / (norm[subjects] * norm[others])   # (G*S, H)
    return layer_r, lower.reshape(G, S, -1).mean(1).T


@dataclass
class HeldOut:
    """Held-out results of ``R`` stimulus samples x ``J`` splits x 2 directions x ``G`` regions.

    The (ceiled) score of a region is the ratio of means, mean held-out r / mean held-out ceiling over splits and
    directions: a ratio per half would divide by a ceiling measured on half the stimuli, which for resampled halves
    (about 0.63 x n / 2 unique stimuli) comes close enough to 0 to give a heavy-tailed, exploding bootstrap.
    """

    raw: np.ndarray          # (R, J, 2, G): held-out mean-over-subjects r of the chosen layer
    ceiling: np.ndarray      # (R, J, 2, G): LOSO ceiling of the test half (NaN without one)
    selected: np.ndarray     # (R, J, 2, G): index of the layer chosen on the training half
    assignment: np.ndarray   # (R, J, n): halves of every split (0, 1; -1 for stimuli not drawn)
    ceiled: bool

    def region_scores(self) -> np.ndarray:
        """``(R, G)``: mean held-out r over splits and directions, divided by the mean ceiling when ceiled."""
        raw = self.raw.mean(axis=(1, 2))
        return raw / self.ceiling.mean(axis=(1, 2)) if self.ceiled else raw

    def headline(self) -> np.ndarray:
        """``(R,)``: the mean over regions of :meth:`region_scores` (the benchmark's score of each sample)."""
        return self.region_scores().mean(1)

    def split_values(self) -> np.ndarray:
        """``(R, J)`` per-split values whose mean over splits is exactly :meth:`headline`.

        Ceiled: the linearised ratio h + (raw_j - h ceiling_j) / mean ceiling per region (delta method), so that the
        split-to-split variance of a ratio of means can be estimated; otherwise the split's mean raw r.
        """
        raw, ceiling = self.raw.mean(2), self.ceiling.mean(2)                        # (R, J, G)
        if not self.ceiled:
            return raw.mean(-1)
        h = self.region_scores()[:, None, :]
        return (h + (raw - h * ceiling) / ceiling.mean(1, keepdims=True)).mean(-1)


def held_out(stack: RDMStack, counts: np.ndarray, labels: np.ndarray, n_splits: int, rng: np.random.Generator,
             ceiled: bool) -> HeldOut:
    """Run the procedure on every row of ``counts`` (R, n) with ``n_splits`` stratified half-splits each.

    Direction 0 chooses the layer on half 0 and scores it on half 1; direction 1 the reverse.
    """
    counts = np.atleast_2d(counts)
    R, n = counts.shape
    members = np.repeat(counts > 0, n_splits, axis=0)                             # (R * J, n)
    assignment = stratified_halves(labels, members, rng)
    layer_r, ceiling = (x.cpu().numpy() for x in half_statistics(stack, assignment,
                                                                  np.repeat(counts, n_splits, axis=0)))
    G, L = layer_r.shape[1:]
    layer_r = layer_r.reshape(R, n_splits, 2, G, L)
    ceiling = ceiling.reshape(R, n_splits, 2, G)
    train, test = [0, 1], [1, 0]
    selected = layer_r[:, :, train].argmax(-1)                                     # (R, J, 2, G)
    raw = np.take_along_axis(layer_r[:, :, test], selected[..., None], axis=-1)[..., 0]
    return HeldOut(raw, ceiling[:, :, test], selected, assignment.reshape(R, n_splits, n), ceiled)


def resample_counts(n: int, n_bootstrap: int, seed: int) -> np.ndarray:
    """``(B, n)`` multiplicities of stimuli drawn with replacement (the RSA metric's seeded resamples)."""
    samples = F.bootstrap_samples(n, n_bootstrap, seed).numpy()
    return np.stack([np.bincount(s, minlength=n) for s in samples])


def split_variance_correction(per_split: np.ndarray, n_splits: int) -> tuple[np.ndarray, float]:
    """Resample headlines as if each had averaged ``n_splits`` splits, from ``per_split`` (B, J) with J <= n_splits.

    The law of total variance: Var(mean of J splits) = Var(E[split score | sample]) + E[within-sample split
    variance] / J. With fewer splits per resample than the headline's, the bootstrap variance is too large by
    E[within] (1/J - 1/n_splits); the within-sample variance is estimated from each resample's own splits
    (unbiased, ddof 1), and the resample headlines are shrunk towards their mean by the matching factor (so SD and
    percentiles describe the n_splits headline). Returns (adjusted headlines, shrink factor).
    """
    means = per_split.mean(1)
    J = per_split.shape[1]
    if J >= n_splits:
        return means, 1.0
    if J < 2:
        raise InputError("the split-variance correction needs at least 2 splits per bootstrap resample")
    total = float(np.var(means, ddof=1))
    within = float(np.mean(np.var(per_split, axis=1, ddof=1)))
    target = max(total - within * (1.0 / J - 1.0 / n_splits), 0.0)
    factor = float(np.sqrt(target / total)) if total > 0 else 1.0
    return means.mean() + (means - means.mean()) * factor, factor
