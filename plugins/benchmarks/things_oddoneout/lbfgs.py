"""A batched L-BFGS with strong-Wolfe line search: many independent problems advance together on one device.

Each problem follows exactly the algorithm of ``torch.optim.LBFGS(line_search_fn="strong_wolfe")`` (the direction of
its two-loop recursion, here computed in the equivalent compact form, the same curvature test ``y^T s > 1e-10``,
same initial step ``min(1, 1/|g|_1)``, same bracketing and zoom with cubic interpolation, same stopping tests),
driven the way the reference code drives it: repeated ``step`` calls ("epochs", optimizer state kept between them)
until the loss at the start of two consecutive steps differs by less than ``epoch_rtol`` relatively, or
``max_epochs`` steps. The problems run in lock-step, one L-BFGS iteration
per round; within a round the line searches are vectorised with masks and only the problems that still need a
function value are evaluated, in one batched call. Finished problems stop (per-problem early stopping) and are
dropped from the batch at the start of the next round (the survivors behind them move forward into their rows).

The host decides only what needs a decision: a usual round asks the device twice, once when the line searches ask
"does any problem need another evaluation?" and once at the end of the round for the finished problems. Every other
choice (which pairs to store, which problems search) is a mask on the device, and every wait goes through
:func:`_ask`, so the waits are easy to find and count (on the GPU, a wait per decision had left the device idle
more than half the time).

``fun(x, ids)`` must return the loss (float64, (b,)) and gradient ((b, n_params)) of problems ``ids`` at ``x``.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

#: Bytes of problem rows moved at once when finished problems are dropped (bounds the temporaries).
MOVE_BYTES = 2 ** 28

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

    def compact(self, keep: torch.Tensor) -> None:
        """Keep the problems where the host mask ``keep`` is true: those behind a gap move forward into it and every
        tensor is cut to the kept rows (a view). Only the moved rows are copied, a few at a time, so the history (the
        bulk of the memory) is never copied whole nor held twice."""
        kept = int(keep.sum())
        holes = torch.nonzero(~keep[:kept]).squeeze(1)
        movers = torch.nonzero(keep[kept:]).squeeze(1) + kept
        if holes.numel():
            holes, movers = _to_device(torch.stack([holes, movers]), self.ids.device)     # one copy
        for name, value in list(self.__dict__.items()):
            row_bytes = value[0].numel() * value.element_size() if value.ndim > 1 else 1
            step = max(1, MOVE_BYTES // max(row_bytes, 1))
            for start in range(0, holes.numel(), step):
                value[holes[start:start + step]] = value[movers[start:start + step]]
            self.__dict__[name] = value[:kept]


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
        SY=torch.zeros(batch, m, m, dtype=torch.float64, device=device),
        YY=torch.zeros(batch, m, m, dtype=torch.float64, device=device), head=torch.zeros(batch, **long),
        count=torch.zeros(batch, **long), H=torch.ones(batch, dtype=dtype, device=device),
        n_global=torch.zeros(batch, **long), n_step=torch.zeros(batch, **long), evals_step=torch.ones(batch, **long),
        evals=torch.ones(batch, **long), epoch=torch.zeros(batch, **long), loss_prev=torch.full_like(f, float("nan")),
        loss_start=f.clone(), finished=torch.zeros(batch, dtype=torch.bool, device=device),
    )
    out = LBFGSResult(x0.clone(), f.clone(), torch.zeros(batch, **long), torch.zeros(batch, **long),
                      torch.zeros(batch, **long))

    def retire(finished: torch.Tensor) -> None:
        """Record the results of the finished problems (host mask) and drop them from the batch."""
        done = _to_device(torch.nonzero(finished).squeeze(1), device)
        where = st.ids[done]
        out.x[where], out.loss[where] = st.x[done], st.f[done]
        out.epochs[where] = st.epoch[done] + 1
        out.iterations[where], out.evaluations[where] = st.n_global[done], st.evals[done]
        st.compact(~finished)
        if on_finish is not None:
            on_finish(done.numel())

    def end_steps(mask: torch.Tensor, optimal: torch.Tensor) -> torch.Tensor:
        """A step returned: apply the epoch test, then start the next step of the others. Returns the problems whose
        new step returns at once (gradient already optimal), which go through the epoch test again."""
        e = st.epoch
        scale = torch.maximum(st.loss_prev.abs(), st.loss_start.abs()) + 1e-10
        change = (st.loss_prev - st.loss_start).abs() / scale
        stop = mask & (((e > 1) & (change < o.epoch_rtol)) | (e + 1 >= o.max_epochs))
        st.finished |= stop
        go = mask & ~stop
        st.epoch = torch.where(go, e + 1, e)
        st.loss_prev = torch.where(go, st.loss_start, st.loss_prev)
        st.loss_start = torch.where(go, st.f, st.loss_start)
        st.n_step = torch.where(go, 0, st.n_step)
        st.evals_step = torch.where(go, 1, st.evals_step)
        st.evals = st.evals + go.long()              # the step's own evaluation at its start point
        return go & optimal

    def close_round(done: torch.Tensor, optimal: torch.Tensor) -> torch.Tensor:
        """End the steps of ``done``; the round's one wait, which returns the finished problems (host mask)."""
        again = end_steps(done, optimal)
        while True:
            flags = _ask(torch.cat([st.finished, again.any()[None]]))
            if not bool(flags[-1]):
                return flags[:-1]
            again = end_steps(again, optimal)

    optimal = _max_abs(st.g) <= o.tolerance_grad
    finished = close_round(optimal, optimal)
    rounds = 0                       # every problem starts together: round 0 is every problem's first iteration
    while True:
        if bool(finished.any()):     # drop finished problems at once: only the rows behind them move
            retire(finished)
        if st.ids.numel() == 0:
            break
        st.n_step = st.n_step + 1
        st.n_global = st.n_global + 1
        if rounds == 0:
            st.d = -st.g
            st.t = torch.clamp(1.0 / st.g.abs().sum(dim=1).double(), max=1.0) * o.lr
        else:   # a problem has stored at most one pair per earlier round: slots [0, depth) hold them all
            st.d = _store_pair_and_direction(st, m, depth=min(m, rounds))
            st.t = torch.full_like(st.t, o.lr)
        rounds += 1
        st.prev_g, st.prev_f = st.g, st.f      # f and g are replaced below, never changed in place
        gtd = _dot(st.g, st.d).double()
        no_descent = gtd > -o.tolerance_change
        search = ~no_descent                   # the others stop before their line search, x unchanged
        f_new, g_new, t_new, n_ls = _strong_wolfe(fun, st.ids, st.x, st.t, st.d, st.f, st.g, gtd,
                                                  o.max_eval - st.evals_step, o, searching=search)
        st.x = torch.where(search[:, None], st.x + t_new.to(dtype)[:, None] * st.d, st.x)
        st.f, st.g = torch.where(search, f_new, st.f), torch.where(search[:, None], g_new, st.g)
        st.t = torch.where(search, t_new, st.t)
        n_ls = n_ls * search
        st.evals_step = st.evals_step + n_ls
        st.evals = st.evals + n_ls
        optimal = _max_abs(st.g) <= o.tolerance_grad
        small_step = _max_abs(st.d) * st.t.to(dtype) <= o.tolerance_change   # = max |t d|: rounding is monotonic
        stalled = (st.f - st.prev_f).abs() < o.tolerance_change
        done = no_descent | (search & ((st.n_step == o.max_iter) | (st.evals_step >= o.max_eval) | optimal
                                       | small_step | stalled))
        finished = close_round(done, optimal)
    return out


def _max_abs(v: torch.Tensor) -> torch.Tensor:
    """Row-wise max |v| (B,), without an |v| temporary."""
    return torch.linalg.vector_norm(v, ord=float("inf"), dim=1)


def _store_pair_and_direction(st: _Problems, m: int, depth: int) -> torch.Tensor:
    """For every problem of the batch: store the newest pair ``(s, y)`` where the curvature condition holds (as torch:
    ``y^T s > 1e-10``, oldest pair dropped when full, ``H = y^T s / y^T y``), then return ``-H g``, the direction of
    torch's two-loop recursion, in the compact form of Byrd, Nocedal & Schnabel (1994):

        H g = gamma g + S R^-T [(D + gamma Y^T Y) u - gamma Y^T g] - gamma Y u,   u = R^-1 S^T g,

    with the pairs oldest first, ``R`` the upper triangle of ``S^T Y``, ``D`` its diagonal and ``gamma = H``. The
    two-loop reads and rewrites the whole direction once per stored pair (10 vector passes per pair); here the
    history is read twice per iteration, once for its products with ``[y, g]`` and once for the combination, in a
    fixed number of kernels whatever its length. ``S^T Y`` and ``Y^T Y`` are kept up to date in float64, one new
    column per stored pair. ``depth`` bounds every problem's number of pairs (known on the host: no device sync)."""
    dtype = st.g.dtype
    y = st.g - st.prev_g
    s = st.d * st.t.to(dtype)[:, None]
    ys = _dot(y, s)
    store = ys > 1e-10                     # a mask, not a list of rows: choosing rows would wait for the device
    keep = store[:, None]
    rows = torch.arange(store.numel(), device=store.device)
    slot = st.head
    st.S[rows, slot] = torch.where(keep, s, st.S[rows, slot])     # the slot is the oldest pair's once the ring is full
    st.Y[rows, slot] = torch.where(keep, y, st.Y[rows, slot])
    st.H = torch.where(store, ys / _dot(y, y), st.H)
    st.head = torch.where(store, (slot + 1) % m, slot)
    st.count = torch.where(store, torch.clamp(st.count + 1, max=m), st.count)
    gamma = st.H.double()
    S, Y = st.S[:, :depth], st.Y[:, :depth]
    both = torch.stack([y, st.g], dim=1)                  # (B, 2, n); this orientation runs at memory speed
    s_both = torch.bmm(both, S.transpose(1, 2)).transpose(1, 2).double()       # (B, depth, 2): one pass each
    y_both = torch.bmm(both, Y.transpose(1, 2)).transpose(1, 2).double()
    span, column = torch.arange(depth, device=slot.device)[None, :], slot[:, None]
    for products, index, value in ((st.SY, (rows[:, None], span, column), s_both[:, :, 0]),    # s_i^T y_new
                                   (st.YY, (rows[:, None], span, column), y_both[:, :, 0]),    # y_i^T y_new ...
                                   (st.YY, (rows[:, None], column, span), y_both[:, :, 0])):   # ... and its transpose
        products[index] = torch.where(keep, value, products[index])
    ages = torch.arange(depth, device=st.g.device)
    valid = ages[None, :] < st.count[:, None]                                   # (B, depth), oldest first
    order = torch.where(valid, (st.head[:, None] - st.count[:, None] + ages[None, :]) % m, ages[None, :])
    both_valid = (valid[:, :, None] & valid[:, None, :]).double()

    def by_age(products: torch.Tensor) -> torch.Tensor:
        rows_first = products[:, :depth, :depth].gather(1, order[:, :, None].expand(-1, -1, depth))
        return rows_first.gather(2, order[:, None, :].expand(-1, depth, -1)) * both_valid

    r = torch.triu(by_age(st.SY)) + torch.diag_embed((~valid).double())      # absent pairs: identity rows
    yy = by_age(st.YY)
    sg = s_both[:, :, 1].gather(1, order) * valid
    yg = y_both[:, :, 1].gather(1, order) * valid
    u = torch.linalg.solve_triangular(r, sg[:, :, None], upper=True)
    rhs = torch.diagonal(r, dim1=1, dim2=2)[:, :, None] * valid[:, :, None] * u \
        + gamma[:, None, None] * (torch.bmm(yy, u) - yg[:, :, None])
    w = torch.linalg.solve_triangular(r.transpose(1, 2), rhs, upper=False)
    coef_s = torch.zeros_like(sg).scatter(1, order, w[:, :, 0] * valid)
    coef_y = torch.zeros_like(sg).scatter(1, order, gamma[:, None] * u[:, :, 0] * valid)
    direction = torch.baddbmm((-st.H[:, None] * st.g).unsqueeze(1), (-coef_s).to(dtype).unsqueeze(1), S)
    return torch.baddbmm(direction, coef_y.to(dtype).unsqueeze(1), Y).squeeze(1)


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise dot products (B,) of (B, n) tensors; bmm is fast on strided views where vecdot is not."""
    return torch.bmm(a.unsqueeze(1), b.unsqueeze(2)).view(-1)


def _strong_wolfe(fun: Objective, ids, x, t, d, f, g, gtd, max_ls, o: LBFGSOptions,
                  searching: torch.Tensor | None = None):
    """torch's ``_strong_wolfe`` for many problems at once; returns (f, g, t, evaluations) per problem.

    Only the problems in ``searching`` (default: all) search; the others are evaluated once with the rest (the first
    trial is one batched call) and their returned values are meaningless. Full-length vectors are copied only where
    the algorithm needs them: a problem whose first trial meets the Wolfe conditions (the usual case) returns the
    gradient of that evaluation as it is; the gradients at the ends of a bracket are kept only for the problems that
    go on to zoom. The host waits for the device once per round of trials, for the counts that steer the loop."""
    n = t.shape[0]
    dtype = x.dtype
    rows = torch.arange(n, device=x.device)
    d_norm = _max_abs(d).double()

    f_new, g_new = fun(x + t.to(dtype)[:, None] * d, ids)
    evals = torch.ones(n, dtype=torch.long, device=x.device)
    gtd_new = _dot(g_new, d).double()
    ls_iter = torch.zeros(n, dtype=torch.long, device=x.device)

    def evaluate(mask: torch.Tensor, count: int, steps: torch.Tensor) -> torch.Tensor:
        """Objective at ``x + steps d`` for the ``count`` problems in ``mask`` (returned as indices); counts the
        evaluation. The rows of the others are left as they are (a finished problem's last evaluation is its
        result)."""
        nonlocal f_new, g_new, gtd_new, evals, ls_iter
        idx = _rows_of(mask, count)
        if count == n:
            f_new, g_new = fun(x + steps.to(dtype)[:, None] * d, ids)
            gtd_new = _dot(g_new, d).double()
        else:
            value, grad = fun(x[idx] + steps[idx].to(dtype)[:, None] * d[idx], ids[idx])
            f_new[idx], g_new[idx], gtd_new[idx] = value, grad, _dot(grad, d[idx]).double()
        evals = evals + mask.long()
        ls_iter = ls_iter + mask.long()
        return idx
    t_prev, f_prev, g_prev, gtd_prev = torch.zeros_like(t), f, g, gtd     # replaced, never changed in place
    b_t = torch.zeros(n, 2, dtype=torch.float64, device=x.device)
    b_f, b_gtd = torch.zeros_like(b_t), torch.zeros_like(b_t)
    b_g: torch.Tensor | None = None                                # (n, 2, n_params) once a problem brackets
    phase = torch.zeros(n, dtype=torch.long, device=x.device)     # 0 bracketing, 1 zoom, 2 finished
    if searching is not None:
        phase = torch.where(searching, phase, 2)                   # the others are finished before they start
    done = torch.zeros(n, dtype=torch.bool, device=x.device)

    def set_bracket(mask, t0, f0, gtd0, t1, f1, gtd1, grads=None, count=0):
        nonlocal b_t, b_f, b_gtd, b_g
        b_t = torch.where(mask[:, None], torch.stack([t0, t1], dim=1), b_t)
        b_f = torch.where(mask[:, None], torch.stack([f0, f1], dim=1), b_f)
        b_gtd = torch.where(mask[:, None], torch.stack([gtd0, gtd1], dim=1), b_gtd)
        if grads is None or not count:
            return
        idx = _rows_of(mask, count)
        if b_g is None:
            b_g = torch.empty(n, 2, x.shape[1], dtype=dtype, device=x.device)
        b_g[idx, 0], b_g[idx, 1] = grads[0][idx], grads[1][idx]

    while True:
        active = (phase == 0) & (ls_iter < max_ls)
        armijo = (f_new > f + o.c1 * t * gtd) | ((ls_iter > 1) & (f_new >= f_prev))
        wolfe = ~armijo & (gtd_new.abs() <= -o.c2 * gtd)
        uphill = ~armijo & ~wolfe & (gtd_new >= 0)
        bracketed = active & (armijo | uphill)
        extend = active & ~armijo & ~wolfe & ~uphill
        found = active & wolfe
        phase = torch.where(bracketed, 1, torch.where(found, 2, phase))
        n_bracketed, n_extend, n_waiting, n_zoom = _ask(torch.stack(        # the one wait per trial
            [bracketed.sum(), extend.sum(), (phase == 0).sum(), (phase == 1).sum()])).tolist()
        set_bracket(bracketed, t_prev, f_prev, gtd_prev, t, f_new, gtd_new, grads=(g_prev, g_new), count=n_bracketed)
        set_bracket(found, t, f_new, gtd_new, t, f_new, gtd_new)   # its gradient stays in g_new
        if not n_extend:             # nobody is left bracketing: the waiting ones ran out of evaluations
            break
        new_t = _cubic(t_prev, f_prev, gtd_prev, t, f_new, gtd_new, t + 0.01 * (t - t_prev), t * 10)
        t_prev = torch.where(extend, t, t_prev)
        f_prev = torch.where(extend, f_new, f_prev)
        gtd_prev = torch.where(extend, gtd_new, gtd_prev)
        g_prev = torch.where(extend[:, None], g_new, g_prev)
        t = torch.where(extend, new_t, t)
        evaluate(extend, n_extend, t)

    if not (n_waiting or n_zoom):                           # the usual case: every problem found its step
        return b_f[:, 0], g_new, b_t[:, 0], evals
    exhausted = phase == 0                                  # bracket [0, t] after max_ls extensions
    set_bracket(exhausted, torch.zeros_like(t), f, gtd, t, f_new, gtd_new, grads=(g, g_new), count=n_waiting)
    phase = torch.where(exhausted, 1, phase)
    low = (b_f[:, 0] > b_f[:, 1]).long()
    insufficient = torch.zeros(n, dtype=torch.bool, device=x.device)
    while True:
        active = (phase == 1) & ~done & (ls_iter < max_ls)
        tiny = active & ((b_t[:, 1] - b_t[:, 0]).abs() * d_norm < o.line_search_tolerance)
        active = active & ~tiny
        n_active = int(_ask(active.sum()))                                 # the one wait per zoom trial
        if not n_active:
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
        idx = evaluate(active, n_active, t)
        high = 1 - low
        at_high = torch.nn.functional.one_hot(high, 2).bool()              # (n, 2): which end is high / low
        f_low = b_f[rows, low]
        worse = active & ((f_new > f + o.c1 * t * gtd) | (f_new >= f_low))
        better = active & ~worse
        wolfe = gtd_new.abs() <= -o.c2 * gtd
        done = done | (better & wolfe)
        swap = better & ~wolfe & (gtd_new * (b_t[rows, high] - b_t[rows, low]) >= 0)
        new_high, swap_high, new_low = worse[:, None] & at_high, swap[:, None] & at_high, better[:, None] & ~at_high
        ends = []
        for end, point in ((b_t, t), (b_f, f_new), (b_gtd, gtd_new)):
            end = torch.where(new_high, point[:, None], end)              # worse: the trial replaces the high end
            end = torch.where(swap_high, end[rows, low][:, None], end)     # swap: the low end becomes the high end
            ends.append(torch.where(new_low, point[:, None], end))         # better: the trial becomes the low end
        b_t, b_f, b_gtd = ends
        low = torch.where(worse, (b_f[:, 0] > b_f[:, 1]).long(), low)
        sub, grad = b_g[idx], g_new[idx][:, None, :]                       # gradients: the evaluated rows only
        sub = torch.where(new_high[idx][:, :, None], grad, sub)
        sub = torch.where(swap_high[idx][:, :, None], sub[torch.arange(idx.numel(), device=idx.device),
                                                         1 - high[idx]][:, None, :], sub)
        b_g[idx] = torch.where(new_low[idx][:, :, None], grad, sub)
    g_new = torch.where((phase == 1)[:, None], b_g[rows, low], g_new)      # zoomed: the gradient at the low end
    return b_f[rows, low], g_new, b_t[rows, low], evals


def _rows_of(mask: torch.Tensor, count: int) -> torch.Tensor:
    """The indices of a mask whose number of true entries the host already knows (no wait for the device)."""
    return torch.nonzero_static(mask, size=count).squeeze(1)


def _ask(value: torch.Tensor) -> torch.Tensor:
    """``value`` on the host: the solver's only waits for the device (each empties the GPU's queue)."""
    return value.cpu()


def _to_device(host: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A host tensor on ``device`` without waiting for the device (a plain copy to a GPU waits for its queue)."""
    if device.type != "cuda":
        return host.to(device)
    return host.pin_memory().to(device, non_blocking=True)
