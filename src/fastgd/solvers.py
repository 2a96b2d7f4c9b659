r"""Solvers: minimise the fastgd objective over (w, b) with the selected backend's kernels.

.. math::

    F(w, b) = \underbrace{\mathrm{loss}(w, b) + l_2 \sum w^2}_{f\ \text{(smooth)}}
              + \underbrace{l_1 \sum |w|}_{\text{proximal}}

Every solver reaches the data only through the backend's fused ``loss_grad`` and its
``gd_step`` (the proximal step); it never knows which backend runs.

Stopping rule (all full-batch solvers): the iteration stops when the infinity norm of the
gradient mapping :math:`G = (x - \mathrm{prox}_{\eta l_1}(x - \eta \nabla f(x)))/\eta`
(the gradient itself when ``l1 = 0``; the projected gradient for ``lbfgs``) is at most
``tol``, or after ``max_iter`` iterations. ``sgd`` stops by the same test at the end of an
epoch when it is variance-reduced (the default: the full gradient is computed there), or
when the full objective has not decreased by more than ``tol * max(1, F)`` for
``n_iter_no_change`` epochs (with the ``adaptive`` schedule: once the step has been divided
down to 1e-6 of its start).
"""

import contextlib
import math
import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse
from threadpoolctl import threadpool_limits

from . import _dask, _registry, _validate

SOLVERS = ("auto", "gd", "momentum", "nesterov", "fista", "sgd", "lbfgs")
_FIXED_STEP = ("gd", "momentum", "nesterov", "sgd")  # lr is the step (fista's is a first guess)
_AUTO_STEP_RETRIES = 3
SCHEDULES = ("constant", "invscaling", "adaptive")
VARIANCE_REDUCTIONS = ("svrg", None)


_MIN_LIPSCHITZ = 1e-12


class DivergenceError(FloatingPointError):
    """The objective grew without bound: the learning rate is too large for the problem."""


@dataclass
class OptimizeResult:
    """What :func:`minimize` found.

    Attributes
    ----------
    coef : ndarray of shape (n_features,) or (n_features, k), in X's dtype
    intercept : scalar of X's dtype, or ndarray of shape (k,)
    objective : float, F at (coef, intercept)
    n_iter : int, iterations (epochs for ``sgd``)
    converged : bool, whether the stopping rule was met before ``max_iter``
    history : ndarray of float, the objective after each iteration (index 0: the start)
    solver : str, the solver that ran (``auto`` resolved)
    lr : float or None, the step used (the last one for ``fista`` and ``sgd``)
    """

    coef: np.ndarray
    intercept: object
    objective: float
    n_iter: int
    converged: bool
    history: np.ndarray = field(repr=False)
    solver: str = ""
    lr: float | None = None
    message: str = ""


class Problem:
    """Validated data, loss, penalties and backend: the objective F and its pieces.

    Solvers call :meth:`loss_grad` (the kernel), :meth:`step` (the proximal step) and
    :meth:`objective`; ``n_passes`` counts the passes over X.
    """

    def __init__(self, X, y, loss, l1, l2, sample_weight, fit_intercept, module, n_classes=None):
        self.X, self.y, self.loss, self.l1, self.l2 = X, y, loss, l1, l2
        self.sample_weight, self.fit_intercept, self.module = sample_weight, fit_intercept, module
        self.dtype = X.dtype
        self.n_samples, self.n_features = X.shape
        self.n_classes = n_classes
        self.n_passes = 0
        self._last = None  # (w, b, result) of the last loss_grad
        # A backend with its own device memory (cuda) gets the data there once, for every
        # full pass of the fit; the host arrays stay for what runs on the host (row norms,
        # mini-batch gathers).
        to_device = getattr(module, "device_copy", None)
        if to_device is not None and not sparse.issparse(X):
            sw = None if sample_weight is None else to_device(sample_weight)
            self._data = (to_device(X), to_device(y), sw)
            self._zeros_y = to_device(np.zeros(self.n_samples, self.dtype))
        else:
            self._data = (X, y, sample_weight)
            self._zeros_y = None

    @classmethod
    def from_user(cls, X, y, *, loss, l1, l2, sample_weight, fit_intercept, backend, n_classes=None):
        loss = _validate.check_loss(loss)
        if _dask.is_dask_array(X):
            X, y, sample_weight, module, n_classes = _dask.prepare(
                X, y, loss, sample_weight, backend, n_classes
            )
            l1, l2 = _validate.check_param("l1", l1), _validate.check_param("l2", l2)
            return cls(X, y, loss, l1, l2, sample_weight, bool(fit_intercept), module, n_classes)
        module = _registry.resolve(backend)
        X = _validate.check_X(X)
        _validate.check_backend_takes(module, X)
        n, d = X.shape
        if loss == "softmax":
            labels = _validate.check_targets(y, "softmax", n, X.dtype)
            if n_classes is None:
                n_classes = int(labels.max()) + 1
            if n_classes < 2:
                raise ValueError("softmax needs at least 2 classes (labels 0..k-1 with k >= 2)")
        y = _validate.check_targets(y, loss, n, X.dtype, n_classes)
        if loss == "logistic":  # one byte a row for every pass of the fit (float y: n bytes once)
            y = _validate.binary_labels(y, check_values=False)
        sample_weight = _validate.check_sample_weight(sample_weight, n, X.dtype)
        l1, l2 = _validate.check_param("l1", l1), _validate.check_param("l2", l2)
        return cls(X, y, loss, l1, l2, sample_weight, bool(fit_intercept), module, n_classes)

    # --- shapes -------------------------------------------------------------------
    def zeros(self):
        """A starting point (w, b) of zeros."""
        if self.loss == "softmax":
            return np.zeros((self.n_features, self.n_classes), self.dtype), np.zeros(
                self.n_classes, self.dtype
            )
        return np.zeros(self.n_features, self.dtype), self.dtype.type(0)

    # --- evaluations --------------------------------------------------------------
    def loss_grad(self, w, b):
        """(loss, grad_w, grad_b) of the data term; grad_b is zero without an intercept.

        The last point's result is kept: asked for the same (w, b) again (L-BFGS evaluates
        its start after the monitor has, and the objective reported at the end is usually
        at scipy's last point), it is returned without another pass over X.
        """
        last = self._last
        if last is not None and np.array_equal(last[0], w) and np.array_equal(last[1], b):
            value, gw, gb = last[2]
            return value, gw.copy(), gb.copy() if np.ndim(gb) else gb
        self.n_passes += 1
        X, y, sample_weight = self._data
        value, gw, gb = self.module.loss_grad(X, y, w, b, self.loss, sample_weight)
        if not self.fit_intercept:
            gb = gb * 0
        self._last = (np.array(w, copy=True), np.array(b, copy=True), (value, gw, gb))
        return value, gw.copy(), gb.copy() if np.ndim(gb) else gb

    def penalty(self, w):
        return self.module.penalty(w, self.l1, self.l2)

    def objective(self, w, b):
        return self.loss_grad(w, b)[0] + self.penalty(w)

    def step(self, w, b, gw, gb, lr):
        """Proximal gradient step from (w, b) with the data gradient (gw, gb); w in place."""
        self.module.gd_step(w, gw, lr, self.l1, self.l2)
        return w, (b - self.dtype.type(lr) * gb) if self.fit_intercept else b

    def lipschitz(self, n_iter=30, seed=0):
        r"""Estimate of the Lipschitz constant of :math:`\nabla f` (power iteration).

        The mse Hessian is :math:`H = 2 A^\top S A / \sum s` with A = [X, 1]; the kernel's
        mse gradient at targets 0 is exactly :math:`H v`, so the power iteration runs on
        fastgd's own kernel. logistic curvature is at most 1/8 of it, softmax at most 1/4.
        """
        rng = np.random.default_rng(seed)
        X, _, sample_weight = self._data
        zeros_y = np.zeros(self.n_samples, self.dtype) if self._zeros_y is None else self._zeros_y
        v = rng.standard_normal(self.n_features)
        vb = 1.0 if self.fit_intercept else 0.0
        lam = 0.0
        settled = 0
        for it in range(n_iter):
            norm = math.sqrt(float(v @ v) + vb * vb)
            v, vb = v / norm, vb / norm
            self.n_passes += 1
            _, hv, hb = self.module.loss_grad(X, zeros_y, v.astype(self.dtype), vb, "mse", sample_weight)
            v = hv.astype(np.float64)
            vb = float(hb) if self.fit_intercept else 0.0
            lam_new = math.sqrt(float(v @ v) + vb * vb)
            # Stop once two changes in a row are small, after a few iterations: a start
            # close to a lower eigenvector moves slowly at first and must not stop there.
            settled = settled + 1 if abs(lam_new - lam) <= 1e-3 * lam_new else 0
            lam = lam_new
            if lam == 0.0 or (settled >= 2 and it >= 4):  # 0: the data term is flat
                break
        lam *= 1.02  # the power iteration approaches from below
        factor = {"mse": 1.0, "logistic": 1.0 / 8.0, "softmax": 1.0 / 4.0}[self.loss]
        # A floor keeps 1/L finite when the data term is flat (all-zero X without an
        # intercept); any L at least the true one gives a safe step, so it costs nothing else.
        return max(lam * factor + 2.0 * self.l2, _MIN_LIPSCHITZ)

    def batch_lipschitz(self, batch_size):
        r"""Lipschitz estimate of the gradient of the loss on a random batch of ``batch_size`` rows.

        Interpolates between the full-data constant L (a batch of n) and the largest
        per-row constant :math:`L_{max} = c \max_i 2 s_i (\|x_i\|^2 + 1) n / \sum s`
        (a batch of one) as :math:`\frac{n(m-1)}{m(n-1)} L + \frac{n-m}{m(n-1)} L_{max}`,
        the expected smoothness of sampling m rows without replacement. One extra pass over
        X for the row norms.
        """
        n = self.n_samples
        full = self.lipschitz()
        m = min(int(batch_size), n)
        if m >= n:
            return full
        if sparse.issparse(self.X):
            sq = np.asarray(self.X.multiply(self.X).sum(axis=1), dtype=np.float64).ravel()
        else:
            sq = np.einsum("ij,ij->i", self.X, self.X, dtype=np.float64)
        if self.fit_intercept:
            sq += 1.0
        if self.sample_weight is not None:
            sw = self.sample_weight.astype(np.float64)
            sq *= sw * (n / float(np.sum(sw)))
        factor = {"mse": 1.0, "logistic": 1.0 / 8.0, "softmax": 1.0 / 4.0}[self.loss]
        row_max = 2.0 * factor * float(np.max(sq)) + 2.0 * self.l2
        return (n * (m - 1) * full + (n - m) * row_max) / (m * (n - 1))


def _resolve_solver(solver, l1):
    if solver not in SOLVERS:
        raise ValueError(f"unknown solver {solver!r}; choose one of {', '.join(SOLVERS)}")
    if solver == "auto":
        return "fista" if l1 > 0 else "lbfgs"
    if solver == "lbfgs" and l1 > 0:
        raise ValueError(
            "solver='lbfgs' handles smooth objectives only (l1 = 0); use solver='fista' for l1 > 0"
        )
    return solver


class _Monitor:
    """History, divergence detection, callback and progress bar shared by the solvers."""

    def __init__(self, problem, lr, max_iter, callback, verbose, solver):
        self.problem, self.lr, self.callback, self.solver = problem, lr, callback, solver
        self.history = []
        self.bar = None
        if verbose:
            try:
                from tqdm.auto import tqdm
            except ImportError:  # pragma: no cover - tqdm is an optional extra
                warnings.warn(
                    "verbose=True shows progress with tqdm: pip install fastgd[progress]", stacklevel=3
                )
            else:
                self.bar = tqdm(total=max_iter, desc=f"fastgd {solver}", unit="it")

    def record(self, it, value, w, b):
        """Add an objective value; raise on divergence; True if the callback asks to stop."""
        self.history.append(value)
        if not math.isfinite(value) or self._growing():
            self.close()
            start = self.history[0]
            hint = ""
            if self.lr is not None:
                safe = 1.0 / self.problem.lipschitz()
                hint = (
                    f" with lr={self.lr:g}; a safe step for this problem is lr <= {safe:.3g} "
                    "(lr=None chooses one from a Lipschitz estimate)"
                )
            raise DivergenceError(
                f"{self.solver} diverged at iteration {it}: "
                f"the objective went from {start:.6g} to {value:.6g}{hint}"
            )
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(objective=f"{value:.6g}")
        return bool(self.callback is not None and self.callback(it, w, b, value))

    def _growing(self):
        h = self.history
        # Three increases in a row that end above the start: a step this large only grows.
        return len(h) >= 4 and h[-1] > h[-2] > h[-3] > h[-4] and h[-1] > h[0] + 1e-12 * abs(h[0])

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _inf_norm(a, b, fit_intercept):
    m = float(np.max(np.abs(a))) if a.size else 0.0
    return max(m, float(np.max(np.abs(b)))) if fit_intercept else m


def _gd(p, w, b, lr, max_iter, tol, mon, momentum=0.0):
    """Proximal gradient descent with a fixed step; heavy-ball momentum if momentum > 0."""
    value, gw, gb = p.loss_grad(w, b)
    mon.record(0, value + p.penalty(w), w, b)
    w_prev, b_prev = w.copy(), b
    w_old = np.empty_like(w)
    for it in range(1, max_iter + 1):
        np.copyto(w_old, w)
        b_old = b
        if momentum:
            # prox(w - lr grad + beta (w - w_prev)) = gd_step with grad - beta/lr (w - w_prev)
            gw = gw - (momentum / lr) * (w - w_prev)
            gb = gb - (momentum / lr) * (b - b_prev)
        w, b = p.step(w, b, gw, gb, lr)
        np.copyto(w_prev, w_old)
        b_prev = b_old
        g_map = _inf_norm(w_old - w, np.asarray(b_old - b), p.fit_intercept) / lr
        value, gw, gb = p.loss_grad(w, b)
        if mon.record(it, value + p.penalty(w), w, b):
            return w, b, it, False
        if g_map <= tol:
            return w, b, it, True
    return w, b, max_iter, False


def _accelerated(p, w, b, lr, max_iter, tol, mon, backtrack):
    """FISTA: Nesterov-accelerated proximal gradient with adaptive (gradient) restart.

    With ``backtrack`` the step 1/L is found by the Beck-Teboulle line search (L only
    grows); otherwise lr stays fixed (``nesterov``). Two passes per iteration: the
    gradient at the extrapolated point and the objective at the new iterate.
    """
    L = 1.0 / lr
    t = 1.0
    yw, yb = w.copy(), b
    fy, gy, gby = p.loss_grad(yw, yb)
    value = fy + p.penalty(w)
    mon.record(0, value, w, b)
    eps = 10 * np.finfo(p.dtype).eps
    for it in range(1, max_iter + 1):
        fy_s = fy + p.l2 * float(np.sum(np.square(yw, dtype=np.float64)))
        grad_s = gy.astype(np.float64) + 2.0 * p.l2 * yw
        while True:
            new_w, new_b = p.step(yw.copy(), yb, gy, gby, 1.0 / L)
            fw, gw_new, gb_new = p.loss_grad(new_w, new_b)
            if not backtrack:
                break
            dw = new_w.astype(np.float64) - yw
            db = np.asarray(new_b - yb, dtype=np.float64)
            quad = fy_s + float(np.sum(grad_s * dw)) + float(np.sum(gby * db))
            quad += 0.5 * L * (float(np.sum(dw * dw)) + float(np.sum(db * db)))
            fw_s = fw + p.l2 * float(np.sum(np.square(new_w, dtype=np.float64)))
            if fw_s <= quad + eps * (abs(fw_s) + 1e-30) or not math.isfinite(fw_s):
                break
            L *= 2.0
        value = fw + p.penalty(new_w)
        g_map = _inf_norm(yw - new_w, np.asarray(yb - new_b), p.fit_intercept) * L
        if mon.record(it, value, new_w, new_b):
            return new_w, new_b, it, False, 1.0 / L
        if g_map <= tol:
            return new_w, new_b, it, True, 1.0 / L
        t_new = 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * t * t))
        # Restart when the step and the momentum disagree (O'Donoghue & Candes).
        if (
            float(np.sum((yw - new_w) * (new_w - w))) + float(np.sum(np.asarray(yb - new_b) * (new_b - b)))
            > 0
        ):
            t, t_new = 1.0, 1.0
        beta = (t - 1.0) / t_new
        yw = new_w + p.dtype.type(beta) * (new_w - w)
        yb = new_b + p.dtype.type(beta) * (new_b - b)
        w, b, t = new_w, new_b, t_new
        if beta == 0.0:
            fy, gy, gby = fw, gw_new, gb_new  # y is the new iterate: reuse its gradient
        else:
            fy, gy, gby = p.loss_grad(yw, yb)
    return w, b, max_iter, False, 1.0 / L


#: L-BFGS stops when this many objective evaluations in a row since the last accepted
#: iterate are none of them below its value by more than LBFGS_FLAT_ULPS units in the last
#: place: its line search is then probing differences at the objective's rounding level
#: (with a gradient tolerance near machine precision, as 1e-10 on 500,000 x 100 L2
#: logistic), where it can only fail, after up to its 50 tries, each a pass over X; the
#: result is the last accepted iterate either way. On that benchmark the last bits of the
#: kernels' sums (summation order) took scipy from 35 to 51 evaluations before it stopped.
LBFGS_FLAT_EVALS = 8
LBFGS_FLAT_ULPS = 4
_EPS = float(np.finfo(np.float64).eps)


class _AtRoundingLevel(Exception):
    """Raised inside the objective to end an L-BFGS line search probing rounding noise."""


def _lbfgs(p, w, b, max_iter, tol, mon):
    """scipy's L-BFGS-B on the smooth objective, driven by the fused kernel."""
    from scipy.optimize import minimize as scipy_minimize

    shape, nw = w.shape, w.size
    nb = np.size(b) if p.fit_intercept else 0

    def unpack(x):
        wx = x[:nw].reshape(shape).astype(p.dtype)
        bx = x[nw:].astype(p.dtype) if nb else (b if np.ndim(b) else p.dtype.type(0) + b)
        if nb and np.ndim(b) == 0:
            bx = p.dtype.type(bx[0])
        return wx, bx

    # The last accepted iterate (x, the Problem's kept evaluation there); ref, the
    # objective of the last accepted iterate that went below the one before by more than
    # flat_band, and how many evaluations since have not: see LBFGS_FLAT_EVALS.
    accepted = {"x": None, "ref": None, "kept": None, "flat": 0}
    last = {}

    def fun(x):
        wx, bx = unpack(x)
        value, gw, gb = p.loss_grad(wx, bx)
        value += p.penalty(wx)
        grad = gw.astype(np.float64).ravel() + 2.0 * p.l2 * x[:nw]
        if nb:
            grad = np.concatenate([grad, np.atleast_1d(gb).astype(np.float64)])
        last.update(x=x.copy(), kept=p._last)
        if accepted["ref"] is not None and value >= accepted["ref"] - flat_band(accepted["ref"]):
            accepted["flat"] += 1
            if accepted["flat"] >= LBFGS_FLAT_EVALS:
                raise _AtRoundingLevel
        return value, grad

    x0 = np.concatenate([w.astype(np.float64).ravel(), np.atleast_1d(b).astype(np.float64)[:nb]])
    stop = {}

    def flat_band(f):
        # the rounding of a sum of n terms of the objective's size: sqrt(n) units a term
        return LBFGS_FLAT_ULPS * _EPS * math.sqrt(p.n_samples) * abs(f)

    def accept(x, f):
        same = "x" in last and np.array_equal(last["x"], x)  # scipy's last evaluation, as a rule
        accepted.update(x=x.copy(), kept=last["kept"] if same else None)
        if accepted["ref"] is None or f < accepted["ref"] - flat_band(accepted["ref"]):
            accepted.update(ref=f, flat=0)

    def cb(intermediate_result):
        it = len(mon.history)
        accept(intermediate_result.x, float(intermediate_result.fun))
        wx, bx = unpack(intermediate_result.x)
        if mon.record(it, float(intermediate_result.fun), wx, bx):
            stop["by_callback"] = True
            raise StopIteration

    f0 = fun(x0)[0]
    accept(x0, f0)
    mon.record(0, f0, w, b)
    try:
        res = scipy_minimize(
            fun, x0, jac=True, method="L-BFGS-B", callback=cb,
            options={"maxiter": max_iter, "gtol": tol, "ftol": 1e-15, "maxcor": 20, "maxls": 50},
        )  # fmt: skip
    except _AtRoundingLevel:
        # The line search has been probing at the objective's rounding level: no step can
        # lower it any further in float64 (converged, as scipy's ftol test would have it),
        # and the last accepted iterate is what scipy would return.
        if accepted["kept"] is not None:
            p._last = accepted["kept"]  # the objective reported at the end: no extra pass
        wx, bx = unpack(accepted["x"])
        return wx, bx, len(mon.history) - 1, not stop
    wx, bx = unpack(res.x)
    g_inf = float(np.max(np.abs(res.jac))) if nw else 0.0  # the gradient at res.x
    converged = not stop and (g_inf <= tol or res.status == 0)
    return wx, bx, int(res.nit), bool(converged)


@dataclass(frozen=True)
class _SGDOptions:
    batch_size: int
    rng: np.random.Generator
    schedule: str
    power_t: float
    n_iter_no_change: int
    variance_reduction: str | None


def _sgd(p, w, b, lr, max_iter, tol, mon, opts):
    """Mini-batch SGD: shuffled batches each epoch, the l1 part by a proximal step.

    With ``variance_reduction="svrg"`` (proximal SVRG, Xiao & Zhang 2014) each epoch starts
    from a snapshot and its full gradient mu; every batch step then uses
    ``g_B(w) - g_B(snapshot) + mu``, an unbiased gradient estimate whose variance vanishes
    at the optimum, so a constant step converges linearly to the exact minimiser. An epoch
    costs three passes over X (the full gradient and two batch gradients per row) instead
    of one. Its step stays constant under the ``adaptive`` schedule (no decay is needed);
    ``invscaling`` still decays it. Without it the step schedule alone decides how close
    SGD gets.
    """
    rng = opts.rng
    n = p.n_samples
    batch = n if opts.batch_size is None else min(int(opts.batch_size), n)
    is_sparse = sparse.issparse(p.X)  # CSR batches are taken by row indexing (a batch copy)
    Xb = None if is_sparse else np.empty((batch, p.n_features), p.dtype)
    yb = np.empty(batch, p.y.dtype)
    sw = p.sample_weight
    swb = np.empty(batch, p.dtype) if sw is not None else None
    # Each epoch's shuffle is written into one buffer allocated here: rng.permutation(n)
    # would allocate n indices every epoch. Resetting the buffer to 0..n-1 before the
    # in-place shuffle draws the very permutation rng.permutation(n) would.
    identity = np.arange(n)
    order = np.empty_like(identity)
    total_w = float(np.sum(sw, dtype=np.float64)) if sw is not None else float(n)
    full = batch == n
    svrg = opts.variance_reduction == "svrg"

    def batch_grad(Xm, ym, swm, m, w, b):
        batch_w = float(np.sum(swm, dtype=np.float64)) if swm is not None else float(m)
        if batch_w == 0.0:  # every row of this batch has weight 0: it adds nothing
            return np.zeros_like(w), b * 0
        if m == n:  # the whole data in order: the kernel's copy of it (on the device for cuda)
            Xm, ym, swm = p._data
        _, gw, gb = p.module.loss_grad(Xm, ym, w, b, p.loss, swm)
        if not p.fit_intercept:
            gb = gb * 0
        # The kernel normalises by the batch's weight; rescale to an unbiased estimate
        # of the gradient of the full weighted mean.
        if swm is not None:
            scale = p.dtype.type(batch_w * n / (m * total_w))
            gw, gb = gw * scale, gb * scale
        return gw, gb

    if svrg:
        value, mu_w, mu_b = p.loss_grad(w, b)
        value += p.penalty(w)
        snap_w = np.empty_like(w)
    else:
        value = p.objective(w, b)
    mon.record(0, value, w, b)
    best, stall, t = value, 0, 0
    lr0 = lr
    precision = 16 * float(np.finfo(p.dtype).eps)
    for epoch in range(1, max_iter + 1):
        if svrg:
            np.copyto(snap_w, w)
            snap_b = b
        np.copyto(order, identity)
        rng.shuffle(order)
        for start in range(0, n, batch):
            idx = order[start : start + batch]
            m = idx.shape[0]
            if full:
                Xm, ym, swm = p.X, p.y, sw
            else:
                Xm = p.X[idx] if is_sparse else np.take(p.X, idx, axis=0, out=Xb[:m])
                ym = np.take(p.y, idx, out=yb[:m])
                swm = np.take(sw, idx, out=swb[:m]) if sw is not None else None
            p.n_passes += m / n
            gw, gb = batch_grad(Xm, ym, swm, m, w, b)
            if svrg:
                p.n_passes += m / n
                sgw, sgb = batch_grad(Xm, ym, swm, m, snap_w, snap_b)
                gw = gw - sgw + mu_w
                gb = gb - sgb + mu_b
            step = lr / (t + 1) ** opts.power_t if opts.schedule == "invscaling" else lr
            w, b = p.step(w, b, gw, gb, step)
            t += 1
        if svrg:
            value, mu_w, mu_b = p.loss_grad(w, b)
            value += p.penalty(w)
        else:
            value = p.objective(w, b)
        if mon.record(epoch, value, w, b):
            return w, b, epoch, False, lr
        if svrg:
            # The full gradient is at hand: the full-batch solvers' gradient-mapping test.
            w_next, b_next = p.step(w.copy(), b, mu_w, mu_b, lr)
            if _inf_norm(w - w_next, np.asarray(b - b_next), p.fit_intercept) / lr <= tol:
                return w, b, epoch, True, lr
        # Plain SGD: a stall is progress below tol; SVRG's own test is the gradient mapping
        # above, and a stall means the objective stopped moving at rounding level.
        floor = precision if svrg else tol
        if value < best - floor * max(1.0, abs(best)):
            best, stall = value, 0
        else:
            stall += 1
        if stall >= opts.n_iter_no_change:
            if svrg or opts.schedule != "adaptive" or lr <= 1e-6 * lr0:
                return w, b, epoch, True, lr
            lr, stall = lr / 5.0, 0
    return w, b, max_iter, False, lr


def _run(solver, p, w, b, lr, max_iter, tol, mon, momentum, opts):
    """(w, b, n_iter, converged, lr) of one solver run from (w, b)."""
    if solver == "gd":
        return (*_gd(p, w, b, lr, max_iter, tol, mon), lr)
    if solver == "momentum":
        return (*_gd(p, w, b, lr, max_iter, tol, mon, momentum=momentum), lr)
    if solver in ("nesterov", "fista"):
        return _accelerated(p, w, b, lr, max_iter, tol, mon, backtrack=solver == "fista")
    if solver == "sgd":
        return _sgd(p, w, b, lr, max_iter, tol, mon, opts)
    return (*_lbfgs(p, w, b, max_iter, tol, mon), None)


def _is_count(value):
    """An integer >= 1 (bool excluded)."""
    return not isinstance(value, (bool, np.bool_)) and isinstance(value, (int, np.integer)) and value >= 1


def _blas_on_one_thread(backend):
    """Context in which BLAS runs on one thread, for fits on the parallel CPU backends.

    OpenBLAS threads keep spinning for a while after each BLAS call (scipy's L-BFGS-B and
    small NumPy products in the solver loop make such calls) and take the cores from the
    parallel kernel that runs next: on 500,000 x 100 L2-logistic with L-BFGS this halved
    the speed of the cython backend on a 2-core machine. The kernels never use BLAS.
    """
    if backend not in ("numba", "cython"):
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def minimize(
    X,
    y,
    *,
    loss="mse",
    l1=0.0,
    l2=0.0,
    solver="auto",
    lr=None,
    max_iter=1000,
    tol=1e-6,
    fit_intercept=True,
    sample_weight=None,
    batch_size=None,
    random_state=None,
    callback=None,
    verbose=False,
    backend=None,
    coef_init=None,
    intercept_init=None,
    n_classes=None,
    momentum=0.9,
    schedule="adaptive",
    power_t=0.25,
    n_iter_no_change=5,
    variance_reduction="svrg",
):
    r"""Minimise :math:`\mathrm{loss}(Xw + b) + l_1 \sum|w| + l_2 \sum w^2` over (w, b).

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features), float32 or float64
        Used in place when C-contiguous float (memmaps included); float32 trains in float32.
    y : array-like of shape (n_samples,)
        Targets: real (``mse``), {0, 1} (``logistic``), labels 0..k-1 (``softmax``).
    loss : {"mse", "logistic", "softmax"}
    l1, l2 : float >= 0
        Penalty weights; the intercept is never penalised.
    solver : {"auto", "gd", "momentum", "nesterov", "fista", "sgd", "lbfgs"}
        ``gd``: proximal gradient descent with a fixed step ``lr`` (the textbook method).
        ``momentum``: heavy ball (``momentum`` coefficient). ``nesterov``: accelerated with
        adaptive restart, fixed step. ``fista``: accelerated with backtracking line search.
        ``sgd``: mini-batch SGD, variance-reduced by default (``batch_size``, ``schedule``,
        ``random_state``, ``variance_reduction``).
        ``lbfgs``: scipy's L-BFGS-B on fastgd's fused kernel (l1 = 0 only).
        ``auto``: ``lbfgs`` when l1 = 0, else ``fista``.
    lr : float > 0 or None
        Step size. None: 1/L from a power-iteration estimate of the Lipschitz constant L
        (``sgd``: of a batch's gradient, which grows as the batch shrinks).
    max_iter : int >= 1
        Iterations (epochs for ``sgd``).
    tol : float >= 0
        Stopping tolerance (module docstring: the gradient-mapping infinity norm).
    fit_intercept : bool
    sample_weight : array-like of shape (n_samples,), optional
    batch_size : int, optional
        ``sgd`` only; default min(256, n_samples).
    random_state : int or numpy Generator, optional
        Seeds the ``sgd`` shuffles: the same seed gives bit-identical results.
    callback : callable(iteration, w, b, objective) -> bool, optional
        Called after each iteration; returning True stops the solver.
    verbose : bool
        Show a tqdm progress bar with the current objective.
    backend : str, optional
    coef_init, intercept_init : array-like, optional
        Starting point (zeros by default); never modified.
    n_classes : int, optional
        ``softmax`` only; default max(y) + 1.
    momentum : float in [0, 1)
        ``momentum`` solver's coefficient.
    schedule : {"constant", "invscaling", "adaptive"}
        ``sgd`` step schedule: fixed; lr / (t + 1) ** power_t; or divided by 5 whenever
        the epoch objective stalls for ``n_iter_no_change`` epochs.
    variance_reduction : {"svrg", None}
        ``sgd`` gradient estimate. ``"svrg"`` (default): proximal SVRG, which converges to
        the exact optimum like the full-batch solvers (three passes over X per epoch).
        None: plain mini-batch SGD (one pass per epoch), which only approaches it.

    Returns
    -------
    OptimizeResult

    Raises
    ------
    DivergenceError
        When the objective grows without bound (too large an ``lr``); the message names
        the step and a safe one.
    """
    p = Problem.from_user(
        X, y, loss=loss, l1=l1, l2=l2, sample_weight=sample_weight,
        fit_intercept=fit_intercept, backend=backend, n_classes=n_classes,
    )  # fmt: skip
    solver = _resolve_solver(solver, p.l1)
    if solver == "sgd" and isinstance(p.module, _dask.DaskBackend):
        raise ValueError("solver='sgd' does not take Dask arrays; use 'lbfgs', 'fista', 'nesterov' or 'gd'")
    if not _is_count(max_iter):
        raise ValueError(f"max_iter must be an integer >= 1, got {max_iter!r}")
    tol = _validate.check_param("tol", tol)
    if lr is not None:
        lr = _validate.check_param("lr", lr, positive=True)
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")
    if variance_reduction not in VARIANCE_REDUCTIONS:
        raise ValueError(f"unknown variance_reduction {variance_reduction!r}; choose 'svrg' or None")
    if not 0.0 <= _validate.check_param("momentum", momentum) < 1.0:
        raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
    if batch_size is not None and not _is_count(batch_size):
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if not _is_count(n_iter_no_change):
        raise ValueError(f"n_iter_no_change must be an integer >= 1, got {n_iter_no_change!r}")
    _validate.check_param("power_t", power_t)
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable(iteration, w, b, objective), got {callback!r}")
    if not isinstance(fit_intercept, (bool, np.bool_)):
        raise TypeError(f"fit_intercept must be True or False, got {fit_intercept!r}")
    try:
        rng = np.random.default_rng(random_state)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"random_state must be None, an integer >= 0 or a numpy Generator, got {random_state!r}"
        ) from exc
    w, b = p.zeros()
    if coef_init is not None:
        w = _validate.check_coef(
            coef_init, p.loss, p.n_features, p.dtype, name="coef_init", n_classes=p.n_classes
        ).copy()
    if intercept_init is not None and p.fit_intercept:
        b = _validate.check_intercept(intercept_init, p.loss, p.dtype, p.n_classes)
        b = np.array(b, p.dtype) if p.loss == "softmax" else p.dtype.type(b)
    if not p.fit_intercept:
        b = b * 0

    if solver == "sgd" and batch_size is None:
        batch_size = min(256, p.n_samples)
    auto_step = lr is None
    if solver in ("gd", "momentum", "nesterov", "fista") and lr is None:
        lr = 1.0 / p.lipschitz()
    elif solver == "sgd" and lr is None:
        lr = 1.0 / p.batch_lipschitz(batch_size)
    opts = _SGDOptions(batch_size, rng, schedule, power_t, n_iter_no_change, variance_reduction)
    # A step chosen here (lr=None) comes from an estimate of L; should it still make the
    # objective grow, the fit restarts with a quarter of the step instead of failing.
    retries = _AUTO_STEP_RETRIES if auto_step and solver in _FIXED_STEP else 0
    for attempt in range(retries + 1):
        mon = _Monitor(p, lr if solver in _FIXED_STEP else None, max_iter, callback, verbose, solver)
        try:
            with _blas_on_one_thread(p.module.NAME):
                w_end, b_end, n_iter, converged, lr_end = _run(
                    solver, p, w.copy(), b, lr, max_iter, tol, mon, float(momentum), opts
                )
            break
        except DivergenceError:
            if attempt == retries:
                raise
            lr /= 4.0
        finally:
            mon.close()
    w, b, lr = w_end, b_end, lr_end
    objective = p.objective(w, b)
    if not math.isfinite(objective):
        raise DivergenceError(f"{solver} ended at a non-finite objective ({objective}); lower lr")
    return OptimizeResult(
        coef=w, intercept=b, objective=objective, n_iter=n_iter, converged=converged,
        history=np.asarray(mon.history, dtype=np.float64), solver=solver, lr=lr,
        message=("converged" if converged else f"stopped after max_iter={max_iter} iterations")
        + (f"; the automatic step made the objective grow and was quartered {attempt} time(s)"
           if attempt else ""),
    )  # fmt: skip
