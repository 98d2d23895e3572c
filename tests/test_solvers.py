"""Solvers and update rules, tested without the estimator.

The objectives are built here from ``_loss._loss_and_gradient`` over a flat
``[W.ravel(), b]`` vector (as skglm tests its solvers), or are plain
quadratics, so a failure points at ``_solvers.py`` and nothing above it.
"""

import contextlib
import functools
import math
import os
import threading

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.datasets import load_iris, make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_info, threadpool_limits

from sk_softmax import _loss, loss_and_gradient
from sk_softmax._compat import minimize_lbfgsb
from sk_softmax._loss import (
    _loss_and_gradient,
    lipschitz_constants,
    single_threaded_blas,
)
from sk_softmax._solvers import (
    AcceleratedGradient,
    Adam,
    DivergenceError,
    Momentum,
    Restart,
    UpdateRule,
    _batches,
    gradient_descent,
    lbfgs,
)

# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def softmax_objective(X, y, n_classes, *, alpha, sample_weight=None, offset=None):
    """``objective(params, batch)`` over ``[W.ravel(), b]`` with an intercept.

    ``sample_weight`` (raw, not normalized) or None; a batch of ``B`` rows
    weighs them ``n / B`` times their normalized weights, as the estimator
    does (an unbiased estimate of the full objective).
    """
    n_samples, n_features = X.shape
    n_coef = n_classes * n_features
    if sample_weight is None:
        weights = np.full(n_samples, 1.0 / n_samples)
    else:
        weights = sample_weight / sample_weight.sum()

    def objective(params, batch):
        coef = params[:n_coef].reshape(n_classes, n_features)
        intercept = params[n_coef:]
        if batch is None:
            X_b, y_b, w_b = X, y, weights
        else:
            X_b, y_b = X[batch], y[batch]
            w_b = weights[batch] * (n_samples / batch.size)
        loss, grad_coef, grad_intercept = _loss_and_gradient(
            coef, intercept, X_b, y_b, w_b, alpha, 0.0, offset
        )
        return loss, np.concatenate([grad_coef.ravel(), grad_intercept])

    return objective


def unpack(params, n_classes, n_features, offset=None):
    """``(W, b)`` in the original coordinates from the flat solver vector."""
    n_coef = n_classes * n_features
    coef = params[:n_coef].reshape(n_classes, n_features)
    intercept = params[n_coef:].copy()
    if offset is not None:
        intercept -= coef @ offset  # b = b' - W mean
    return coef, intercept


@functools.cache
def dataset(name):
    """``(X, y, sample_weight or None, alpha)``."""
    if name == "iris":
        X, y = load_iris(return_X_y=True)
        return StandardScaler().fit_transform(X), y, None, 1e-2
    if name == "classif3":
        X, y = make_classification(
            n_samples=300,
            n_features=8,
            n_informative=5,
            n_redundant=1,
            n_classes=3,
            random_state=0,
        )
        return X, y, None, 1e-2
    if name == "classif3_weighted":
        X, y, _, alpha = dataset("classif3")
        rng = np.random.RandomState(1)
        sample_weight = rng.randint(0, 4, size=y.size).astype(float)
        return X, y, sample_weight, alpha
    if name == "binary":
        X, y = make_classification(
            n_samples=200, n_features=6, n_informative=4, random_state=2
        )
        return X, y, None, 1e-2
    raise KeyError(name)


@functools.cache
def reference(name):
    """scikit-learn's optimum as ``(W, b)`` with softmax's K rows.

    J = 1/S sum s_i CE_i + alpha/2 ||W||^2 is LogisticRegression's objective
    divided by C S, so C = 1/(alpha S) for K > 2.  For K = 2 the penalty on
    w = W[1] - W[0] is alpha/4 ||w||^2, so C = 2/(alpha S).
    """
    X, y, sample_weight, alpha = dataset(name)
    weight_sum = X.shape[0] if sample_weight is None else sample_weight.sum()
    n_classes = np.unique(y).size
    C = (2.0 if n_classes == 2 else 1.0) / (alpha * weight_sum)
    lr = LogisticRegression(C=C, tol=1e-10, max_iter=10000)
    lr.fit(X, y, sample_weight=sample_weight)
    return lr.coef_, lr.intercept_


def assert_matches_reference(name, coef, intercept):
    ref_coef, ref_intercept = reference(name)
    if coef.shape[0] == 2:
        assert_allclose(coef[1] - coef[0], ref_coef[0], rtol=1e-5, atol=1e-5)
        assert_allclose(
            intercept[1] - intercept[0], ref_intercept[0], rtol=1e-5, atol=1e-5
        )
        return
    assert_allclose(coef, ref_coef, rtol=1e-5, atol=1e-5)
    # The intercept is not penalized: only its differences are identified.
    assert_allclose(
        intercept - intercept.mean(),
        ref_intercept - ref_intercept.mean(),
        rtol=1e-5,
        atol=1e-5,
    )


def quadratic(n=20, condition=1e3, seed=0):
    """``f(x) = 0.5 x^T A x - b^T x`` (ignores the batch), ``A``, ``b``, ``x*``."""
    rng = np.random.RandomState(seed)
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    eigenvalues = np.logspace(0, np.log10(condition), n)
    A = (q * eigenvalues) @ q.T
    A = 0.5 * (A + A.T)
    b = rng.standard_normal(n)
    x_opt = np.linalg.solve(A, b)

    def objective(x, batch=None):
        ax = A @ x
        return 0.5 * float(x @ ax) - float(b @ x), ax - b

    return objective, A, b, x_opt


def gd(objective, params, **kwargs):
    """gradient_descent with test defaults (full batch of one sample)."""
    options = dict(n_samples=1, batch_size=1, learning_rate=0.1)
    options.update(kwargs)
    return gradient_descent(objective, params, **options)


# ---------------------------------------------------------------------------
# 1. Solvers against LogisticRegression
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["iris", "classif3", "classif3_weighted", "binary"])
@pytest.mark.parametrize("centered", [False, True])
def test_lbfgs_matches_logistic_regression(name, centered):
    X, y, sample_weight, alpha = dataset(name)
    n_classes, n_features = np.unique(y).size, X.shape[1]
    offset = None
    if centered:
        weights = np.ones(y.size) if sample_weight is None else sample_weight
        offset = np.average(X, axis=0, weights=weights)
    objective = softmax_objective(
        X, y, n_classes, alpha=alpha, sample_weight=sample_weight, offset=offset
    )
    params = np.zeros(n_classes * (n_features + 1))
    result = lbfgs(objective, params, max_iter=1000, tol=1e-10)
    assert result.converged
    assert 0 < result.n_iter < 1000
    assert len(result.loss_curve) == result.n_iter
    assert result.n_passes >= result.n_iter
    assert result.best_loss == pytest.approx(objective(result.params, None)[0])
    coef, intercept = unpack(result.params, n_classes, n_features, offset)
    assert_matches_reference(name, coef, intercept)


@pytest.mark.parametrize("name", ["iris", "classif3", "classif3_weighted", "binary"])
def test_accelerated_gradient_matches_logistic_regression(name):
    X, y, sample_weight, alpha = dataset(name)
    n_classes, n_features = np.unique(y).size, X.shape[1]
    n_coef = n_classes * n_features
    weights = (
        np.full(y.size, 1.0 / y.size)
        if sample_weight is None
        else sample_weight / sample_weight.sum()
    )
    lipschitz_coef, lipschitz_intercept, mean = lipschitz_constants(
        X, weights, alpha=alpha, fit_intercept=True
    )
    assert lipschitz_intercept == 0.5
    learning_rate = np.empty(n_coef + n_classes)
    learning_rate[:n_coef] = 1.0 / lipschitz_coef
    learning_rate[n_coef:] = 1.0 / lipschitz_intercept
    objective = softmax_objective(
        X, y, n_classes, alpha=alpha, sample_weight=sample_weight, offset=mean
    )
    params = np.zeros(n_coef + n_classes)
    result = gradient_descent(
        objective,
        params,
        rule=AcceleratedGradient(),
        n_samples=y.size,
        batch_size=y.size,
        learning_rate=learning_rate,
        max_iter=20000,
        tol=1e-9,
    )
    assert result.converged
    assert result.n_iter < 20000
    assert len(result.loss_curve) == result.n_iter
    assert np.max(np.abs(objective(result.params, None)[1])) <= 1e-9
    coef, intercept = unpack(result.params, n_classes, n_features, mean)
    assert_matches_reference(name, coef, intercept)


def test_lbfgs_max_iter_not_converged():
    X, y, _, alpha = dataset("classif3")
    objective = softmax_objective(X, y, 3, alpha=alpha)
    result = lbfgs(objective, np.zeros(3 * (X.shape[1] + 1)), max_iter=3, tol=1e-12)
    assert not result.converged
    assert result.n_iter == 3


@pytest.mark.parametrize("check_at", [2, None])
@pytest.mark.parametrize("answer", [False, True])
def test_lbfgs_check_runs_once_where_not_converged(check_at, answer):
    # After iteration check_at, or at the end of a fit stopped earlier
    # without converging (max_iter): once, and True stops with Restart.
    X, y, _, alpha = dataset("classif3")
    objective = softmax_objective(X, y, 3, alpha=alpha)
    calls = []

    def check():
        calls.append(True)
        return answer

    def fit(max_iter):
        return lbfgs(
            objective,
            np.zeros(3 * (X.shape[1] + 1)),
            max_iter=max_iter,
            tol=1e-12,
            check=check,
            check_at=check_at,
        )

    if answer:
        with pytest.raises(Restart):
            fit(5)
    else:
        assert fit(5).n_iter == 5
    assert calls == [True]
    # Converged before check_at: no check.
    calls.clear()
    result = lbfgs(
        objective, np.zeros(3 * (X.shape[1] + 1)), tol=1e-2, check=check, check_at=1000
    )
    assert result.converged and result.n_iter < 1000 and calls == []
    result = lbfgs(objective, np.zeros(3 * (X.shape[1] + 1)), tol=1e-2, check=check)
    assert result.converged and calls == []


def _lbfgsb_problems():
    """Cases ``(fun, x0, options, status)``: L-BFGS-B ending in each of its ways."""
    X, y, sample_weight, alpha = dataset("classif3_weighted")
    n_params = 3 * (X.shape[1] + 1)
    softmax = softmax_objective(X, y, 3, alpha=alpha, sample_weight=sample_weight)
    X32 = X.astype(np.float32)
    softmax32 = softmax_objective(X32, y, 3, alpha=np.float32(alpha))

    def fun(objective):
        def f(x):
            loss, grad = objective(x, None)
            return float(loss), np.asarray(grad, dtype=np.float64)

        return f

    def rosenbrock(x):
        value = np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)
        grad = np.zeros_like(x)
        grad[:-1] = -400.0 * x[:-1] * (x[1:] - x[:-1] ** 2) - 2 * (1 - x[:-1])
        grad[1:] += 200.0 * (x[1:] - x[:-1] ** 2)
        return value, grad

    def kink(x):
        # |x|_1 with ftol=0: the line search ends up failing at the kink.
        return float(np.abs(x).sum()), np.sign(x)

    start = np.zeros(n_params)
    options = dict(maxiter=1000, gtol=1e-10, ftol=64 * np.finfo(float).eps, maxls=50)
    cases = [
        ("converged", fun(softmax), start, dict(options, gtol=1e-6), 0),
        ("max_iter", fun(softmax), start, dict(options, maxiter=4), 1),
        ("max_fun", rosenbrock, np.full(6, -1.5), dict(options, maxfun=20), 1),
        # float32 losses stop decreasing (relative change below ftol) while
        # the gradient is still above 1e-10: scipy calls that converged.
        ("stalled", fun(softmax32), start, options, 0),
        ("line_search_fails", kink, np.ones(3), dict(options, ftol=0.0), 2),
        (
            "rosenbrock_maxcor_3",
            rosenbrock,
            np.full(6, -1.5),
            dict(options, maxcor=3),
            0,
        ),
    ]
    return [pytest.param(*case[1:], id=case[0]) for case in cases]


@pytest.mark.parametrize("fun, x0, options, status", _lbfgsb_problems())
def test_minimize_lbfgsb_follows_scipy_minimize(fun, x0, options, status):
    # Same evaluation points, iterations and result as scipy.optimize.minimize.
    import scipy.optimize

    points = {"ours": [], "scipy": []}
    iterations = {"ours": 0, "scipy": 0}

    def recording(side):
        def f(x):
            points[side].append(x.copy())
            return fun(x)

        return f

    def count(side):
        iterations[side] += 1

    ours = minimize_lbfgsb(
        recording("ours"), x0, callback=lambda: count("ours"), **options
    )
    theirs = scipy.optimize.minimize(
        recording("scipy"),
        x0,
        method="L-BFGS-B",
        jac=True,
        callback=lambda *_: count("scipy"),
        options=options,
    )
    assert len(points["ours"]) == len(points["scipy"]) == ours.nfev == theirs.nfev
    for mine, reference in zip(points["ours"], points["scipy"], strict=True):
        assert_array_equal(mine, reference)
    assert_array_equal(ours.x, theirs.x)
    assert_array_equal(ours.jac, theirs.jac)
    assert ours.fun == theirs.fun
    assert ours.nit == theirs.nit == iterations["ours"] == iterations["scipy"]
    assert ours.status == theirs.status == status


def test_minimize_lbfgsb_skips_minimize_on_the_scipy_releases_it_knows(monkeypatch):
    import scipy
    import scipy.optimize
    from sklearn.utils.fixes import parse_version

    version = parse_version(parse_version(scipy.__version__).base_version)
    known = parse_version("1.15") <= version < parse_version("1.18")

    def refuse(*args, **kwargs):
        raise AssertionError("scipy.optimize.minimize called")

    monkeypatch.setattr(scipy.optimize, "minimize", refuse)
    fun = lambda x: (float(x @ x), 2 * x)  # noqa: E731
    if known:
        result = minimize_lbfgsb(fun, np.ones(3), maxiter=10, gtol=1e-8, ftol=1e-12)
        assert_allclose(result.x, 0.0, atol=1e-8)
    else:
        with pytest.raises(AssertionError, match="minimize called"):
            minimize_lbfgsb(fun, np.ones(3), maxiter=10, gtol=1e-8, ftol=1e-12)


def test_minimize_lbfgsb_does_not_modify_x0_and_passes_copies():
    x0 = np.full(4, 3.0)
    seen = []

    def fun(x):
        seen.append(x)
        return float(x @ x), 2 * x

    result = minimize_lbfgsb(fun, x0, maxiter=50, gtol=1e-12, ftol=1e-15)
    assert_array_equal(x0, 3.0)
    assert_allclose(result.x, 0.0, atol=1e-8)
    assert len({id(x) for x in seen}) == len(seen)
    assert not any(np.shares_memory(x, result.x) for x in seen)


# ---------------------------------------------------------------------------
# 2. Update rules in isolation
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("nesterov", [False, True])
def test_momentum_zero_is_plain_gradient_descent(nesterov):
    objective, _, _, _ = quadratic()
    x0 = np.random.RandomState(3).standard_normal(20)
    learning_rate = 1e-3
    rule = Momentum(momentum=0.0, nesterov=nesterov)
    x = x0.copy()
    state = rule.init(x)
    for _ in range(3):
        expected = x - learning_rate * objective(x)[1]
        rule.step(x, objective(x)[1], state, learning_rate)
        assert_allclose(x, expected, rtol=1e-13, atol=1e-15)
    # The same through the loop: one epoch of the full batch is one step.
    params = x0.copy()
    result = gd(objective, params, rule=rule, learning_rate=learning_rate, max_iter=1)
    assert_allclose(result.params, x0 - learning_rate * objective(x0)[1], rtol=1e-13)
    assert result.n_iter == 1 and not result.converged


@pytest.mark.parametrize("nesterov", [False, True])
def test_momentum_two_steps_by_hand(nesterov):
    objective, _, _, _ = quadratic()
    x0 = np.random.RandomState(4).standard_normal(20)
    lr, mu = 1e-3, 0.9
    # By hand, MLPClassifier's rule: v <- mu v - lr g; x += v (heavy ball)
    # or x += mu v - lr g (Nesterov).
    x, v = x0.copy(), np.zeros(20)
    for _ in range(2):
        g = objective(x)[1]
        v = mu * v - lr * g
        x = x + (mu * v - lr * g if nesterov else v)
    rule = Momentum(momentum=mu, nesterov=nesterov)
    params = x0.copy()
    state = rule.init(params)
    for _ in range(2):
        rule.step(params, objective(params)[1], state, lr)
    assert_allclose(params, x, rtol=1e-13, atol=1e-15)
    assert_allclose(state["velocity"], v, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("nesterov", [False, True])
def test_momentum_converges_on_quadratic(nesterov):
    objective, A, _, x_opt = quadratic(condition=100.0)
    lipschitz = np.linalg.eigvalsh(A)[-1]
    result = gd(
        objective,
        np.zeros(20),
        rule=Momentum(momentum=0.9, nesterov=nesterov),
        learning_rate=1.0 / lipschitz,
        max_iter=5000,
        tol=1e-8,
    )
    assert result.converged
    assert result.n_iter < 5000
    assert_allclose(result.params, x_opt, rtol=1e-6, atol=1e-7)


def test_accelerated_gradient_beats_plain_gradient_descent():
    objective, A, _, x_opt = quadratic(condition=1e3)
    learning_rate = 1.0 / np.linalg.eigvalsh(A)[-1]
    options = dict(learning_rate=learning_rate, max_iter=100_000, tol=1e-6)
    plain = gd(objective, np.zeros(20), rule=Momentum(momentum=0.0), **options)
    fast = gd(objective, np.zeros(20), rule=AcceleratedGradient(), **options)
    assert plain.converged and fast.converged
    assert fast.n_iter < plain.n_iter / 2
    assert_allclose(fast.params, x_opt, rtol=1e-5, atol=1e-6)
    # Restarting keeps the tail close to monotone (no long momentum ripples).
    tail = np.diff(fast.loss_curve[len(fast.loss_curve) // 2 :])
    assert np.mean(tail <= 1e-12) > 0.9


def test_loss_resolution_stops_where_the_loss_no_longer_falls():
    # A gradient held above tol by rounding noise, on a loss that has
    # stopped falling: with loss_resolution the full batch stops after
    # n_iter_no_change passes without a fall beyond it (converged);
    # without, at max_iter.
    def objective(params, batch=None):
        noise = np.full_like(params, 1e-2)  # (above tol, whatever params)
        return 1.0 + 1e-9 * float(params @ params), 2e-9 * params + noise

    runs = [
        gradient_descent(
            objective,
            np.zeros(3),
            rule=Momentum(momentum=0.0),
            n_samples=10,
            batch_size=10,
            learning_rate=1e-3,
            max_iter=100,
            tol=1e-4,
            n_iter_no_change=5,
            loss_resolution=resolution,
        )
        for resolution in (None, 2.0**-20)
    ]
    assert runs[0].n_iter == 100 and not runs[0].converged
    assert runs[1].n_iter == 7 and runs[1].converged


def test_recondition_changes_coordinates_during_the_run():
    # Steps in coordinates z, x = L^-T z (L L^T the preconditioner):
    # gradient_descent lets a callback change L midway, converting the
    # parameters and the rule's state; the run then converges in the new
    # coordinates, to the same optimum, in fewer steps than without.
    objective, A, _, x_opt = quadratic(condition=1e4)
    factors = [np.eye(20), np.linalg.cholesky(A)]
    current = [0]
    calls = []

    def in_coordinates(z, batch=None):
        L = factors[current[0]]
        loss, grad = objective(np.linalg.solve(L.T, z))
        return loss, np.linalg.solve(L, grad)

    def recondition(z):
        calls.append(z.copy())
        if len(calls) != 10:
            return None
        old = factors[current[0]]
        current[0] = 1

        def convert(flat):
            return factors[1].T @ np.linalg.solve(old.T, flat)

        return convert

    start = np.zeros(20)
    learning_rate = 1.0 / np.linalg.eigvalsh(A)[-1]
    options = dict(max_iter=100_000, tol=1e-8, rule=AcceleratedGradient())
    result = gd(
        in_coordinates,
        start,
        learning_rate=learning_rate,
        **options,
        recondition=recondition,
    )
    assert current[0] == 1 and len(calls) == result.n_iter - 1
    x = np.linalg.solve(factors[1].T, result.params)
    assert_allclose(x, x_opt, rtol=1e-6, atol=1e-7)
    current[0] = 0
    plain = gd(in_coordinates, np.zeros(20), learning_rate=learning_rate, **options)
    assert result.n_iter < plain.n_iter / 3


def test_accelerated_gradient_keeps_its_momentum_across_coordinates():
    # After a change of coordinates the previous iterate is converted and
    # the sequence t kept; the step multiplier starts again.  A rule
    # without its own method starts again altogether.
    rule = AcceleratedGradient()
    objective, A, _, _ = quadratic()
    params = np.zeros(20)
    state = rule.init(params)
    for _ in range(5):
        rule.step(params, objective(params)[1], state, 0.5 / np.linalg.eigvalsh(A)[-1])
    previous, t = state["x"].copy(), state["t"]
    params *= 2.0
    state = rule.change_coordinates(params, state, lambda flat: 2.0 * flat)
    assert_allclose(state["x"], 2.0 * previous)
    assert state["t"] == t > 1.0
    assert state["scale"] == 1.0 and state["y_prev"] is None and state["steps"] == []
    momentum = Momentum(momentum=0.9)
    moving = momentum.init(params)
    momentum.step(params, np.ones(20), moving, 0.1)
    fresh = momentum.change_coordinates(params, moving, lambda flat: 2.0 * flat)
    assert_array_equal(fresh["velocity"], 0.0)


def test_accelerated_gradient_step_and_restart_by_hand():
    objective, A, _, _ = quadratic(condition=1e3)
    learning_rate = 1.0 / np.linalg.eigvalsh(A)[-1]
    rule = AcceleratedGradient(adaptive=False)
    params = np.zeros(20)
    state = rule.init(params)
    restarts = 0
    for _ in range(300):
        y, x, t = params.copy(), state["x"].copy(), state["t"]
        grad = objective(params)[1]
        x_plus = y - learning_rate * grad
        restart = float((y - x_plus) @ (x_plus - x)) > 0
        if restart:
            restarts += 1
            t = 1.0
        t_next = 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * t * t))
        expected = x_plus + (t - 1.0) / t_next * (x_plus - x)
        rule.step(params, grad, state, learning_rate)
        assert state["t"] == pytest.approx(t_next, rel=1e-14)
        assert_allclose(state["x"], x_plus, rtol=1e-12, atol=1e-14)
        assert_allclose(params, expected, rtol=1e-12, atol=1e-14)
        if restart:
            # t = 1 means no extrapolation on this step.
            assert state["t"] == pytest.approx((1 + math.sqrt(5)) / 2)
            assert_allclose(params, x_plus, rtol=1e-12, atol=1e-14)
    assert restarts >= 1


def test_adaptive_step_follows_local_curvature():
    # Start from a step 100x too large for the quadratic: the secant estimate
    # must pull the multiplier down by more than an order of magnitude, and
    # the run must still converge to the optimum.
    objective, A, _, x_opt = quadratic(condition=1e3)
    top = np.linalg.eigvalsh(A)[-1]
    rule = AcceleratedGradient(adaptive=True, growth=1.05, safety=0.5)
    result = gd(
        objective,
        np.zeros(20),
        rule=rule,
        learning_rate=100.0 / top,
        max_iter=100_000,
        tol=1e-6,
    )
    assert result.converged
    assert_allclose(result.params, x_opt, rtol=1e-5, atol=1e-6)
    # The secant samples the curvature along recent steps, not its maximum,
    # so the multiplier lands near (not exactly below) 1/100.
    assert result.state["scale"] < 0.05


def test_adaptive_step_needs_fewer_iterations_when_curvature_is_overestimated():
    # A global bound 50x the true curvature: plain FISTA pays for it, the
    # adaptive multiplier grows past it.
    objective, A, _, x_opt = quadratic(condition=1e2)
    pessimistic = 1.0 / (50.0 * np.linalg.eigvalsh(A)[-1])
    options = dict(learning_rate=pessimistic, max_iter=100_000, tol=1e-6)
    fixed = gd(
        objective, np.zeros(20), rule=AcceleratedGradient(adaptive=False), **options
    )
    adaptive = gd(objective, np.zeros(20), rule=AcceleratedGradient(), **options)
    assert fixed.converged and adaptive.converged
    assert adaptive.n_iter < fixed.n_iter / 2
    assert_allclose(adaptive.params, x_opt, rtol=1e-5, atol=1e-6)


def test_adam_first_two_steps_by_hand():
    objective, _, _, _ = quadratic()
    x0 = np.random.RandomState(5).standard_normal(20)
    lr, beta_1, beta_2, eps = 1e-2, 0.9, 0.999, 1e-8
    # Kingma & Ba (2014), Algorithm 1 with the reordered step of their
    # section 2 (MLPClassifier's form): lr_t = lr sqrt(1 - b2^t) / (1 - b1^t).
    x, m, v = x0.copy(), np.zeros(20), np.zeros(20)
    steps = []
    for t in (1, 2):
        g = objective(x)[1]
        m = beta_1 * m + (1 - beta_1) * g
        v = beta_2 * v + (1 - beta_2) * g**2
        lr_t = lr * math.sqrt(1 - beta_2**t) / (1 - beta_1**t)
        x = x - lr_t * m / (np.sqrt(v) + eps)
        steps.append(x.copy())
    # Bias-corrected form of Algorithm 1: equal up to where epsilon enters.
    m_hat, v_hat = m / (1 - beta_1**2), v / (1 - beta_2**2)
    x_alg1 = steps[0] - lr * m_hat / (np.sqrt(v_hat) + eps)
    assert_allclose(x_alg1, steps[1], rtol=1e-6)

    rule = Adam(beta_1=beta_1, beta_2=beta_2, epsilon=eps)
    params = x0.copy()
    state = rule.init(params)
    for t, expected in zip((1, 2), steps, strict=True):
        rule.step(params, objective(params)[1], state, lr)
        assert state["t"] == t
        assert_allclose(params, expected, rtol=1e-13, atol=1e-15)
    assert_allclose(state["m"], m, rtol=1e-13)
    assert_allclose(state["v"], v, rtol=1e-13)
    # The first step moves every coordinate by about lr (sign of -g).
    first = steps[0] - x0
    assert_allclose(np.abs(first), lr, rtol=1e-4)
    assert_array_equal(np.sign(first), -np.sign(objective(x0)[1]))


# ---------------------------------------------------------------------------
# 3. gradient_descent: stopping, schedules, validation, divergence, rng
# ---------------------------------------------------------------------------


def test_full_batch_stops_on_gradient_tolerance():
    objective, A, _, x_opt = quadratic(condition=10.0)
    tol = 1e-6
    result = gd(
        objective,
        np.zeros(20),
        rule=Momentum(momentum=0.0),
        learning_rate=1.0 / np.linalg.eigvalsh(A)[-1],
        max_iter=10_000,
        tol=tol,
        n_iter_no_change=2,
    )
    assert result.converged
    assert result.n_iter < 10_000
    assert len(result.loss_curve) == result.n_iter
    assert np.max(np.abs(objective(result.params)[1])) <= tol
    # Not stopped early by the loss rule: still improving at the end.
    assert result.loss_curve[-1] < result.loss_curve[-2]
    assert_allclose(result.params, x_opt, atol=1e-5)


def test_max_iter_reached_is_not_converged():
    objective, A, _, _ = quadratic()
    result = gd(
        objective,
        np.zeros(20),
        rule=AcceleratedGradient(),
        learning_rate=1.0 / np.linalg.eigvalsh(A)[-1],
        max_iter=5,
        tol=1e-12,
    )
    assert not result.converged
    assert result.n_iter == 5
    assert len(result.loss_curve) == 5
    assert np.all(np.diff(result.loss_curve) < 0)


def scripted_objective(losses, batches_per_epoch, n_params=3):
    """Fake objective: the loss of epoch e is ``losses[e]``; gradient ones."""
    calls = []

    def objective(params, batch):
        epoch = len(calls) // batches_per_epoch
        calls.append(params.copy())
        return losses[min(epoch, len(losses) - 1)], np.ones(n_params)

    objective.calls = calls
    return objective


@pytest.mark.parametrize("n_iter_no_change", [1, 3])
def test_minibatch_stops_after_n_iter_no_change(n_iter_no_change):
    tol = 1e-3
    # Improves for 5 epochs, then decreases by less than tol per epoch.
    losses = [5.0, 4.0, 3.0, 2.0, 1.0] + [1.0 - 0.1 * tol * k for k in range(1, 50)]
    objective = scripted_objective(losses, batches_per_epoch=2)
    result = gd(
        objective,
        np.zeros(3),
        rule=Momentum(momentum=0.0),
        n_samples=10,
        batch_size=5,
        learning_rate=1e-3,
        max_iter=100,
        tol=tol,
        n_iter_no_change=n_iter_no_change,
    )
    # MLPClassifier's count: stop once more than n_iter_no_change epochs in a
    # row missed the tolerance.
    assert result.converged
    assert result.n_iter == 5 + n_iter_no_change + 1
    assert len(result.loss_curve) == result.n_iter
    assert_allclose(result.loss_curve, losses[: result.n_iter])
    assert result.best_loss == pytest.approx(min(losses[: result.n_iter]))


def test_full_batch_ignores_loss_plateau():
    # A gradient-settling rule on the full batch stops only on the gradient.
    objective = scripted_objective([1.0], batches_per_epoch=1)
    result = gd(
        objective,
        np.zeros(3),
        rule=Momentum(momentum=0.0),
        learning_rate=1e-3,
        max_iter=20,
        n_iter_no_change=2,
    )
    assert result.n_iter == 20 and not result.converged


def test_invscaling_schedule():
    lr, power_t = 1.0, 0.5
    objective = scripted_objective([1.0], batches_per_epoch=1)
    result = gd(
        objective,
        np.zeros(3),
        rule=Momentum(momentum=0.0),
        learning_rate=lr,
        schedule="invscaling",
        power_t=power_t,
        max_iter=4,
        tol=0.0,
    )
    # Gradient is ones: each epoch's step is its learning rate.
    trajectory = np.array([c[0] for c in objective.calls] + [result.params[0]])
    steps = -np.diff(trajectory)
    assert_allclose(steps, lr / np.arange(1, 5) ** power_t, rtol=1e-12)
    assert result.learning_rate == pytest.approx(lr / 4**power_t)


def test_adaptive_schedule_lowers_learning_rate_on_plateau():
    lr, n_iter_no_change = 0.1, 2
    objective = scripted_objective([1.0], batches_per_epoch=2)
    options = dict(
        rule=Momentum(momentum=0.0),
        n_samples=10,
        batch_size=5,
        learning_rate=lr,
        max_iter=100,
        tol=1e-4,
        n_iter_no_change=n_iter_no_change,
    )
    constant = gd(scripted_objective([1.0], 2), np.zeros(3), **options)
    assert constant.n_iter == n_iter_no_change + 2
    assert constant.learning_rate == lr

    result = gd(objective, np.zeros(3), schedule="adaptive", **options)
    assert result.learning_rate < lr
    assert result.n_iter > constant.n_iter
    assert result.converged
    # Divided by 5 until it is at most 1e-6, then stopped.
    n_lowered = round(math.log(lr / result.learning_rate, 5))
    assert result.learning_rate == pytest.approx(lr / 5**n_lowered)
    assert result.learning_rate <= 1e-6 < 5 * result.learning_rate
    # The steps actually taken shrink too.
    trajectory = np.array([c[0] for c in objective.calls] + [result.params[0]])
    steps = -np.diff(trajectory)
    assert steps[0] == pytest.approx(lr)
    assert steps[-1] == pytest.approx(result.learning_rate)
    assert np.all(np.diff(steps) <= 1e-15)


@pytest.mark.parametrize("batch_size", [100, 10])
def test_validation_early_stopping_restores_best_params(batch_size):
    objective, A, _, _ = quadratic()
    scores = [0.1, 0.2, 0.3, 0.9, 0.5, 0.4, 0.95 - 1e-3, 0.3] + [0.2] * 50
    seen = []

    def validation(params):
        seen.append(params.copy())
        epoch = len(seen) - 1
        return 10.0 - scores[epoch], scores[epoch]

    n_iter_no_change, tol = 3, 0.1
    result = gd(
        objective,
        np.zeros(20),
        rule=Momentum(momentum=0.5),
        n_samples=100,
        batch_size=batch_size,
        learning_rate=0.1 / np.linalg.eigvalsh(A)[-1],
        max_iter=200,
        tol=tol,
        n_iter_no_change=n_iter_no_change,
        rng=np.random.RandomState(0),
        validation=validation,
    )
    # Best at epoch 4 (index 3); epoch 7 beats it by less than tol, so it
    # does not reset the count but is the best score: its params are kept.
    assert result.n_iter == 4 + n_iter_no_change + 1
    assert len(result.loss_curve) == result.n_iter
    assert result.validation_scores == scores[: result.n_iter]
    assert result.validation_losses == pytest.approx(
        [10.0 - s for s in scores[: result.n_iter]]
    )
    assert result.best_loss == pytest.approx(10.0 - max(scores[: result.n_iter]))
    assert_array_equal(result.params, seen[6])
    assert not np.array_equal(result.params, seen[-1])


def test_validation_restores_peak_params():
    objective, A, _, _ = quadratic()
    scores = [0.1, 0.5, 0.9, 0.4, 0.3, 0.2, 0.1, 0.0]
    seen = []

    def validation(params):
        seen.append(params.copy())
        return 1.0, scores[len(seen) - 1]

    result = gd(
        objective,
        np.zeros(20),
        rule=AcceleratedGradient(),
        learning_rate=1.0 / np.linalg.eigvalsh(A)[-1],
        max_iter=50,
        tol=1e-4,
        n_iter_no_change=2,
        validation=validation,
    )
    assert result.n_iter == 3 + 2 + 1
    assert_array_equal(result.params, seen[2])


class _RecordingRule(UpdateRule):
    """Plain gradient steps that record their learning rate and batch."""

    exact = False

    def __init__(self):
        self.rates = []

    def step(self, params, grad, state, learning_rate):
        self.rates.append(learning_rate)
        params -= learning_rate * grad


def test_a_short_batch_takes_a_proportionally_shorter_step():
    # An epoch's last batch of 1 row took the full step sized for batches
    # of 256: far too long for its curvature, it undid the epoch's progress
    # (default fits on 4097 rows ended at J 1.29 against 1.085 on 4096).
    # Each row now moves the parameters alike.
    def rates(**kwargs):
        rule = _RecordingRule()
        gd(
            lambda params, batch: (0.0, np.zeros_like(params)),
            np.zeros(3),
            rule=rule,
            max_iter=1,
            **kwargs,
        )
        return rule.rates

    # (10 rows at 4 a batch: batches of 3, 3 and 4 rows.)
    got = rates(n_samples=10, batch_size=4, learning_rate=0.8)
    np.testing.assert_allclose(got, [0.6, 0.6, 0.8], rtol=1e-15)
    # A partial_fit chunk smaller than the batch its step was sized for.
    (rate,) = rates(
        n_samples=2, batch_size=2, learning_rate=np.full(3, 0.8), step_batch=256
    )
    np.testing.assert_array_equal(rate, np.full(3, 0.8 * 2 / 256))
    # Adam's steps do not grow with the gradient: not scaled.
    rule = _RecordingRule()
    rule.scales_with_batch = False
    gd(
        lambda params, batch: (0.0, np.zeros_like(params)),
        np.zeros(3),
        rule=rule,
        n_samples=2,
        batch_size=2,
        learning_rate=0.8,
        max_iter=1,
        step_batch=256,
    )
    assert rule.rates == [0.8] and not Adam.scales_with_batch


@pytest.mark.parametrize(
    "n_samples, batch_size", [(4353, 256), (10, 4), (7, 7), (9, 2)]
)
def test_batches_are_of_nearly_equal_sizes(n_samples, batch_size):
    # No batch of a single row at the end of an epoch (4353 = 17 * 256 + 1):
    # its gradient is far noisier, and Adam took it at full weight.
    batches = list(_batches(n_samples, batch_size, np.random.RandomState(0)))
    if batch_size >= n_samples:
        assert batches == [None]
        return
    sizes = [batch.size for batch in batches]
    assert len(sizes) == -(-n_samples // batch_size)
    assert max(sizes) <= batch_size and max(sizes) - min(sizes) <= 1
    np.testing.assert_array_equal(
        np.sort(np.concatenate(batches)), np.arange(n_samples)
    )


def test_divergence_raises():
    objective, A, _, _ = quadratic()
    rate = 100.0 / np.linalg.eigvalsh(A)[-1]
    with np.errstate(all="ignore"):
        with pytest.raises(DivergenceError, match="diverged at epoch") as info:
            gd(
                objective,
                np.ones(20),
                rule=Momentum(momentum=0.0),
                learning_rate=rate,
                max_iter=10_000,
            )
    # A ValueError, with the step it diverged at: the estimator rewords it.
    assert isinstance(info.value, ValueError)
    assert info.value.learning_rate == rate
    assert info.value.epoch >= 1


def test_divergence_raises_softmax_minibatch():
    X, y, _, _ = dataset("classif3")
    objective = softmax_objective(X, y, 3, alpha=10.0)
    with np.errstate(all="ignore"):
        with pytest.raises(DivergenceError, match=r"learning rate 1e\+03"):
            gd(
                objective,
                np.zeros(3 * (X.shape[1] + 1)),
                rule=Momentum(momentum=0.9),
                n_samples=y.size,
                batch_size=32,
                learning_rate=1e3,
                max_iter=10_000,
                rng=np.random.RandomState(0),
            )


@pytest.mark.parametrize("rule", [Momentum(0.9, True), Adam()], ids=["sgd", "adam"])
def test_same_seed_same_result(rule):
    X, y, _, alpha = dataset("classif3")
    objective = softmax_objective(X, y, 3, alpha=alpha)

    def run(seed):
        return gd(
            objective,
            np.zeros(3 * (X.shape[1] + 1)),
            rule=rule,
            n_samples=y.size,
            batch_size=32,
            learning_rate=1e-2,
            max_iter=5,
            rng=np.random.RandomState(seed),
        )

    first, second, other = run(0), run(0), run(1)
    assert_array_equal(first.params, second.params)
    assert first.loss_curve == second.loss_curve
    assert not np.array_equal(first.params, other.params)


def test_batches_cover_every_sample_once_per_epoch():
    rng = np.random.RandomState(0)
    epochs = [list(_batches(103, 10, rng)) for _ in range(3)]
    for batches in epochs:
        assert sorted(b.size for b in batches) == [9] * 7 + [10] * 4
        assert_array_equal(np.sort(np.concatenate(batches)), np.arange(103))
    # A new permutation each epoch.
    assert not np.array_equal(np.concatenate(epochs[0]), np.concatenate(epochs[1]))
    # Without rng: in order; at or above n_samples: the full batch.
    assert_array_equal(np.concatenate(list(_batches(25, 10, None))), np.arange(25))
    assert list(_batches(25, 25, rng)) == [None]
    assert list(_batches(25, 1000, None)) == [None]


def test_minibatch_epoch_loss_is_weighted_mean_of_batch_losses():
    X, y, sample_weight, alpha = dataset("classif3_weighted")
    objective = softmax_objective(X, y, 3, alpha=alpha, sample_weight=sample_weight)
    params0 = 0.1 * np.random.RandomState(0).standard_normal(3 * (X.shape[1] + 1))
    # A zero step keeps params fixed: the epoch loss must be the full loss.
    result = gd(
        objective,
        params0.copy(),
        rule=Momentum(momentum=0.0),
        n_samples=y.size,
        batch_size=64,
        learning_rate=0.0,
        max_iter=2,
        rng=np.random.RandomState(0),
    )
    full_loss = objective(params0, None)[0]
    assert_allclose(result.loss_curve, [full_loss, full_loss], rtol=1e-12)


# ---------------------------------------------------------------------------
# 4. single_threaded_blas
# ---------------------------------------------------------------------------


def _blas_threads():
    return {
        info["filepath"]: info["num_threads"]
        for info in threadpool_info()
        if info["user_api"] == "blas"
    }


@pytest.fixture
def two_blas_threads():
    """Every BLAS pool at two threads, so that a limit is observable."""
    with threadpool_limits(limits=2, user_api="blas"):
        before = _blas_threads()
        if not any(n > 1 for n in before.values()):
            pytest.skip("no BLAS accepts two threads here")
        yield before


def test_single_threaded_blas_limits_every_pool_and_restores(two_blas_threads):
    before = two_blas_threads
    with single_threaded_blas() as n_threads:
        inside = _blas_threads()
    assert n_threads == max(before.values())
    assert inside.keys() == before.keys()
    assert all(n == 1 for n in inside.values())
    assert _blas_threads() == before

    with pytest.raises(RuntimeError):
        with single_threaded_blas():
            raise RuntimeError
    assert _blas_threads() == before


def test_single_threaded_blas_nested_keeps_the_limit_and_budget(two_blas_threads):
    before = two_blas_threads
    with single_threaded_blas() as outer:
        with single_threaded_blas() as inner:
            assert inner == outer == max(before.values())
        # Leaving the inner use does not lift the outer one's limit.
        assert all(n == 1 for n in _blas_threads().values())
    assert _blas_threads() == before


def _in_threads(target, n_threads):
    threads = [threading.Thread(target=target) for _ in range(n_threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_single_threaded_blas_shared_by_overlapping_threads(two_blas_threads):
    # Four threads inside at once with the main thread: all see one thread
    # per pool and the same budget; the pools stay limited until the last
    # use ends, then end as they started.  (Inside the fixture's
    # threadpool_limits block the main thread holds threadpoolctl's control
    # of OpenBLAS: it enters first and leaves last.)
    before = two_blas_threads
    barrier = threading.Barrier(4)
    seen = []

    def use():
        with single_threaded_blas() as n_threads:
            barrier.wait()
            seen.append((n_threads, _blas_threads()))
            barrier.wait()

    with single_threaded_blas() as budget:
        _in_threads(use, 4)
        assert all(n == 1 for n in _blas_threads().values())
    assert budget == max(before.values())
    assert len(seen) == 4
    for n_threads, pools in seen:
        assert n_threads == budget
        assert all(n == 1 for n in pools.values())
    assert _blas_threads() == before


def test_single_threaded_blas_in_a_worker_thread_never_oversubscribes(
    two_blas_threads,
):
    # While another thread holds threadpoolctl's control of OpenBLAS (here
    # the main thread, inside the fixture's threadpool_limits block), a
    # limit set from this one does nothing: then the budget is one thread,
    # so the loss adds no threads of its own to the BLAS's.
    seen = []

    def use():
        with single_threaded_blas() as n_threads:
            seen.append((n_threads, _blas_threads()))

    _in_threads(use, 1)
    ((n_threads, pools),) = seen
    assert n_threads == 1 or all(n == 1 for n in pools.values())


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_single_threaded_blas_in_concurrent_threads_restores_the_pools(
    two_blas_threads,
):
    # Fits in several threads at once (a threaded joblib or dask scheduler)
    # share one limit: the pools end as they started, and every fit gives
    # the result it gives alone.
    from concurrent.futures import ThreadPoolExecutor

    from sk_softmax import SoftmaxRegression

    rng = np.random.RandomState(0)
    X = rng.standard_normal((3000, 60))
    y = rng.randint(3, size=3000)

    def fit(seed):
        return SoftmaxRegression(
            solver="sgd", batch_size=64, max_iter=3, random_state=seed
        ).fit(X, y)

    alone = [fit(seed).coef_ for seed in range(4)]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(fit, list(range(4)) * 3))
    assert _blas_threads() == two_blas_threads
    for k, model in enumerate(together):
        assert_allclose(model.coef_, alone[k % 4], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(
    "n_samples, small_kernels, nested, threaded",
    [
        (2000, False, False, True),  # 2.6M multiply-adds: BLAS threads
        (600, False, False, False),  # 0.8M: too small to pay
        (2000, True, False, False),  # the small kernels run one thread
        (2000, False, True, False),  # another use of the limit at once
    ],
)
def test_small_evaluations_take_the_budget_in_numpy_s_blas(
    monkeypatch, two_blas_threads, n_samples, small_kernels, nested, threaded
):
    # An evaluation too small to share its row blocks among threads runs
    # numpy's BLAS at the thread budget, then leaves it at one thread again;
    # only where its products pay for it, its kernels are not OpenBLAS's
    # small ones, and no other fit or evaluation uses the limit meanwhile.
    # The other BLAS pools (scipy's own) stay at one thread throughout.
    from sk_softmax import _loss

    monkeypatch.setattr(_loss, "_small_kernels", lambda: small_kernels)
    numpy_blas = {lib["filepath"] for lib in _loss._numpy_blas()}
    seen, others = [], []
    blocks_of = _loss._blocks_loss_and_gradient

    def spy(*args, **kwargs):
        pools = _blas_threads()
        seen.append({p: n for p, n in pools.items() if p in numpy_blas})
        others.append({p: n for p, n in pools.items() if p not in numpy_blas})
        return blocks_of(*args, **kwargs)

    monkeypatch.setattr(_loss, "_blocks_loss_and_gradient", spy)
    rng = np.random.RandomState(0)
    X = rng.standard_normal((n_samples, 64))
    y = rng.randint(10, size=n_samples)
    coef = 0.1 * rng.standard_normal((10, 64))
    args = (coef, np.zeros(10), X, y, 1.0 / n_samples, 0.1, 0.0)
    with single_threaded_blas() as budget:
        if budget < 2:
            pytest.skip("a budget of one thread here")
        alone = _loss._loss_and_gradient(*args, n_threads=1)
        with contextlib.ExitStack() as stack:
            if nested:
                stack.enter_context(single_threaded_blas())
            got = _loss._loss_and_gradient(*args, n_threads=budget)
        after = _blas_threads()
    assert seen[0] and all(n == 1 for n in seen[0].values())
    assert seen[1] and all(n == (budget if threaded else 1) for n in seen[1].values())
    assert all(n == 1 for pools in others for n in pools.values())
    assert all(n == 1 for n in after.values())
    assert _blas_threads() == two_blas_threads
    for a, b in zip(got, alone, strict=True):
        assert_allclose(a, b, rtol=1e-12, atol=1e-15)


def test_blas_threads_of_a_failed_evaluation_are_restored(two_blas_threads):
    # An evaluation that raises with numpy's BLAS at the budget leaves it
    # at one thread again, and the limit's lock free.
    from sk_softmax import _loss

    numpy_blas = {lib["filepath"] for lib in _loss._numpy_blas()}
    seen = []

    def fail():
        seen.append([n for p, n in _blas_threads().items() if p in numpy_blas])
        raise FloatingPointError("in the evaluation")

    with single_threaded_blas() as budget:
        if budget < 2:
            pytest.skip("a budget of one thread here")
        with pytest.raises(FloatingPointError, match="in the evaluation"):
            _loss._with_blas_threads(budget, fail)
        assert all(n == 1 for n in _blas_threads().values())
        assert not _loss._BLAS_LOCK.locked()
    assert seen == [[budget] * len(numpy_blas)]
    assert _blas_threads() == two_blas_threads


def test_single_threaded_blas_respects_a_user_limit():
    # A user (or a joblib worker) that limited BLAS to one thread gets one
    # thread from us too.
    with threadpool_limits(limits=1, user_api="blas"):
        with single_threaded_blas() as n_threads:
            assert n_threads == 1


def _default_blas_threads():
    """The pools as the process has them, skipping where none has two threads."""
    before = _blas_threads()
    if not any(n > 1 for n in before.values()):
        pytest.skip("no BLAS pool has two threads here")
    return before


def test_single_threaded_blas_restored_by_another_thread_than_the_limiting_one():
    # The first use (thread A) limits the pools, the last to leave (thread B)
    # restores them while A, a pool worker say, lives on.  threadpoolctl lets
    # one thread at a time set OpenBLAS's size: each use releases the control
    # it took, or B's restore would do nothing and leave every pool at one
    # thread for the rest of the process.
    before = _default_blas_threads()
    a_inside, b_inside, a_left, release_a = (threading.Event() for _ in range(4))
    seen = {}

    def a():
        with single_threaded_blas():
            a_inside.set()
            b_inside.wait()
        a_left.set()
        release_a.wait()

    def b():
        a_inside.wait()
        with single_threaded_blas():
            b_inside.set()
            a_left.wait()
            seen["inside"] = _blas_threads()

    thread_a, thread_b = threading.Thread(target=a), threading.Thread(target=b)
    thread_a.start()
    thread_b.start()
    thread_b.join()
    try:
        assert all(n == 1 for n in seen["inside"].values())
        assert _blas_threads() == before
        # Neither thread keeps the control: a user's limit in the main
        # thread takes effect, and so does a later use in another thread.
        with threadpool_limits(limits=1, user_api="blas"):
            assert all(n == 1 for n in _blas_threads().values())
        assert _blas_threads() == before
        _in_threads(lambda: seen.update(worker=_inside_blas_threads()), 1)
        assert all(n == 1 for n in seen["worker"].values())
    finally:
        release_a.set()
        thread_a.join()
    assert _blas_threads() == before


def _inside_blas_threads():
    with single_threaded_blas():
        return _blas_threads()


def test_single_threaded_blas_budget_at_most_the_cpus():
    # A BLAS limit above the number of CPUs (threadpool_limits(64)) would
    # otherwise become as many threads of the loss on as few cores.
    cpus = _loss._available_cpus()
    with threadpool_limits(limits=cpus + 3, user_api="blas"):
        if max(_blas_threads().values(), default=1) <= cpus:
            pytest.skip("the BLAS caps its pool at the number of CPUs here")
        with single_threaded_blas() as n_threads:
            assert n_threads <= cpus


def _child_loss(queue, X, y):
    coef, intercept = np.zeros((3, X.shape[1])), np.zeros(3)
    with single_threaded_blas():
        inside = _blas_threads()
    loss = loss_and_gradient(coef, intercept, X, y)[0]
    queue.put((float(loss), inside, _blas_threads(), _loss._BLAS_USERS))


def _forked(X, y):
    """``_child_loss`` in a forked child: its queue's item."""
    import multiprocessing

    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_child_loss, args=(queue, X, y))
    child.start()
    child.join(60)
    if child.is_alive():
        child.kill()
        pytest.fail("the forked child hung")
    assert child.exitcode == 0
    return queue.get(timeout=10)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded")
def test_forked_child_computes_without_the_parents_threads():
    # The child of a process that has used the loss's threads has neither
    # its worker threads nor, when it forks while another of its threads is
    # inside the BLAS limit, that fit: it must compute, not wait forever for
    # them, and leave its pools as the parent had them before.
    before = _default_blas_threads()
    rng = np.random.RandomState(0)
    X = rng.standard_normal((8000, 40))  # past one row block: threads
    y = rng.randint(3, size=8000)
    expected = float(loss_and_gradient(np.zeros((3, 40)), np.zeros(3), X, y)[0])

    inside, leave = threading.Event(), threading.Event()

    def fitting():
        with single_threaded_blas():
            inside.set()
            leave.wait()

    thread = threading.Thread(target=fitting)
    thread.start()
    inside.wait()
    try:
        during = _forked(X, y)
    finally:
        leave.set()
        thread.join()
    after = _forked(X, y)
    for loss, child_inside, child_after, child_users in (during, after):
        assert loss == pytest.approx(expected, rel=1e-12)
        assert all(n == 1 for n in child_inside.values())
        assert child_after == before
        assert child_users == 0
    assert _blas_threads() == before


def test_tail_averaging_removes_gradient_noise():
    # Noisy gradients of a quadratic: the mean of an epoch's iterates sits far
    # closer to the optimum than the last iterate.
    objective, A, _, x_opt = quadratic(condition=10.0)
    noise = np.random.RandomState(0).standard_normal((1000, 20))

    def noisy(params, batch):
        loss, grad = objective(params)
        return loss, grad + 3.0 * noise[batch].mean(axis=0)

    errors = {}
    for average in (False, True):
        result = gradient_descent(
            noisy,
            np.zeros(20),
            rule=Momentum(momentum=0.0),
            n_samples=1000,
            batch_size=1,
            learning_rate=0.05,
            max_iter=3,
            tol=0.0,
            rng=np.random.RandomState(1),
            average=average,
        )
        errors[average] = np.linalg.norm(result.params - x_opt)
    assert errors[True] < errors[False] / 3


def test_tail_averaging_is_ignored_on_the_full_batch():
    objective, _, _, _ = quadratic(condition=10.0)
    runs = [
        gd(objective, np.zeros(20), rule=Momentum(0.0), max_iter=50, average=flag)
        for flag in (False, True)
    ]
    assert_allclose(runs[0].params, runs[1].params, rtol=0, atol=0)


def test_invscaling_continues_from_first_epoch():
    # partial_fit runs one epoch per call: the schedule must count epochs
    # across calls, not restart at 1.
    objective, _, _, _ = quadratic(condition=10.0)
    result = gd(
        objective,
        np.zeros(20),
        rule=Momentum(0.0),
        learning_rate=0.1,
        schedule="invscaling",
        max_iter=1,
        first_epoch=4,
    )
    assert result.learning_rate == pytest.approx(0.1 / 2.0)


def test_custom_rule_that_is_not_hashable_gets_the_max_iter_warning():
    # The warning's advice is looked up by solver name: a custom rule that
    # defines __eq__ (a dataclass) is unhashable, and the lookup raised
    # TypeError after the fit.
    import dataclasses
    import warnings

    from sklearn.datasets import load_iris
    from sklearn.exceptions import ConvergenceWarning

    from sk_softmax import SoftmaxRegression
    from sk_softmax._solvers import UpdateRule

    @dataclasses.dataclass
    class Plain(UpdateRule):
        rate: float = 0.01

        def step(self, params, grad, state, learning_rate):
            params -= self.rate * grad

    X, y = load_iris(return_X_y=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        SoftmaxRegression(solver=Plain(), max_iter=3, tol=0.0).fit(X, y)
    messages = [str(w.message) for w in caught if w.category is ConvergenceWarning]
    assert any("increase max_iter or tol." in m for m in messages), messages


def test_accelerated_step_multiplier_measures_the_moving_coordinates_only():
    # Coordinates of no step (rate 0, held) take no part in the curvature
    # estimates: with wild values there, the multiplier is the one measured
    # on the others alone, whether the rate is a scalar or per coordinate.
    rng = np.random.default_rng(0)
    moving = np.array([1, 1, 0, 1, 0, 1, 1, 1], dtype=bool)
    rates = {
        "held": np.where(moving, 0.5, 0.0),
        "scalar": 0.5,
        "array": np.full(moving.sum(), 0.5),
    }
    rules = {name: AcceleratedGradient() for name in rates}
    params = rng.standard_normal(moving.size)
    states = {
        name: rule.init(params if name == "held" else params[moving])
        for name, rule in rules.items()
    }
    for _ in range(6):
        params = params + 0.1 * rng.standard_normal(moving.size)
        params[~moving] = 1e6 * rng.standard_normal((~moving).sum())
        grad = np.tanh(params) + 0.5 * params
        for name, rule in rules.items():
            x, g = (params, grad) if name == "held" else (params[moving], grad[moving])
            rule._adapt_scale(x.copy(), g.copy(), states[name], rates[name])
    assert states["held"]["steps"]
    for name in ("scalar", "array"):
        np.testing.assert_allclose(states[name]["steps"], states["held"]["steps"])
        assert states[name]["scale"] == pytest.approx(states["held"]["scale"])
