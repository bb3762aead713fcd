"""A batched L-BFGS with strong-Wolfe line search: many independent problems advance together on one device.

Each problem follows exactly the algorithm of ``torch.optim.LBFGS(line_search_fn="strong_wolfe")`` (same two-loop
recursion, same curvature test ``y^T s > 1e-10``, same initial step ``min(1, 1/|g|_1)``, same bracketing and zoom
with cubic interpolation, same stopping tests), driven the way the reference code drives it: repeated ``step``
calls ("epochs", optimizer state kept between them) until the loss at the start of two consecutive steps differs by
less than ``epoch_rtol`` relatively, or ``max_epochs`` steps. The problems run in lock-step, one L-BFGS iteration
per round; within a round the line searches are vectorised with masks and only the problems that still need a
function value are evaluated, in one batched call. Finished problems stop (per-problem early stopping) and are
dropped from the batch once they are a fifth of it.

``fun(x, ids)`` must return the loss (float64, (b,)) and gradient ((b, n_params)) of problems ``ids`` at ``x``.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

Objective = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class LBFGSOptions:
    """Defaults are the reference code's (Avitan & Golan 2025, ``tools/utils.py`` and ``fit_W_matrix``)."""

    lr: float = 1.0
    max_iter: int = 150
    max_eval: int = 450
    tolerance_grad: float = 1e-7
    tolerance_change: float = 1e-4
    history_size: int = 50
    max_epochs: int = 100
    epoch_rtol: float = 1e-7
    c1: float = 1e-4
    c2: float = 0.9
    line_search_tolerance: float = 1e-9


@dataclass
class LBFGSResult:
    x: torch.Tensor            # (B, n_params) solutions
    loss: torch.Tensor         # (B,) float64 loss at the solutions
    epochs: torch.Tensor       # (B,) optimizer steps taken
    iterations: torch.Tensor   # (B,) L-BFGS iterations
    evaluations: torch.Tensor  # (B,) function evaluations (counting the one at each step start)


def _cubic(x1, f1, g1, x2, f2, g2, low=None, high=None):
    """Minimiser of the cubic through two points with slopes, clipped to [low, high] (torch's polyinterp)."""
    if low is None:
        low, high = torch.minimum(x1, x2), torch.maximum(x1, x2)
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    d2_square = d1 ** 2 - g1 * g2
    d2 = d2_square.clamp(min=0).sqrt()
    forward = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
    backward = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
    position = torch.where(x1 <= x2, forward, backward)
    clipped = torch.minimum(torch.maximum(position, low), high)
    return torch.where(d2_square >= 0, clipped, (low + high) / 2)


class _Problems:
    """Per-problem state, every tensor with the problem index as first dimension (so it can be compacted)."""

    def __init__(self, **tensors: torch.Tensor):
        self.__dict__.update(tensors)

    def keep(self, mask: torch.Tensor) -> None:
        for name, value in list(self.__dict__.items()):
            self.__dict__[name] = value[mask]


def minimize(fun: Objective, x0: torch.Tensor, options: LBFGSOptions = LBFGSOptions(),
             on_finish: Callable[[int], None] | None = None) -> LBFGSResult:
    """Minimise ``B`` problems from ``x0`` (B, n_params); see the module docstring."""
    o = options
    batch, n_params = x0.shape
    device, dtype = x0.device, x0.dtype
    m = o.history_size
    ids = torch.arange(batch, device=device)
    f, g = fun(x0, ids)
    long = dict(dtype=torch.long, device=device)
    st = _Problems(
        ids=ids, x=x0.clone(), f=f, g=g, d=torch.zeros_like(x0),
        t=torch.zeros(batch, dtype=torch.float64, device=device),
        prev_g=torch.zeros_like(x0), prev_f=torch.zeros_like(f),
        S=torch.zeros(batch, m, n_params, dtype=dtype, device=device),
        Y=torch.zeros(batch, m, n_params, dtype=dtype, device=device),
        rho=torch.zeros(batch, m, dtype=dtype, device=device), head=torch.zeros(batch, **long),
        count=torch.zeros(batch, **long), H=torch.ones(batch, dtype=dtype, device=device),
        n_global=torch.zeros(batch, **long), n_step=torch.zeros(batch, **long), evals_step=torch.ones(batch, **long),
        evals=torch.ones(batch, **long), epoch=torch.zeros(batch, **long), loss_prev=torch.full_like(f, float("nan")),
        loss_start=f.clone(), finished=torch.zeros(batch, dtype=torch.bool, device=device),
    )
    out = LBFGSResult(x0.clone(), f.clone(), torch.zeros(batch, **long), torch.zeros(batch, **long),
                      torch.zeros(batch, **long))

    def finish(mask: torch.Tensor) -> None:
        if not mask.any():
            return
        where = st.ids[mask]
        out.x[where], out.loss[where] = st.x[mask], st.f[mask]
        out.epochs[where] = st.epoch[mask] + 1
        out.iterations[where], out.evaluations[where] = st.n_global[mask], st.evals[mask]
        st.finished |= mask
        if on_finish is not None:
            on_finish(int(mask.sum()))

    def end_steps(mask: torch.Tensor) -> None:
        """A step returned: apply the epoch test, then start the next step of the others."""
        while mask.any():
            e = st.epoch
            scale = torch.maximum(st.loss_prev.abs(), st.loss_start.abs()) + 1e-10
            change = (st.loss_prev - st.loss_start).abs() / scale
            stop = mask & (((e > 1) & (change < o.epoch_rtol)) | (e + 1 >= o.max_epochs))
            finish(stop)
            go = mask & ~stop
            st.epoch = torch.where(go, e + 1, e)
            st.loss_prev = torch.where(go, st.loss_start, st.loss_prev)
            st.loss_start = torch.where(go, st.f, st.loss_start)
            st.n_step = torch.where(go, 0, st.n_step)
            st.evals_step = torch.where(go, 1, st.evals_step)
            st.evals = st.evals + go.long()              # the step's own evaluation at its start point
            mask = go & (st.g.abs().amax(dim=1) <= o.tolerance_grad)   # optimal already: the step returns at once

    end_steps(st.g.abs().amax(dim=1) <= o.tolerance_grad)
    while True:
        if st.finished.any() and (st.finished.float().mean() >= 0.2 or st.finished.all()):
            st.keep(~st.finished)
        if st.ids.numel() == 0:
            break
        run = ~st.finished
        st.n_step = st.n_step + run.long()
        st.n_global = st.n_global + run.long()
        first = run & (st.n_global == 1)
        later = run & ~first
        _update_history(st, later, m)
        st.count = torch.where(first, 0, st.count)
        st.head = torch.where(first, 0, st.head)
        st.H = torch.where(first, torch.ones_like(st.H), st.H)
        direction = _two_loop(st, m, later)
        st.d = torch.where(first[:, None], -st.g, torch.where(later[:, None], direction, st.d))
        st.prev_g = torch.where(run[:, None], st.g, st.prev_g)
        st.prev_f = torch.where(run, st.f, st.prev_f)
        initial = torch.clamp(1.0 / st.g.abs().sum(dim=1).double(), max=1.0) * o.lr
        st.t = torch.where(first, initial, torch.where(run, torch.full_like(st.t, o.lr), st.t))
        gtd = _dot(st.g, st.d).double()
        no_descent = run & (gtd > -o.tolerance_change)
        search = run & ~no_descent
        if search.any():
            idx = torch.nonzero(search).squeeze(1)
            f_new, g_new, t_new, n_ls = _strong_wolfe(fun, st.ids[idx], st.x[idx], st.t[idx], st.d[idx], st.f[idx],
                                                      st.g[idx], gtd[idx], o.max_eval - st.evals_step[idx], o)
            st.x[idx] = st.x[idx] + t_new.to(dtype)[:, None] * st.d[idx]
            st.f[idx], st.g[idx], st.t[idx] = f_new, g_new, t_new
            st.evals_step[idx] += n_ls
            st.evals[idx] += n_ls
        optimal = st.g.abs().amax(dim=1) <= o.tolerance_grad
        small_step = (st.d * st.t.to(dtype)[:, None]).abs().amax(dim=1) <= o.tolerance_change
        stalled = (st.f - st.prev_f).abs() < o.tolerance_change
        done = no_descent | (search & ((st.n_step == o.max_iter) | (st.evals_step >= o.max_eval) | optimal
                                       | small_step | stalled))
        end_steps(done)
    return out


def _update_history(st: _Problems, mask: torch.Tensor, m: int) -> None:
    """Store (s, y) where the curvature condition holds, as torch does (oldest dropped when full)."""
    y = st.g - st.prev_g
    s = st.d * st.t.to(st.d.dtype)[:, None]
    ys = _dot(y, s)
    store = mask & (ys > 1e-10)
    if not store.any():
        return
    idx = torch.nonzero(store).squeeze(1)
    slot = st.head[idx]
    st.S[idx, slot] = s[idx]
    st.Y[idx, slot] = y[idx]
    st.rho[idx, slot] = 1.0 / ys[idx]
    st.H[idx] = ys[idx] / _dot(y[idx], y[idx])
    st.head[idx] = (slot + 1) % m
    st.count[idx] = torch.clamp(st.count[idx] + 1, max=m)


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise dot products (B,) of (B, n) tensors; bmm is fast on strided views where vecdot is not."""
    return torch.bmm(a.unsqueeze(1), b.unsqueeze(2)).view(-1)


def _two_loop(st: _Problems, m: int, rows: torch.Tensor) -> torch.Tensor:
    """-H g by the two-loop recursion over each problem's history (newest first, then oldest first); only the
    problems in mask ``rows`` matter (the others get a meaningless direction)."""
    q = -st.g
    if not rows.any():
        return q
    heads, counts = st.head[rows], st.count[rows]
    depth = int(counts.max())
    if depth == 0:
        return q * st.H[:, None]
    if bool((heads == heads[0]).all()) and bool((counts == counts[0]).all()):
        # the usual lock-step case: every problem stored the same number of pairs, so slots are shared (views)
        slots = [(int(heads[0]) - 1 - age) % m for age in range(depth)]
        pairs = [(st.S[:, k], st.Y[:, k], st.rho[:, k]) for k in slots]
    else:
        index = torch.arange(q.shape[0], device=q.device)
        pairs = []
        for age in range(depth):
            slot = (st.head - 1 - age) % m
            rho = torch.where(age < st.count, st.rho[index, slot], 0.0)   # absent pairs have no effect
            pairs.append((st.S[index, slot], st.Y[index, slot], rho))
    alphas = []
    for s, y, rho in pairs:
        a = _dot(s, q) * rho
        q = q - a[:, None] * y
        alphas.append(a)
    r = q * st.H[:, None]
    for (s, y, rho), a in zip(reversed(pairs), reversed(alphas)):
        beta = _dot(y, r) * rho
        r = r + (a - beta)[:, None] * s
    return r


def _strong_wolfe(fun: Objective, ids, x, t, d, f, g, gtd, max_ls, o: LBFGSOptions):
    """torch's ``_strong_wolfe`` for many problems at once; returns (f, g, t, evaluations) per problem."""
    n = t.shape[0]
    dtype = x.dtype
    rows = torch.arange(n, device=x.device)
    d_norm = d.abs().amax(dim=1).double()

    f_new, g_new = fun(x + t.to(dtype)[:, None] * d, ids)
    evals = torch.ones(n, dtype=torch.long, device=x.device)
    gtd_new = _dot(g_new, d).double()
    ls_iter = torch.zeros(n, dtype=torch.long, device=x.device)

    def evaluate(mask: torch.Tensor, steps: torch.Tensor) -> None:
        """Objective at ``x + steps d`` for the problems in ``mask``; counts the evaluation."""
        nonlocal f_new, g_new, gtd_new
        idx = torch.nonzero(mask).squeeze(1)
        value, grad = fun(x[idx] + steps[idx].to(dtype)[:, None] * d[idx], ids[idx])
        f_new, g_new, gtd_new = f_new.clone(), g_new.clone(), gtd_new.clone()
        f_new[idx], g_new[idx], gtd_new[idx] = value, grad, _dot(grad, d[idx]).double()
        evals[idx] += 1
        ls_iter[idx] += 1
    t, t_prev, f_prev, g_prev, gtd_prev = t.clone(), torch.zeros_like(t), f.clone(), g.clone(), gtd.clone()
    b_t = torch.zeros(n, 2, dtype=torch.float64, device=x.device)
    b_f, b_gtd = torch.zeros_like(b_t), torch.zeros_like(b_t)
    b_g = torch.zeros(n, 2, x.shape[1], dtype=dtype, device=x.device)
    phase = torch.zeros(n, dtype=torch.long, device=x.device)     # 0 bracketing, 1 zoom, 2 finished
    done = torch.zeros(n, dtype=torch.bool, device=x.device)

    def set_bracket(mask, t0, f0, g0, gtd0, t1, f1, g1, gtd1):
        b_t[mask] = torch.stack([t0[mask], t1[mask]], dim=1)
        b_f[mask] = torch.stack([f0[mask], f1[mask]], dim=1)
        b_gtd[mask] = torch.stack([gtd0[mask], gtd1[mask]], dim=1)
        b_g[mask] = torch.stack([g0[mask], g1[mask]], dim=1)

    while True:
        active = (phase == 0) & (ls_iter < max_ls)
        if not active.any():
            break
        armijo = (f_new > f + o.c1 * t * gtd) | ((ls_iter > 1) & (f_new >= f_prev))
        wolfe = ~armijo & (gtd_new.abs() <= -o.c2 * gtd)
        uphill = ~armijo & ~wolfe & (gtd_new >= 0)
        bracketed = active & (armijo | uphill)
        set_bracket(bracketed, t_prev, f_prev, g_prev, gtd_prev, t, f_new, g_new, gtd_new)
        phase[bracketed] = 1
        found = active & wolfe
        set_bracket(found, t, f_new, g_new, gtd_new, t, f_new, g_new, gtd_new)
        phase[found], done[found] = 2, True
        extend = active & ~armijo & ~wolfe & ~uphill
        if not extend.any():
            continue
        new_t = _cubic(t_prev, f_prev, gtd_prev, t, f_new, gtd_new, t + 0.01 * (t - t_prev), t * 10)
        t_prev = torch.where(extend, t, t_prev)
        f_prev = torch.where(extend, f_new, f_prev)
        gtd_prev = torch.where(extend, gtd_new, gtd_prev)
        g_prev = torch.where(extend[:, None], g_new, g_prev)
        t = torch.where(extend, new_t, t)
        evaluate(extend, t)

    exhausted = phase == 0                                  # bracket [0, t] after max_ls extensions
    set_bracket(exhausted, torch.zeros_like(t), f, g, gtd, t, f_new, g_new, gtd_new)
    phase[exhausted] = 1
    low = (b_f[:, 0] > b_f[:, 1]).long()
    insufficient = torch.zeros(n, dtype=torch.bool, device=x.device)
    while True:
        active = (phase == 1) & ~done & (ls_iter < max_ls)
        tiny = active & ((b_t[:, 1] - b_t[:, 0]).abs() * d_norm < o.line_search_tolerance)
        active = active & ~tiny
        if not active.any():
            break
        trial = _cubic(b_t[:, 0], b_f[:, 0], b_gtd[:, 0], b_t[:, 1], b_f[:, 1], b_gtd[:, 1])
        top, bottom = b_t.max(dim=1).values, b_t.min(dim=1).values
        eps = 0.1 * (top - bottom)
        near = torch.minimum(top - trial, trial - bottom) < eps
        move = near & (insufficient | (trial >= top) | (trial <= bottom))
        moved = torch.where((trial - top).abs() < (trial - bottom).abs(), top - eps, bottom + eps)
        trial = torch.where(move, moved, trial)
        insufficient = torch.where(active, near & ~move, insufficient)
        t = torch.where(active, trial, t)
        evaluate(active, t)
        high = 1 - low
        f_low = b_f[rows, low]
        worse = active & ((f_new > f + o.c1 * t * gtd) | (f_new >= f_low))
        better = active & ~worse
        w = torch.nonzero(worse).squeeze(1)
        b_t[w, high[w]], b_f[w, high[w]], b_gtd[w, high[w]] = t[w], f_new[w], gtd_new[w]
        b_g[w, high[w]] = g_new[w]
        low = torch.where(worse, (b_f[:, 0] > b_f[:, 1]).long(), low)
        done = done | (better & (gtd_new.abs() <= -o.c2 * gtd))
        swap = better & ~(gtd_new.abs() <= -o.c2 * gtd) & (gtd_new * (b_t[rows, high] - b_t[rows, low]) >= 0)
        s = torch.nonzero(swap).squeeze(1)
        b_t[s, high[s]], b_f[s, high[s]], b_gtd[s, high[s]] = b_t[s, low[s]], b_f[s, low[s]], b_gtd[s, low[s]]
        b_g[s, high[s]] = b_g[s, low[s]]
        b = torch.nonzero(better).squeeze(1)
        b_t[b, low[b]], b_f[b, low[b]], b_gtd[b, low[b]] = t[b], f_new[b], gtd_new[b]
        b_g[b, low[b]] = g_new[b]
    return b_f[rows, low], b_g[rows, low], b_t[rows, low], evals
