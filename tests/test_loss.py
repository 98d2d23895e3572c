"""Tests of sk_softmax._loss: value, gradient, log-softmax and Lipschitz bounds.

Every expected value here is computed independently of the implementation:
finite differences, a naive dense reference (explicit smoothed one-hot
targets, ``scipy.special.log_softmax``), PyTorch autograd, or closed forms.
"""

import math
import os
import tracemalloc
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.sparse.linalg import eigsh
from scipy.special import log_softmax as scipy_log_softmax
from scipy.special import logsumexp
from scipy.special import softmax as scipy_softmax

from sk_softmax import _loss, loss_and_gradient
from sk_softmax._loss import (
    _curvature_sample,
    _loss_and_gradient,
    dominant_rows,
    feature_scales,
    gram_preconditioner,
    largest_eigenvalue,
    lipschitz_constants,
    log_softmax,
    mean_shift,
    mini_batch_curvature,
    softmax,
    softmax_curvature,
    stored_magnitudes,
    stored_share,
    weighted_gram,
    weighted_std,
)

SPARSE_CONTAINERS = [sp.csr_matrix, sp.csc_matrix, sp.csr_array]
X_CONTAINERS = [np.asarray] + SPARSE_CONTAINERS
X_IDS = ["dense", "csr_matrix", "csc_matrix", "csr_array"]


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def _make_problem(n_samples=13, n_features=3, n_classes=4, seed=0, weighted=False):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n_samples, n_features))
    # a few exact zeros so sparse containers store a genuinely sparse matrix
    X[rng.uniform(size=X.shape) < 0.25] = 0.0
    y = np.arange(n_samples) % n_classes
    rng.shuffle(y)
    coef = rng.normal(scale=0.7, size=(n_classes, n_features))
    intercept = rng.normal(scale=0.5, size=n_classes)
    sample_weight = None
    if weighted:
        sample_weight = rng.uniform(0.1, 3.0, size=n_samples)
        sample_weight[[1, 4, 7]] = 0.0
    return X, y, coef, intercept, sample_weight


def _dense(X):
    return X.toarray() if sp.issparse(X) else np.asarray(X)


def naive_loss_and_gradient(coef, intercept, X, y, alpha, eps, sample_weight):
    """Textbook J and gradient with materialized smoothed one-hot targets."""
    X = _dense(X).astype(np.float64)
    coef = np.asarray(coef, dtype=np.float64)
    n_samples = X.shape[0]
    n_classes = coef.shape[0]
    Z = X @ coef.T
    if intercept is not None:
        Z = Z + intercept
    log_p = scipy_log_softmax(Z, axis=1)
    T = (1.0 - eps) * np.eye(n_classes)[y] + eps / n_classes
    s = (
        np.ones(n_samples)
        if sample_weight is None
        else np.asarray(sample_weight, float)
    )
    S = s.sum()
    loss = np.sum(s * -(T * log_p).sum(axis=1)) / S + 0.5 * alpha * np.sum(coef**2)
    G = s[:, None] * (np.exp(log_p) - T) / S
    grad_coef = G.T @ X + alpha * coef
    grad_intercept = G.sum(axis=0) if intercept is not None else None
    return loss, grad_coef, grad_intercept


def _pack(coef, intercept):
    if intercept is None:
        return coef.ravel().copy()
    return np.concatenate([coef.ravel(), intercept])


def _unpack(theta, n_classes, n_features, fit_intercept):
    coef = theta[: n_classes * n_features].reshape(n_classes, n_features)
    intercept = theta[n_classes * n_features :] if fit_intercept else None
    return coef, intercept


def _five_point_gradient(f, theta, h):
    grad = np.empty_like(theta)
    for j in range(theta.size):
        e = np.zeros_like(theta)
        e[j] = h
        grad[j] = (
            f(theta - 2 * e) - 8 * f(theta - e) + 8 * f(theta + e) - f(theta + 2 * e)
        ) / (12 * h)
    return grad


# --------------------------------------------------------------------------
# 1. gradient vs finite differences; dtype handling
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fit_intercept", [True, False], ids=["intercept", "no_intercept"]
)
@pytest.mark.parametrize("n_classes", [2, 4])
@pytest.mark.parametrize("container", X_CONTAINERS, ids=X_IDS)
@pytest.mark.parametrize("alpha", [0.0, 0.3])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1, 0.5])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_gradient_matches_finite_differences(
    weighted, label_smoothing, alpha, container, n_classes, fit_intercept
):
    X, y, coef, intercept, sw = _make_problem(n_classes=n_classes, weighted=weighted)
    if not fit_intercept:
        intercept = None
    Xc = container(X)
    n_features = X.shape[1]
    kwargs = dict(alpha=alpha, label_smoothing=label_smoothing, sample_weight=sw)

    def f(theta):
        W, b = _unpack(theta, n_classes, n_features, fit_intercept)
        return float(loss_and_gradient(W, b, Xc, y, **kwargs)[0])

    loss, grad_coef, grad_intercept = loss_and_gradient(
        coef, intercept, Xc, y, **kwargs
    )
    assert np.isfinite(loss)
    assert grad_coef.shape == coef.shape
    if fit_intercept:
        assert grad_intercept.shape == (n_classes,)
    else:
        assert grad_intercept is None
    theta = _pack(coef, intercept)
    expected = _five_point_gradient(f, theta, h=1e-3)
    np.testing.assert_allclose(
        _pack(grad_coef, grad_intercept), expected, rtol=1e-6, atol=1e-9
    )


@pytest.mark.parametrize(
    "fit_intercept", [True, False], ids=["intercept", "no_intercept"]
)
@pytest.mark.parametrize("container", X_CONTAINERS, ids=X_IDS)
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_float32_in_float32_out(weighted, container, fit_intercept):
    X, y, coef, intercept, sw = _make_problem(
        n_samples=40, n_features=6, weighted=weighted
    )
    if not fit_intercept:
        intercept = None
    kwargs = dict(alpha=0.3, label_smoothing=0.1, sample_weight=sw)
    loss64, gc64, gi64 = loss_and_gradient(coef, intercept, container(X), y, **kwargs)
    X32 = container(X.astype(np.float32))
    coef32 = coef.astype(np.float32)
    intercept32 = None if intercept is None else intercept.astype(np.float32)
    loss32, gc32, gi32 = loss_and_gradient(coef32, intercept32, X32, y, **kwargs)

    assert loss64.dtype == np.float64 and gc64.dtype == np.float64
    assert loss32.dtype == np.float32
    assert gc32.dtype == np.float32
    np.testing.assert_allclose(loss32, loss64, rtol=1e-4)
    scale = np.abs(gc64).max()
    np.testing.assert_allclose(gc32, gc64, rtol=1e-4, atol=1e-4 * scale)
    if fit_intercept:
        assert gi32.dtype == np.float32
        np.testing.assert_allclose(
            gi32, gi64, rtol=1e-4, atol=1e-4 * np.abs(gi64).max()
        )


# --------------------------------------------------------------------------
# 2. naive reference implementation
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fit_intercept", [True, False], ids=["intercept", "no_intercept"]
)
@pytest.mark.parametrize("n_classes", [2, 3, 5])
@pytest.mark.parametrize("container", X_CONTAINERS, ids=X_IDS)
@pytest.mark.parametrize("alpha", [0.0, 0.3])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1, 0.5])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_matches_naive_reference(
    weighted, label_smoothing, alpha, container, n_classes, fit_intercept
):
    X, y, coef, intercept, sw = _make_problem(
        n_samples=50, n_features=7, n_classes=n_classes, seed=1, weighted=weighted
    )
    if not fit_intercept:
        intercept = None
    loss, gc, gi = loss_and_gradient(
        coef,
        intercept,
        container(X),
        y,
        alpha=alpha,
        label_smoothing=label_smoothing,
        sample_weight=sw,
    )
    ref_loss, ref_gc, ref_gi = naive_loss_and_gradient(
        coef, intercept, X, y, alpha, label_smoothing, sw
    )
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-12)
    np.testing.assert_allclose(gc, ref_gc, rtol=1e-10, atol=1e-14)
    if fit_intercept:
        np.testing.assert_allclose(gi, ref_gi, rtol=1e-10, atol=1e-14)
    else:
        assert gi is None


def test_accepts_lists_and_integer_X():
    X, y, coef, intercept, _ = _make_problem(n_classes=3)
    X_int = np.round(X * 3).astype(np.int64)
    loss, gc, gi = loss_and_gradient(
        coef.tolist(), intercept.tolist(), X_int.tolist(), y.tolist()
    )
    ref = naive_loss_and_gradient(
        coef, intercept, X_int.astype(float), y, 0.0, 0.0, None
    )
    assert loss.dtype == np.float64
    np.testing.assert_allclose(loss, ref[0], rtol=1e-12)
    np.testing.assert_allclose(gc, ref[1], rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(gi, ref[2], rtol=1e-10, atol=1e-14)


def test_inputs_not_modified():
    X, y, coef, intercept, sw = _make_problem(weighted=True)
    copies = [a.copy() for a in (X, y, coef, intercept, sw)]
    loss_and_gradient(
        coef, intercept, X, y, alpha=0.3, label_smoothing=0.1, sample_weight=sw
    )
    for before, after in zip(copies, (X, y, coef, intercept, sw), strict=True):
        np.testing.assert_array_equal(before, after)


# --------------------------------------------------------------------------
# 3. PyTorch autograd
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fit_intercept", [True, False], ids=["intercept", "no_intercept"]
)
@pytest.mark.parametrize("n_classes", [2, 4])
@pytest.mark.parametrize("alpha", [0.0, 0.3])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1, 0.5])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_matches_torch_autograd(
    weighted, label_smoothing, alpha, n_classes, fit_intercept
):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    X, y, coef, intercept, sw = _make_problem(
        n_samples=30, n_features=5, n_classes=n_classes, seed=2, weighted=weighted
    )
    if not fit_intercept:
        intercept = None
    loss, gc, gi = loss_and_gradient(
        coef,
        intercept,
        X,
        y,
        alpha=alpha,
        label_smoothing=label_smoothing,
        sample_weight=sw,
    )

    W = torch.tensor(coef, dtype=torch.float64, requires_grad=True)
    logits = torch.from_numpy(X) @ W.T
    if fit_intercept:
        b = torch.tensor(intercept, dtype=torch.float64, requires_grad=True)
        logits = logits + b
    s = (
        torch.ones(X.shape[0], dtype=torch.float64)
        if sw is None
        else torch.from_numpy(sw)
    )
    per_sample = F.cross_entropy(
        logits,
        torch.from_numpy(y).long(),
        weight=None,
        label_smoothing=label_smoothing,
        reduction="none",
    )
    t_loss = (per_sample * s).sum() / s.sum() + 0.5 * alpha * (W**2).sum()
    t_loss.backward()

    np.testing.assert_allclose(loss, t_loss.item(), rtol=1e-12)
    np.testing.assert_allclose(gc, W.grad.numpy(), rtol=1e-10, atol=1e-14)
    if fit_intercept:
        np.testing.assert_allclose(gi, b.grad.numpy(), rtol=1e-10, atol=1e-14)


# --------------------------------------------------------------------------
# 4. properties
# --------------------------------------------------------------------------


def _assert_same_result(a, b, rtol=1e-12):
    np.testing.assert_allclose(a[0], b[0], rtol=rtol)
    np.testing.assert_allclose(a[1], b[1], rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(a[2], b[2], rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("container", X_CONTAINERS, ids=X_IDS)
@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
def test_integer_weights_equal_repeated_rows(container, label_smoothing):
    X, y, coef, intercept, _ = _make_problem(
        n_samples=20, n_features=4, n_classes=3, seed=3
    )
    rng = np.random.RandomState(0)
    sw = rng.randint(1, 4, size=X.shape[0])
    rep = np.repeat(np.arange(X.shape[0]), sw)
    kw = dict(alpha=0.3, label_smoothing=label_smoothing)
    weighted = loss_and_gradient(
        coef, intercept, container(X), y, sample_weight=sw, **kw
    )
    repeated = loss_and_gradient(coef, intercept, container(X[rep]), y[rep], **kw)
    _assert_same_result(weighted, repeated)


@pytest.mark.parametrize("container", X_CONTAINERS, ids=X_IDS)
@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
def test_zero_weights_equal_removed_rows(container, label_smoothing):
    X, y, coef, intercept, _ = _make_problem(
        n_samples=20, n_features=4, n_classes=3, seed=4
    )
    rng = np.random.RandomState(1)
    sw = rng.uniform(0.5, 2.0, size=X.shape[0])
    sw[[0, 5, 6, 19]] = 0.0
    # make the dropped rows extreme so that a leak would show
    X = X.copy()
    X[[0, 5, 6, 19]] *= 50.0
    keep = sw > 0
    kw = dict(alpha=0.3, label_smoothing=label_smoothing)
    with_zeros = loss_and_gradient(
        coef, intercept, container(X), y, sample_weight=sw, **kw
    )
    removed = loss_and_gradient(
        coef, intercept, container(X[keep]), y[keep], sample_weight=sw[keep], **kw
    )
    _assert_same_result(with_zeros, removed)


@pytest.mark.parametrize("scale", [1e-3, 7.0, 1e5])
def test_scaling_weights_changes_nothing(scale):
    X, y, coef, intercept, sw = _make_problem(n_samples=25, seed=5, weighted=True)
    kw = dict(alpha=0.3, label_smoothing=0.1)
    a = loss_and_gradient(coef, intercept, X, y, sample_weight=sw, **kw)
    b = loss_and_gradient(coef, intercept, X, y, sample_weight=scale * sw, **kw)
    _assert_same_result(a, b)


def test_unit_weights_equal_no_weights():
    X, y, coef, intercept, _ = _make_problem(n_samples=25, seed=6)
    kw = dict(alpha=0.3, label_smoothing=0.1)
    a = loss_and_gradient(coef, intercept, X, y, **kw)
    b = loss_and_gradient(
        coef, intercept, X, y, sample_weight=np.ones(X.shape[0]), **kw
    )
    _assert_same_result(a, b)


@pytest.mark.parametrize("container", X_CONTAINERS, ids=X_IDS)
@pytest.mark.parametrize("alpha", [0.0, 0.3])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1, 0.5])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_gradient_sums_over_classes(weighted, label_smoothing, alpha, container):
    X, y, coef, intercept, sw = _make_problem(
        n_samples=30, n_features=5, seed=7, weighted=weighted
    )
    _, gc, gi = loss_and_gradient(
        coef,
        intercept,
        container(X),
        y,
        alpha=alpha,
        label_smoothing=label_smoothing,
        sample_weight=sw,
    )
    np.testing.assert_allclose(gc.sum(axis=0), alpha * coef.sum(axis=0), atol=1e-13)
    np.testing.assert_allclose(gi.sum(), 0.0, atol=1e-14)


@pytest.mark.parametrize("n_classes", [2, 3, 7])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1, 0.5, 0.99])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("alpha", [0.0, 0.3])
def test_loss_at_zero_is_log_n_classes(alpha, weighted, label_smoothing, n_classes):
    X, y, _, _, sw = _make_problem(
        n_samples=21, n_classes=n_classes, seed=8, weighted=weighted
    )
    coef = np.zeros((n_classes, X.shape[1]))
    loss, gc, gi = loss_and_gradient(
        coef,
        np.zeros(n_classes),
        X,
        y,
        alpha=alpha,
        label_smoothing=label_smoothing,
        sample_weight=sw,
    )
    np.testing.assert_allclose(loss, np.log(n_classes), rtol=1e-14)
    # at z = 0, p = 1/K and the intercept gradient is the weighted class
    # frequency shortfall: (1 - eps) (1/K - freq_k)
    s = np.ones(X.shape[0]) if sw is None else sw
    freq = np.bincount(y, weights=s, minlength=n_classes) / s.sum()
    np.testing.assert_allclose(
        gi, (1 - label_smoothing) * (1 / n_classes - freq), atol=1e-15
    )


@pytest.mark.parametrize("label_smoothing", [0.0, 0.3])
@pytest.mark.parametrize("alpha", [0.0, 0.3])
@pytest.mark.parametrize("container", X_CONTAINERS, ids=X_IDS)
def test_huge_logits_finite_and_exact(container, alpha, label_smoothing):
    big = 1e300
    X = np.array(
        [
            [big, -big],  # z = [ big, -big, 0  ]
            [-big, big],  # z = [-big,  big, 0  ]
            [big, big],  # z = [ big,  big, big]  (three-way tie)
            [big, 0.0],  # z = [ big,  0,  big/2]
        ]
    )
    y = np.array([1, 0, 2, 2])
    coef = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    intercept = np.array([0.0, 1.0, -1.0])
    Z = X @ coef.T + intercept
    assert np.all(np.isfinite(Z))
    n, K = Z.shape
    eps = label_smoothing

    loss, gc, gi = loss_and_gradient(
        coef, intercept, container(X), y, alpha=alpha, label_smoothing=eps
    )
    assert np.isfinite(loss)
    assert np.all(np.isfinite(gc)) and np.all(np.isfinite(gi))

    # Closed form: the gaps between logits are multiples of 1e300, so
    # softmax is exactly one-hot on the arg-max (uniform over ties) and
    # logsumexp(z) - m = log(#ties), where m = max z.
    M = Z.max(axis=1, keepdims=True)
    ties = (Z == M).sum(axis=1)
    P = (Z == M) / ties[:, None]
    T = (1 - eps) * np.eye(K)[y] + eps / K
    per_sample = np.log(ties) - ((Z - M) * T).sum(axis=1)
    expected_loss = per_sample.mean() + 0.5 * alpha * np.sum(coef**2)
    np.testing.assert_allclose(loss, expected_loss, rtol=1e-12)
    G = (P - T) / n
    np.testing.assert_allclose(gc, G.T @ X + alpha * coef, rtol=1e-12)
    np.testing.assert_allclose(gi, G.sum(axis=0), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
@pytest.mark.parametrize("scale", [0.5, 0.99, 1.01, 1.5])
@pytest.mark.parametrize("shift", [0.0, -1.0, -2.5])
def test_logits_around_the_unshifted_range(dtype, label_smoothing, scale, shift):
    # The logits are taken as they are unless a sample's sum of exp leaves
    # _SUM_EXP_RANGE (about exp(+-64) in float32, exp(+-512) in float64);
    # then they are shifted by each sample's largest.  Around the bounds
    # (float32 exp overflows from 89, float64 from 710) the results agree
    # with the float64 reference.
    from sk_softmax._loss import _EXP_SAFE

    limit = _EXP_SAFE[dtype]
    rng = np.random.default_rng(3)
    X = rng.uniform(-1.0, 1.0, size=(40, 3))
    X[0] = [1.0, -1.0, 1.0]
    coef = rng.uniform(-1.0, 1.0, size=(4, 3))
    coef[0] = [1.0, -1.0, 1.0]
    coef *= scale * limit / 3.0  # the largest |logit| is scale * limit
    y = rng.integers(0, 4, size=40)
    intercept = np.full(4, shift * limit)
    assert np.abs(X @ coef.T).max() == pytest.approx(scale * limit)
    loss, gc, gi = loss_and_gradient(
        coef.astype(dtype),
        intercept.astype(dtype),
        X.astype(dtype),
        y,
        label_smoothing=label_smoothing,
    )
    ref = naive_loss_and_gradient(
        coef.astype(dtype), intercept, X.astype(dtype), y, 0.0, label_smoothing, None
    )
    rtol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(loss, ref[0], rtol=rtol)
    atol = rtol * np.abs(ref[1]).max()
    np.testing.assert_allclose(gc, ref[1], rtol=rtol, atol=atol)
    np.testing.assert_allclose(gi, ref[2], rtol=rtol, atol=rtol)


def test_confident_loss_exact_beyond_the_unshifted_range():
    # Logits of offset + 12 (the true class) and offset: the loss, about
    # log(1 + exp(-12)) = 6.1e-6, is log(sum of exp) - z_true, two numbers
    # near the offset that cancel.  Taken unshifted up to exp's overflow
    # (710), it lost up to 1e-8 of itself; beyond exp(512) each sample is
    # shifted.
    errors = []
    for offset in np.linspace(515.0, 697.0, 50):
        coef = np.array([[offset + 12.0], [offset]])
        loss, _, _ = loss_and_gradient(coef, None, np.ones((1, 1)), np.array([0]))
        expected = np.log1p(np.exp(-(coef[0, 0] - coef[1, 0])))
        errors.append(abs(loss / expected - 1))
    assert max(errors) < 1e-10


# --------------------------------------------------------------------------
# 5. input validation
# --------------------------------------------------------------------------


def _valid_args():
    X, y, coef, intercept, sw = _make_problem(
        n_samples=10, n_features=3, n_classes=4, seed=9
    )
    return coef, intercept, X, y


@pytest.mark.parametrize("shape", [(4, 2), (4, 4), (3,), (4, 3, 1)])
def test_wrong_coef_shape(shape):
    _, intercept, X, y = _valid_args()
    with pytest.raises(ValueError, match=r"\bcoef\b"):
        loss_and_gradient(np.zeros(shape), intercept, X, y)


@pytest.mark.parametrize("shape", [(3,), (5,), (4, 1), ()])
def test_wrong_intercept_shape(shape):
    coef, _, X, y = _valid_args()
    with pytest.raises(ValueError, match=r"\bintercept\b"):
        loss_and_gradient(coef, np.zeros(shape), X, y)


@pytest.mark.parametrize(
    "bad_label",
    [-1, 4, 10, 1.5, np.nan],
    ids=["negative", "eq_K", "gt_K", "non_integer", "nan"],
)
def test_y_out_of_range(bad_label):
    coef, intercept, X, y = _valid_args()
    y = y.astype(float)
    y[3] = bad_label
    with pytest.raises(ValueError, match=r"\by\b"):
        loss_and_gradient(coef, intercept, X, y)


@pytest.mark.parametrize("n_y", [9, 11])
def test_y_length_mismatch(n_y):
    coef, intercept, X, _ = _valid_args()
    with pytest.raises(ValueError, match=r"\by\b"):
        loss_and_gradient(coef, intercept, X, np.zeros(n_y, dtype=int))


def test_y_2d_rejected():
    coef, intercept, X, y = _valid_args()
    with pytest.raises(ValueError, match=r"\by\b"):
        loss_and_gradient(coef, intercept, X, y[:, None])


@pytest.mark.parametrize("bad", ["negative", "nan", "inf", "all_zero", "wrong_length"])
def test_bad_sample_weight(bad):
    coef, intercept, X, y = _valid_args()
    sw = np.ones(X.shape[0])
    if bad == "negative":
        sw[2] = -0.5
    elif bad == "nan":
        sw[2] = np.nan
    elif bad == "inf":
        sw[2] = np.inf
    elif bad == "all_zero":
        sw[:] = 0.0
    else:
        sw = np.ones(X.shape[0] + 1)
    with pytest.raises(ValueError, match=r"\bsample_weight\b"):
        loss_and_gradient(coef, intercept, X, y, sample_weight=sw)


@pytest.mark.parametrize("bad_label", [-1, 4], ids=["negative", "eq_K"])
@pytest.mark.parametrize("dtype", [np.int8, np.int64, np.uint32])
def test_integer_y_out_of_range(bad_label, dtype):
    coef, intercept, X, y = _valid_args()
    y = y.astype(np.int64)
    y[3] = bad_label
    y = y.astype(dtype)  # -1 wraps to the largest value of an unsigned type
    with pytest.raises(ValueError, match=r"\by\b"):
        loss_and_gradient(coef, intercept, X, y)


@pytest.mark.parametrize(
    "labels",
    [
        np.array(["0", "1", "2", "3"] * 3 + ["0"]),
        np.array([0, 1, 2, 3] * 3 + [None], dtype=object),
        np.array([0, 1, 2, 3] * 3 + [1j]),
        np.array(["0", "1", "2", "3"] * 3 + ["0"], dtype=object),
    ],
    ids=["strings", "object-None", "complex", "object-strings"],
)
def test_y_not_class_indices(labels):
    coef, intercept, X, _ = _valid_args()
    X = np.vstack([X, X[:3]])
    with pytest.raises(ValueError, match=r"\by must hold class indices"):
        loss_and_gradient(coef, intercept, X, labels)


def test_object_y_holding_indices():
    coef, intercept, X, y = _valid_args()
    expected = loss_and_gradient(coef, intercept, X, y)
    result = loss_and_gradient(coef, intercept, X, y.astype(object))
    np.testing.assert_allclose(result[1], expected[1], rtol=1e-12)


@pytest.mark.parametrize("where", ["X", "coef", "intercept", "sample_weight"])
@pytest.mark.parametrize("fmt", ["dense", "csr"])
def test_complex_input_is_an_error(where, fmt):
    # numpy would drop the imaginary part with a ComplexWarning only.
    coef, intercept, X, y = _valid_args()
    args = {"X": X, "coef": coef, "intercept": intercept}
    args["sample_weight"] = np.ones(X.shape[0])
    args[where] = args[where] + 0.5j
    if fmt == "csr":
        args["X"] = sp.csr_matrix(args["X"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=rf"Complex data not supported in {where}"):
            loss_and_gradient(y=y, **args)


def test_coef_without_classes():
    _, _, X, y = _valid_args()
    with pytest.raises(ValueError, match=r"\bcoef\b.*n_classes >= 1"):
        loss_and_gradient(np.zeros((0, X.shape[1])), np.zeros(0), X, y)


def test_boolean_y_is_class_indices():
    coef, intercept, X, _ = _valid_args()
    y = np.arange(X.shape[0]) % 2 == 1
    expected = loss_and_gradient(coef, intercept, X, y.astype(int))
    result = loss_and_gradient(coef, intercept, X, y)
    np.testing.assert_allclose(result[0], expected[0], rtol=1e-12)
    np.testing.assert_allclose(result[1], expected[1], rtol=1e-12)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("container", X_CONTAINERS, ids=X_IDS)
@pytest.mark.parametrize("zero_coef", [False, True], ids=["coef", "zero_coef"])
def test_non_finite_X(value, container, zero_coef):
    # An error naming X, as scikit-learn words it, and no numpy warning
    # first; also where W is zero, so that the forward product can hide it.
    coef, intercept, X, y = _valid_args()
    if zero_coef:
        coef = np.zeros_like(coef)
    X[4, 1] = value
    match = "Input X contains NaN" if np.isnan(value) else "Input X contains infinity"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=match):
            loss_and_gradient(coef, intercept, container(X), y)


def test_non_finite_X_in_zero_weight_row():
    coef, intercept, X, y = _valid_args()
    X[2, 0] = np.nan
    sample_weight = np.ones(X.shape[0])
    sample_weight[2] = 0.0
    with pytest.raises(ValueError, match="Input X contains NaN"):
        loss_and_gradient(coef, intercept, X, y, sample_weight=sample_weight)


@pytest.mark.parametrize("row", [0, -1], ids=["first_block", "last_block"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_non_finite_X_large_without_warnings(row, dtype):
    # Several row blocks, shared among threads: a block in a worker thread
    # must not warn either (numpy's error state is per thread).
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40_000, 60)).astype(dtype)
    y = rng.integers(0, 5, size=X.shape[0])
    X[row, 7] = np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="Input X contains infinity"):
            loss_and_gradient(np.ones((5, 60)), np.zeros(5), X, y)


@pytest.mark.parametrize("value", [np.nan, np.inf], ids=["nan", "inf"])
@pytest.mark.parametrize("where", ["coef", "intercept"])
def test_non_finite_parameters(value, where):
    coef, intercept, X, y = _valid_args()
    if where == "coef":
        coef[1, 2] = value
    else:
        intercept[3] = value
    with pytest.raises(ValueError, match=rf"^{where} contains NaN or infinity"):
        loss_and_gradient(coef, intercept, X, y)


@pytest.mark.parametrize("where", ["coef", "intercept"])
def test_parameters_beyond_float32_with_float32_X(where):
    # Finite, but infinite once cast to X's dtype: that is what the error
    # says (it said "contains NaN or infinity", after numpy's overflow
    # warning).
    coef, intercept, X, y = _valid_args()
    if where == "coef":
        coef[1, 2] = 1e39
    else:
        intercept[3] = -1e39
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=rf"^{where} has values beyond .*float32"):
            loss_and_gradient(coef, intercept, X.astype(np.float32), y)
    loss, grad_coef, _ = loss_and_gradient(coef, intercept, X, y)
    assert np.isfinite(loss) and np.all(np.isfinite(grad_coef))


@pytest.mark.parametrize("where", ["coef", "intercept", "sample_weight"])
def test_parameters_as_strings_or_long_doubles_beyond_float64(where):
    # Strings were parsed as numbers; long doubles of 1e400 were reported
    # as "NaN or infinity" after numpy's overflow warning.
    coef, intercept, X, y = _valid_args()
    args = {"coef": coef, "intercept": intercept, "sample_weight": np.ones(len(y))}
    huge = np.full(args[where].shape, np.longdouble("1e400"))
    cases = [(args[where].astype(str), "must hold numbers")]
    if np.all(np.isfinite(huge)):  # (where long double is wider than float64)
        cases.append((huge, "has values beyond the range of float64"))
    for value, match in cases:
        bad = dict(args, **{where: value})
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(ValueError, match=rf"^{where} {match}"):
                loss_and_gradient(X=X, y=y, **bad)


@pytest.mark.parametrize("where", ["coef", "intercept", "sample_weight"])
def test_sparse_parameters_are_an_error(where):
    coef, intercept, X, y = _valid_args()
    args = {"coef": coef, "intercept": intercept, "sample_weight": np.ones(len(y))}
    args[where] = sp.csr_matrix(np.atleast_2d(args[where]))
    with pytest.raises(ValueError, match=rf"^{where} must be a dense array"):
        loss_and_gradient(X=X, y=y, **args)


@pytest.mark.parametrize(
    "dtype, scale", [(np.float64, 1e160), (np.float32, 1e20)], ids=["f64", "f32"]
)
def test_overflow_is_an_error_not_nan(dtype, scale):
    # Finite inputs whose logits exceed the dtype's range.
    coef, intercept, X, y = _valid_args()
    X = (X * scale).astype(dtype)
    coef = coef * scale
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="overflowed"):
            loss_and_gradient(coef, intercept, X, y)


def test_large_finite_logits_are_not_an_overflow():
    # Logits near 1e300: log-sum-exp keeps the loss and gradient finite.
    coef, intercept, X, y = _valid_args()
    loss, gc, gi = loss_and_gradient(coef * 1e299, intercept, X, y)
    assert np.isfinite(loss) and loss > 1e298
    assert np.all(np.isfinite(gc)) and np.all(np.isfinite(gi))


@pytest.mark.parametrize("eps", [-0.1, 1.0, 1.5, np.nan, False, "0.1"])
def test_bad_label_smoothing(eps):
    coef, intercept, X, y = _valid_args()
    with pytest.raises(ValueError, match=r"\blabel_smoothing\b"):
        loss_and_gradient(coef, intercept, X, y, label_smoothing=eps)


@pytest.mark.parametrize("alpha", [-1e-3, -1.0, np.nan, np.inf, True, "0.1"])
def test_bad_alpha(alpha):
    coef, intercept, X, y = _valid_args()
    with pytest.raises(ValueError, match=r"\balpha\b"):
        loss_and_gradient(coef, intercept, X, y, alpha=alpha)


def test_x_with_missing_values():
    pd = pytest.importorskip("pandas")
    coef, intercept, X, y = _valid_args()
    frame = pd.DataFrame(X).astype("Float64")
    frame.iloc[0, 0] = pd.NA
    with pytest.raises(ValueError, match=r"X must hold numbers without missing"):
        loss_and_gradient(coef, intercept, frame, y)


# --------------------------------------------------------------------------
# 6. log_softmax
# --------------------------------------------------------------------------


# Logits near 0 take the path without a shift; moved by 1000 (beyond
# exp's safe range in both dtypes), the path that shifts each row by its max.
logit_cases = pytest.mark.parametrize(
    "n_classes, dtype, offset",
    [
        (n_classes, dtype, offset)
        for n_classes in (1, 2, 5)
        for dtype in (np.float64, np.float32)
        for offset in (0.0, 1000.0)
    ],
)


def _logits(n_classes, dtype, offset, seed):
    rng = np.random.RandomState(seed)
    return (rng.normal(scale=20.0, size=(40, n_classes)) + offset).astype(dtype)


@logit_cases
def test_log_softmax_matches_scipy(n_classes, dtype, offset):
    Z = _logits(n_classes, dtype, offset, seed=10)
    Z_before = Z.copy()
    out = log_softmax(Z)
    assert out.shape == Z.shape
    assert out.dtype == dtype
    rtol, atol = (1e-12, 1e-12) if dtype == np.float64 else (1e-5, 1e-4)
    np.testing.assert_allclose(
        out, scipy_log_softmax(Z.astype(np.float64), axis=1), rtol=rtol, atol=atol
    )
    np.testing.assert_allclose(
        logsumexp(out.astype(np.float64), axis=1), 0.0, atol=10 * atol
    )
    np.testing.assert_array_equal(Z, Z_before)  # input untouched


def test_log_softmax_underflow_is_finite():
    out = log_softmax(np.array([[0.0, 1000.0], [-1000.0, 0.0], [1e300, -1e300]]))
    np.testing.assert_array_equal(out[0], [-1000.0, 0.0])
    np.testing.assert_array_equal(out[1], [-1000.0, 0.0])
    np.testing.assert_array_equal(out[2], [0.0, -2e300])
    assert np.all(np.isfinite(out))


@logit_cases
def test_softmax_matches_scipy(n_classes, dtype, offset):
    Z = _logits(n_classes, dtype, offset, seed=12)
    Z_before = Z.copy()
    out = softmax(Z)
    assert out.dtype == dtype
    rtol, atol = (1e-12, 1e-15) if dtype == np.float64 else (1e-5, 1e-7)
    np.testing.assert_allclose(
        out, scipy_softmax(Z.astype(np.float64), axis=1), rtol=rtol, atol=atol
    )
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=10 * rtol)
    np.testing.assert_array_equal(Z, Z_before)  # copy=True: input untouched
    # copy=False: the result is the input, overwritten.
    in_place = softmax(Z, copy=False)
    assert in_place is Z
    np.testing.assert_array_equal(in_place, out)


def test_softmax_extreme_logits():
    big = np.finfo(np.float64).max
    Z = np.array(
        [
            [0.0, 1000.0],
            [-1000.0, 0.0],
            [1e300, -1e300],
            [-np.inf, 0.0],
            [7.0, 7.0],
            [-big, big],  # z - max(z) overflows to -inf
        ]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = softmax(Z)
    np.testing.assert_array_equal(
        out, [[0, 1], [0, 1], [1, 0], [0, 1], [0.5, 0.5], [0, 1]]
    )
    # The same rows in float32, where exp overflows past 88.
    out32 = softmax(Z[[0, 1, 3, 4]].astype(np.float32))
    assert out32.dtype == np.float32
    np.testing.assert_array_equal(out32, [[0, 1], [0, 1], [0, 1], [0.5, 0.5]])


def test_softmax_integer_input():
    out = softmax([[0, 0], [0, 1000]])
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, [[0.5, 0.5], [0.0, 1.0]])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_log_softmax_of_a_nearly_certain_class_is_exact(dtype):
    # log(sum exp) rounded the other classes' small share away: logits -20
    # and 20 gave 0 for the top class, not -4.2e-18.  (float32 keeps it:
    # scikit-learn's checks want log(1) where the probability rounds to 1.)
    mpmath = pytest.importorskip("mpmath")
    rng = np.random.RandomState(0)
    Z = rng.standard_normal((60, 4)) * rng.uniform(0.1, 30.0, (60, 1))
    Z[:, 0] += rng.uniform(0.0, 40.0, 60)
    Z = Z.astype(dtype)
    got = log_softmax(Z)
    for row, values in zip(got, Z.astype(np.float64), strict=True):
        with mpmath.workdps(60):
            terms = [mpmath.exp(mpmath.mpf(float(v))) for v in values]
            total = mpmath.fsum(terms)
            exact = np.array([float(mpmath.log(t / total)) for t in terms])
        # Each entry to the dtype's precision, relative to itself (the top
        # class's too, down to the smallest normal number).
        tiny = np.finfo(dtype).tiny
        rtol = 1e-12 if dtype == np.float64 else 1e-5
        if dtype == np.float64:
            mask = np.abs(exact) > tiny
            np.testing.assert_allclose(row[mask], exact[mask], rtol=rtol, atol=0)
        else:
            np.testing.assert_allclose(row, exact, rtol=rtol, atol=2.0**-22)
    assert np.sum(got.max(axis=1) > -1e-10) > 10  # (nearly certain rows)
    np.testing.assert_array_equal(log_softmax(np.asfortranarray(Z)), got)
    assert not np.signbit(log_softmax(np.array([[0.0, 1000.0]], dtype=dtype))[0, 1])


def test_log_softmax_integer_input():
    # Logits given as integers (e.g. the literal [[0, 1000]]), as scipy accepts.
    out = log_softmax(np.array([[0, 1000], [3, 3]]))
    np.testing.assert_allclose(
        out, [[-1000.0, 0.0], [-np.log(2), -np.log(2)]], rtol=1e-15
    )


# --------------------------------------------------------------------------
# 7. lipschitz_constants
# --------------------------------------------------------------------------


def _lipschitz_problem(kind, seed=11):
    rng = np.random.RandomState(seed)
    if kind == "dense_small":
        n, d = 60, 8
        X = rng.normal(size=(n, d)) * rng.uniform(0.2, 3.0, size=d) + rng.normal(size=d)
    elif kind == "dense_large":
        n, d = 400, 300
        X = rng.normal(size=(n, d)) + 0.5 * rng.normal(size=d)
        X[:, :3] *= 4.0  # a clear leading eigenvalue
    else:
        n, d = 120, 40
        X = sp.random(n, d, density=0.2, format="csr", random_state=rng) * 3.0
        X = X + sp.random(n, d, density=0.05, format="csr", random_state=rng)
    s = rng.uniform(0.2, 2.0, size=n)
    s[rng.choice(n, size=n // 10, replace=False)] = 0.0
    s /= s.sum()
    return X, s


def _reference_lambda_max(X, s, mean):
    Xc = _dense(X) - mean
    return np.linalg.eigvalsh(Xc.T @ (s[:, None] * Xc))[-1]


def _directional_curvature(
    coef, intercept, X, y, s, alpha, eps, offset, dW, db, h=1e-4
):
    """phi''(0) for phi(t) = J(theta + t d), by central differences of the gradient."""

    def dphi(t):
        b = None if intercept is None else intercept + t * db
        _, gc, gi = _loss_and_gradient(
            coef + t * dW, b, X, y, s, alpha, eps, offset=offset
        )
        out = np.vdot(gc, dW)
        if gi is not None:
            out += np.vdot(gi, db)
        return out

    return (dphi(h) - dphi(-h)) / (2 * h)


LIP_KINDS = ["dense_small", "dense_large", "sparse"]


@pytest.mark.parametrize("alpha", [0.0, 0.3])
@pytest.mark.parametrize(
    "fit_intercept", [True, False], ids=["intercept", "no_intercept"]
)
@pytest.mark.parametrize("kind", LIP_KINDS)
def test_lipschitz_tight_and_mean(kind, fit_intercept, alpha):
    X, s = _lipschitz_problem(kind)
    L_coef, L_int, mean = lipschitz_constants(
        X, s, alpha=alpha, fit_intercept=fit_intercept
    )
    if fit_intercept:
        np.testing.assert_allclose(
            mean, np.average(_dense(X), weights=s, axis=0), rtol=1e-10, atol=1e-13
        )
        assert L_int == pytest.approx(0.5)
    else:
        np.testing.assert_array_equal(mean, np.zeros(X.shape[1]))
        assert L_int == 0.0
    expected = 0.5 * _reference_lambda_max(X, s, mean if fit_intercept else 0.0) + alpha
    assert expected * (1 - 1e-10) <= L_coef <= 1.05 * expected


@pytest.mark.parametrize(
    "fit_intercept", [True, False], ids=["intercept", "no_intercept"]
)
@pytest.mark.parametrize("kind", LIP_KINDS)
def test_lipschitz_bounds_directional_curvature(kind, fit_intercept):
    X, s = _lipschitz_problem(kind)
    rng = np.random.RandomState(12)
    n, d = X.shape
    K = 3
    y = rng.randint(K, size=n)
    alpha, eps = 0.2, 0.1
    L_coef, L_int, mean = lipschitz_constants(
        X, s, alpha=alpha, fit_intercept=fit_intercept
    )
    offset = mean if fit_intercept else None
    n_dirs = 3 if kind == "dense_large" else 6
    for _ in range(n_dirs):
        coef = rng.normal(scale=0.3, size=(K, d))
        intercept = rng.normal(size=K) if fit_intercept else None
        dW = rng.normal(size=(K, d))
        db = rng.normal(size=K) if fit_intercept else np.zeros(K)
        norm = np.sqrt(np.sum(dW**2) + np.sum(db**2))
        dW, db = dW / norm, db / norm
        curv = _directional_curvature(
            coef, intercept, X, y, s, alpha, eps, offset, dW, db
        )
        bound = L_coef * np.sum(dW**2) + L_int * np.sum(db**2)
        assert 0.0 <= curv <= bound + 1e-8


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    "kind", ["gapless", "low_rank", "lognormal", "sparse", "wide_sparse"]
)
def test_lanczos_eigenvalue_bounds_the_largest(kind, dtype):
    # Above 256 features the largest eigenvalue comes from Lanczos, in a
    # Krylov space of 8 vectors, to 1e-2 and with a 2% margin: never below
    # the exact value (steps would be too long), at most 3% above it.
    # (float32 X: products in float32, the centering in float64.)
    from sk_softmax._loss import _largest_weighted_eigenvalue

    rng = np.random.RandomState(0)
    if kind == "gapless":  # (random data: no gap at the top of the spectrum)
        X = rng.standard_normal((600, 1500))
    elif kind == "low_rank":
        X = rng.standard_normal((3000, 10)) @ rng.standard_normal((10, 400))
        X += 0.1 * rng.standard_normal(X.shape)
    elif kind == "lognormal":
        X = rng.lognormal(0.0, 1.5, size=(2000, 300))
    elif kind == "sparse":
        X = sp.random(4000, 1200, density=0.01, random_state=rng, format="csr")
    else:  # (fewer rows than features, some of weight 0)
        X = sp.random(300, 5000, density=0.01, random_state=rng, format="csr")
    X = X.astype(dtype)
    s = rng.uniform(0.5, 2.0, X.shape[0])
    if kind == "wide_sparse":
        s[::7] = 0.0
    s /= s.sum()
    dense = _dense(X).astype(np.float64)
    mean = s @ dense
    scale = np.sqrt(s @ (dense - mean) ** 2)
    scale[scale == 0] = 1.0
    value = _largest_weighted_eigenvalue(X, s, mean, scale)
    # (The exact value from the shorter side's matrix: the same nonzero
    # eigenvalues.)
    rooted = np.sqrt(s)[:, None] * (dense - mean) / scale
    shorter = rooted @ rooted.T if X.shape[0] < X.shape[1] else rooted.T @ rooted
    exact = np.linalg.eigvalsh(shorter)[-1]
    assert exact <= value <= 1.03 * exact


def test_lanczos_products_reuse_their_vectors():
    # The operator's products write their vectors of n_features into
    # buffers made once (on a partial_fit chunk of 2**18 hashed features,
    # the fresh arrays of each product took most of its time): the peak
    # stays near two such vectors (the buffer and 1 / scale), where a fresh
    # one for each temporary made it three.
    import tracemalloc

    from sk_softmax._loss import _largest_weighted_eigenvalue

    rng = np.random.RandomState(0)
    n_samples, n_features = 300, 50_000
    X = sp.random(n_samples, n_features, density=2e-3, random_state=rng, format="csr")
    s = np.full(n_samples, 1.0 / n_samples)
    mean = np.asarray(X.T @ s).ravel()
    scale = np.ones(n_features)
    tracemalloc.start()
    try:
        value = _largest_weighted_eigenvalue(X, s, mean, scale)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert value > 0
    assert peak < 2.5 * 8 * n_features


@pytest.mark.parametrize("container", [np.asarray, sp.csr_matrix], ids=["dense", "csr"])
def test_lanczos_runs_on_the_shorter_side(monkeypatch, container):
    # With fewer rows than features, Lanczos iterates on vectors as long as
    # the rows are many (A A^T instead of A^T A: the same largest
    # eigenvalue), with the same products with X and X^T.
    import sk_softmax._loss as module

    shapes = []

    def recording(operator, **kwargs):
        shapes.append(operator.shape)
        return eigsh(operator, **kwargs)

    monkeypatch.setattr(module, "eigsh", recording)
    rng = np.random.RandomState(0)
    for n_samples, n_features in [(400, 3000), (3000, 400)]:
        X = rng.standard_normal((n_samples, n_features))
        X[rng.random_sample(X.shape) < 0.9] = 0.0
        s = np.full(n_samples, 1.0 / n_samples)
        mean, scale = s @ X, np.full(n_features, 0.5)
        value = module._largest_weighted_eigenvalue(container(X), s, mean, scale)
        centered = (X - mean) / scale
        exact = np.linalg.eigvalsh(centered.T @ (s[:, None] * centered))[-1]
        assert exact <= value <= 1.03 * exact
    assert shapes == [(400, 400), (400, 400)]


@pytest.mark.parametrize("kind", LIP_KINDS)
def test_lipschitz_bound_attained(kind):
    """At W = 0, b = 0, K = 2 the softmax Hessian has eigenvalue 1/2 along
    (1, -1), so the direction (u v^T, u) with v the top eigenvector of the
    weighted centered Gram matrix reaches the bound: it must hold there too,
    and be (nearly) tight."""
    X, s = _lipschitz_problem(kind)
    n, d = X.shape
    y = np.arange(n) % 2
    L_coef, L_int, mean = lipschitz_constants(X, s, alpha=0.0, fit_intercept=True)
    Xc = _dense(X) - mean
    v = np.linalg.eigh(Xc.T @ (s[:, None] * Xc))[1][:, -1]
    u = np.array([1.0, -1.0]) / np.sqrt(2)
    for w_dir, w_int in [(1.0, 0.0), (0.0, 1.0), (np.sqrt(0.5), np.sqrt(0.5))]:
        dW = w_dir * np.outer(u, v)
        db = w_int * u
        curv = _directional_curvature(
            np.zeros((2, d)), np.zeros(2), X, y, s, 0.0, 0.0, mean, dW, db, h=1e-5
        )
        bound = L_coef * np.sum(dW**2) + L_int * np.sum(db**2)
        assert curv <= bound + 1e-8
        assert curv >= bound / 1.05 - 1e-8


@pytest.mark.parametrize("kind", ["dense_small", "sparse"])
def test_lipschitz_given_mean_is_joint_bound(kind):
    X, s = _lipschitz_problem(kind)
    rng = np.random.RandomState(13)
    n, d = X.shape
    other_mean = np.asarray(_dense(X)[: n // 3].mean(axis=0))  # e.g. first chunk
    alpha = 0.1
    L_coef, L_int, mean = lipschitz_constants(
        X, s, alpha=alpha, fit_intercept=True, mean=other_mean
    )
    np.testing.assert_array_equal(mean, other_mean)
    # The intercept is not penalized: its bound is the data term alone.
    assert L_int == pytest.approx(L_coef - alpha, rel=1e-12)
    expected = 0.5 * (_reference_lambda_max(X, s, other_mean) + 1.0) + alpha
    assert expected * (1 - 1e-10) <= L_coef <= 1.05 * expected
    K = 3
    y = rng.randint(K, size=n)
    for _ in range(4):
        coef = rng.normal(scale=0.3, size=(K, d))
        intercept = rng.normal(size=K)
        dW, db = rng.normal(size=(K, d)), rng.normal(size=K)
        norm = np.sqrt(np.sum(dW**2) + np.sum(db**2))
        curv = _directional_curvature(
            coef, intercept, X, y, s, alpha, 0.0, other_mean, dW / norm, db / norm
        )
        assert 0.0 <= curv <= L_coef + 1e-8


@pytest.mark.parametrize(
    "fit_intercept", [True, False], ids=["intercept", "no_intercept"]
)
@pytest.mark.parametrize("kind", ["dense_small", "sparse"])
def test_lipschitz_mini_batch(kind, fit_intercept):
    X, s = _lipschitz_problem(kind)
    n = np.count_nonzero(s)  # (batches are drawn from these rows)
    assert n < X.shape[0]
    alpha = 0.2
    L_full, L_int_full, mean = lipschitz_constants(
        X, s, alpha=alpha, fit_intercept=fit_intercept
    )
    Xc = _dense(X) - (mean if fit_intercept else 0.0)
    per_sample = (
        0.5 * n * s * (np.sum(Xc**2, axis=1) + (1.0 if fit_intercept else 0.0)) + alpha
    )
    L_max = per_sample.max()

    previous = np.inf
    for batch_size in [1, 2, 7, n // 2, n - 1]:
        L_b, L_int_b, mean_b = lipschitz_constants(
            X, s, alpha=alpha, fit_intercept=fit_intercept, batch_size=batch_size
        )
        np.testing.assert_array_equal(mean_b, mean)
        assert max(L_full, L_int_full) * (1 - 1e-10) <= L_b <= L_max * (1 + 1e-10)
        assert L_b <= previous * (1 + 1e-12)  # larger batches, smaller bound
        previous = L_b
        assert L_int_b == (pytest.approx(L_b - alpha) if fit_intercept else 0.0)
        if batch_size == 1:
            np.testing.assert_allclose(L_b, L_max, rtol=1e-10)

    # batch_size >= n is the full batch
    for batch_size in [n, X.shape[0], X.shape[0] + 5]:
        L_b, L_int_b, _ = lipschitz_constants(
            X, s, alpha=alpha, fit_intercept=fit_intercept, batch_size=batch_size
        )
        assert (L_b, L_int_b) == (L_full, L_int_full)


@pytest.mark.parametrize("container", [sp.csr_matrix, sp.csc_array, sp.coo_matrix])
def test_centered_row_norms_of_a_sparse_feature_far_from_zero(container):
    # Sparse X's expansion is in float64; a column at 1e9 +- 1 next to
    # sparse ones still cancelled (the largest norm 128 instead of 20).
    from sk_softmax._loss import _centered_row_norms_sq

    rng = np.random.RandomState(0)
    D = rng.normal(size=(300, 4))
    D[:, 1:] *= rng.uniform(size=(300, 3)) < 0.3
    D[:, 0] += 1e9
    scale = np.array([1.0, 0.5, 1.0, 2.0])
    mean = D.mean(axis=0)
    exact = (((D - mean) / scale) ** 2).sum(axis=1)
    norms = _centered_row_norms_sq(container(D), mean, scale)
    np.testing.assert_allclose(norms, exact, rtol=1e-12)


@pytest.mark.parametrize("dtype, offset", [(np.float32, 1e5), (np.float64, 1e9)])
def test_centered_row_norms_of_a_feature_far_from_zero(dtype, offset):
    # Unit spreads (scales of 1) with one feature far from 0: the expansion
    # ||x||^2 - 2 x.mean + ||mean||^2 in X's dtype cancelled (float32 at
    # 1e5: the largest norm 1825 instead of 8).
    from sk_softmax._loss import _centered_row_norms_sq

    rng = np.random.RandomState(0)
    deviations = rng.normal(size=(300, 3))
    X = (deviations + [offset, 0.0, 0.0]).astype(dtype)
    mean = X.astype(np.float64).mean(axis=0)
    exact = ((X.astype(np.float64) - mean) ** 2).sum(axis=1)
    norms = _centered_row_norms_sq(X, mean, np.ones(3))
    np.testing.assert_allclose(norms, exact, rtol=1e-10, atol=1e-10)
    # Ordinary means keep the one pass in X's dtype, as accurate.
    near = deviations.astype(dtype) + dtype(3.0)
    mean = near.astype(np.float64).mean(axis=0)
    exact = ((near.astype(np.float64) - mean) ** 2).sum(axis=1)
    rtol = 1e-4 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(
        _centered_row_norms_sq(near, mean, np.ones(3)), exact, rtol=rtol, atol=rtol
    )


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_mini_batch_curvature_draws_from_rows_of_positive_weight(fit_intercept):
    # Rows of zero weight are never drawn: the bound is that of the other
    # rows alone, and batches as large as those rows are the full batch.
    rng = np.random.default_rng(0)
    norms = rng.uniform(0.5, 20.0, 50)
    weights = rng.uniform(0.5, 2.0, 50)
    weights[::3] = 0.0
    norms[::3] = 1e300  # (whatever they are)
    kept = weights > 0
    weights /= weights.sum()
    for batch_size in [1, 5, 20, int(kept.sum()) - 1]:
        bound = mini_batch_curvature(
            0.3, norms, weights, batch_size=batch_size, fit_intercept=fit_intercept
        )
        alone = mini_batch_curvature(
            0.3,
            norms[kept],
            weights[kept],
            batch_size=batch_size,
            fit_intercept=fit_intercept,
        )
        assert bound == pytest.approx(alone, rel=1e-12)
        if batch_size == 1:  # the largest term of the rows drawn
            rows = norms[kept] + (1.0 if fit_intercept else 0.0)
            largest = 0.5 * kept.sum() * np.max(weights[kept] * rows)
            assert bound == pytest.approx(largest, rel=1e-12)
    full = mini_batch_curvature(
        0.3, norms, weights, batch_size=int(kept.sum()), fit_intercept=fit_intercept
    )
    assert full == (0.5 if fit_intercept else 0.3)


@pytest.mark.parametrize("container", [np.asarray, sp.csr_matrix])
@pytest.mark.parametrize("n_samples", [5000, 12000, 40000])
def test_curvature_sample_is_that_of_the_rows_of_positive_weight(container, n_samples):
    # The rows the curvature is estimated on, where a third weigh 0: evenly
    # spaced among the others, as without them; all rows (a view) up to
    # 8192, whatever their weights.
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n_samples, 3))
    labels = rng.integers(0, 4, n_samples)
    weights = rng.uniform(0.5, 2.0, n_samples)
    weights[rng.random(n_samples) < 1 / 3] = 0.0
    weights /= weights.sum()
    kept = weights > 0
    rows, sample_weights, sample_labels = _curvature_sample(
        container(X), weights, labels
    )
    alone = _curvature_sample(X[kept], weights[kept], labels[kept])
    if n_samples <= 8192:
        assert rows is not None and rows.shape[0] == n_samples
        np.testing.assert_array_equal(sample_weights, weights)
        return
    assert rows.shape[0] == alone[0].shape[0] <= 8192
    np.testing.assert_array_equal(_dense(rows), alone[0])
    np.testing.assert_allclose(sample_weights, alone[1], rtol=1e-14)
    np.testing.assert_array_equal(sample_labels, alone[2])
    # All weights positive: a strided view.
    view = _curvature_sample(X, np.full(n_samples, 1.0 / n_samples))[0]
    assert np.shares_memory(view, X) and view.shape[0] <= 8192


@pytest.mark.parametrize("n_features", [40, 300], ids=["gram", "lanczos"])
@pytest.mark.parametrize("container", [np.asarray, sp.csr_matrix], ids=["dense", "csr"])
def test_largest_eigenvalue_of_the_correlation_matrix(container, n_features):
    # Weighted correlations whatever the scale passed; a constant feature is
    # left out (its correlations are undefined), not a zero-spread blow-up.
    rng = np.random.default_rng(0)
    n = 600
    X = rng.standard_normal((n, n_features)) * rng.uniform(0.1, 10.0, n_features)
    X[:, 1:6] += 2.0 * X[:, :1] / np.std(X[:, 0])  # a correlated group
    X[rng.random(X.shape) < 0.3] = 0.0
    X[:, 7] = 3.0
    s = rng.uniform(0.0, 2.0, n)
    s /= s.sum()
    mean = s @ X
    Xc = (X - mean) * np.sqrt(s)[:, None]
    moments = np.sum(Xc**2, axis=0)
    kept = moments > 1e-20
    corr = (Xc[:, kept].T @ Xc[:, kept]) / np.sqrt(
        np.outer(moments, moments)[kept][:, kept]
    )
    expected = np.linalg.eigvalsh(corr)[-1]
    scale = rng.choice([0.25, 1.0, 8.0], n_features)
    value = largest_eigenvalue(
        container(X), s, mean=mean, scale=scale, correlation=True
    )
    # Exact up to 256 features; Lanczos's estimate has a 2% margin above.
    np.testing.assert_allclose(
        value, expected, rtol=1e-9 if n_features <= 256 else 0.03
    )
    assert value >= expected * (1 - 1e-9)
    plain = largest_eigenvalue(container(X), s, mean=mean, scale=scale)
    assert abs(plain - value) > 0.1 * value  # the scales matter without it


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize(
    "container",
    [np.asarray, lambda X: X.astype(np.float32), sp.csr_matrix],
    ids=["dense", "float32", "csr"],
)
def test_weighted_gram(container, n_threads):
    # The weighted Gram matrix of the centered, scaled rows, in float64, by
    # chunks of rows (3000 x 50 float64 is more than one): features far
    # from 0 lose nothing to cancellation, and a row of zero weight far out
    # (its deviation overflows once scaled) adds nothing.
    rng = np.random.default_rng(0)
    X = rng.standard_normal((3000, 50)) * rng.uniform(0.5, 2.0, 50)
    X[:, :5] += 1e6
    X[7] = 1.7e308 if container is np.asarray else 1e30
    s = rng.uniform(0.0, 2.0, 3000)
    s[7] = 0.0
    s /= s.sum()
    data = container(X)
    X_used = np.asarray(data.toarray() if sp.issparse(data) else data, np.float64)
    mean = s @ np.where(s[:, None] > 0, X_used, 0.0)
    scale = rng.choice([0.5, 1.0, 4.0], 50)
    scale[0] = 0.5  # (1.7e308 / 0.5 overflows)
    kept = np.delete(np.arange(3000), 7)
    Xc = (X_used[kept] - mean) / scale * np.sqrt(s[kept])[:, None]
    gram = weighted_gram(data, s, mean=mean, scale=scale, n_threads=n_threads)
    assert gram.dtype == np.float64
    np.testing.assert_allclose(gram, Xc.T @ Xc, rtol=1e-9, atol=1e-12)
    # Given coefficients, each row also weighs its curvature at its logits
    # (with its label, when given).
    coef = rng.standard_normal((50, 3)) * 0.05
    intercept = np.array([0.5, -1.0, 0.0])
    logits = (X_used[kept] - mean) / scale @ coef + intercept
    y = rng.integers(0, 3, 3000)
    for labels in (None, y):
        curvature = softmax_curvature(logits, None if labels is None else y[kept])
        Xa = Xc * np.sqrt(curvature)[:, None]
        gram = weighted_gram(
            data,
            s,
            mean=mean,
            scale=scale,
            n_threads=n_threads,
            coef=coef,
            intercept=intercept,
            y=labels,
        )
        np.testing.assert_allclose(gram, Xa.T @ Xa, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("n_classes", [2, 3, 10])
def test_softmax_curvature_bounds_the_hessian(n_classes):
    # The largest eigenvalue of diag(p) - p p^T, the loss's Hessian in one
    # row's logits, lies below the bound, which is at most 1/2, exact (1/K)
    # at uniform probabilities, and vanishes as a row grows confident.
    rng = np.random.default_rng(n_classes)
    logits = (
        rng.standard_normal((500, n_classes))
        * rng.choice([0.1, 3.0, 30.0], 500)[:, None]
    )
    logits[0] = 0.0
    logits[1] = [1e300] + [-1e300] * (n_classes - 1)
    bound = softmax_curvature(logits)
    proba = scipy_softmax(logits, axis=1)
    hessians = (
        proba[:, :, None] * np.eye(n_classes) - proba[:, :, None] * proba[:, None, :]
    )
    largest = np.linalg.eigvalsh(hessians)[:, -1]
    assert bound.shape == (500,) and bound.dtype == np.float64
    assert np.all(largest <= bound * (1 + 1e-12) + 1e-15)  # (eigvalsh rounding)
    assert np.all(bound <= 0.5)
    assert bound[0] == pytest.approx(1.0 / n_classes, rel=1e-14)
    assert bound[1] == 0.0
    # Not far above the eigenvalue where the rows are uncertain.
    uncertain = largest > 0.05
    assert np.all(bound[uncertain] <= 2.0 * largest[uncertain])
    # With labels, a bound along the next steps: a row whose class has a
    # probability below 1/2 takes 1/2 (steps move it through the uncertain
    # region), the others 4 times their bound, at most 1/2.
    y = rng.integers(0, n_classes, 500)
    labeled = softmax_curvature(logits, y)
    below = proba[np.arange(500), y] < 0.5
    assert np.all(labeled[below] == 0.5) and 0 < below.sum() < 500
    np.testing.assert_allclose(
        labeled[~below], np.minimum(4.0 * bound[~below], 0.5), rtol=1e-15
    )
    assert np.any((labeled[~below] > bound[~below]) & (labeled[~below] < 0.5))


def test_gram_preconditioner():
    rng = np.random.default_rng(0)
    pen = np.full(4, 0.01)
    # Uncorrelated features: diagonal steps do as well, no factor.
    assert gram_preconditioner(np.diag([1.0, 2.0, 0.5, 1.0]), pen) is None
    # Two features nearly equal (correlation condition number 2e4): the
    # factor of gram + diag(penalty) + a ridge of 1e-3 of its mean diagonal.
    root = rng.standard_normal((200, 4))
    root[:, 1] = root[:, 0] + 0.01 * root[:, 1]
    gram = root.T @ root / 200
    factor = gram_preconditioner(gram, pen)
    bound = gram + np.diag(pen)
    ridge = 1e-3 * np.mean(np.diag(bound))
    np.testing.assert_allclose(factor @ factor.T, bound + ridge * np.eye(4))
    assert np.all(np.triu(factor, 1) == 0)
    # The scale of each feature does not decide (the correlation matrix
    # does); threshold=0 always gives the factor.
    spread = np.diag([1e-3, 1.0, 1e3, 1.0])
    assert gram_preconditioner(spread @ gram @ spread, pen) is not None
    assert gram_preconditioner(np.eye(4), pen, threshold=0) is not None
    # A constant feature is left out: its row and column are those of
    # 1 + its penalty (a step of 1 safe for the penalty alone).
    gram_c = gram.copy()
    gram_c[3, :] = gram_c[:, 3] = 0.0
    constant = np.array([False, False, False, True])
    factor = gram_preconditioner(gram_c, pen, constant=constant)
    np.testing.assert_allclose(factor[3], [0.0, 0.0, 0.0, np.sqrt(1.01)])
    assert np.all(factor[:3, 3] == 0.0)
    # Singular to rounding (a duplicated column): the null space, where
    # the gradient has no data term, does not decide; the other directions
    # do (here uncorrelated: no factor; the pair above correlated too: a
    # factor).
    plain = rng.standard_normal((200, 4))
    plain[:, 3] = plain[:, 0]
    assert gram_preconditioner(plain.T @ plain / 200, pen) is None
    root = np.column_stack([root, root[:, 2]])
    assert gram_preconditioner(root.T @ root / 200, np.full(5, 0.01)) is not None
    # ridge_fraction scales the ridge (features far from 0 without
    # intercept: sized by their spread, not by their offset).
    factor = gram_preconditioner(gram, pen, ridge_fraction=1e-6)
    np.testing.assert_allclose(factor @ factor.T, bound + 1e-6 * ridge * np.eye(4))


def test_offsets_of_features_without_intercept():
    # The share of the features' second moments that is spread, and their
    # squared means in spreads; a column of ones and constant features
    # left out.
    from sk_softmax._softmax import _Offsets

    rng = np.random.default_rng(0)
    n = 4000
    X = np.c_[rng.standard_normal(n), 3.0 + rng.standard_normal(n), np.ones(n)]
    w = np.full(n, 1.0 / n)
    scale = np.array([1.0, 4.0, 1.0])
    offsets = _Offsets((X, w), scale, None)
    mean, var = X.mean(axis=0) / scale, X.var(axis=0) / scale**2
    share = (var[0] + var[1]) / (var[0] + var[1] + mean[0] ** 2 + mean[1] ** 2 + 1)
    assert offsets.share == pytest.approx(share, rel=1e-9)
    assert offsets.squared == pytest.approx(np.sum(mean[:2] ** 2 / var[:2]), rel=1e-9)
    assert not offsets.far
    held = _Offsets((X + [100.0, 0, 0], w), scale, np.array([False, True, True]))
    assert held.far and held.share == pytest.approx(
        var[0] / (var[0] + 100.0**2), rel=1e-3
    )
    sparse = _Offsets((sp.csr_matrix(X), w), scale, None)
    assert sparse.share == pytest.approx(share, rel=1e-9)


@pytest.mark.parametrize("chunk", [1, 5, 1 << 20])
@pytest.mark.parametrize("fmt", ["csr", "csc", "coo"])
def test_sparse_row_sums_in_chunks(monkeypatch, fmt, chunk):
    # Any chunk size gives the dense row sums, empty rows and columns included.
    from sk_softmax import _loss

    monkeypatch.setattr(_loss, "_CHUNK_ENTRIES", chunk)
    rng = np.random.RandomState(17)
    dense = rng.standard_normal((40, 12)) * (rng.uniform(size=(40, 12)) < 0.3)
    dense[[0, 7, 39]] = 0.0
    dense[:, 3] = 0.0
    inv_scale = rng.uniform(0.5, 2.0, size=12)
    got = _loss._sparse_row_sums_sq(sp.csr_matrix(dense).asformat(fmt), inv_scale)
    np.testing.assert_allclose(got, ((dense * inv_scale) ** 2).sum(axis=1), rtol=1e-13)


def _with_duplicates(dense, fmt, rng):
    """``dense`` as CSR or CSC whose entries are stored as two unsorted halves."""
    compressed = sp.csr_matrix(dense) if fmt == "csr" else sp.csc_matrix(dense)
    lengths = np.diff(compressed.indptr)
    rows = np.repeat(np.arange(lengths.size), lengths)
    split = rng.uniform(0.2, 0.8, size=compressed.nnz)
    order = np.argsort(np.r_[rows, rows], kind="stable")
    data = np.r_[compressed.data * split, compressed.data * (1 - split)][order]
    indices = np.r_[compressed.indices, compressed.indices][order]
    matrix = type(compressed)((data, indices, 2 * compressed.indptr), shape=dense.shape)
    assert not matrix.has_canonical_format
    return matrix


@pytest.mark.parametrize("chunk", [1, 5, 1 << 20])
@pytest.mark.parametrize("fmt", ["csr", "csc"])
def test_sparse_row_sums_with_duplicate_entries(monkeypatch, fmt, chunk):
    # Entries stored twice for one position add up (scipy's convention): the
    # square is that of their sum, not the sum of their squares.
    from sk_softmax import _loss

    monkeypatch.setattr(_loss, "_CHUNK_ENTRIES", chunk)
    rng = np.random.RandomState(3)
    dense = rng.standard_normal((40, 12)) * (rng.uniform(size=(40, 12)) < 0.3)
    inv_scale = rng.uniform(0.5, 2.0, size=12)
    X = _with_duplicates(dense, fmt, rng)
    np.testing.assert_allclose(X.toarray(), dense, rtol=1e-13, atol=1e-15)
    got = _loss._sparse_row_sums_sq(X, inv_scale)
    np.testing.assert_allclose(got, ((dense * inv_scale) ** 2).sum(axis=1), rtol=1e-12)
    w = np.full(40, 1 / 40)
    mean = w @ dense
    np.testing.assert_allclose(
        weighted_std(X, w, mean), weighted_std(dense, w, mean), rtol=1e-10
    )
    assert not X.has_canonical_format  # the caller's matrix is left as it was


@pytest.mark.parametrize("batch_size", [None, 16])
@pytest.mark.parametrize("fmt", ["csr", "csc"])
def test_fit_on_sparse_with_duplicate_entries(fmt, batch_size):
    # The spreads and curvature bounds behind the steps of "sgd" read the
    # entries' squares: a non-canonical matrix trains as its canonical form
    # (full-batch sgd took 136 epochs instead of 41 on one).
    from sklearn.exceptions import ConvergenceWarning

    from sk_softmax import SoftmaxRegression

    rng = np.random.RandomState(0)
    dense = 5 * rng.standard_normal((300, 4))
    y = (dense @ rng.standard_normal((4, 3))).argmax(axis=1)
    params = dict(solver="sgd", batch_size=batch_size, max_iter=30, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        canonical = SoftmaxRegression(**params).fit(sp.csr_matrix(dense), y)
        duplicated = SoftmaxRegression(**params).fit(
            _with_duplicates(dense, fmt, rng), y
        )
    assert duplicated.n_iter_ == canonical.n_iter_
    np.testing.assert_allclose(duplicated.coef_, canonical.coef_, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("fmt", ["csr", "csc"])
def test_sparse_mini_batch_bound_allocates_chunks_not_x(monkeypatch, fmt):
    # The per-sample curvature of a sparse X reads it a chunk at a time: the
    # peak stays well below the size of its stored entries (it used to be
    # several times that size).

    from sk_softmax import _loss

    monkeypatch.setattr(_loss, "_CHUNK_ENTRIES", 1 << 16)
    rng = np.random.default_rng(18)
    n, d, per_row = 50000, 5000, 40
    X = sp.csr_matrix(
        (
            rng.standard_normal(n * per_row),
            rng.integers(0, d, size=n * per_row),
            np.arange(0, n * per_row + 1, per_row),
        ),
        shape=(n, d),
    ).asformat(fmt)
    weights = np.full(n, 1.0 / n)
    tracemalloc.start()
    try:
        lipschitz_constants(X, weights, alpha=0.1, fit_intercept=True, batch_size=256)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 0.5 * X.data.nbytes, (peak, X.data.nbytes)


@pytest.mark.parametrize("n_threads", [1, 2, 3])
@pytest.mark.parametrize("container", [np.asarray, sp.csr_matrix], ids=["dense", "csr"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_row_blocks_and_threads_match_one_block(
    monkeypatch, weighted, container, n_threads
):
    # Split 3000 rows into blocks: any thread count must give the one-block
    # result (up to summation order).
    from sk_softmax import _loss

    rng = np.random.RandomState(11)
    n, d, K = 3000, 40, 4
    X = container(rng.standard_normal((n, d)) * (rng.uniform(size=(n, d)) < 0.3))
    y = rng.randint(K, size=n)
    coef, intercept = rng.standard_normal((K, d)), rng.standard_normal(K)
    offset = rng.standard_normal(d)
    if weighted:
        sw = rng.uniform(0, 2, size=n)
        sw /= sw.sum()
    else:
        sw = 1.0 / n
    args = (coef, intercept, X, y, sw, 0.1, 0.2, offset)
    monkeypatch.setattr(_loss, "_MIN_SPARSE_BLOCK_ROWS", n)
    monkeypatch.setattr(_loss, "_BLOCK_BYTES", n * d * 8)
    assert _loss._block_rows(X, n) == n
    single = _loss._loss_and_gradient(*args)
    monkeypatch.setattr(_loss, "_MIN_SPARSE_BLOCK_ROWS", 700)
    monkeypatch.setattr(_loss, "_BLOCK_BYTES", 700 * d * 8)
    monkeypatch.setattr(_loss, "_MIN_SHARED_PRODUCT", 0)  # (threads for small X)
    # Dense blocks follow the cache size, sparse ones the thread count.
    expected_rows = max(700, -(-n // n_threads)) if sp.issparse(X) else 700
    assert _loss._block_rows(X, n, n_threads) == expected_rows
    blocked = _loss._loss_and_gradient(*args, n_threads=n_threads)
    for got, ref in zip(blocked, single, strict=True):
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("reachable", [True, False], ids=["sparsetools", "fallback"])
@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("n_classes", [2, 4])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    "container", [np.asarray, sp.csr_matrix, sp.csc_matrix], ids=["dense", "csr", "csc"]
)
def test_gradient_into_out_is_the_same(
    monkeypatch, container, dtype, n_classes, n_threads, reachable
):
    # Written into a given array (the solver's flat gradient), the gradient
    # of the coefficients is the one returned otherwise, bit for bit: in
    # one block or several on several threads, two classes or more, with
    # the rows centered block by block or implicitly, and where scipy's
    # compiled product cannot be reached.
    from sk_softmax import _loss

    if not reachable:
        monkeypatch.setattr(_loss, "_sparsetools", None)
    rng = np.random.RandomState(3)
    n, d = 1500, 30
    X = rng.standard_normal((n, d)) * (rng.uniform(size=(n, d)) < 0.3)
    X[:, 3] += 1e4  # (far from 0: centered by blocks with center_rows)
    X = container(X.astype(dtype))
    y = rng.randint(n_classes, size=n)
    coef = rng.standard_normal((n_classes, d)).astype(dtype)
    intercept = rng.standard_normal(n_classes).astype(dtype)
    offset = np.asarray(X.mean(axis=0), dtype=dtype).ravel()
    monkeypatch.setattr(_loss, "_MIN_SPARSE_BLOCK_ROWS", 400)
    monkeypatch.setattr(_loss, "_BLOCK_BYTES", 400 * d * np.dtype(dtype).itemsize)
    monkeypatch.setattr(_loss, "_MIN_BLOCK_BYTES", 1)
    monkeypatch.setattr(_loss, "_MIN_SHARED_PRODUCT", 0)
    for center_rows in (None, np.array([3])):
        args = (coef, intercept, X, y, 1.0 / n, 0.1, 0.1, offset, n_threads)
        options = {"center_rows": center_rows}
        expected = _loss._loss_and_gradient(*args, **options)
        out = np.zeros((d, n_classes), dtype=dtype)
        got = _loss._loss_and_gradient(*args, out=out, **options)
        assert np.shares_memory(got[1], out)
        assert got[1].dtype == dtype
        assert got[0] == expected[0]
        np.testing.assert_array_equal(got[1], expected[1])
        np.testing.assert_array_equal(got[2], expected[2])


@pytest.mark.parametrize(
    "n_features, n_classes, dtype, rows",
    [
        (2, 3, np.float64, 21845),  # narrow: 512 KiB of logits, not 4 MiB of X
        (1, 2, np.float32, 65536),
        (100, 10, np.float64, 5242),  # the benchmark's dense: 4 MiB of X
        (1000, 20, np.float32, 1048),
    ],
)
def test_blocks_bound_the_logits_too(n_features, n_classes, dtype, rows):
    # Blocks of 4 MiB of narrow X (500,000 rows of 2 features) held 6 MiB of
    # logits a thread, far beyond L2: evaluations 2.5 times as slow, and
    # twice the memory of a fit.
    from sk_softmax import _loss

    X = np.zeros((500_000, n_features), dtype=dtype)
    assert _loss._block_rows(X, X.shape[0], 2, n_classes=n_classes) == rows
    # (The other passes over X, without logits, keep blocks of 4 MiB.)
    assert _loss._block_rows(X, X.shape[0]) == min(
        (4 << 20) // (n_features * X.itemsize), X.shape[0]
    )


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    "n_rows, n_features, n_classes",
    [
        (1563, 64, 10),  # just above the small kernels' size: two chunks
        (5000, 100, 10),  # rows stacked, a remainder of rows
        (256, 1000, 20),  # columns stacked, a remainder of columns
        (700, 1000, 20),  # rows again (chunks of 50 rows)
        (1000, 300, 100),  # backward whole: row chunks of 33 rows
        (3, 400_000, 3),  # too wide for chunks of 32 rows: whole
        (1000, 64, 10),  # within the size: whole
    ],
)
@pytest.mark.parametrize("small_kernels", [True, False])
def test_stacked_products_match_the_whole(
    monkeypatch, n_rows, n_features, n_classes, dtype, small_kernels
):
    # With OpenBLAS's small kernels, the block's products run as stacks of
    # products of at most _SMALL_GEMM multiply-adds (twice as fast on these
    # shapes), in one call each; without them, whole (large float64 blocks
    # of few features forward as W X^T): the same values either way.
    from sk_softmax import _loss

    monkeypatch.setattr(_loss, "_small_kernels", lambda: small_kernels)

    rng = np.random.default_rng(0)
    X = rng.standard_normal((n_rows, n_features)).astype(dtype)
    coef_t = rng.standard_normal((n_features, n_classes)).astype(dtype)
    intercept = rng.standard_normal(n_classes).astype(dtype)
    raw_t = rng.standard_normal((n_classes, n_rows)).astype(dtype)
    rtol = 1e-4 if dtype == np.float32 else 1e-12
    forward = _loss._forward(X, coef_t, intercept)
    assert forward.shape == (n_classes, n_rows) and forward.flags.c_contiguous
    assert forward.dtype == dtype
    # Mixed dtypes compute in the wider one, as a plain product does.
    wide = _loss._forward(X, coef_t.astype(np.float64), intercept)
    assert wide.dtype == np.float64
    np.testing.assert_allclose(
        forward, (X.astype(np.float64) @ coef_t + intercept).T, rtol=rtol, atol=rtol
    )
    scale = np.sqrt(n_rows)
    expected = X.T.astype(np.float64) @ raw_t.T
    out = np.zeros((n_features, n_classes), dtype=dtype)
    for into in (None, out):
        backward = _loss._backward(X, raw_t, into)
        assert backward.shape == (n_features, n_classes)
        assert backward.dtype == dtype
        if into is not None:
            assert backward is out
        np.testing.assert_allclose(backward, expected, rtol=rtol, atol=rtol * scale)
    # A block not C-contiguous takes the whole products: the same values.
    X_f = np.asfortranarray(X)
    np.testing.assert_allclose(
        _loss._backward(X_f, raw_t), expected, rtol=rtol, atol=rtol * scale
    )
    np.testing.assert_allclose(
        _loss._forward(X_f, coef_t, intercept), forward, rtol=rtol, atol=rtol
    )


@pytest.mark.parametrize(
    "dtype, small_kernels, rows",
    [
        (np.float64, True, 2621),
        (np.float32, True, 10485),
        (np.float64, False, 5242),
        (np.float32, False, 10485),
    ],
)
def test_float64_loss_blocks_are_half_the_passes_blocks_with_small_kernels(
    monkeypatch, dtype, small_kernels, rows
):
    # With the products stacked (OpenBLAS's small kernels), float64
    # evaluations ran 9 to 14% faster in blocks of 2 MiB than of 4 (100k x
    # 100 x 10, 20k x 1000 x 20); float32 ones 4 to 6% slower on the first.
    # Without the small kernels, blocks of 4 MiB.
    from sk_softmax import _loss

    monkeypatch.setattr(_loss, "_small_kernels", lambda: small_kernels)

    seen = []
    blocks_of = _loss._blocks_loss_and_gradient

    def spy(*args, **kwargs):
        seen.append(args[-1])
        return blocks_of(*args, **kwargs)

    monkeypatch.setattr(_loss, "_blocks_loss_and_gradient", spy)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((30_000, 100)).astype(dtype)
    y = rng.integers(0, 10, X.shape[0])
    coef = np.zeros((10, 100), dtype=dtype)
    _loss._loss_and_gradient(coef, np.zeros(10, dtype), X, y, 1 / 30_000, 0.0, 0.0)
    (blocks,) = seen
    assert blocks[0] == (0, rows)
    assert _loss._block_rows(X, X.shape[0]) == (4 << 20) // (100 * X.itemsize)


@pytest.mark.parametrize(
    "libraries, expected",
    [
        # numpy's wheel's OpenBLAS decides, whatever scipy's is.
        (
            [
                ("numpy.libs", "openblas", "SkylakeX"),
                ("scipy.libs", "openblas", "Haswell"),
            ],
            True,
        ),
        (
            [
                ("numpy.libs", "openblas", "Haswell"),
                ("scipy.libs", "openblas", "SkylakeX"),
            ],
            False,
        ),
        ([("numpy.libs", "openblas", "SapphireRapids")], True),
        # A BLAS elsewhere (a shared one): every BLAS loaded must have them.
        ([("lib", "openblas", "Cooperlake"), ("lib2", "openblas", "SkylakeX")], True),
        ([("lib", "openblas", "SkylakeX"), ("lib2", "mkl", None)], False),
        ([("lib", "openblas", "Zen")], False),
        ([], False),
    ],
)
def test_small_kernels_are_found_from_numpy_s_blas(monkeypatch, libraries, expected):
    # The stacks, and the thread and block rules made for them, apply where
    # numpy's BLAS is an OpenBLAS with SkylakeX's small kernels.
    import threadpoolctl

    from sk_softmax import _loss

    site = os.path.dirname(os.path.dirname(np.__file__))
    info = [
        {
            "user_api": "blas",
            "internal_api": api,
            "filepath": os.path.join(site, folder, "libblas.so"),
            "architecture": core,
        }
        for folder, api, core in libraries
    ]
    info.append({"user_api": "openmp", "internal_api": "openmp", "filepath": "x"})
    monkeypatch.setattr(threadpoolctl, "threadpool_info", lambda: info)
    # (Both found once per process: here, again.)
    monkeypatch.setattr(_loss, "_numpy_blas", _loss._numpy_blas.__wrapped__)
    assert _loss._small_kernels.__wrapped__() is expected


def test_product_chunks():
    # The most rows (or columns) within _SMALL_GEMM multiply-adds, at least
    # _MIN_CHUNK of them; None where the product fits whole or is too wide.
    from sk_softmax import _loss

    assert _loss._SMALL_GEMM == 10**6
    assert _loss._chunk_size(1563, 640) == 1562
    assert _loss._chunk_size(1562, 640) is None
    assert _loss._chunk_size(10_000, 20_000) == 50
    assert _loss._chunk_size(10_000, 40_000) is None  # 25 rows
    stack, stop = _loss._stacked(np.arange(24.0).reshape(4, 6), 4, axis=1)
    assert stop == 4
    np.testing.assert_array_equal(stack[0], np.arange(24.0).reshape(4, 6)[:, :4])
    stack, stop = _loss._stacked(np.arange(24.0).reshape(6, 4), 4)
    assert stack.shape == (1, 4, 4) and stop == 4


def test_csr_row_blocks_share_the_arrays_of_X(monkeypatch):
    # A block of CSR rows is a view: no copy of X's values and column
    # indices, whatever the block's share of X (scipy's constructor copies
    # small views), and the loss over blocks allocates far less than them.
    from sk_softmax import _loss

    rng = np.random.RandomState(13)
    n, d, K = 4000, 500, 3
    X = sp.random(n, d, density=0.05, format="csr", random_state=rng)
    for start, stop in [(0, 100), (100, 1100), (1100, 3000), (3000, 4000)]:
        block = _loss._row_block(X, start, stop)
        assert np.shares_memory(block.data, X.data)
        assert np.shares_memory(block.indices, X.indices)
        np.testing.assert_array_equal(block.toarray(), X[start:stop].toarray())
    y = rng.randint(K, size=n)
    coef, intercept = rng.standard_normal((K, d)), rng.standard_normal(K)
    monkeypatch.setattr(_loss, "_MIN_SPARSE_BLOCK_ROWS", 500)
    assert len(_loss._row_blocks(X, n, 2)) == 2
    expected = _loss._loss_and_gradient(coef, intercept, X, y, 1.0 / n, 0.1, 0.0)
    tracemalloc.start()
    try:
        blocked = _loss._loss_and_gradient(
            coef, intercept, X, y, 1.0 / n, 0.1, 0.0, n_threads=2
        )
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # (Copies of the blocks' arrays took 0.75 of them.)
    assert peak < 0.5 * (X.data.nbytes + X.indices.nbytes), peak
    for got, ref in zip(blocked, expected, strict=True):
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("container", [np.asarray, sp.csr_matrix], ids=["dense", "csr"])
def test_rows_gather_the_mini_batch(monkeypatch, container, n_threads):
    # rows=index computes the loss of X[index] without the caller copying
    # it, also when the batch is split among threads.
    from sk_softmax import _loss

    rng = np.random.RandomState(12)
    n, d, K = 500, 30, 5
    X = container(rng.standard_normal((n, d)))
    y = rng.randint(K, size=n)
    coef, intercept = rng.standard_normal((K, d)), rng.standard_normal(K)
    offset = rng.standard_normal(d)
    index = rng.permutation(n)[:200]
    # Small blocks so that the batch is split.
    monkeypatch.setattr(_loss, "_MIN_BLOCK_BYTES", 1)
    monkeypatch.setattr(_loss, "_MIN_SPARSE_BLOCK_ROWS", 1)
    monkeypatch.setattr(_loss, "_BLOCK_BYTES", 64 * d * 8)
    monkeypatch.setattr(_loss, "_MIN_SHARED_PRODUCT", 0)
    weights = rng.uniform(0, 2, size=200)
    weights /= weights.sum()
    got = _loss._loss_and_gradient(
        coef,
        intercept,
        X,
        y[index],
        weights,
        0.1,
        0.2,
        offset,
        n_threads,
        rows=index,
    )
    ref = _loss._loss_and_gradient(
        coef, intercept, X[index], y[index], weights, 0.1, 0.2, offset
    )
    for got_part, ref_part in zip(got, ref, strict=True):
        np.testing.assert_allclose(got_part, ref_part, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows", [False, True], ids=["full", "batch"])
@pytest.mark.parametrize(
    "container",
    [np.asarray, sp.csr_matrix, sp.csc_matrix],
    ids=["dense", "csr", "csc"],
)
def test_fortran_ordered_coef_gives_the_same_result(container, rows, dtype):
    # The solvers hand the core a Fortran-ordered view of W (their flat
    # parameters hold W^T): same loss and gradient as for a C-ordered W,
    # with the gradient in either memory order.
    rng = np.random.RandomState(13)
    n, d, K = 300, 25, 4
    X = container(
        (rng.standard_normal((n, d)) * (rng.uniform(size=(n, d)) < 0.3)).astype(dtype)
    )
    y = rng.randint(K, size=n)
    coef = rng.standard_normal((K, d)).astype(dtype)
    intercept = rng.standard_normal(K).astype(dtype)
    offset = rng.standard_normal(d).astype(dtype)
    index = rng.permutation(n)[:100] if rows else None
    y_part = y[index] if rows else y
    args = (intercept, X, y_part, 1.0 / y_part.size, 0.3, 0.1, offset)
    ref = _loss_and_gradient(coef, *args, rows=index)
    got = _loss_and_gradient(np.asfortranarray(coef), *args, rows=index)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    for got_part, ref_part in zip(got, ref, strict=True):
        np.testing.assert_allclose(got_part, ref_part, rtol=rtol, atol=rtol * 1e-2)
    assert got[1].flags.c_contiguous or got[1].flags.f_contiguous


@pytest.mark.parametrize("shape", [(300, 1100, 4), (3000, 60, 3)], ids=["wide", "tall"])
@pytest.mark.parametrize("container", [np.asarray, sp.csr_matrix], ids=["dense", "csr"])
def test_public_large_problem_matches_reference(container, shape):
    # Problems past one row block or with a large W run like fit (BLAS at
    # one thread, rows over threads, in-place BLAS updates): same numbers.
    from threadpoolctl import threadpool_info

    n, d, K = shape
    rng = np.random.RandomState(16)
    X = rng.standard_normal((n, d)) * (rng.uniform(size=(n, d)) < 0.5)
    y = rng.randint(K, size=n)
    coef, intercept = 0.1 * rng.standard_normal((K, d)), rng.standard_normal(K)
    weights = rng.uniform(0.5, 2.0, size=n)
    before = [p["num_threads"] for p in threadpool_info()]
    got = loss_and_gradient(
        coef,
        intercept,
        container(X),
        y,
        alpha=0.3,
        label_smoothing=0.1,
        sample_weight=weights,
    )
    assert [p["num_threads"] for p in threadpool_info()] == before
    ref = naive_loss_and_gradient(coef, intercept, X, y, 0.3, 0.1, weights)
    for got_part, ref_part in zip(got, ref, strict=True):
        np.testing.assert_allclose(got_part, ref_part, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("container", [np.asarray, sp.csr_matrix], ids=["dense", "csr"])
def test_public_gradient_is_c_ordered(container):
    X, y, coef, intercept, _ = _make_problem(n_samples=30, n_features=6)
    _, grad_coef, _ = loss_and_gradient(coef, intercept, container(X), y, alpha=0.1)
    assert grad_coef.flags.c_contiguous


@pytest.mark.parametrize("size", [30, 6000], ids=["small", "large"])
@pytest.mark.parametrize(
    "orders", [("C", "C"), ("F", "F"), ("C", "F"), ("F", "C")], ids="-".join
)
@pytest.mark.parametrize(
    "dtypes", [(np.float64,) * 2, (np.float32,) * 2, (np.float32, np.float64)]
)
def test_axpy_in_place(dtypes, orders, size):
    from sk_softmax._loss import _axpy

    rng = np.random.RandomState(15)
    shape = (3, size // 3)
    x = np.asarray(rng.standard_normal(shape), dtype=dtypes[0], order=orders[0])
    y = np.asarray(rng.standard_normal(shape), dtype=dtypes[1], order=orders[1])
    expected = y + np.float32(0.7) * x if y.dtype == np.float32 else y + 0.7 * x
    before = y.__array_interface__["data"][0]
    _axpy(0.7, x, y)
    assert y.__array_interface__["data"][0] == before
    # BLAS may fuse the multiply-add: compare with an absolute tolerance too.
    tol = 1e-6 if y.dtype == np.float32 else 1e-14
    np.testing.assert_allclose(y, expected, rtol=tol, atol=tol)


@pytest.mark.parametrize("n_rows", [2, 4, 8])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", ["C", "F", "strided"])
def test_subtract_outer_in_place(layout, dtype, n_rows):
    # (A Fortran-ordered matrix of a few rows goes row by row, of more rows
    # by ger.)
    from sk_softmax._loss import _subtract_outer

    rng = np.random.RandomState(14)
    base = rng.standard_normal((2 * n_rows, 10)).astype(dtype)
    matrix = {
        "C": base[:n_rows].copy(),
        "F": np.asfortranarray(base[:n_rows]),
        "strided": base[::2],
    }[layout]
    u = rng.standard_normal(n_rows).astype(dtype)
    v = rng.standard_normal(10).astype(dtype)
    expected = matrix - np.outer(u, v)
    before = matrix.__array_interface__["data"][0]
    _subtract_outer(matrix, u, v)
    assert matrix.__array_interface__["data"][0] == before
    np.testing.assert_allclose(
        matrix, expected, rtol=1e-6 if dtype == np.float32 else 1e-14
    )


@pytest.mark.parametrize("container", [np.asarray, sp.csr_matrix], ids=["dense", "csr"])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_mean_and_range_in_one_pass(monkeypatch, container, n_threads):
    # Blocks and threads give numpy's mean, min and max (per feature for
    # dense X); rows of zero weight are left out of the range; NaN and
    # infinity show in it.
    from sk_softmax import _loss

    monkeypatch.setattr(_loss, "_BLOCK_BYTES", 50 * 8 * 8)
    monkeypatch.setattr(_loss, "_MIN_BLOCK_BYTES", 1)
    monkeypatch.setattr(_loss, "_MIN_SHARED_PASS_BYTES", 0)
    monkeypatch.setattr(_loss, "_MIN_SPARSE_BLOCK_ROWS", 50)
    rng = np.random.RandomState(3)
    dense = rng.standard_normal((300, 8)) * (rng.uniform(size=(300, 8)) < 0.5)
    dense[7, 2] = 40.0  # the largest value, in a row given zero weight
    weights = rng.uniform(0.5, 1.5, size=300)
    weights[7] = 0.0
    weights /= weights.sum()
    mean, low, high = _loss._mean_and_range(
        container(dense), weights, n_threads=n_threads
    )
    kept = np.delete(dense, 7, axis=0)
    np.testing.assert_allclose(mean, weights @ dense, rtol=1e-12)
    assert low == min(kept.min(), 0.0)
    assert high == max(kept.max(), 0.0)
    _, low, high = _loss._mean_and_range(
        container(dense), weights, n_threads=n_threads, per_feature=True
    )
    if sp.issparse(container(dense)):  # one range for all
        assert (low, high) == (min(kept.min(), 0.0), max(kept.max(), 0.0))
    else:
        np.testing.assert_array_equal(low, kept.min(axis=0))
        np.testing.assert_array_equal(high, kept.max(axis=0))
    for bad in (np.nan, np.inf, -np.inf):
        dense_bad = dense.copy()
        dense_bad[100, 3] = bad
        for per_feature in (False, True):
            _, low, high = _loss._mean_and_range(
                container(dense_bad),
                weights,
                n_threads=n_threads,
                mean=False,
                per_feature=per_feature,
            )
            assert not (np.all(np.isfinite(low)) and np.all(np.isfinite(high)))


# ------------------------------------------------------ standardized scales


def _weighted_std(X, w, mean):
    X = X.toarray() if sp.issparse(X) else X
    return np.sqrt(w @ (X - mean) ** 2)


@pytest.mark.parametrize("container", ["dense", "dense32", "csr"])
def test_standardized_scales_are_powers_of_two_near_the_spread(container):
    rng = np.random.RandomState(0)
    n = 300
    X = rng.randn(n, 6) * np.array([1e-3, 0.1, 1.0, 3.0, 700.0, 5000.0])
    X[:, 1] = np.where(rng.rand(n) < 0.3, X[:, 1], 0.0)  # sparse-ish column
    w = rng.rand(n)
    w /= w.sum()
    if container == "csr":
        X = sp.csr_matrix(X)
    elif container == "dense32":
        X = X.astype(np.float32)
    mean = np.asarray(X.T @ w).ravel()
    std = _weighted_std(X, w, mean)
    for alpha in (0.0, 1e-4):
        scale = feature_scales(X, w, mean, standardize=True, alpha=alpha)
        # The power of two nearest the standard deviation, or sqrt(alpha):
        # within a factor sqrt(2) of it.
        np.testing.assert_array_equal(np.log2(scale), np.round(np.log2(scale)))
        ratio = scale / np.maximum(std, np.sqrt(alpha))
        assert np.all((ratio >= 2**-0.5 - 1e-6) & (ratio <= 2**0.5 + 1e-6)), ratio
    assert scale[0] == 2.0**-7  # 1e-2 = sqrt(alpha), not 1e-3
    # Without standardize, the ordinary range keeps the plain coordinates.
    np.testing.assert_array_equal(feature_scales(X, w, mean), np.ones(6))


def test_standardized_scales_leave_constant_features_and_extremes_alone():
    rng = np.random.RandomState(0)
    X = np.c_[rng.randn(50) * 8.0, np.full(50, 0.1), np.zeros(50)]
    w = np.full(50, 1 / 50)
    mean = w @ X  # 0.1 up to rounding: the centered column is noise
    scale = feature_scales(X, w, mean, standardize=True)
    np.testing.assert_array_equal(scale, [8.0, 1.0, 1.0])
    # Data of extreme magnitude are standardized too, their spreads computed
    # in the units of one common power of two, which constant features keep,
    # unless it is above 1 and their mean rounds below 2**-8 (a column of
    # zeros, of 0.1 next to incomes in dollars): then they take the scale 1
    # of a feature of unit spread.  Without standardize every feature has
    # that common power of two.
    for exponent in (500, -500, 20):
        extreme = X * 2.0**exponent
        mean = w @ extreme
        unit = 2.0 ** np.floor(np.log2(np.abs(extreme).max() + np.abs(mean).max()))
        scale = feature_scales(extreme, w, mean, standardize=True)
        quiet = {500: [unit, 1.0], -500: [unit, unit], 20: [1.0, 1.0]}[exponent]
        np.testing.assert_array_equal(scale, [8.0 * 2.0**exponent, *quiet])
        np.testing.assert_array_equal(feature_scales(extreme, w, mean), unit)


@pytest.mark.parametrize("n_samples", [1500, 30_000])
def test_float32_constant_column_about_its_summed_mean(n_samples):
    # The float32 mean of a column of 7.0, summed in float32 over 1024 rows
    # at a time, came out 2e-6 below 7: the spread about it (1.3e-5) was
    # above 2**-20 of the mean, the column not constant, and Adam moved
    # its coefficients where float64 and dask held them at 0.
    from sk_softmax._loss import _mean_and_range

    rng = np.random.RandomState(0)
    X = np.c_[rng.randn(n_samples, 4), np.full(n_samples, 7.0)]
    w = np.full(n_samples, 1.0 / n_samples)
    results = []
    for dtype in (np.float64, np.float32):
        data = X.astype(dtype)
        mean, low, high = _mean_and_range(data, w)
        assert weighted_std(data, w, mean)[4] <= 2.0**-20 * 7.0
        results.append(
            feature_scales(
                data,
                w,
                mean,
                value_range=(low, high),
                standardize=True,
                return_constant=True,
            )
        )
    for expected, found in zip(results[0], results[1], strict=True):
        np.testing.assert_array_equal(found, expected)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("fmt", ["csr", "csc"])
def test_sparse_spreads_about_a_large_mean(fmt, dtype):
    # Sparse X is centered entry by entry, as dense X: E[x^2] - mean^2 lost
    # spreads below about 1e-8 of the mean to cancellation (a float32
    # feature of 1000 +- 0.1 came out constant, timestamps too).  Columns
    # stored in every row of positive weight have no implicit zero to add
    # (a constant one stays constant); the others do.
    rng = np.random.RandomState(0)
    n = 400
    X = 1e4 + np.c_[rng.randn(n) * 0.02, rng.randn(n) * 1e-6, rng.randn(n) * 3.0]
    X = np.c_[X, np.full(n, 1e4), np.where(rng.rand(n) < 0.1, 1e4, 0.0)]
    X[:5, 3] = 0.0  # rows of zero weight below
    X = X.astype(dtype)
    w = np.full(n, 1 / (n - 5))
    w[:5] = 0.0
    mean = w @ X.astype(np.float64)
    got = weighted_std(sp.csr_matrix(X).asformat(fmt), w, mean)
    dense = weighted_std(X, w, mean)
    exact = np.sqrt(w @ (X.astype(np.float64) - mean) ** 2)
    np.testing.assert_allclose(got, exact, rtol=1e-12, atol=1e-9)
    columns = [0, 2, 4]  # (the others are constant in float32, or rounding)
    rtol = 1e-3 if dtype == np.float32 else 1e-6
    np.testing.assert_allclose(got[columns], dense[columns], rtol=rtol)
    assert got[3] <= 2**-45 * 1e4  # the rounding of the mean only
    scale = feature_scales(sp.csr_matrix(X), w, mean, standardize=True)
    np.testing.assert_array_equal(scale, feature_scales(X, w, mean, standardize=True))
    # float64 reads spreads down to 2**-40 of the mean; float32 to 2**-20.
    assert (scale[1] == 1.0) == (dtype == np.float32)
    assert scale[3] == 1.0


def test_spreads_of_features_far_from_zero():
    # Dense spreads are about the rows' own mean: a constant column about a
    # rounded mean has none, and a spread above 4 units in the last place
    # of the mean is a feature's.  X + 1e15 (steps of 0.125, unit spread)
    # counted as constant below 2**-40 of the mean.  Sparse spreads are
    # about the given mean: they keep that bound.
    from sk_softmax import _dask

    rng = np.random.RandomState(0)
    n = 3000
    X = np.c_[rng.randn(n), np.full(n, 0.1), 1e15 + rng.randn(n), 1e15 + rng.randn(n)]
    X[:, 3] = np.round(X[:, 3])  # 1e15 + integers: 8 units in the last place
    w = np.full(n, 1.0 / n)
    mean = w @ X
    mean[1] = 0.1 * (1 + 2.0**-45)  # a rounded mean of the constant column
    std = weighted_std(X, w, mean)
    assert std[1] <= 2.0**-60 * 0.1
    np.testing.assert_allclose(std[2:], X[:, 2:].std(axis=0), rtol=1e-3)
    _, constant = feature_scales(X, w, mean, standardize=True, return_constant=True)
    np.testing.assert_array_equal(constant, [False, True, False, False])
    _, constant = feature_scales(
        sp.csr_matrix(X), w, mean, standardize=True, return_constant=True
    )
    np.testing.assert_array_equal(constant, [False, True, True, True])
    da = pytest.importorskip("dask.array")
    chunked = _dask.weighted_std(da.from_array(X, chunks=700), w, mean)
    np.testing.assert_allclose(chunked, std, rtol=1e-6, atol=2.0**-60 * 0.1)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_mean_shift_corrects_a_rounded_mean(dtype):
    # Summed at their size, 9,000 values of 1e14 + N(0, 1) gave a mean 3.5
    # spreads off; their deviations from it give its error.
    from sk_softmax import _dask

    rng = np.random.RandomState(0)
    n = 9000
    offset = 1e14 if dtype == np.float64 else 1e5
    X = np.c_[rng.randn(n), offset + rng.randn(n)].astype(dtype)
    w = rng.uniform(0.0, 2.0, n)
    w[:10] = 0.0
    exact = np.array(
        [math.fsum(w * X[:, j].astype(np.float64)) / math.fsum(w) for j in (0, 1)]
    )
    rough = exact + [0.5, 3.0]
    shift = mean_shift(X, w, rough, np.arange(2))
    # (The products w x of the exact sum round at 1e-2 for 1e14.)
    np.testing.assert_allclose(rough + shift, exact, rtol=0, atol=1e-3)
    np.testing.assert_allclose(mean_shift(X, w, rough[1:], np.array([1])), shift[1:])
    da = pytest.importorskip("dask.array")
    chunked = _dask.mean_shift(da.from_array(X, chunks=2000), w, rough, np.arange(2))
    np.testing.assert_allclose(chunked, shift, rtol=1e-9)
    assert np.all(mean_shift(X, np.zeros(n), rough, np.arange(2)) == 0)


def _ranges(X, w):
    kept = X[w > 0].astype(np.float64)
    return kept.min(axis=0), kept.max(axis=0)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_dominant_rows(dtype, n_threads):
    rng = np.random.RandomState(0)
    n = 3000
    X = rng.randn(n, 6)
    X[:, 3] = 0.0
    X[17, 3] = 1.0  # a one-hot column of one sample: its other rows are constant
    X[:, 4] = 5.0 + rng.randn(n)
    X[[5, 6], 4] = 5e4  # two rows share this one's spread
    # Values of 1e-30 next to 1e12 ones (in the unit of the largest value).
    X[:, 5] = rng.randn(n) * 1e-30
    X[1000, 5] = 1e-24
    X[1000, :3] *= [1e3, 1e6, -1e12]
    # A row of zero weight, beyond any range.
    X[2000, :3] = 1e300 if dtype == np.float64 else 1e38
    X = X.astype(dtype)
    w = rng.uniform(0.5, 1.5, n)
    w[2000] = 0.0
    w /= w.sum()
    mean = w @ X.astype(np.float64)
    expected = [True, True, True, False, False, True]
    others = np.delete(np.arange(n), [1000, 2000])
    exact = w[others] @ X[others].astype(np.float64) / w[others].sum()
    spread = X[others].astype(np.float64).std(axis=0)
    bulk = X[others].astype(np.float64)
    low, high = _ranges(X, w)
    # Per-feature ranges, or one range for all features (which rules out
    # none), find the same.
    for value_range in [(low, high), (low.min(), high.max())]:
        dominated, rows, bulk_mean, (bulk_low, bulk_high) = dominant_rows(
            X, w, mean, value_range, n_threads=n_threads
        )
        assert dominated.tolist() == expected
        assert rows.tolist() == [1000 if e else -1 for e in expected]
        error = np.abs(bulk_mean - exact) / spread
        assert np.all(error[dominated] < 1e-9), error
        np.testing.assert_array_equal(bulk_mean[~dominated], mean[~dominated])
        # The other rows' range, the given one elsewhere.
        for found, side, given in [
            (bulk_low, bulk.min(axis=0), value_range[0]),
            (bulk_high, bulk.max(axis=0), value_range[1]),
        ]:
            error = np.abs(found - side) / spread
            assert np.all(error[dominated] < 1e-9), error
            assert np.all(found[~dominated] == np.broadcast_to(given, 6)[~dominated])


def test_dominant_rows_leave_ordinary_columns_alone():
    rng = np.random.RandomState(0)
    n = 3000
    # A row far out only as much as the others vary dominates nothing, nor
    # does a heavy one; equal weights (the ranges' shortcut) find it.
    X = rng.randn(n, 3)
    X[0] *= 30.0
    w = np.full(n, 1.0 / n)
    assert not dominant_rows(X, w, w @ X, _ranges(X, w))[0].any()
    X[0] = [1.0, 2.0, 3.0]
    heavy = np.r_[0.5, np.full(n - 1, 0.5 / (n - 1))]
    assert not dominant_rows(X, heavy, heavy @ X, _ranges(X, heavy))[0].any()
    X[0] *= 1e5
    found = dominant_rows(X, w, w @ X, _ranges(X, w))
    assert found[0].all() and (found[1] == 0).all()
    # A float32 column constant but in one row, about a float32 mean that
    # rounding put 1e-4 off (the others' residue spread past 2**-40 of the
    # column's): they are constant.
    X = np.c_[rng.randn(200), np.full(200, 2020.0)].astype(np.float32)
    X[7, 1] = 2021.0
    w = rng.uniform(0.5, 2.0, 200)
    w /= w.sum()
    mean = (w.astype(np.float32) @ X).astype(np.float64)
    assert not dominant_rows(X, w, mean, _ranges(X, w))[0].any()
    # Among a few rows, one holding most of a feature's spread says nothing.
    for seed in range(50):
        X = np.random.RandomState(seed).randn(4, 20)
        w = np.random.RandomState(seed).uniform(0.9, 1.1, 4)
        w /= w.sum()
        assert not dominant_rows(X, w, w @ X, _ranges(X, w))[0].any()


@pytest.mark.parametrize("n_threads", [1, 2])
def test_dominant_rows_read_the_possible_columns_only(monkeypatch, n_threads):
    # Equal weights: the ranges leave 3 of 40 features possible (a row far
    # out in feature 5, skewed features 9 and 30).  Only their columns are
    # read (the evenly spaced sample's bound then rules out feature 30, of
    # six rows of 1), and the result is that of the pass over all columns
    # (a single range for all features rules none out).
    rng = np.random.RandomState(0)
    X = rng.randn(3000, 40)
    X[3, 5] = 1e4
    X[:, 9] = rng.lognormal(0.0, 3.0, 3000)
    X[:, 30] = 0.0
    X[::500, 30] = 1.0
    w = np.full(3000, 1 / 3000)
    mean, (low, high) = w @ X, _ranges(X, w)
    read = []
    original = _loss._squared_deviations

    def recording(X, lo, hi, features, *args, **kwargs):
        read.append(None if features is None else features.tolist())
        return original(X, lo, hi, features, *args, **kwargs)

    monkeypatch.setattr(_loss, "_squared_deviations", recording)
    found = dominant_rows(X, w, mean, (low, high), n_threads=n_threads)
    assert read and all(set(columns) <= {5, 9, 30} for columns in read)
    assert read[-1] == [5]
    read.clear()
    full = dominant_rows(X, w, mean, (low.min(), high.max()), n_threads=n_threads)
    assert None in read
    assert np.flatnonzero(found[0]).tolist() == [5]
    for part, whole in zip(found[:3], full[:3], strict=True):
        np.testing.assert_array_equal(part, whole)
    for part, whole in zip(found[3], full[3], strict=True):
        np.testing.assert_array_equal(part[5], whole[5])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("zeros", [False, True])
def test_range_peaks_are_those_of_the_pass(dtype, zeros):
    # Rows of positive weight weigh the same: each feature's largest
    # weighted squared deviation comes from its range, the same float as
    # the pass over the rows finds.
    rng = np.random.RandomState(0)
    X = (rng.randn(2000, 7) * np.logspace(-3, 3, 7) + [0, 5, -9, 1e3, 0, 2, 7]).astype(
        dtype
    )
    w = np.ones(2000)
    if zeros:
        w[::7] = 0.0
        X[::7] = 1e30  # (beyond the range: their rows count for nothing)
    w /= w.sum()
    mean = w @ X.astype(np.float64)
    unit = 2.0**10
    center = mean / unit
    possible = np.ones(7, dtype=bool)
    peak = _loss._range_peaks(X, w, center, unit, _ranges(X, w), possible, 0.0)
    assert possible.all()  # (a share of 0 rules nothing out)
    from_pass, _ = _loss._deviation_peaks(X, w, center, unit, None, True, 1)
    np.testing.assert_array_equal(peak, from_pass)


def _planted(seed):
    """Data with rows far out in some features, float64 or float32, and
    equal weights (some of them 0)."""
    rng = np.random.RandomState(seed)
    n = int(rng.choice([10, 40, 300, 3000]))
    d = int(rng.randint(1, 12))
    kind = rng.randint(3)
    X = rng.randn(n, d)
    if kind == 1:
        X = np.abs(X) * (rng.rand(n, d) < 0.1)
    elif kind == 2:
        X = rng.randint(0, 17, size=(n, d)) * (rng.rand(n, d) < rng.rand(d))
    X = X.astype(np.float64)
    for j in range(d):
        if rng.rand() < 0.5:
            size = 10.0 ** rng.uniform(0.5, 6) * (X[:, j].std() + 1.0)
            X[rng.randint(n), j] += rng.choice([-1, 1]) * size
    if rng.rand() < 0.3:
        X = X.astype(np.float32)
    w = np.ones(n)
    if rng.rand() < 0.3:
        w[rng.rand(n) < 0.1] = 0.0
    return X, w / w.sum()


def test_range_peaks_rule_out_no_dominated_feature(monkeypatch):
    # The ranges' and the sample's bounds only drop features that the pass
    # over all rows would drop: dominant_rows finds the same with them as
    # with every possible feature passed on.
    original = _loss._range_peaks

    def ungated(X, weights, center, unit, value_range, possible, share):
        return original(X, weights, center, unit, value_range, possible.copy(), share)

    found = {}
    for gated in (True, False):
        if not gated:
            monkeypatch.setattr(_loss, "_range_peaks", ungated)
        found[gated] = [
            dominant_rows(X, w, w @ X.astype(np.float64), _ranges(X, w))
            for X, w in map(_planted, range(300))
        ]
    assert sum(int(f[0].sum()) for f in found[True]) > 100
    for gated, plain in zip(found[True], found[False], strict=True):
        for part, whole in zip(gated[:3], plain[:3], strict=True):
            np.testing.assert_array_equal(part, whole)
        for part, whole in zip(gated[3], plain[3], strict=True):
            np.testing.assert_array_equal(part, whole)


def test_dominant_rows_skip_the_pass_over_skewed_features(monkeypatch):
    # Skewed features (log-normal, counts) lie far from their mean on one
    # side only, which the ranges alone leave possible; the evenly spaced
    # sample shows many rows far out, and no pass over X is made.
    rng = np.random.RandomState(0)
    X = np.c_[rng.lognormal(0.0, 1.0, (20000, 20)), rng.poisson(0.3, (20000, 20))]
    w = np.full(20000, 1 / 20000)
    read = []
    original = _loss._deviation_peaks

    def recording(X, weights, center, unit, features, *args, **kwargs):
        read.append(None if features is None else features.tolist())
        return original(X, weights, center, unit, features, *args, **kwargs)

    monkeypatch.setattr(_loss, "_deviation_peaks", recording)
    assert not dominant_rows(X, w, w @ X, _ranges(X, w))[0].any()
    assert read == []
    X[123, 7] = 1e6  # a row far out: its column is read, and found
    found = dominant_rows(X, w, w @ X, _ranges(X, w))
    assert np.flatnonzero(found[0]).tolist() == [7] and found[1][7] == 123
    assert read == [[7]]


def test_standardized_scales_ignore_rows_of_zero_weight():
    rng = np.random.RandomState(0)
    X = rng.randn(40, 3) * [0.5, 4.0, 60.0]
    w = np.full(40, 1 / 40)
    padded = np.r_[X, 1e4 * rng.randn(10, 3)]
    w_padded = np.r_[w, np.zeros(10)]
    mean = w @ X
    np.testing.assert_array_equal(
        feature_scales(padded, w_padded, mean, standardize=True),
        feature_scales(X, w, mean, standardize=True),
    )


def test_standardized_scales_from_given_spreads():
    # Data kept elsewhere (dask, a device) give their spreads as a callable,
    # called only to standardize.
    rng = np.random.RandomState(0)
    X = rng.randn(500, 2) * [2.0, 30.0]
    w = np.full(500, 1 / 500)
    units = []

    def spread(unit):
        units.append(unit)
        return np.array([16.0, 1.0])

    scale = feature_scales(X, w, w @ X, standardize=True, spread=spread)
    np.testing.assert_array_equal(scale, [16.0, 1.0])
    feature_scales(X, w, w @ X, spread=spread)  # not called
    # Data of extreme magnitude: the spreads come in their common unit.
    huge = X * 2.0**300
    scale = feature_scales(huge, w, w @ huge, standardize=True, spread=spread)
    assert units[0] == 1.0 and units[1] > 2.0**300
    np.testing.assert_array_equal(scale, units[1] * np.array([16.0, 1.0]))
    assert len(units) == 2


@pytest.mark.parametrize("container", ["dense", "csr", "csc"])
def test_standardized_scales_of_features_whose_squares_underflow(container):
    # Next to features of ordinary size, the float64 squares of one of 1e-170
    # (and below) underflowed: its spread came out 0, it counted as constant,
    # and sgd and adam never moved its coefficient.  Faint features get
    # their spread in a unit of their own size, one pass per group of
    # similar sizes; all-zero and constant ones cost no pass.
    rng = np.random.RandomState(0)
    n = 300
    sizes = np.array([1e-170, 1e-250, 1e-300, 1.0, 1.0, 0.0, 1.0])
    X = rng.randn(n, sizes.size) * sizes
    X[:, 5] = 0.0  # all zeros
    X[:, 6] = 7.0  # constant
    w = np.full(n, 1 / n)
    mean = w @ X
    # (Each column in units of its own size, where the squares are exact.)
    size = np.where(sizes > 0, sizes, 1.0)
    std = size * np.sqrt(w @ ((X - mean) / size) ** 2)
    expected = 2.0 ** np.round(np.log2(std[:5]))
    data = X if container == "dense" else sp.csr_matrix(X).asformat(container)
    calls = []

    def spread(unit):
        calls.append(unit)
        return weighted_std(data, w, mean, unit=unit)

    scale, constant = feature_scales(
        data, w, mean, standardize=True, spread=spread, return_constant=True
    )
    np.testing.assert_array_equal(constant, [False] * 5 + [True, True])
    np.testing.assert_array_equal(scale[:5], expected)
    assert len(calls) == 3  # the common unit, 1e-170 with 1e-250, then 1e-300
    assert feature_scales(data, w, mean, standardize=True).tolist() == scale.tolist()
    # A penalty floor far above those sizes makes the extra passes pointless:
    # such a feature's optimal coefficient is about size / alpha, as good
    # as 0, where the solvers leave a constant one.
    calls.clear()
    _, constant = feature_scales(
        data, w, mean, standardize=True, spread=spread, alpha=1e-8, return_constant=True
    )
    assert len(calls) == 1
    np.testing.assert_array_equal(constant, [True] * 3 + [False] * 2 + [True] * 2)


@pytest.mark.parametrize("fmt", ["csr", "csc", "coo"])
def test_sparse_product_in_float64_by_chunks(monkeypatch, fmt):
    # float32 sparse X times a float64 vector, in float64, without a float64
    # copy of X.data: chunks of stored entries (small here).
    from sk_softmax import _loss

    monkeypatch.setattr(_loss, "_CHUNK_ENTRIES", 64)
    X = sp.random(300, 40, density=0.2, format="coo", random_state=0, dtype=np.float32)
    # A duplicate entry, summed as scipy sums it.
    X = sp.coo_matrix(
        (np.r_[X.data, 1.5], (np.r_[X.row, 3], np.r_[X.col, 7])), shape=X.shape
    ).asformat(fmt)
    vector = np.random.RandomState(0).randn(40) * 1e10
    # (COO becomes CSR first, its duplicates summed in float32.)
    reference = X.tocsr() if fmt == "coo" else X
    expected = reference.astype(np.float64) @ vector
    got = _loss._sparse_product_float64(X, vector)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, expected, rtol=1e-12)


@pytest.mark.parametrize("fmt", ["csr", "csc"])
def test_stored_zeros_count_as_implicit_ones(fmt):
    # Dropping small tf-idf values in place leaves explicit zeros: the same
    # matrix, but they counted as stored entries, so Adam's scales (and its
    # model) changed with the storage.
    X = sp.random(200, 30, density=0.3, format="csr", random_state=0)
    X.data += 0.5
    stored = X.copy()
    stored.data[::3] = 0.0
    eliminated = stored.copy()
    eliminated.eliminate_zeros()
    w = np.full(200, 1 / 200)
    mean = w @ eliminated.toarray()
    for function in (stored_magnitudes, weighted_std):
        np.testing.assert_allclose(
            function(stored.asformat(fmt), w, mean),
            function(eliminated.asformat(fmt), w, mean),
            rtol=1e-13,
        )


def test_ordinary_data_costs_one_pass_for_the_spreads():
    rng = np.random.RandomState(0)
    X = np.c_[rng.randn(100, 3), np.zeros(100), np.full(100, 1e-3), np.ones(100)]
    w = np.full(100, 1 / 100)
    calls = []

    def spread(unit):
        calls.append(unit)
        return weighted_std(X, w, w @ X, unit=unit)

    feature_scales(X, w, w @ X, standardize=True, spread=spread)
    assert calls == [1.0]


@pytest.mark.parametrize("container", ["dense", "csr"])
def test_float32_means_of_columns_far_from_zero(container):
    # One float32 sum down 120,000 timestamps (1.7e9 + up to 1e5) drifted
    # by 8e5, 30 spreads: the feature's scale came out 32 times too wide.
    from sk_softmax import _loss

    rng = np.random.default_rng(0)
    n = 120_000
    X = np.c_[1.7e9 + rng.uniform(0, 1e5, n), 1000 + 0.1 * rng.normal(size=n)]
    X = X.astype(np.float32)
    exact = X.astype(np.float64).mean(axis=0)
    data = sp.csr_matrix(X) if container == "csr" else X
    mean = _loss._mean_and_range(data, np.full(n, 1.0 / n))[0]
    spread = X.astype(np.float64).std(axis=0)
    assert np.all(np.abs(mean - exact) < 0.02 * spread), (mean - exact) / spread


@pytest.mark.parametrize("canonical", [True, False])
def test_sparse_blocks_centered_in_their_far_columns(canonical):
    # A sparse block with its far columns less their center, the others as
    # they are, rows of zero weight 0 there; also where entries are
    # unsorted and duplicated (summed, as scipy reads them), and where a
    # far column is not stored in some row (its deviation is -center).
    from sk_softmax._loss import _SparseCenter

    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 9)) * (rng.random((40, 9)) < 0.4)
    X[:, [2, 7]] = 1e5 + rng.normal(size=(40, 2))
    X[[3, 11], 7] = 0.0
    offset = X.mean(axis=0)
    weights = rng.random(40)
    weights[[5, 11]] = 0.0
    block = sp.csr_matrix(X)
    if not canonical:
        # Each row's entries reversed, and the far entries split in two.
        coo = block.tocoo()
        far = np.isin(coo.col, [2, 7])
        row = np.r_[coo.row, coo.row[far]]
        col = np.r_[coo.col, coo.col[far]]
        data = np.r_[coo.data, 0.25 * coo.data[far]]
        data[: coo.nnz][far] *= 0.75
        order = np.lexsort((-col, row))
        block = sp.csr_matrix(
            (data[order], col[order], np.searchsorted(row[order], np.arange(41))),
            shape=X.shape,
        )
        assert not block.has_canonical_format
    center = _SparseCenter(np.array([7, 2]), offset, 9)
    got = center.block(block, weights).toarray()
    expected = X.copy()
    expected[:, [2, 7]] -= offset[[2, 7]]
    expected[np.ix_(weights == 0, [2, 7])] = 0.0
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(center.rest[[2, 7]], 0.0)
    np.testing.assert_array_equal(
        np.delete(center.rest, [2, 7]), np.delete(offset, [2, 7])
    )


@pytest.mark.parametrize("container", ["dense", "csr"])
def test_centered_blocks_stay_small(container):
    # Centered row blocks are copies, one per thread: 1 MiB ones, and each
    # freed before the next (a reference through the forward product kept
    # two alive: 21 MB for a 15 MB X, against 8 MB uncentered).  Sparse
    # blocks, one per thread otherwise, are as small once centered (the
    # copies of halves of a 15 MB X).
    from sk_softmax import _loss

    rng = np.random.default_rng(0)
    n, d = 100_000, 20
    X = rng.normal(size=(n, d)).astype(np.float32)
    X[:, 0] += np.float32(1.7e9)
    y = rng.integers(0, 3, n)
    offset = X.astype(np.float64).mean(axis=0).astype(np.float32)
    coef, intercept = np.full((3, d), 1e-3, np.float32), np.zeros(3, np.float32)
    data = sp.csr_matrix(X) if container == "csr" else X
    args = (coef, intercept, data, y, 1.0 / n, 0.0, 0.0, offset, 2)
    tracemalloc.start()
    try:
        _loss._loss_and_gradient(*args, center_rows=np.array([0]))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # Two threads' blocks of 1 MiB, their logits and a little more (the
    # sparse ones' values and indices, and the sum that makes them).
    limit = 4.5 if container == "csr" else 3.5
    assert peak < limit * _loss._MIN_BLOCK_BYTES, peak


def test_correlation_eigenvalue_reads_small_chunks():
    # The features' spreads on the curvature sample, by weighted_std's
    # chunks of about 512 KiB (chunks of 4096 rows took 40 MB on 5000 x 600,
    # twice the row chunk in float64).
    rng = np.random.default_rng(0)
    n, d = 5000, 600
    X = rng.standard_normal((n, d))
    s = np.full(n, 1.0 / n)
    tracemalloc.start()
    try:
        largest_eigenvalue(X, s, mean=np.zeros(d), scale=np.ones(d), correlation=True)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * 2**20, peak


@pytest.mark.parametrize("container", ["dense", "csr"])
@pytest.mark.parametrize("batch", [False, True])
def test_centered_rows_keep_float32_products_of_offset_features(batch, container):
    # A float32 timestamp column (1.7e9 + up to 1e5): centered implicitly
    # (the offset subtracted from the intercept and from G^T X), its
    # products rounded at 2**-24 of 1.7e9 and its gradient came out off by
    # 1e-3 of its size; rows centered block by block keep float32's
    # precision relative to the spread.  Sparse X too (it was centered
    # implicitly whatever ``center_rows`` said), in that column only.
    from sk_softmax._loss import _loss_and_gradient

    rng = np.random.default_rng(0)
    n = 3000
    X64 = np.c_[rng.normal(size=n), 1.7e9 + rng.uniform(0, 1e5, n)]
    y = rng.integers(0, 3, n)
    X = X64.astype(np.float32)
    offset = X.astype(np.float64).mean(axis=0).astype(np.float32)
    coef = np.array([[0.5, 2e-5], [-0.2, -1e-5], [0.1, 3e-5]])
    intercept = np.array([0.1, -0.3, 0.2])
    rows = rng.permutation(n)[:256] if batch else None
    picked = slice(None) if rows is None else rows
    w = 1.0 / (n if rows is None else rows.size)
    exact = _loss_and_gradient(
        coef,
        intercept,
        X.astype(np.float64)[picked] - offset.astype(np.float64),
        y[picked],
        w,
        0.0,
        0.0,
    )

    data = sp.csr_matrix(X) if container == "csr" else X

    def relative_error(center_rows):
        got = _loss_and_gradient(
            coef.astype(np.float32),
            intercept.astype(np.float32),
            data,
            y[picked],
            w,
            0.0,
            0.0,
            offset,
            rows=rows,
            center_rows=center_rows,
        )
        return max(
            abs(got[0] / exact[0] - 1),
            *(
                np.abs(g - e).max() / np.abs(e).max()
                for g, e in zip(got[1:], exact[1:], strict=True)
            ),
        )

    assert relative_error(np.array([1])) < 1e-5
    assert relative_error(None) > 1e-4  # what the implicit centering loses


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("unit", [1.0, 2.0**75])
def test_float32_spreads_in_float32_match_float64(monkeypatch, n_threads, unit):
    # float32 X is centered and squared in float32.  Its deviations are
    # multiplied by 2**40 first: a balanced +-1 feature (mean exactly 0)
    # next to one of 1e22, in the unit of that one, had squares of 2**-150
    # that underflowed, a constant feature.  Spreads below 2**-50 of the
    # unit of features with a mean near 0 are computed again in float64.
    from sk_softmax import _loss

    monkeypatch.setattr(_loss, "_BLOCK_BYTES", 4096)
    monkeypatch.setattr(_loss, "_MIN_BLOCK_BYTES", 4096)
    monkeypatch.setattr(_loss, "_MIN_SHARED_PASS_BYTES", 0)
    calls = []
    centered_squares = _loss._centered_squares

    def spy(X, *args, **kwargs):
        calls.append((X.shape[1], np.dtype(args[-2]).name, bool(kwargs)))
        return centered_squares(X, *args, **kwargs)

    monkeypatch.setattr(_loss, "_centered_squares", spy)
    rng = np.random.RandomState(0)
    n = 3000
    balanced = np.repeat([-1.0, 1.0], n // 2)
    X = np.c_[
        rng.randn(n),
        50.0 + 1e-3 * rng.randn(n),
        balanced,
        1e-30 * rng.randn(n),  # faint: computed again in float64
        np.zeros(n),
        np.full(n, 7.0),
        1e22 * rng.randn(n),  # in unit 1: squares beyond float32, again
    ].astype(np.float32)
    w = np.full(n, 1.0 / n)
    w[:10] = 0.0
    w /= w.sum()
    X[:10, 0] = 3e38  # rows of zero weight: their squares would overflow
    X64 = X.astype(np.float64)
    mean = w @ X64
    mean[2] = 0.0
    expected = np.sqrt(w[10:] @ ((X64[10:] - mean) / unit) ** 2)
    with np.errstate(over="ignore"):
        got = _loss.weighted_std(X, w, mean, unit=unit, n_threads=n_threads)
    # (The constant feature's spread is the rounding of its mean, in either.)
    columns = [0, 1, 2, 3, 4, 6]
    np.testing.assert_allclose(got[columns], expected[columns], rtol=1e-5)
    assert got[5] <= 2**-20 * 7.0 / unit
    if unit > 1.0:
        assert got[2] > 0  # not a constant feature
    # One pass in float32, then the faint feature's column in float64, and
    # in unit 1 the overflowing one's (in the larger unit, the constant
    # one's: its mean is below 2**-70 of it); then, about their own mean,
    # those whose spread is near their mean's rounding (50 +- 1e-3, 7.0).
    assert calls == [(7, "float32", False), (2, "float64", False), (2, "float64", True)]


@pytest.mark.parametrize("container", ["dense", "dense32", "csr", "csc"])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_weighted_std_reads_every_row(monkeypatch, container, n_threads):
    # A feature that is constant but for one row: a sample of the rows would
    # miss its spread.
    from sk_softmax import _loss

    monkeypatch.setattr(_loss, "_BLOCK_BYTES", 4096)
    monkeypatch.setattr(_loss, "_MIN_BLOCK_BYTES", 4096)
    monkeypatch.setattr(_loss, "_MIN_SHARED_PASS_BYTES", 0)
    rng = np.random.RandomState(0)
    X = rng.randn(3000, 5) * [1.0, 1e-3, 10.0, 1.0, 1.0]
    X[:, 3] = 0.0
    X[1234, 3] = 40.0
    X[:, 4] *= rng.rand(3000) < 0.2
    w = rng.rand(3000)
    w /= w.sum()
    mean = w @ X
    expected = np.sqrt(w @ (X - mean) ** 2)
    if container == "dense32":
        X = X.astype(np.float32)
    elif container != "dense":
        X = sp.csr_matrix(X).asformat(container)
    got = _loss.weighted_std(X, w, mean, n_threads=n_threads)
    rtol = 1e-5 if container == "dense32" else 1e-10
    np.testing.assert_allclose(got, expected, rtol=rtol)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("offset", [False, True], ids=["plain", "offset"])
def test_two_classes_take_the_difference_of_the_logits(
    monkeypatch, dtype, sparse, offset
):
    # Two classes compute z_1 - z_0 with one matrix-vector product each way;
    # over many row blocks and threads, with logits beyond exp's safe range
    # in some blocks (shifted), and with the offset applied implicitly or
    # (float32) to each block, the result is that of the textbook.
    from sk_softmax import _loss

    monkeypatch.setattr(_loss, "_BLOCK_BYTES", 4096)
    monkeypatch.setattr(_loss, "_MIN_BLOCK_BYTES", 4096)
    monkeypatch.setattr(_loss, "_MIN_SHARED_PASS_BYTES", 0)
    rng = np.random.RandomState(0)
    X = rng.randn(2000, 12)
    X[rng.rand(*X.shape) < 0.5] = 0.0
    y = rng.randint(2, size=2000)
    coef = rng.randn(2, 12)
    coef[:, 0] = [-300.0, 300.0]  # beyond exp's range where x_0 is large
    intercept = np.array([0.5, -0.25])
    sw = rng.rand(2000)
    shift = np.linspace(100.0, 200.0, 12) if offset else None
    Xs = sp.csr_matrix(X) if sparse else X
    expected = naive_loss_and_gradient(coef, intercept, X, y, 0.1, 0.2, sw)
    coef_d, intercept_d = coef.astype(dtype), intercept.astype(dtype)
    X_d = Xs.astype(dtype)
    # z = W (x - shift) + b', the logits of X: for X moved by shift, with b';
    # for X itself, with b' = b + W shift.
    if shift is not None and not sparse:
        X_d = (X + shift).astype(dtype)
    elif shift is not None:
        intercept_d = (intercept + coef @ shift).astype(dtype)
        # (whose gradient in W is G^T (X - shift))
        expected = (
            expected[0],
            expected[1] - np.outer(expected[2], shift),
            expected[2],
        )
    weights = sw / sw.sum()
    with np.errstate(over="ignore"):  # (as loss_and_gradient and fit run it)
        loss, grad_coef, grad_intercept = _loss._loss_and_gradient(
            coef_d,
            intercept_d,
            X_d,
            y,
            weights,
            0.1,
            0.2,
            offset=None if shift is None else shift.astype(dtype),
            n_threads=2,
            # (float32: dense blocks centered whole, sparse ones in two
            # columns, the others implicitly)
            center_rows=np.array([0, 5]) if dtype == np.float32 else None,
        )
    rtol = 1e-9 if dtype == np.float64 else 2e-3
    np.testing.assert_allclose(loss, expected[0], rtol=rtol)
    scale = np.abs(expected[1]).max()
    np.testing.assert_allclose(grad_coef, expected[1], atol=rtol * scale)
    np.testing.assert_allclose(grad_intercept, expected[2], atol=rtol * scale)
    # The two rows of G^T X and of 1^T G sum to the penalty's share.
    np.testing.assert_allclose(
        grad_coef.sum(axis=0), 0.1 * coef_d.sum(axis=0), atol=rtol * scale
    )
    assert grad_intercept.sum() == 0.0


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_two_classes_whose_difference_overflows(dtype):
    # Rows of opposite signs near the largest float (the optimum w_0 = -w_1
    # of data near its reciprocal) have a difference beyond it: the loss
    # takes the two rows' products then, as for more classes.
    big = np.finfo(dtype).max / 1.5
    coef = np.array([[-big], [big]], dtype=dtype)
    X = np.array([[0.5], [0.25]], dtype=dtype)
    loss, grad_coef, grad_intercept = loss_and_gradient(coef, None, X, [1, 1])
    assert loss == 0.0 and grad_intercept is None
    np.testing.assert_array_equal(grad_coef, np.zeros((2, 1)))
    loss, _, grad_intercept = loss_and_gradient(
        np.zeros((2, 1), dtype), np.array([-big, big], dtype), X, [1, 1]
    )
    assert loss == 0.0
    np.testing.assert_array_equal(grad_intercept, np.zeros(2))
    # A finite difference whose logit overflows: shifted, from both rows.
    coef = np.array([[-big / 2, -big / 2], [big / 2, big / 2]], dtype=dtype)
    X = np.ones((1, 2), dtype=dtype)
    for Xc in (X, sp.csr_matrix(X)):
        loss, grad_coef, _ = loss_and_gradient(coef, np.zeros(2, dtype), Xc, [1])
        assert loss == 0.0
        np.testing.assert_array_equal(grad_coef, np.zeros((2, 2)))
        assert not np.signbit(grad_coef).any()  # (0.0, not -g = -0.0)


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
def test_two_classes_retried_shifted_keep_the_difference(sparse):
    # A block whose exp leaves its range is computed again, shifted: from
    # the logits' difference where it is finite (z_1 and z_0 of 1.5e308
    # lose it to rounding), from both rows' logits where it overflows.
    def container(X):
        return sp.csr_matrix(X) if sparse else X

    X = container(np.array([[0.0, 1.0], [0.0, 0.5]]))
    loss, _, grad_intercept = loss_and_gradient(
        [[0.0, 0.0], [0.0, 1000.0]], [1.5e308, 1.5e308], X, [1, 1]
    )
    assert loss == 0.0
    np.testing.assert_array_equal(grad_intercept, [0.0, 0.0])
    X = container(np.ones((1, 2), np.float32))
    loss = loss_and_gradient(
        np.array([[1e8, 0.0], [1e8, 100.0]], np.float32), None, X, [0]
    )[0]
    assert loss == 100.0
    # One sample whose difference overflows next to one whose does not.
    X = container(np.array([[1.0, 0.0], [0.0, 1.0]]))
    big = np.finfo(np.float64).max / 1.5
    loss = loss_and_gradient([[-big, 0.0], [big, 1000.0]], None, X, [1, 1])[0]
    assert loss == 0.0


@pytest.mark.parametrize("fmt", ["csr", "csc", "coo"])
def test_stored_share_counts_the_weight_where_each_feature_is_stored(fmt, monkeypatch):
    # Read a chunk of entries at a time (chunks of 50 here); stored zeros do
    # not count.
    from sk_softmax import _loss

    monkeypatch.setattr(_loss, "_CHUNK_ENTRIES", 50)
    rng = np.random.RandomState(0)
    dense = rng.randn(300, 12) * (rng.rand(300, 12) < 0.3)
    dense[:, 4] = 2.0  # stored everywhere
    dense[:, 7] = 0.0  # nowhere
    X = sp.csr_matrix(dense)
    X.data[::9] = 0.0  # stored zeros
    weights = rng.rand(300)
    weights[::4] = 0.0
    expected = (X.toarray() != 0).T @ weights
    share = stored_share(X.asformat(fmt), weights)
    np.testing.assert_allclose(share, expected, rtol=1e-12, atol=1e-15)
    assert share[4] == pytest.approx(weights[X.toarray()[:, 4] != 0].sum())
    assert share[7] == 0.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_column_extreme_matches_numpy(dtype):
    # Narrow blocks are reduced through folded rows: the result must be
    # numpy's own, remainder rows, NaN and infinities included.
    rng = np.random.default_rng(0)
    shapes = [(0, 5), (1, 3), (7, 64), (100, 64), (1437, 64), (1000, 3), (513, 4)]
    shapes += [(300, 1000), (2050, 1)]
    for rows, columns in shapes:
        X = rng.standard_normal((rows, columns)).astype(dtype)
        if X.size:
            X.flat[rng.integers(0, X.size, 3)] = [np.nan, np.inf, -np.inf]
            X[-1] = 50.0  # the last row, among the remainder
        for ufunc, initial in [(np.minimum, np.inf), (np.maximum, -np.inf)]:
            for block in (X, X[::2], np.asfortranarray(X)):
                got = _loss._column_extreme(ufunc, block, initial)
                want = ufunc.reduce(block, axis=0, initial=initial)
                assert got.dtype == want.dtype
                np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("transpose", [False, True])
def test_solve_lower_matches_solve_triangular(transpose):
    from scipy.linalg import solve_triangular

    rng = np.random.default_rng(0)
    for n, k in [(1, 1), (3, 2), (30, 2), (64, 10), (200, 7)]:
        A = rng.standard_normal((n, n))
        L = np.linalg.cholesky(A @ A.T + n * np.eye(n))
        flat = rng.standard_normal(n * k)
        # The whitened steps' layouts: a transposed C-ordered block and a
        # C-ordered one; the factor C- or Fortran-ordered; float32 values.
        for rhs in (flat.reshape(k, n).T, flat.reshape(n, k)):
            for factor in (L, np.asfortranarray(L)):
                want = solve_triangular(
                    L, rhs, lower=True, trans="T" if transpose else "N"
                )
                got = _loss._solve_lower(factor, rhs, transpose=transpose)
                np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)
                got = _loss._solve_lower(factor, rhs.astype(np.float32), transpose)
                np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def _threads_asked(monkeypatch):
    """The threads each ``_per_thread`` call of the test gets, as a list."""
    asked = []
    per_thread = _loss._per_thread

    def spy(work, blocks, n_threads, first=None):
        asked.append(min(n_threads, len(blocks)))
        return per_thread(work, blocks, n_threads, first)

    monkeypatch.setattr(_loss, "_per_thread", spy)
    return asked


@pytest.mark.parametrize("small_kernels", [True, False])
def test_small_dense_evaluations_stay_on_the_calling_thread(monkeypatch, small_kernels):
    # Row blocks go to other threads only where the products take at least
    # _MIN_SHARED_PRODUCT multiply-adds (two classes count one column):
    # below it the hand-off and the turns at the GIL cost more than the
    # second core saves (two classes of 5000 x 50: 167 against 413 us).
    # With more classes and the products stacked in the small kernels'
    # chunks, from _MIN_SHARED_STACKED: a float32 mini-batch of 256 x 1000
    # and 20 classes took 374 us on one thread, 659 on two; with 100
    # classes, shared as two blocks of 128 rows, 1.11 against 1.52 ms.
    # Without the small kernels, the first took 228 us on two threads, 309
    # on one.
    monkeypatch.setattr(_loss, "_small_kernels", lambda: small_kernels)
    rng = np.random.default_rng(0)
    handed = _threads_asked(monkeypatch)
    for shape, dtype, n_classes, shared in [
        ((5000, 50), np.float64, 2, False),
        ((5000, 50), np.float64, 3, False),
        ((5000, 50), np.float64, 20, True),  # 10M multiply-adds
        ((4000, 64), np.float64, 10, not small_kernels),  # 5M
        ((256, 1000), np.float32, 20, not small_kernels),  # 10M
        ((1024, 1000), np.float32, 20, True),  # 41M
        ((256, 1000), np.float32, 100, True),  # 51M
    ]:
        X = rng.standard_normal(shape).astype(dtype)
        y = rng.integers(0, n_classes, X.shape[0])
        coef = 0.1 * rng.standard_normal((n_classes, X.shape[1])).astype(dtype)
        args = (coef, np.zeros(n_classes, dtype), X, y, 1.0 / X.shape[0], 0.1, 0.0)
        handed.clear()
        one = _loss._loss_and_gradient(*args, n_threads=1)
        assert not handed
        two = _loss._loss_and_gradient(*args, n_threads=2)
        assert (handed == [2]) == shared
        tol = 1e-12 if dtype == np.float64 else 1e-5
        for got, ref in zip(two, one, strict=True):
            np.testing.assert_allclose(got, ref, rtol=tol, atol=tol * 1e-2)


def test_passes_over_small_dense_x_stay_on_the_calling_thread(monkeypatch):
    # Passes over dense X (mean and range, spreads, dominant rows) share
    # their blocks among threads only from _MIN_SHARED_PASS_BYTES of X: on
    # 5000 x 50 float64, two threads took 448 against 193 us for the range.
    rng = np.random.default_rng(0)
    X = rng.standard_normal((5000, 50))
    X[7, 3] = 1e4  # (a dominated feature: dominant_rows reads its column)
    w = np.full(X.shape[0], 1.0 / X.shape[0])
    mean, ranges = w @ X, _ranges(X, w)
    monkeypatch.setattr(_loss, "_BLOCK_BYTES", 256 << 10)  # (several blocks)
    passes = {
        "range": lambda n_threads: _loss._mean_and_range(
            X, w, n_threads=n_threads, per_feature=True
        ),
        "spread": lambda n_threads: _loss.weighted_std(X, w, mean, n_threads=n_threads),
        "dominant": lambda n_threads: dominant_rows(
            X, w, mean, ranges, n_threads=n_threads
        ),
    }
    threads = _threads_asked(monkeypatch)
    for name, run in passes.items():
        threads.clear()
        alone = run(2)
        assert threads and set(threads) == {1}, name
        monkeypatch.setattr(_loss, "_MIN_SHARED_PASS_BYTES", 0)
        threads.clear()
        shared = run(2)
        assert 2 in threads, name
        monkeypatch.setattr(_loss, "_MIN_SHARED_PASS_BYTES", 16 << 20)
        for got, ref in zip(shared, alone, strict=True):
            np.testing.assert_allclose(
                np.asarray(got, dtype=float), np.asarray(ref, dtype=float), rtol=1e-12
            )


def test_a_pass_over_a_few_columns_counts_their_bytes_only(monkeypatch):
    # dominant_rows' peaks over the few columns the ranges leave possible
    # read those columns only: the threads' threshold counts their bytes,
    # not all of X's.
    rng = np.random.default_rng(0)
    X = rng.standard_normal((4000, 40))  # 1.28 MB, 32 KB a column
    w = np.full(X.shape[0], 1.0 / X.shape[0])
    center = w @ X
    monkeypatch.setattr(_loss, "_MIN_SHARED_PASS_BYTES", 512 << 10)
    monkeypatch.setattr(_loss, "_BLOCK_BYTES", 128 << 10)  # (several blocks)
    threads = _threads_asked(monkeypatch)
    everything = _loss._deviation_peaks(X, w, center, 1.0, None, False, 2)
    assert threads == [2]
    threads.clear()
    few = np.array([3, 17, 30])
    some = _loss._deviation_peaks(X, w, center, 1.0, few, False, 2)
    assert threads == [1]
    for got, ref in zip(some, everything, strict=True):
        np.testing.assert_allclose(got, ref[few], rtol=1e-12)
