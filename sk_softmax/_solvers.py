"""Optimizers over a flat parameter vector, fed by an objective callable.

A solver sees only ``objective(params, batch) -> (loss, grad)``, where
``params`` and ``grad`` are 1-D float arrays of the same size and ``batch``
is None (all data) or an index array chosen by the solver.  It never sees
labels, classes or the estimator, so the data behind the objective can live
in memory, on disk, on a cluster or on a GPU.

Life cycle of :func:`gradient_descent`
--------------------------------------
1. Setup: the update rule builds its state from the initial parameters
   (``rule.init``); the sampler draws a permutation per epoch when
   ``shuffle`` is set.
2. Iterate: for each mini-batch, evaluate the objective and apply
   ``rule.step(params, grad, state, learning_rate)`` in place.  An epoch
   is one pass over the samples.
3. Check convergence after each epoch: full batch stops when the largest
   gradient entry is at most ``tol`` (the optimum is reached), and, with
   ``settled_change``, the last pass lowered the loss by at most that
   fraction of it (and did not raise it beyond its rounding); mini-batch
   stops after ``n_iter_no_change`` epochs without an improvement of
   ``tol`` in the training loss, or in the validation score with early
   stopping.  The ``"adaptive"`` schedule divides the learning rate by 5
   instead of stopping, until it falls below 1e-6.
4. Finalize: restore the best parameters seen on the validation set when
   early stopping, and report ``n_iter``, the loss curve and convergence.

Update rules are small objects with ``init(params) -> state`` and
``step(params, grad, state, learning_rate)`` that work in place: plain or
heavy-ball / Nesterov momentum (:class:`Momentum`), Adam (:class:`Adam`) and
accelerated full-batch gradient descent with adaptive restart
(:class:`AcceleratedGradient`).
"""

import math
from dataclasses import dataclass, field

import numpy as np

from ._compat import minimize_lbfgsb
from ._loss import _axpy

__all__ = [
    "UpdateRule",
    "Momentum",
    "Adam",
    "AcceleratedGradient",
    "DivergenceError",
    "gradient_descent",
    "lbfgs",
    "SolverResult",
]


@dataclass
class SolverResult:
    """What a solver returns: the parameters and how it got there."""

    params: np.ndarray
    n_iter: int
    converged: bool
    loss_curve: list = field(default_factory=list)
    validation_scores: list | None = None
    validation_losses: list | None = None
    best_loss: float | None = None
    n_passes: int = 0
    # Gradient descent only: what a later partial_fit call continues from.
    state: dict | None = None
    learning_rate: float | np.ndarray | None = None
    reference_loss: float | None = None
    # With ``loss_limit_raises=False``: whether an epoch's loss went beyond
    # the divergence limit.
    loss_exceeded: bool = False
    # L-BFGS: set when it stopped before max_iter because the loss no longer
    # decreased measurably while the gradient was still above tol, and the
    # largest gradient entry at the end.
    stop_reason: str | None = None
    largest_gradient: float | None = None


class UpdateRule:
    """Base of the update rules: ``init(params) -> state`` and an in-place ``step``.

    ``exact`` tells the loop whether the rule settles at the optimum on the
    full batch (then the gradient-norm test stops it) or hovers around it
    (then the loss-based test does).
    """

    exact = True
    # Whether a step's length grows with the gradient (then a batch of fewer
    # rows than the step was sized for takes a proportionally shorter one:
    # see gradient_descent's step_batch).
    scales_with_batch = True

    def init(self, params):
        """State for ``params`` of shape (n_params,)."""
        return {}

    def step(self, params, grad, state, learning_rate):
        """Update ``params`` in place from ``grad`` (which may be overwritten)."""
        raise NotImplementedError

    def change_coordinates(self, params, state, convert):
        """State for ``params`` (already converted) after a change of
        coordinates ``convert`` (a linear map of parameter vectors): by
        default the rule starts again."""
        return self.init(params)


def _scaled_state(state, key, factor):
    """``state[key] *= factor``, in place unless the array is borrowed.

    A state that holds ``"borrowed"`` (a set of keys) shares those arrays
    with its caller, who keeps them as they are (``partial_fit`` restores
    them if the call fails): the first step writes the product into a new
    array instead, the copy that the caller would otherwise have made
    first, and one pass over it less.
    """
    value = state[key]
    borrowed = state.get("borrowed", ())
    if key in borrowed:
        value = state[key] = np.multiply(value, factor)
        state["borrowed"] = borrowed - {key}
    else:
        value *= factor
    return value


class Momentum(UpdateRule):
    """SGD with optional heavy-ball or Nesterov momentum (MLPClassifier's rule).

    ``v <- momentum v - lr g``; then ``params += v`` (heavy ball) or
    ``params += momentum v - lr g`` (Nesterov).

    Parameters
    ----------
    momentum : float
        In [0, 1]; 0 gives plain gradient descent.
    nesterov : bool
        Use Nesterov's look-ahead form.
    """

    def __init__(self, momentum=0.9, nesterov=True):
        self.momentum = momentum
        self.nesterov = nesterov

    def init(self, params):
        return {"velocity": np.zeros_like(params)}

    def step(self, params, grad, state, learning_rate):
        grad *= learning_rate
        velocity = _scaled_state(state, "velocity", self.momentum)
        velocity -= grad
        if self.nesterov:
            _axpy(self.momentum, velocity, params)
            params -= grad
        else:
            params += velocity


class Adam(UpdateRule):
    """Adam (Kingma & Ba, 2014) with MLPClassifier's defaults.

    Parameters
    ----------
    beta_1, beta_2 : float
        Decay rates of the first and second moment estimates.
    epsilon : float
        Added to the root of the second moment.
    """

    # Constant-step Adam hovers around the optimum: stop on the loss instead.
    exact = False
    # Its steps are about learning_rate long whatever the gradient: one row's
    # gradient cannot make one too long.
    scales_with_batch = False

    def __init__(self, beta_1=0.9, beta_2=0.999, epsilon=1e-8):
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon

    def init(self, params):
        return {"t": 0, "m": np.zeros_like(params), "v": np.zeros_like(params)}

    def step(self, params, grad, state, learning_rate):
        state["t"] += 1
        t = state["t"]
        m = _scaled_state(state, "m", self.beta_1)
        _axpy(1 - self.beta_1, grad, m)
        v = _scaled_state(state, "v", self.beta_2)
        grad *= grad
        _axpy(1 - self.beta_2, grad, v)
        scale = math.sqrt(1 - self.beta_2**t) / (1 - self.beta_1**t)
        # The step m / (sqrt(v) + epsilon), built in grad's memory (no
        # longer needed): no temporaries of the size of params.
        step = grad
        np.sqrt(v, out=step)
        step += self.epsilon
        np.divide(m, step, out=step)
        # The same arithmetic for a scalar and a per-parameter rate: scales
        # folded into the rates and epsilons (powers of two) then give the
        # iterates of the scaled coordinates, bit for bit.
        step *= learning_rate
        _axpy(-scale, step, params)


class AcceleratedGradient(UpdateRule):
    """Full-batch Nesterov / FISTA steps, adaptive restart and adaptive step.

    ``params`` holds the extrapolated point ``y`` where the gradient is
    taken; the state keeps the previous iterate ``x``, the FISTA sequence
    ``t`` and a step multiplier ``scale``::

        x+ = y - scale lr g
        restart (t = 1) if (y - x+) . (x+ - x) > 0
        t+ = (1 + sqrt(1 + 4 t^2)) / 2
        y+ = x+ + (t - 1) / t+ (x+ - x)

    The restart test (O'Donoghue & Candes, 2015) drops the momentum as soon
    as it points uphill, which recovers linear convergence on strongly
    convex objectives without knowing the strong convexity constant.

    ``lr`` (per parameter) is a global step such as ``1/L``, which is safe
    but pessimistic: the softmax curvature ``diag(p) - p p^T`` shrinks as
    predictions grow confident, often to a tenth of the bound and below.
    With ``adaptive=True`` the multiplier follows the curvature measured
    between successive gradients, in the metric of ``lr`` (with
    ``s = y - y_prev`` and ``d = g - g_prev``)::

        L_local = ||d||_lr^2 / (s . d)
        scale = min(growth * scale, safety / max(last `memory` L_local))

    ``1 / L_local`` is the Barzilai-Borwein step ``s.d / d.d``, the shorter
    of the two: it weighs the curvature by the gradient change, so stiff
    directions dominate it.  Along a momentum step the loss often looks far
    flatter than it is across it, so the stiffest of the last few estimates
    sets the ceiling, and the multiplier climbs to it at most ``growth`` per
    step but drops at once where the loss curves (which also tames a user
    step that is too large).

    Parameters
    ----------
    adaptive : bool, default=True
        Adapt ``scale``; False keeps ``scale = 1`` (plain FISTA).
    growth : float, default=1.4
        Largest factor by which ``scale`` grows per step.  The multiplier
        usually climbs past what the stiffest directions allow before the
        curvature estimates catch it; climbing faster gets there sooner,
        further from the optimum, where the restart that follows costs
        fewer steps (1.4 against 1.2, for the default fit of the
        benchmark's 100,000 x 100 Gaussian features, 10 classes: 22 steps
        instead of 39, and instead of 24 or 25 on three other draws of the
        same data).  Not fewer everywhere: see docs/performance.
    safety : float, default=0.7
        Fraction of ``1 / L_local`` that the step may reach.
    memory : int, default=3
        Number of recent curvature estimates whose largest bounds the step.
    max_scale : float, default=1e8
        Largest multiplier.  Confident predictions flatten the loss, and
        ``scale`` rightly reaches 1e6 on separable data without penalty;
        but where the loss is exactly 0 the gradients are rounding noise,
        so are the curvature estimates between them, and a multiplier
        growing without end (1e22 after 2000 steps) drifted the
        intercepts until the loss overflowed.
    """

    def __init__(self, adaptive=True, growth=1.4, safety=0.7, memory=3, max_scale=1e8):
        self.adaptive = adaptive
        self.growth = growth
        self.safety = safety
        self.memory = memory
        self.max_scale = max_scale

    def init(self, params):
        state = {"t": 1.0, "x": params.copy(), "x_new": np.empty_like(params)}
        if self.adaptive:
            state.update(scale=1.0, y_prev=None, g_prev=np.empty_like(params), steps=[])
        return state

    def step(self, params, grad, state, learning_rate):
        x, x_new = state["x"], state["x_new"]
        if self.adaptive:
            self._adapt_scale(params, grad, state, learning_rate)
            grad *= state["scale"] * learning_rate
        else:
            grad *= learning_rate
        np.subtract(params, grad, out=x_new)
        # params - x_new == grad (scaled): the restart test without a temporary.
        x -= x_new
        if float(grad @ x) < 0:  # (y - x+) . (x+ - x) > 0
            state["t"] = 1.0
        t = state["t"]
        t_next = 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * t * t))
        beta = (t - 1.0) / t_next
        state["t"] = t_next
        # y+ = x+ - beta (x - x+), with x now holding x - x+.
        np.multiply(x, -beta, out=params)
        params += x_new
        x[...] = x_new

    def change_coordinates(self, params, state, convert):
        """Keep the momentum: the previous iterate in the new coordinates,
        the sequence ``t`` as it was; the step multiplier and its curvature
        estimates, which measured the old coordinates, start again."""
        state["x"][...] = convert(state["x"])
        if self.adaptive:
            state.update(scale=1.0, y_prev=None, steps=[])
        return state

    def _adapt_scale(self, params, grad, state, learning_rate):
        y_prev, g_prev = state["y_prev"], state["g_prev"]
        if y_prev is not None:
            rate = learning_rate
            d_grad, d_params = grad - g_prev, params - y_prev
            if np.ndim(rate) and not rate.min(initial=np.inf) > 0:
                # (Coordinates of no step, held: they measure nothing.)
                rate = np.broadcast_to(rate, params.shape)
                active = rate > 0
                d_grad, d_params, rate = d_grad[active], d_params[active], rate[active]
            grad_change = float(d_grad @ (d_grad * rate))
            curving = float(d_params @ d_grad)
            steps = state["steps"]
            if grad_change > 0 and curving > 0:
                steps.append(self.safety * curving / grad_change)
                del steps[: -self.memory]
            ceiling = min([*steps, self.max_scale])
            state["scale"] = min(self.growth * state["scale"], ceiling)
            y_prev[...] = params
        else:
            state["y_prev"] = params.copy()
        g_prev[...] = grad


def _settled(previous, loss, change, rounding):
    """Whether the loss settled over the last pass, from ``previous``.

    It fell by at most ``change`` of itself, or rose by at most its own
    ``rounding``.  A larger rise is momentum turning: on nearly separable
    data the iterates turn on a floor within ``tol`` of flat, and the loss
    then falls by up to percents a pass for dozens more (40 rows of 50
    features: stopped at the turn, 14% above the optimal loss and 4 points
    of test accuracy below it).

    Examples
    --------
    >>> _settled(1.0, 0.99999, change=1e-4, rounding=1e-12)
    True
    >>> _settled(1.0, 1.00001, change=1e-4, rounding=1e-12)
    False
    """
    fall = previous - loss
    return -rounding * abs(loss) <= fall <= change * abs(loss)


def _loss_rounding(loss):
    """The relative rounding of ``loss``, a sum over many rows."""
    return 2.0**-20 if getattr(loss, "dtype", None) == np.float32 else 2.0**-40


def _largest_step(learning_rate, preconditioner):
    """The largest step in the coordinates of ``preconditioner``."""
    if preconditioner is None:
        return float(np.max(learning_rate))
    return float(np.max(learning_rate / preconditioner))


def _batches(n_samples, batch_size, rng):
    """Index arrays (or None for the full batch) for one epoch.

    As few batches of at most ``batch_size`` rows as there can be, of
    sizes that differ by at most one: 4353 rows at 256 make 18 batches of
    241 and 242, not 17 of 256 and one of a single row, whose gradient, far
    noisier, took a full step (and for Adam, entered its moments at full
    weight).
    """
    if batch_size >= n_samples:
        yield None
        return
    order = rng.permutation(n_samples) if rng is not None else np.arange(n_samples)
    n_batches = -(-n_samples // batch_size)
    bounds = np.arange(n_batches + 1) * n_samples // n_batches
    for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
        yield order[start:stop]


_DIVERGENCE_FACTOR = 100.0


class DivergenceError(ValueError):
    """Training diverged: the loss became non-finite or grew far above its start.

    The message says when and at which step size; the caller, which knows
    where the step came from, adds what to change.
    """

    def __init__(self, epoch, learning_rate):
        self.epoch = epoch
        self.learning_rate = float(np.max(learning_rate))
        # What happened, without the step: the caller names its own.
        self.what = (
            f"Training diverged at epoch {epoch}: the loss grew far above its "
            "starting value or became non-finite"
        )
        super().__init__(f"{self.what} with learning rate {self.learning_rate:.3g}.")


def gradient_descent(
    objective,
    params,
    *,
    rule,
    n_samples,
    batch_size,
    learning_rate,
    schedule="constant",
    power_t=0.5,
    max_iter=200,
    tol=1e-4,
    n_iter_no_change=10,
    rng=None,
    validation=None,
    verbose=False,
    state=None,
    average=False,
    reference_loss=None,
    first_epoch=1,
    preconditioner=None,
    step_batch=None,
    test_gradient=True,
    tested_gradient=None,
    recondition=None,
    loss_resolution=None,
    settled_change=None,
    loss_limit_raises=True,
):
    """Minimize ``objective`` by (mini-)batch gradient steps of ``rule``.

    Parameters
    ----------
    objective : callable
        ``objective(params, batch) -> (loss, grad)``; ``batch`` is None or an
        index array; ``grad`` is a fresh 1-D array the solver may overwrite.
    params : ndarray of shape (n_params,)
        Initial parameters; updated in place and returned.
    rule : object
        Update rule with ``init`` and ``step`` (see :class:`Momentum`).
    n_samples : int
        Number of samples the batches index.
    batch_size : int
        Mini-batch size; ``>= n_samples`` means full batch.
    learning_rate : float or ndarray of shape (n_params,)
        Initial step, per parameter when an array.
    schedule : {"constant", "invscaling", "adaptive"}, default="constant"
        Learning-rate schedule, per epoch.
    power_t : float, default=0.5
        Exponent of ``"invscaling"``: ``lr_t = lr / t ** power_t`` with ``t``
        the epoch number (from ``first_epoch``).
    max_iter : int, default=200
        Maximum number of epochs.
    tol : float, default=1e-4
        Convergence tolerance (see the module docstring).
    n_iter_no_change : int, default=10
        Epochs without improvement before stopping (mini-batch).
    rng : numpy.random.RandomState or None, default=None
        Shuffles the samples each epoch when given.
    validation : callable or None, default=None
        ``validation(params) -> (loss, score)``; enables early stopping on
        the score, and the parameters returned are those of the best score
        (of equal ones, those of the lowest loss).
    verbose : bool, default=False
        Print one line per epoch.
    state : dict or None, default=None
        Rule state to continue from (``partial_fit``); a new one otherwise.
    reference_loss : float or None, default=None
        Loss at the start of training, against which divergence is judged
        (an epoch loss above 100 times it, or 1, raises
        :class:`DivergenceError`); the first evaluated loss when None.
    first_epoch : int, default=1
        Number of this run's first epoch in a longer training (``partial_fit``
        calls), for the ``"invscaling"`` schedule.
    average : bool, default=False
        Mini-batch only: from the second epoch on, validate and return the
        mean of each epoch's iterates instead of the last one (tail
        averaging), which removes most of the gradient noise from the
        result at no extra passes.
    step_batch : int or None, default=None
        The batch size ``learning_rate`` is meant for (``batch_size``
        when None).  A batch of fewer rows, a small ``partial_fit`` chunk
        say, takes a step that many times shorter: every row then moves the
        parameters alike, and a batch of one row does not take the full
        step of a batch of 256, which is far too long for its curvature
        (and its noise).  Not for rules whose steps do not grow with the
        gradient (Adam's ``scales_with_batch`` is False).
    preconditioner : ndarray of shape (n_params,) or None, default=None
        Per-parameter factors already folded into ``learning_rate``.  For a
        rule linear in its step (plain gradient descent, momentum), steps of
        ``learning_rate`` are the descent with steps ``learning_rate /
        preconditioner`` in the coordinates ``params / sqrt(preconditioner)``,
        where the gradient is ``grad * sqrt(preconditioner)``; the full-batch
        test against ``tol`` and the floor of the ``"adaptive"`` schedule
        read the gradient and the step in those coordinates.
    test_gradient : bool, default=True
        On the full batch, stop (before stepping) once the largest gradient
        entry is at most ``tol``.  ``partial_fit`` passes False: its batch
        is one chunk of a stream, whose gradient says nothing of the
        stream's convergence, and the test would skip the chunk's step.
    tested_gradient : callable or None, default=None
        ``tested_gradient(grad) -> array``: the gradient in the coordinates
        whose largest entry the full-batch test reads, for ``params`` in
        other coordinates (see ``preconditioner``, which it replaces).
    recondition : callable or None, default=None
        Full batch only: ``recondition(params) -> convert or None``, called
        after each step, may change the coordinates of the parameters (a
        preconditioner formed again at the current point): it then returns
        the linear map ``convert(flat) -> flat`` from the old coordinates to
        the new, which converts ``params``, the rule's state (see
        :meth:`UpdateRule.change_coordinates`) and the best parameters kept
        for early stopping.
    loss_resolution : float or None, default=None
        Full batch with the gradient test: also stop (converged) after
        ``n_iter_no_change`` passes whose loss fell below the best by at
        most this fraction of it, the loss's own rounding (float32), where
        rounding in the tested gradient may keep it above ``tol``.
    settled_change : float or None, default=None
        Full batch with the gradient test: stop only where the last pass
        also lowered the loss by at most this fraction of it, and did not
        raise it beyond its rounding (see :func:`_settled`).  Momentum can
        carry the iterates along a floor whose gradient is within ``tol``
        while the loss still falls by percents a pass (nearly separable
        data, many classes: the default fit stopped there 15% to 99% above
        its optimal loss, at 0.27 test accuracy where the optimum and
        LogisticRegression reach 0.46).  Only where the objective has a
        minimum (a penalty): on separable data without one the loss falls
        by about as much of itself at every pass, forever.

    loss_limit_raises : bool, default=True
        Whether an epoch loss beyond 100 times ``reference_loss`` (or 1)
        raises :class:`DivergenceError`.  Otherwise the run goes on (a
        non-finite loss or parameters still raise) and ``loss_exceeded`` in
        the result says so: ``partial_fit`` then tells a diverging model
        from a chunk with a few rows far out (see
        ``SoftmaxRegression._fit_single_threaded_blas``).

    Returns
    -------
    result : SolverResult
        With the rule's ``state``, the last ``learning_rate`` and the
        ``reference_loss``, from which ``partial_fit`` continues.

    Raises
    ------
    DivergenceError
        When an epoch's loss, or the parameters, stop being finite, or the
        loss grows past 100 times ``reference_loss`` (or 1).
    """
    full_batch = batch_size >= n_samples
    if step_batch is None:
        step_batch = min(batch_size, n_samples)
    if not getattr(rule, "scales_with_batch", True):
        step_batch = 0
    # The gradient-norm test needs the full gradient and a rule that settles.
    stop_on_gradient = test_gradient and full_batch and rule.exact
    average = average and not full_batch
    if average and max_iter > 1:
        params_sum, averaged = np.empty_like(params), np.empty_like(params)
    if state is None:
        state = rule.init(params)
    base_rate = learning_rate
    root_preconditioner = None
    if preconditioner is not None and stop_on_gradient:
        root_preconditioner = np.sqrt(preconditioner)
    loss_curve, val_scores, val_losses = [], [], []
    best_loss, best_score, no_improvement = np.inf, -np.inf, 0
    best_params_loss = np.inf  # (the validation loss of best_params)
    resolved_loss, unresolved = np.inf, 0  # (see loss_resolution)
    best_params = None
    converged = False
    epoch = 0
    loss_exceeded = False
    for epoch in range(1, max_iter + 1):
        if schedule == "invscaling":
            learning_rate = base_rate / ((first_epoch + epoch - 1) ** power_t)
        epoch_loss = 0.0
        grad_norm = np.inf
        settled = False
        # The epoch's mean iterate: its noise shrinks with the number of steps
        # averaged, the last iterate's does not.  The first epoch's mean
        # would carry the transient from the starting point: it is not
        # taken (nor summed, a pass over the parameters a step).
        averaging = average and epoch > 1
        if averaging:
            params_sum[...] = 0.0
            n_steps = 0
        for batch in _batches(n_samples, batch_size, rng):
            loss, grad = objective(params, batch)
            if reference_loss is None:
                reference_loss = float(loss)
            # A batch's loss estimates the full loss (see
            # sk_softmax._softmax._make_objective): over an epoch, the
            # batches' shares add up to it.
            if batch is None:
                epoch_loss = loss
            else:
                epoch_loss += loss * batch.size / n_samples
            if stop_on_gradient:
                # In the coordinates of the steps (see preconditioner).
                if tested_gradient is not None:
                    scaled = tested_gradient(grad)
                elif root_preconditioner is not None:
                    scaled = grad * root_preconditioner
                else:
                    scaled = grad
                grad_norm = float(np.max(np.abs(scaled))) if grad.size else 0.0
                settled = grad_norm <= tol and (
                    settled_change is None
                    or not loss_curve
                    or _settled(
                        loss_curve[-1],
                        float(loss),
                        settled_change,
                        loss_resolution or _loss_rounding(loss),
                    )
                )
                if settled:
                    break
            rows = n_samples if batch is None else batch.size
            if rows < step_batch:
                rule.step(params, grad, state, learning_rate * (rows / step_batch))
            else:
                rule.step(params, grad, state, learning_rate)
            convert = None
            if recondition is not None and batch is None:
                convert = recondition(params)
            if convert is not None:
                params[...] = convert(params)
                state = rule.change_coordinates(params, state, convert)
                if best_params is not None:
                    best_params = convert(best_params)
                if verbose:
                    print("Preconditioner formed again at the current curvature.")
            if averaging:
                params_sum += params
                n_steps += 1
        if averaging:
            np.divide(params_sum, max(n_steps, 1), out=averaged)
        current = averaged if averaging else params
        epoch_loss = float(epoch_loss)
        finite = math.isfinite(epoch_loss) and math.isfinite(float(current.sum()))
        # A loss far above where training started only grows from there: a
        # step too large for the curvature (momentum and Adam keep it finite
        # for a while, but it never comes back).
        beyond = epoch_loss > _DIVERGENCE_FACTOR * max(reference_loss, 1.0)
        if not finite or (beyond and loss_limit_raises):
            raise DivergenceError(first_epoch + epoch - 1, learning_rate)
        loss_exceeded = loss_exceeded or beyond
        loss_curve.append(epoch_loss)
        # (Formatted only when printed: a few microseconds an epoch.)
        message = None
        if verbose:
            message = f"Epoch {first_epoch + epoch - 1}, loss = {epoch_loss:.8f}"
            if stop_on_gradient:
                message += f", max|grad| = {grad_norm:.3e}"
        if validation is not None:
            val_loss, val_score = validation(current)
            val_losses.append(float(val_loss))
            val_scores.append(float(val_score))
            if verbose:
                message += (
                    f", validation loss = {val_loss:.6f}, score = {val_score:.4f}"
                )
            no_improvement = no_improvement + 1 if val_score < best_score + tol else 0
            # Equal scores (a held-out accuracy moves by whole rows) go to
            # the lower validation loss: the earliest epoch of a plateau
            # may be far from trained.
            if val_score > best_score or (
                val_score == best_score and float(val_loss) < best_params_loss
            ):
                best_score = val_score
                best_params_loss = float(val_loss)
                best_params = current.copy()
            best_loss = min(best_loss, float(val_loss))
        else:
            no_improvement = no_improvement + 1 if epoch_loss > best_loss - tol else 0
            best_loss = min(best_loss, epoch_loss)
        if verbose:
            print(message)
        if settled:
            if verbose:
                print(f"Largest gradient entry at most tol={tol:g}. Stopping.")
            converged = True
            break
        if stop_on_gradient and loss_resolution is not None:
            if resolved_loss == np.inf or (
                epoch_loss < resolved_loss - loss_resolution * abs(resolved_loss)
            ):
                resolved_loss, unresolved = epoch_loss, 0
            else:
                unresolved += 1
            if unresolved > n_iter_no_change:
                if verbose:
                    print(
                        f"Loss did not fall by more than its resolution for "
                        f"{n_iter_no_change} consecutive passes. Stopping."
                    )
                converged = True
                break
        # The loss-based rule stops noisy (mini-batch, Adam) runs, and any
        # run watched by a validation set.
        if no_improvement > n_iter_no_change and (
            validation is not None or not stop_on_gradient
        ):
            if (
                schedule == "adaptive"
                and _largest_step(learning_rate, preconditioner) > 1e-6
            ):
                learning_rate = learning_rate / 5.0
                no_improvement = 0
                if verbose:
                    # (In the coordinates of the floor above.)
                    step = _largest_step(learning_rate, preconditioner)
                    print(f"Learning rate lowered to {step:.3g}")
            else:
                if verbose:
                    watched = (
                        "Training loss" if validation is None else "Validation score"
                    )
                    print(
                        f"{watched} did not improve more than tol={tol:g} for "
                        f"{n_iter_no_change} consecutive epochs. Stopping."
                    )
                converged = True
                break
    if best_params is not None:
        params[...] = best_params
    elif average and epoch > 1:
        params[...] = averaged
    return SolverResult(
        params=params,
        n_iter=epoch,
        converged=converged,
        loss_curve=loss_curve,
        validation_scores=val_scores if validation is not None else None,
        validation_losses=val_losses if validation is not None else None,
        best_loss=best_loss,
        n_passes=epoch,
        state=state,
        learning_rate=learning_rate,
        reference_loss=reference_loss,
        loss_exceeded=loss_exceeded,
    )


class Restart(Exception):
    """L-BFGS stopped by its ``check``: the caller fits again otherwise."""


def lbfgs(
    objective,
    params,
    *,
    max_iter=100,
    tol=1e-4,
    verbose=False,
    gradient_scale=1.0,
    check=None,
    check_at=None,
):
    """Full-batch L-BFGS-B (scipy's, see :func:`~._compat.minimize_lbfgsb`).

    Stops when the largest gradient entry is at most ``tol`` (scipy's
    ``gtol``), when the relative decrease of the loss falls below
    ``64 * machine epsilon`` or a line search fails (with a ``stop_reason``
    in the result when the gradient is then above ``tol``), or after
    ``max_iter`` iterations (``converged`` False).

    Parameters
    ----------
    objective : callable
        ``objective(params, None) -> (loss, grad)``.
    params : ndarray of shape (n_params,)
        Starting point (float64).
    max_iter : int, default=100
        Maximum number of L-BFGS iterations.
    tol : float, default=1e-4
        Gradient tolerance, on the gradient times ``gradient_scale``.
    verbose : bool, default=False
        Print one line per iteration.
    gradient_scale : float or ndarray of shape (n_params,), default=1.0
        Positive factors from the gradient in ``params``' coordinates to
        the one ``tol`` bounds (the coordinates' scales: the gradient of
        ``W diag(scale)`` is that of ``W`` divided by ``scale``).  scipy
        tests every entry against ``tol`` over the largest factor, so that
        the stop is at least as tight; ``largest_gradient`` and the stop
        reason are in ``tol``'s units.
    check : callable, default=None
        Called without arguments once, after iteration ``check_at``, or at
        the end where L-BFGS stops earlier without converging: if it
        returns True, L-BFGS stops and :class:`Restart` is raised.
    check_at : int, default=None
        See ``check``; None checks only at such an end.

    Returns
    -------
    result : SolverResult

    Raises
    ------
    Restart
        Where ``check`` returned True.
    """
    loss_curve = []
    last_loss = [np.nan]
    pending = [check]  # (the check, until it has run)

    def run_check():
        test, pending[0] = pending[0], None
        if test is not None and test():
            raise Restart()

    def fun(x):
        loss, grad = objective(x, None)
        last_loss[0] = float(loss)
        return last_loss[0], np.asarray(grad, dtype=np.float64)

    def callback():
        # L-BFGS-B's last evaluation before a callback is the accepted iterate.
        loss_curve.append(last_loss[0])
        if verbose:
            print(f"Iteration {len(loss_curve)}, loss = {loss_curve[-1]:.8f}")
        if len(loss_curve) == check_at:
            run_check()

    opt = minimize_lbfgsb(
        fun,
        params,
        maxiter=max_iter,
        maxls=50,
        gtol=tol / float(np.max(gradient_scale)),
        ftol=64 * np.finfo(float).eps,
        callback=callback,
    )
    if not np.all(np.isfinite(opt.x)) or not np.isfinite(opt.fun):
        raise ValueError(
            "L-BFGS produced non-finite parameters; rescale the features, e.g. "
            "with StandardScaler."
        )
    # Status 1 is "too many iterations".  L-BFGS-B also stops when the loss
    # no longer decreases measurably (relative decrease below 64 eps, or a
    # failed line search): in float64 that is the optimum to machine
    # precision, but a float32 loss is known to ~1e-7 only, and the stop can
    # come with the gradient well above a small tol.  The caller, who knows
    # the precision of the objective, decides what to say about it.
    largest = float(np.max(np.abs(opt.jac * gradient_scale), initial=0.0))
    if opt.status == 1 or not largest <= tol:
        run_check()
    stop_reason = None
    if opt.status != 1 and not largest <= tol:
        stop_reason = (
            f"stopped after {int(opt.nit)} iterations where the loss no longer "
            f"decreased measurably, with the largest gradient entry at "
            f"{largest:.2g} > tol={tol:g}"
        )
    return SolverResult(
        params=opt.x,
        n_iter=int(opt.nit),
        converged=opt.status != 1 or largest <= tol,
        loss_curve=loss_curve,
        best_loss=float(opt.fun),
        n_passes=int(opt.nfev),
        stop_reason=stop_reason,
        largest_gradient=largest,
    )
