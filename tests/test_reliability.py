"""Reliability: numerical extremes, divergence, properties, persistence, safety.

* Extremes stay finite: features scaled by 1e-150 and 1e150, logits near
  1e300, constant features, one sample per class, more classes than
  samples, int64-indexed sparse matrices and every sparse format.  The fit
  either gives finite coefficients and probabilities or raises a clear
  ValueError; it never returns NaN.
* Divergence (a huge ``learning_rate_init``) is either recovered or
  reported with an error that says to lower ``learning_rate_init``.
* Property-based tests with hypothesis, bounded to 25 examples each: the
  gradient matches finite differences; probabilities are valid; predict is
  the argmax of predict_proba; predict_log_proba is finite and matches
  log(predict_proba); full-batch fits do not depend on sample order;
  relabelling the classes permutes the outputs.
* Persistence: pickle and skops round trips give identical predictions;
  the pickled state carries the sk_softmax version and a mismatch warns.
* Inputs untouched (read-only arrays and memmaps) and thread-safe predict.
"""

import math
import pickle
import re
import threading
import warnings
from fractions import Fraction

import numpy as np
import pytest
import scipy.sparse as sp
import skops.io as sio
from hypothesis import Phase, example, given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning

import sk_softmax
from sk_softmax import SoftmaxRegression, loss_and_gradient
from sk_softmax._solvers import Adam, Momentum

SOLVERS = ["sgd", "adam", "lbfgs"]
# Exact full-batch solvers: their result is the optimum, up to rounding.
FULL_BATCH = {
    "lbfgs": {"solver": "lbfgs"},
    "sgd-accelerated": {"solver": "sgd", "batch_size": None},
    "sgd-heavy-ball": {
        "solver": "sgd",
        "batch_size": None,
        "nesterovs_momentum": False,
    },
}
# A clear error about the scale of the input or of the step.
CLEAR_SCALE_ERROR = r"(?i)scal|overflow|too large|learning_rate_init"

# Bounded so CI stays fast: 25 examples per property, no shrinking (the data
# come from a drawn seed, and shrinking a failure can take minutes).
PROPERTY_SETTINGS = settings(
    max_examples=25,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)


def _data(n_samples=60, n_features=4, n_classes=3, seed=0):
    """Overlapping Gaussian classes: the optimum is finite even with alpha=0."""
    rng = np.random.RandomState(seed)
    X = rng.randn(n_samples, n_features)
    y = np.arange(n_samples) % n_classes
    for k in range(1, n_classes):
        X[y == k, (k - 1) % n_features] += 1.5
    return X, y


def _objective(clf, X, y, sample_weight=None):
    """The training objective J at the fitted coefficients."""
    y_index = np.searchsorted(clf.classes_, y)
    loss, _, _ = loss_and_gradient(
        clf.coef_.astype(np.float64),
        clf.intercept_.astype(np.float64),
        X.astype(np.float64),
        y_index,
        alpha=clf.alpha,
        label_smoothing=clf.label_smoothing,
        sample_weight=sample_weight,
    )
    return float(loss)


def _assert_valid_outputs(clf, X):
    """Finite coefficients; proba finite, in [0, 1], rows summing to 1; etc."""
    assert np.all(np.isfinite(clf.coef_)), "coef_ is not finite"
    assert np.all(np.isfinite(clf.intercept_)), "intercept_ is not finite"
    proba = clf.predict_proba(X)
    log_proba = clf.predict_log_proba(X)
    assert np.all(np.isfinite(proba)), "predict_proba is not finite"
    assert np.all((proba >= 0) & (proba <= 1))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=0, atol=1e-5)
    assert np.all(np.isfinite(log_proba)), "predict_log_proba is not finite"
    assert np.all(log_proba <= 0)
    assert np.all(np.isfinite(clf.decision_function(X)))
    # predict returns a most probable class (ties after rounding may go
    # either way).
    predicted = np.searchsorted(clf.classes_, clf.predict(X))
    np.testing.assert_array_equal(
        proba[np.arange(proba.shape[0]), predicted], proba.max(axis=1)
    )


def _fit_finite_or_clear_error(clf, X, y, X_predict=None, **fit_params):
    """Fit; either the outputs are valid or a clear ValueError is raised.

    Returns the fitted estimator, or None when it raised the clear error.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        try:
            clf.fit(X, y, **fit_params)
        except ValueError as exc:
            assert re.search(CLEAR_SCALE_ERROR, str(exc)), (
                f"unclear error for extreme input: {exc!r}"
            )
            return None
    _assert_valid_outputs(clf, X if X_predict is None else X_predict)
    return clf


# ================================================================ extremes


@pytest.mark.parametrize("fmt", ["dense", "csr"])
@pytest.mark.parametrize(
    "dtype, scale",
    [
        (np.float64, 1e-150),
        (np.float64, 1e150),
        (np.float32, 1e-30),
        (np.float32, 1e30),
    ],
    ids=["f64-1e-150", "f64-1e150", "f32-1e-30", "f32-1e30"],
)
@pytest.mark.parametrize("solver", SOLVERS)
def test_extreme_feature_scale_stays_finite(solver, dtype, scale, fmt):
    X, y = _data()
    X = (X * scale).astype(dtype)
    if fmt == "csr":
        X = sp.csr_matrix(X)
    _fit_finite_or_clear_error(SoftmaxRegression(solver=solver, random_state=0), X, y)


@pytest.mark.parametrize("fmt", ["dense", "csr"])
@pytest.mark.parametrize("params", FULL_BATCH.values(), ids=FULL_BATCH.keys())
def test_huge_feature_scale_still_learns(params, fmt):
    """Features x 1e150 with alpha=0 is the same problem with W / 1e150.

    LogisticRegression returns coefficients of 0 here; the exact solvers
    must find the rescaled optimum and make the same predictions.
    """
    X, y = _data()
    scale = 1e150
    X_big = sp.csr_matrix(X * scale) if fmt == "csr" else X * scale
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ref = SoftmaxRegression(alpha=0.0, max_iter=1000, **params).fit(X, y)
        big = SoftmaxRegression(alpha=0.0, max_iter=1000, **params).fit(X_big, y)
    _assert_valid_outputs(big, X_big)
    np.testing.assert_array_equal(big.predict(X_big), ref.predict(X))
    np.testing.assert_allclose(
        big.predict_proba(X_big), ref.predict_proba(X), rtol=0, atol=1e-2
    )


@pytest.mark.parametrize("fmt", ["dense", "csr"])
@pytest.mark.parametrize("scale", [1e-20, 1e-150])
@pytest.mark.parametrize("solver", SOLVERS)
def test_tiny_feature_scale_still_learns(solver, scale, fmt):
    """Features x 1e-20 with the default alpha: the intercept does the work.

    The penalty pins W near 0, so the optimum is the intercept of the class
    frequencies, which LogisticRegression finds.  The coordinates of tiny
    data must not make the penalty stiff (L-BFGS returned the starting
    point without a warning, Adam diverged).
    """
    from sklearn.linear_model import LogisticRegression

    X, y = _data()
    keep = (y != 2) | (np.arange(y.size) < 30)  # unequal classes: 20, 20, 10
    X, y = X[keep] * scale, y[keep]
    if fmt == "csr":
        X = sp.csr_matrix(X)
    alpha = 1e-4
    reference = LogisticRegression(C=1 / (alpha * y.size), tol=1e-10).fit(X, y)
    reference.alpha, reference.label_smoothing = alpha, 0.0
    optimum = _objective(reference, X, y)
    assert optimum < math.log(3) - 0.04  # the all-zero model is far off
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = SoftmaxRegression(solver=solver, alpha=alpha, random_state=0).fit(X, y)
    # Adam's 200 steps of 0.001 are too short to reach an intercept of
    # about 0.7 on 50 samples (one full batch): near, not at, the optimum.
    assert _objective(clf, X, y) - optimum <= (2e-2 if solver == "adam" else 1e-6)


@pytest.mark.parametrize("solver", SOLVERS)
def test_tiny_features_under_a_huge_penalty(solver):
    # sqrt(alpha) / (the data's power of two) is beyond float64 here: the
    # coordinates' floor is worked out in powers of two.
    X, y = _data()
    _fit_finite_or_clear_error(
        SoftmaxRegression(solver=solver, alpha=1e300, random_state=0), X * 1e-300, y
    )


@pytest.mark.parametrize("batch_size", [None, 16])
def test_penalty_near_the_largest_float(batch_size):
    # alpha = 9e307 gives coordinates of scale 2**512, whose square
    # overflows: the full-batch step was inf and the fit "diverged".
    rng = np.random.RandomState(0)
    X = rng.randn(90, 3)  # features of spread 1, in plain units
    y = np.digitize(X[:, 0], [-0.5, 0.5])
    clf = SoftmaxRegression(alpha=9e307, batch_size=batch_size, random_state=0)
    clf.fit(X, y)
    assert np.abs(clf.coef_).max() < 1e-300  # the penalty's optimum, about 0
    assert np.all(np.isfinite(clf.intercept_))


def test_float32_timestamps_train_as_float64_ones():
    # A float32 column of timestamps (1.7e9 + up to 1e5) lost its gradient's
    # precision to the implicit centering: full-batch sgd ran all 500
    # epochs and warned, where float64 stopped after 17.  (The float32
    # model itself holds the intercept, about -W mean, to 2**-24 of 5e4:
    # its probabilities differ by up to about 5e-3.)
    rng = np.random.default_rng(0)
    n = 3000
    t = rng.uniform(0, 1e5, n)
    a = rng.normal(size=n)
    y = (a + (t - 5e4) / 3e4 + 0.3 * rng.normal(size=n) > 0).astype(int)
    X = np.c_[a, 1.7e9 + t]
    fits = {}
    for dtype in (np.float64, np.float32):
        with warnings.catch_warnings():
            warnings.simplefilter("error", ConvergenceWarning)
            fits[dtype] = SoftmaxRegression(max_iter=500).fit(X.astype(dtype), y)
    assert fits[np.float32].n_iter_ <= fits[np.float64].n_iter_ + 5
    np.testing.assert_allclose(
        fits[np.float32].predict_proba(X), fits[np.float64].predict_proba(X), atol=1e-2
    )


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("offset", [1e11, 1e13, 1e14, 1e15])
def test_features_of_unit_spread_far_from_zero(offset, solver):
    # X + 1e15 holds 8 steps of 0.125 per unit of spread.  Spreads below
    # 2**-40 of the mean counted as constant: "sgd" and "adam" stopped after
    # 3 to 8 passes at chance accuracy (0.34), without a warning, from 1e13
    # on.  And the implicit centering rounded the gradient at about 1e-16 of
    # the offset: at 1e14 "sgd" ran to max_iter, at 1e11 L-BFGS stopped
    # short of tol, both warning.
    X, y = _data(n_samples=300)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        plain = SoftmaxRegression(solver=solver, random_state=0).fit(X, y)
    far = SoftmaxRegression(solver=solver, random_state=0)
    with warnings.catch_warnings():
        # (Adam's mini-batches warn on the plain data too; X + 1e15's values
        # are rounded to 1/8 of the spread: a slower, noisier fit.)
        if offset < 1e15 and not caught:
            warnings.simplefilter("error", ConvergenceWarning)
        else:
            warnings.simplefilter("ignore", ConvergenceWarning)
        far.fit(X + offset, y)
    assert far.score(X + offset, y) >= plain.score(X, y) - 0.03
    if offset < 1e15 and solver != "adam":
        assert far.n_iter_ <= plain.n_iter_ + 2


def _one_row_far_out(factor, n_samples=300):
    from sklearn.datasets import make_classification

    X, y = make_classification(
        n_samples,
        5,
        n_informative=3,
        n_redundant=0,
        n_classes=3,
        random_state=0,
    )
    X[0] *= factor
    return X, y


@pytest.mark.parametrize("n_samples", [300, 5000])
@pytest.mark.parametrize("factor", [1e4, 1e6, 1e8, 1e10, 1e12])
def test_lbfgs_centers_features_one_row_dominates_on_their_other_rows(
    factor, n_samples
):
    # One row far out pulled the mean that L-BFGS centers dense X on: the
    # other rows then lay far from 0, tied to the intercept, and the fit
    # ran to max_iter (or stopped short, warned), 0.3% (1e4) to 33% (1e8)
    # above the optimal loss, where LogisticRegression (uncentered) took 17
    # to 24 iterations.  Beyond 2**32 that row's values also set the common
    # factor of all features (see feature_scales), which shrank the other
    # rows to next to nothing: the fit stopped at the intercepts' model
    # (1e10, 1e12: 1.09 against the optimal 0.58), warned.
    from sklearn.linear_model import LogisticRegression

    X, y = _one_row_far_out(factor, n_samples)
    alpha = 1e-2
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        ours = SoftmaxRegression(solver="lbfgs", alpha=alpha).fit(X, y)
    reference = LogisticRegression(C=1.0 / (alpha * n_samples), tol=1e-8).fit(X, y)
    objective = [
        loss_and_gradient(m.coef_, m.intercept_, X, y, alpha=alpha)[0]
        for m in (ours, reference)
    ]
    assert objective[0] <= objective[1] * (1 + 1e-5)
    assert ours.n_iter_ <= 2 * reference.n_iter_[0]


@pytest.mark.parametrize("n_samples", [300, 5000])
@pytest.mark.parametrize("factor", [1e4, 1e6, 1e9])
def test_lbfgs_centers_centered_features_one_row_dominates(
    dominance_checks, factor, n_samples
):
    # Centered (StandardScaler(with_std=False)) after one row was
    # multiplied, the other rows of those features sit about
    # factor / n_samples of their spread from 0, tied to the intercept:
    # taken as given, as data centered already is, L-BFGS ran to max_iter
    # up to 3.6% above the optimal loss (1e6, 5000 rows; 0.2% at 1e4, 300
    # rows), or stopped short, warned (1e9), where LogisticRegression takes
    # up to 1502 iterations.
    # Not converged within 50 iterations, the fit checks for such rows and
    # starts again, centered on the other rows.
    from sklearn.linear_model import LogisticRegression

    X, y = _one_row_far_out(factor, n_samples)
    X -= X.mean(axis=0)
    alpha = 1e-2
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        ours = SoftmaxRegression(solver="lbfgs", alpha=alpha).fit(X, y)
    if factor >= 1e6:
        assert dominance_checks
    reference = LogisticRegression(
        C=1.0 / (alpha * n_samples), tol=1e-8, max_iter=3000
    ).fit(X, y)
    objective = [
        loss_and_gradient(m.coef_, m.intercept_, X, y, alpha=alpha)[0]
        for m in (ours, reference)
    ]
    assert objective[0] <= objective[1] * (1 + 1e-5)
    assert ours.n_iter_ <= 50


@pytest.mark.parametrize("factor", [1e3, 1e6])
def test_default_solver_warns_where_one_row_dominates_features(factor):
    # Standardized by the spread that row makes, the other rows' values
    # shrink to next to nothing: the default fit stopped after 17 passes at
    # 0.39 accuracy (1e6; 3 classes, LogisticRegression 0.79), or ran to
    # max_iter 40% above the optimal loss (1e3), without a word about why.
    X, y = _one_row_far_out(factor)
    with pytest.warns(UserWarning, match="Row 0 holds nearly all the spread of"):
        SoftmaxRegression(alpha=1e-2, random_state=0).fit(X, y)


def test_no_dominant_row_warning_on_ordinary_data():
    # Neither on a one-hot column of a single sample (its other rows are
    # constant), nor on a row far out only as much as heavy tails are.
    from sklearn.datasets import load_breast_cancer, load_digits

    rng = np.random.RandomState(0)
    codes = rng.randint(0, 40, size=(500, 3))
    codes[0, 0] = 99
    one_hot = (codes[:, :1] == np.unique(codes[:, 0])).astype(float)
    datasets = [
        load_digits(return_X_y=True),
        load_breast_cancer(return_X_y=True),
        (one_hot, codes[:, 1] % 3),
        (rng.lognormal(0.0, 2.0, size=(2000, 10)), rng.randint(0, 3, 2000)),
        _one_row_far_out(30.0),
    ]
    for X, y in datasets:
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)
            warnings.simplefilter("ignore", ConvergenceWarning)
            SoftmaxRegression(random_state=0).fit(X, y)


@pytest.mark.parametrize("loader", ["wine", "breast_cancer"])
def test_no_dominant_row_warning_where_the_fit_resolves_those_features(loader):
    # The outer B-splines of a SplineTransformer are nonzero in a few rows,
    # one of which holds nearly all the spread: the fit warned that it may
    # stop far from the optimum, where it reached it (its coefficients
    # within 2% of LogisticRegression's at tol=1e-10, the same
    # predictions).  It warns where those coefficients are left unresolved
    # (test_default_solver_warns_where_one_row_dominates_features).
    from sklearn import datasets
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import SplineTransformer, StandardScaler

    X, y = getattr(datasets, f"load_{loader}")(return_X_y=True)
    X = make_pipeline(StandardScaler(), SplineTransformer(n_knots=4)).fit_transform(X)
    rows = np.random.RandomState(0).permutation(len(y))[: 3 * len(y) // 4]
    X, y = X[rows], y[rows]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clf = SoftmaxRegression(random_state=0).fit(X, y)
    exact = SoftmaxRegression(solver="lbfgs", tol=1e-10, max_iter=10000).fit(X, y)
    assert np.mean(clf.predict(X) == exact.predict(X)) >= 0.99


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("factor", [1e22, 1e-30])
def test_features_of_wildly_different_spreads_each_keep_their_scale(factor, dtype):
    # An informative feature of spread 1 next to one of spread 1e22 (or
    # 1e-30): scales more than 2**64 below the largest were clipped, and
    # float32 squares of a spread 2**-64 below it underflowed to a constant
    # feature; the informative one was left out (accuracy 0.56), silently.
    x = np.random.RandomState(0).randn(200, 2)
    y = (x[:, 0] > 0).astype(int)
    X = np.c_[x[:, 0], factor * x[:, 1]].astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        clf = SoftmaxRegression(alpha=0.0 if factor < 1 else 1e-4).fit(X, y)
    assert clf.score(X, y) >= 0.99


def test_full_batch_sgd_on_separable_data_without_penalty_or_tol():
    # The loss reaches 0 exactly and the gradients become rounding noise:
    # the adaptive step multiplier, fed curvature estimates of that noise,
    # grew to 1e22, the intercepts drifted to -2000, and the fit ended in
    # "Training diverged" at epoch 1961 (or a useless model just before).
    rng = np.random.RandomState(0)
    X = rng.randn(60, 2)
    y = (X[:, 0] > 0).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = SoftmaxRegression(alpha=0.0, tol=0.0, max_iter=5000).fit(X, y)
    assert clf.score(X, y) == 1.0
    assert np.abs(clf.intercept_).max() < 100


def test_a_huge_value_in_a_row_of_zero_weight_leaves_its_feature_alone():
    # The row is out of the range the unit comes from: its square
    # overflowed, 0 * inf made the spread NaN, and the feature counted as
    # constant (coefficient 0, accuracy 0.55).
    rng = np.random.RandomState(0)
    X = rng.normal(size=(200, 2))
    y = (X[:, 0] > 0).astype(int)
    X[5, 0] = 1e300
    weights = np.ones(200)
    weights[5] = 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        clf = SoftmaxRegression(random_state=0).fit(X, y, sample_weight=weights)
    kept = np.arange(200) != 5
    assert clf.score(X[kept], y[kept]) > 0.95


@pytest.mark.parametrize("n_samples", [600, 6000])
@pytest.mark.parametrize("offset", [30.0, 1e4, 1e6])
def test_features_far_from_zero_without_intercept(offset, n_samples):
    # Without intercept the features' common offset is one stiff direction
    # of the curvature: standardized about 0, every other direction was
    # 1e-8 (X + 1e4) as steep, the gradient fell below tol along them at
    # once, and the default fit stopped after 3 or 4 passes at chance
    # accuracy (0.34), silently.  It now takes the Gram preconditioner, with
    # a ridge sized by the spread.
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression

    X, y = make_classification(
        n_samples, 5, n_informative=3, n_redundant=0, n_classes=3, random_state=0
    )
    X = X + offset
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clf = SoftmaxRegression(fit_intercept=False).fit(X, y)
    reference = LogisticRegression(fit_intercept=False, max_iter=10_000).fit(
        X - offset + 100, y
    )
    assert clf.n_iter_ <= 30
    assert clf.score(X, y) >= reference.score(X - offset + 100, y) - 0.01


def test_float32_features_far_from_zero_without_intercept():
    # The whitened gradient amplifies float32's rounding as much as the
    # directions it tests: it stayed above tol, and the fit ran to max_iter
    # with a ConvergenceWarning (200 passes where 13 do).  The fit now also
    # stops where the loss no longer falls measurably.  (Testing the plain
    # gradient after the first step stopped some fits after 4 passes at 3
    # times the optimal loss, silently.)
    from sklearn.datasets import make_classification

    X, y = make_classification(5000, 10, n_informative=6, n_classes=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        clf = SoftmaxRegression(fit_intercept=False)
        clf.fit((X + 1e4).astype(np.float32), y)
    assert clf.n_iter_ <= 30
    rng = np.random.default_rng(11)
    y = rng.integers(0, 2, 500)
    X = rng.normal(size=(500, 8)) + rng.normal(size=(2, 8))[y] + 1000.0
    weights = rng.uniform(0.5, 1.5, 500)
    params = dict(fit_intercept=False, alpha=0.01)
    wide = SoftmaxRegression(**params).fit(X, y, sample_weight=weights)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        narrow = SoftmaxRegression(**params)
        narrow.fit(X.astype(np.float32), y, sample_weight=weights)
    losses = [
        loss_and_gradient(
            clf.coef_.astype(float),
            np.zeros(2),
            X,
            y,
            alpha=0.01,
            sample_weight=weights,
        )[0]
        for clf in (wide, narrow)
    ]
    assert losses[1] <= losses[0] * (1 + 1e-3)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n_classes", [2, 3])
def test_balanced_classes_far_from_zero_without_intercept(n_classes, dtype):
    # With balanced classes the gradient at 0 has no offset part, and the
    # rest, in the coordinates scaled by the features' size about 0, was
    # below tol: the fit stopped before its first step, coefficients 0,
    # chance accuracy, silently.  tol now bounds the whitened gradient
    # (float32: at the first test; its rounding, amplified as much, then
    # kept it above tol to max_iter).
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression

    X, y = make_classification(
        300,
        5,
        n_informative=3,
        n_redundant=0,
        n_classes=n_classes,
        flip_y=0.0,
        random_state=0,
    )
    assert np.all(np.bincount(y) == 300 // n_classes)
    reference = LogisticRegression(fit_intercept=False).fit(X + 100, y)
    X_far = (X + 1e4).astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clf = SoftmaxRegression(fit_intercept=False).fit(X_far, y)
    assert clf.n_iter_ <= 30
    assert clf.score(X_far, y) >= reference.score(X + 100, y) - 0.03


@pytest.mark.parametrize("params", [dict(solver="adam"), dict(batch_size=64)])
def test_features_far_from_zero_without_intercept_warn_elsewhere(params):
    # Adam and sgd's set mini-batches take no preconditioner: on X + 100
    # they stopped at chance accuracy after 8 or 9 passes, silently.
    from sklearn.datasets import make_classification

    X, y = make_classification(
        600, 5, n_informative=3, n_redundant=0, n_classes=3, random_state=0
    )
    clf = SoftmaxRegression(fit_intercept=False, random_state=0, **params)
    with pytest.warns(UserWarning, match="far from 0 against their spread"):
        clf.fit(X + 100, y)
    with pytest.warns(UserWarning, match="far from 0 against their spread"):
        clone(clf).partial_fit(X + 100, y, classes=[0, 1, 2])
    # Near 0, with an intercept, or with a column of ones (plain, or with
    # noise of 1e-9: its squared mean is 1e18 times its variance, but the
    # other features' spread is most of their mean square): no warning.
    noisy_ones = 1.0 + 1e-9 * np.random.default_rng(0).standard_normal(600)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X + 1, y)
        clf.set_params(fit_intercept=True).fit(X + 100, y)
        clf.set_params(fit_intercept=False).fit(np.c_[X, np.ones(600)], y)
        clf.fit(np.c_[X, noisy_ones], y)


@pytest.mark.parametrize("solver", ["sgd", "adam"])
@pytest.mark.parametrize("n_features", [3, 20])
def test_features_too_far_from_zero_without_intercept(n_features, solver):
    # 1e8 spreads from 0: float64's Gram matrix about 0 no longer holds the
    # spread.  Its factor failed in scipy (LinAlgError), or came out and
    # left the fit at chance accuracy, silently; the fit now warns (and
    # does not send Adam's users to a preconditioner that cannot help).
    from sklearn.datasets import make_classification

    X, y = make_classification(
        500, n_features, n_informative=3, n_redundant=0, n_classes=3, random_state=0
    )
    with pytest.warns(UserWarning, match="cannot resolve a spread this small"):
        SoftmaxRegression(fit_intercept=False, solver=solver).fit(X + 1e8, y)


@pytest.mark.parametrize("fit_intercept", [False, True])
@pytest.mark.parametrize("solver", SOLVERS)
def test_rows_of_zero_weight_at_the_largest_floats(solver, fit_intercept):
    # Rows of zero weight count for nothing, and so do their logits, which
    # overflow once the coefficients grow: 0 * inf made the gradient NaN.
    # L-BFGS failed ("non-finite parameters"), and so did the
    # preconditioned full batch on X + 1e4 without intercept (in scipy).
    from sklearn.datasets import make_classification

    X, y = make_classification(400, 5, n_informative=3, n_classes=3, random_state=0)
    if not fit_intercept:
        X = X + 1e4
    weights = np.ones(400)
    weights[:5] = 0.0
    X_out = X.copy()
    X_out[:5] = 1e308
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        params = dict(solver=solver, fit_intercept=fit_intercept, random_state=0)
        clf = SoftmaxRegression(**params).fit(X_out, y, sample_weight=weights)
        removed = SoftmaxRegression(**params).fit(X[5:], y[5:])
    assert clf.score(X[5:], y[5:]) >= removed.score(X[5:], y[5:]) - 0.02


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_a_row_of_zero_weight_at_1e300_in_mini_batches(solver):
    # Its squared norm, inf, times its weight 0 made the mini-batch
    # curvature bound NaN: sgd's fit raised "Training diverged".
    from sklearn.datasets import make_classification

    X, y = make_classification(
        400, 3, n_informative=3, n_redundant=0, n_classes=3, random_state=0
    )
    weights = np.ones(400)
    weights[5] = 0.0
    X_out = X.copy()
    X_out[5, 1] = 1e300
    params = dict(solver=solver, batch_size=16, random_state=0)
    clf = SoftmaxRegression(**params).fit(X_out, y, sample_weight=weights)
    removed = SoftmaxRegression(**params).fit(np.delete(X, 5, 0), np.delete(y, 5))
    assert np.isfinite(clf.coef_).all()
    assert clf.score(X, y) >= removed.score(X, y) - 0.02


# (Sparse L-BFGS stops on a column at -1e308 with a clear error, rows of
# zero weight or not.)
@pytest.mark.parametrize(
    "solver, container",
    [(solver, "dense") for solver in SOLVERS] + [("sgd", "csr"), ("adam", "csr")],
)
def test_rows_of_zero_weight_beyond_a_feature_far_from_zero(solver, container):
    # A feature of 1e298 spread at -1e308, and rows of zero weight at
    # 1.5e308: their deviations from the mean overflow.  Its mean computed
    # again from them was NaN (0 * inf), and so were the centered rows'
    # logits: every solver failed.  Sparse X's blocks are centered in that
    # feature too.  (A spread of 1e294, below 2**-40 of the mean, would be
    # none for sparse X: the rounding of its sums.)
    rng = np.random.RandomState(0)
    X = rng.randn(2000, 3)
    y = (X[:, 1] + X[:, 2] > 0).astype(int)
    X[:, 0] = -1e308 + 1e298 * rng.randn(2000)
    weights = np.ones(2000)
    weights[:5] = 0.0
    X[:5, 0] = 1.5e308
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = SoftmaxRegression(solver=solver, random_state=0)
        clf.fit(sp.csr_matrix(X) if container == "csr" else X, y, sample_weight=weights)
    assert np.all(np.isfinite(clf.coef_)) and np.all(np.isfinite(clf.intercept_))
    if solver != "lbfgs":  # (L-BFGS works on the features as given)
        assert clf.score(X[5:], y[5:]) > 0.95


def test_a_constant_sparse_column_of_many_rows_is_constant():
    # The sparse mean's sums round by up to about n * 2**-53 of it: at 200k
    # rows that passed 2**-40, a column of ones counted as a feature, and
    # without penalty its coefficient reached 8.6e8.
    from sk_softmax._loss import _mean_and_range, feature_scales

    n = 200_000
    X = sp.csr_matrix(np.c_[np.ones(n), np.arange(n) % 7])
    w = np.full(n, 1 / n)
    mean = _mean_and_range(X, w)[0]
    _, constant = feature_scales(X, w, mean, standardize=True, return_constant=True)
    np.testing.assert_array_equal(constant, [True, False])


def test_tiny_sparse_features_on_mini_batches_without_penalty():
    # Scales of 1e-200 square to 0: the mini-batch step came out NaN.
    X, y = _data(n_samples=300)
    plain = SoftmaxRegression(alpha=0.0, batch_size=16, random_state=0).fit(X, y)
    tiny = SoftmaxRegression(alpha=0.0, batch_size=16, random_state=0)
    tiny.fit(sp.csr_matrix(X * 1e-200), y)
    _assert_valid_outputs(tiny, sp.csr_matrix(X * 1e-200))
    assert tiny.score(X * 1e-200, y) >= plain.score(X, y) - 0.02


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_weights_whose_sum_overflows(dtype):
    # The objective is a weighted mean: weights near the largest float, whose
    # sum overflows, weigh as much as ones (dividing by the infinite sum made
    # every weight 0: a zero loss, or a different model).
    X, y = _data()
    X = X.astype(dtype)
    huge = np.full(y.size, np.finfo(dtype).max / 4, dtype=dtype)
    coef = np.random.RandomState(0).randn(3, X.shape[1]).astype(dtype)
    intercept = np.zeros(3, dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        weighted = loss_and_gradient(coef, intercept, X, y, sample_weight=huge)
    for value, expected in zip(
        weighted, loss_and_gradient(coef, intercept, X, y), strict=True
    ):
        np.testing.assert_allclose(value, expected, rtol=1e-6)
    for params in (
        dict(solver="lbfgs"),
        dict(solver="sgd", batch_size=None),
        dict(solver="sgd", batch_size=8),
        dict(solver="adam", batch_size=8),
    ):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            plain = SoftmaxRegression(random_state=0, **params).fit(X, y)
            clf = SoftmaxRegression(random_state=0, **params)
            clf.fit(X, y, sample_weight=huge)
        np.testing.assert_allclose(clf.coef_, plain.coef_, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("value", [1e300, 1e-50])
def test_float64_weights_beyond_float32_on_float32_data(value):
    # The weights are checked and normalized in float64: cast to float32 X's
    # dtype first, 1e300 was "infinity" and weights of 1e-50 summed to 0.
    # Only their ratios matter.
    X, y = _data()
    X = X.astype(np.float32)
    weights = np.full(y.size, value)
    coef = np.random.RandomState(0).randn(3, X.shape[1]).astype(np.float32)
    intercept = np.zeros(3, dtype=np.float32)
    weighted = loss_and_gradient(coef, intercept, X, y, sample_weight=weights)
    plain = loss_and_gradient(coef, intercept, X, y)
    assert weighted[1].dtype == np.float32
    for got, expected in zip(weighted, plain, strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-6)
    for params in (dict(solver="lbfgs"), dict(solver="sgd", batch_size=8)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            reference = SoftmaxRegression(random_state=0, **params).fit(X, y)
            clf = SoftmaxRegression(random_state=0, **params)
            clf.fit(X, y, sample_weight=weights)
        assert clf.coef_.dtype == np.float32
        np.testing.assert_allclose(clf.coef_, reference.coef_, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("solver", SOLVERS)
def test_fit_with_features_near_1e300(solver):
    """Logits near 1e300 during training: finite fit or a clear error."""
    X, y = _data()
    X = X / np.abs(X).max() * 1e300
    _fit_finite_or_clear_error(SoftmaxRegression(solver=solver, random_state=0), X, y)


@pytest.mark.parametrize("solver", SOLVERS)
def test_predict_with_logits_near_1e300(solver):
    X, y = _data()
    clf = SoftmaxRegression(solver=solver, random_state=0).fit(X, y)
    # Inputs whose logits reach +-1e300: softmax saturates to one-hot, the
    # log-probabilities stay finite (about -1e300), nothing becomes NaN.
    X_huge = X * (1e300 / np.abs(clf.decision_function(X)).max())
    _assert_valid_outputs(clf, X_huge)
    assert np.abs(clf.decision_function(X_huge)).max() > 1e299
    # Coefficients near 1e300 (a model loaded from elsewhere).
    clf.coef_ = clf.coef_ / np.abs(clf.coef_).max() * 1e300
    _assert_valid_outputs(clf, X / np.abs(X).max())


def _rounded(value):
    """A rational as the nearest float64, +-inf beyond its range."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def _exact_logits(clf, X):
    """``X W^T + b`` in exact rational arithmetic (beyond any float range)."""
    coef = [[Fraction(float(w)) for w in row] for row in clf.coef_]
    intercept = [Fraction(float(b)) for b in clf.intercept_]
    return [
        [
            sum(c * Fraction(float(v)) for c, v in zip(row, x, strict=True)) + b
            for row, b in zip(coef, intercept, strict=True)
        ]
        for x in np.asarray(X)
    ]


@pytest.mark.parametrize("fmt", ["dense", "csr", "csc"])
@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_predict_where_logits_overflow(dtype, n_classes, fmt):
    """Finite X whose logits exceed the dtype: no NaN, the right class."""
    X, y = _data(n_classes=n_classes, n_features=3)
    X = X.astype(dtype)
    clf = SoftmaxRegression(solver="lbfgs", alpha=0.0).fit(X, y)
    big = np.finfo(dtype).max
    X_big = (
        np.array(
            [
                [0.9, -0.9, 0.9],  # terms of both signs near the largest float
                [0.9, 0.9, 0.9],
                [-0.9, 0.5, 0.0],
                [0.0, 0.0, 0.0],  # an ordinary row among them
            ],
            dtype=dtype,
        )
        * big
    )
    X_big[3] = X[0]
    container = {"dense": np.asarray, "csr": sp.csr_matrix, "csc": sp.csc_matrix}[fmt]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        proba = clf.predict_proba(container(X_big))
        log_proba = clf.predict_log_proba(container(X_big))
        decision = clf.decision_function(container(X_big))
        predicted = clf.predict(container(X_big))
    assert not np.isnan(proba).any() and not np.isnan(log_proba).any()
    assert not np.isnan(decision).any()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    assert np.all(log_proba <= 0)
    # Saturated rows: one class takes all the probability.
    np.testing.assert_array_equal(log_proba[:3].max(axis=1), 0.0)
    exact = _exact_logits(clf, X_big)
    best = [max(range(n_classes), key=row.__getitem__) for row in exact]
    np.testing.assert_array_equal(predicted, clf.classes_[best])
    np.testing.assert_array_equal(proba[:3].argmax(axis=1), best[:3])
    # The ordinary row is untouched.
    np.testing.assert_allclose(proba[3], clf.predict_proba(X[:1])[0], rtol=1e-6)
    # Decision values: the exact logits, rounded (+-inf beyond the range).
    if n_classes == 2:
        expected = [_rounded(row[1] - row[0]) for row in exact]
    else:
        expected = [[_rounded(z) for z in row] for row in exact]
    with np.errstate(over="ignore"):
        expected = np.array(expected, dtype=np.float64).astype(dtype)
    np.testing.assert_allclose(decision, expected, rtol=1e-5)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_predict_where_one_class_logit_overflows(dtype):
    # One class's logit far below the range (-1e400) scaled the whole row
    # by its exponent: the others (1 and 0) were flushed to 0, a tie, and
    # predict took the first of them, with probabilities 0.5 and 0.5
    # (LogisticRegression gets 0.73 and 0.27).
    X, y = _data(n_classes=3, n_features=2)
    clf = SoftmaxRegression(solver="lbfgs").fit(X.astype(dtype), y)
    big = float(np.finfo(dtype).max) ** 0.65  # (1e200 in float64)
    for first, second in [(1.0, 0.0), (0.0, 1.0)]:
        clf.coef_ = np.array([[-big, 0.0], [0.0, first], [0.0, second]], dtype=dtype)
        clf.intercept_ = np.zeros(3, dtype=dtype)
        x = np.array([[big, 1.0]], dtype=dtype)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            proba = clf.predict_proba(x)
            log_proba = clf.predict_log_proba(x)
            decision = clf.decision_function(x)
            predicted = clf.predict(x)
        winner = 1 if first else 2
        assert predicted[0] == clf.classes_[winner]
        expected = np.array([0.0, 1.0 / (1.0 + np.e), np.e / (1.0 + np.e)])
        if first:
            expected[1:] = expected[2:0:-1]
        np.testing.assert_allclose(proba[0], expected, rtol=1e-6)
        np.testing.assert_allclose(log_proba[0, 1:], np.log(expected[1:]), rtol=1e-6)
        assert log_proba[0, 0] == -np.inf
        np.testing.assert_array_equal(decision[0], [-np.inf, first, second])


def test_shifted_logits_beyond_the_range():
    # Logits of 2 and 1.5 times 2**1024 (+inf in float64) and -1, or all
    # three below -2**1024: with the shift, the differences from the
    # largest, in range where they are.
    from sk_softmax._loss import _from_scaled

    scaled = np.array([[2.0, 1.5, -1.0], [-1.0, -1.5, -3.0], [-0.5, 0.0, -1.0]])
    exponent = np.array([[1024, 1024, 0], [1024, 1024, 1023], [1030, 0, 1030]])
    shifted = _from_scaled(scaled, exponent, shift=True)
    np.testing.assert_array_equal(
        shifted,
        [
            [0.0, -(2.0**1023), -np.inf],
            [0.0, -(2.0**1023), -(2.0**1023)],
            [-np.inf, 0.0, -np.inf],
        ],
    )
    plain = _from_scaled(scaled, exponent, shift=False)
    np.testing.assert_array_equal(plain[0], [np.inf, np.inf, -1.0])
    # Two logits beyond the range, 2**-50 of themselves apart: ordered by
    # the logarithms of their magnitudes they tied, the first was taken as
    # the largest, the other's shifted logit was +inf, and the
    # probabilities NaN.
    for dtype, ulp, top in [(np.float64, 2.0**-50, 1030), (np.float32, 2.0**-22, 130)]:
        scaled = np.array([[1.0, 1.0 + ulp, 0.5], [-1.0 - ulp, -1.0, -0.5]], dtype)
        exponent = np.array([[top, top, 0], [top, top, top + 10]])
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            shifted = _from_scaled(scaled, exponent, shift=True)
        expected = [[np.ldexp(-ulp, top), 0.0, -np.inf]] * 2
        np.testing.assert_array_equal(shifted, np.array(expected))


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_loss_and_gradient_with_logits_near_1e300(label_smoothing):
    X, y = _data(n_features=2)
    coef = np.array([[1.0, -1.0], [0.0, 0.0], [-1.0, 1.0]]) * 1e300
    coef_scale = np.abs(X).max()
    loss, grad_coef, grad_intercept = loss_and_gradient(
        coef / coef_scale,
        np.zeros(3),
        X,
        y,
        alpha=0.0,
        label_smoothing=label_smoothing,
    )
    assert np.isfinite(loss) and loss > 1e298
    assert np.all(np.isfinite(grad_coef))
    assert np.all(np.isfinite(grad_intercept))


@pytest.mark.parametrize("container", [np.asarray, sp.csr_matrix])
@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_a_feature_far_narrower_than_the_others_still_trains(solver, container):
    # Without penalty, a column of about 1e-172 next to ordinary ones counts:
    # its float64 squares underflowed, its spread came out 0, and the
    # first-order solvers left its coefficient at 0 as a constant's (the
    # accuracy fell from 0.79 to 0.70).  Scaled by a power of two, the
    # standardized problem is the same, and so is the model.
    rng = np.random.RandomState(0)
    X = rng.randn(600, 4)
    y = (X[:, 0] + X[:, 2] > 0).astype(int) + (X[:, 1] > 0.5)
    factor = np.array([2.0**-570, 1.0, 1.0, 1.0])
    params = dict(solver=solver, alpha=0.0, batch_size=None, random_state=0)
    if solver == "adam":
        params.update(max_iter=50)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        plain = SoftmaxRegression(**params).fit(container(X), y)
        narrow = SoftmaxRegression(**params).fit(container(X * factor), y)
    assert np.all(narrow.coef_[:, 0] != 0)
    np.testing.assert_allclose(narrow.coef_ * factor, plain.coef_, rtol=1e-6)
    np.testing.assert_allclose(
        narrow.predict_proba(container(X * factor)), plain.predict_proba(X), atol=1e-7
    )


@pytest.mark.parametrize("solver", SOLVERS)
def test_constant_features(solver):
    X, y = _data()
    X_const = np.c_[X, np.full(len(y), 3.0), np.zeros(len(y))]
    clf = _fit_finite_or_clear_error(
        SoftmaxRegression(solver=solver, random_state=0), X_const, y
    )
    assert clf is not None
    # The constant columns carry no information: their weights stay at 0
    # (the intercept absorbs the constant).
    np.testing.assert_allclose(clf.coef_[:, -2:], 0.0, atol=1e-6)


def test_float64_model_beyond_float32_predicts_float32_data():
    # Fitted with alpha=0 on features of 1e-40, the coefficients (about
    # 1e40) exceed float32: cast to float32 X's dtype they were inf, and
    # every probability NaN.  The logits are computed in float64 then.
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 3))
    y = np.argmax(X @ rng.standard_normal((3, 3)) + rng.gumbel(size=(200, 3)), 1)
    X *= 1e-40
    clf = SoftmaxRegression(solver="lbfgs", alpha=0.0).fit(X, y)
    assert np.abs(clf.coef_).max() > np.finfo(np.float32).max
    X32 = X.astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        proba = clf.predict_proba(X32)
        log_proba = clf.predict_log_proba(X32)
        decision = clf.decision_function(X32)
    assert proba.dtype == log_proba.dtype == decision.dtype == np.float32
    np.testing.assert_allclose(proba, clf.predict_proba(X), atol=1e-5)
    np.testing.assert_allclose(np.exp(log_proba), proba, rtol=1e-5, atol=1e-30)
    np.testing.assert_array_equal(clf.predict(X32), clf.predict(X))
    np.testing.assert_allclose(decision, clf.decision_function(X), rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("solver", ["sgd", "lbfgs"])
def test_tiny_features_with_a_subnormal_alpha(solver):
    # Features of 2**-512 with alpha = 2**-1030 are the problem of plain
    # features with alpha = 2**-6: coefficients near 2**512, whose squares
    # overflow although the penalty is about 0.01.  The penalty came out
    # infinite, and the automatic step "diverged".
    rng = np.random.RandomState(0)
    X = rng.randn(300, 5)
    y = (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 0.5)
    params = dict(solver=solver, batch_size=None, tol=1e-6, max_iter=2000)
    plain = SoftmaxRegression(alpha=2.0**-6, **params).fit(X, y)
    tiny = SoftmaxRegression(alpha=2.0**-1030, **params).fit(X * 2.0**-512, y)
    np.testing.assert_allclose(
        tiny.coef_ * 2.0**-512, plain.coef_, rtol=1e-4, atol=1e-5
    )
    np.testing.assert_allclose(tiny.intercept_, plain.intercept_, rtol=1e-4, atol=1e-6)
    loss_tiny = loss_and_gradient(
        tiny.coef_, tiny.intercept_, X * 2.0**-512, y, alpha=2.0**-1030
    )[0]
    loss_plain = loss_and_gradient(
        tiny.coef_ * 2.0**-512, tiny.intercept_, X, y, alpha=2.0**-6
    )[0]
    np.testing.assert_allclose(loss_tiny, loss_plain, rtol=1e-12)


@pytest.mark.parametrize("alpha", [1e10, 1e12, 1e14])
def test_lbfgs_with_a_huge_alpha_fits_the_intercept(alpha):
    # The penalty 1e10 to 1e14 times stiffer than the data, next to an
    # intercept of the data's curvature: L-BFGS on the features as given
    # warned that the loss no longer decreased (1e12), or stopped after one
    # iteration with the intercept 0.61 off the log prior (1e14).  At such
    # an alpha the optimum is, to first order in 1/alpha, the intercept of
    # the class priors and W = -grad_W(0, b) / alpha.
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True)
    X, y = X[30:], y[30:]  # unequal priors: 20, 50, 50
    prior = np.log(np.bincount(y) / y.size)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        clf = SoftmaxRegression(solver="lbfgs", alpha=alpha).fit(X, y)
    intercept = clf.intercept_ - clf.intercept_.mean()
    np.testing.assert_allclose(intercept, prior - prior.mean(), atol=1e-7)
    grad = loss_and_gradient(np.zeros_like(clf.coef_), prior, X, y)[1]
    np.testing.assert_allclose(clf.coef_ * alpha, -grad, rtol=1e-5, atol=1e-12)


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lbfgs_with_a_large_constant_column(dtype, sparse):
    # Centered, a constant column's gradient is the difference of two sums
    # of about its value: in float32, rounding noise of 10 or more for a
    # column of 1e8, and L-BFGS never left its starting point (accuracy
    # 0.47 instead of 0.80, "float32 resolves the loss to about 1e-7").
    # The coefficients of constant columns are held at 0, exactly.  Sparse
    # X, not centered, had it as a second intercept: stopped at 0.37
    # training accuracy after 3 to 6 iterations (as LogisticRegression).
    rng = np.random.RandomState(0)
    X = rng.randn(200, 4)
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5)
    X[:, 3] = 1e8
    reference = SoftmaxRegression(solver="lbfgs").fit(X[:, :3], y)
    X = X.astype(dtype)
    if sparse:
        X = sp.csr_matrix(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        clf = SoftmaxRegression(solver="lbfgs").fit(X, y)
    assert np.all(clf.coef_[:, 3] == 0)
    rtol = 1e-3 if dtype == np.float32 else 1e-6
    # (Sparse X keeps the other features uncentered: another path, to the
    # same optimum within tol.)
    atol = 1e-3 if sparse else 1e-4
    np.testing.assert_allclose(clf.coef_[:, :3], reference.coef_, rtol=rtol, atol=atol)
    # A warm start from coefficients on that column moves its part into
    # the intercept: the same model.
    clf.coef_[:, 3] = 1e-6
    clf.set_params(warm_start=True).fit(X, y)
    assert np.all(clf.coef_[:, 3] == 0)
    np.testing.assert_allclose(clf.coef_[:, :3], reference.coef_, rtol=rtol, atol=atol)


@pytest.mark.parametrize("offset", [0.0, 1e10])
def test_sparse_lbfgs_centers_columns_far_from_zero(offset):
    # A ColumnTransformer's sparse output: one-hot columns next to ages and
    # years.  Not centered, the column of years was a second intercept that
    # only the penalty told apart from the first: L-BFGS ran to max_iter
    # (as LogisticRegression does), 4 points of training accuracy below the
    # same data dense.  Features whose mean exceeds their spread are
    # centered; one-hot columns are not, and the model is the dense one.
    # With the years 1e10 further out (timestamps), the largest value had
    # set L-BFGS's common factor (2**34, every feature divided by it): the
    # centered values' range sets it, as on dense X.
    rng = np.random.RandomState(0)
    n_samples = 3000
    categories = rng.randint(0, 20, size=(n_samples, 2))
    one_hot = np.zeros((n_samples, 40))
    one_hot[np.arange(n_samples), categories[:, 0]] = 1.0
    one_hot[np.arange(n_samples), 20 + categories[:, 1]] = 1.0
    age = rng.normal(40, 12, n_samples)
    year = rng.randint(2015, 2025, n_samples).astype(float)
    logits = np.c_[
        (categories[:, 0] % 3 == 0) + 0.05 * (age - 40),
        (categories[:, 1] % 2) + 0.3 * (year - 2020),
        np.zeros(n_samples),
    ]
    y = np.argmax(logits + rng.gumbel(size=logits.shape), axis=1)
    X = np.c_[one_hot, age, year + offset]
    # (Implicitly centered, sparse products of values of 1e10 resolve the
    # gradient to about 1e-6: the default tol there.)
    tol = 1e-6 if offset == 0 else 1e-4
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        dense = SoftmaxRegression(solver="lbfgs", tol=tol, max_iter=500).fit(X, y)
        sparse = SoftmaxRegression(solver="lbfgs", tol=tol, max_iter=500)
        sparse.fit(sp.csr_matrix(X), y)
    np.testing.assert_allclose(
        sparse.predict_proba(sp.csr_matrix(X)),
        dense.predict_proba(X),
        atol=1e-4 if offset == 0 else 1e-2,
    )
    assert sparse.score(X, y) == pytest.approx(dense.score(X, y), abs=2e-3)
    # Data without such a column keeps LogisticRegression's coordinates:
    # its iterates (see test_sparse_lbfgs_takes_the_logistic_regression_path).


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"batch_size": 32, "max_iter": 20},
        {"solver": "adam", "max_iter": 50},
        {"early_stopping": True},
        {"solver": "lbfgs"},
    ],
    ids=["default", "batches", "adam", "early_stopping", "lbfgs"],
)
@pytest.mark.parametrize("container", [sp.csr_matrix, sp.csc_matrix])
def test_sparse_float32_column_far_from_zero_fits_as_dense(params, container):
    # A float32 column at 1e5 +- 3 in sparse X was centered implicitly
    # (the offset out of the intercept and out of G^T X, float32 sums of
    # values of 1e5): the default fit's loss wobbled by 5e-5 and ran to
    # max_iter with a ConvergenceWarning, where dense X stops after 32
    # epochs; L-BFGS warned too.  Centered in that column, block by block,
    # the sparse fit is the dense one.
    rng = np.random.RandomState(0)
    X = rng.randn(1000, 3) * [1.0, 3.0, 0.5]
    y = (X @ rng.randn(3, 4) + rng.gumbel(size=(1000, 4))).argmax(axis=1)
    X = X.astype(np.float32)
    X[:, 1] += np.float32(1e5)
    fits = []
    for data in (X, container(X)):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            clf = SoftmaxRegression(random_state=0, **params).fit(data, y)
        fits.append((clf, len(caught)))
    (dense, dense_warnings), (sparse, sparse_warnings) = fits
    assert sparse.n_iter_ == dense.n_iter_
    assert sparse_warnings == dense_warnings
    # (L-BFGS on sparse X takes other coordinates, so another path.)
    start = -1 if params.get("solver") == "lbfgs" else 0
    np.testing.assert_allclose(
        sparse.loss_curve_[start:], dense.loss_curve_[start:], rtol=1e-6
    )
    # (Their probabilities differ by up to 3e-3: float32 logits of values of
    # 1e5, x.w and b about -1e5 w, round at 2**-24 of that.)
    size = np.abs(dense.coef_).max()
    np.testing.assert_allclose(sparse.coef_, dense.coef_, rtol=0, atol=1e-3 * size)


def test_early_stopping_scores_features_far_from_zero_centered():
    # float32 columns at 5e4 to 7e4: the held-out rows were scored in X's
    # units, whose logits round by about 0.01, and the best epoch's
    # validation accuracy came out 0.840 instead of the unshifted 0.847
    # (dense and sparse alike).  Centered as the loss centers them, the
    # held-out columns give the unshifted fit's score.
    rng = np.random.RandomState(5)
    X = rng.randn(1500, 5) * [0.5, 1.0, 2.0, 1.0, 3.0]
    y = (X @ rng.randn(5, 3) + rng.gumbel(size=(1500, 3))).argmax(axis=1)
    shifted = X.astype(np.float32)
    shifted[:, :3] += np.float32([5e4, -6e4, 7e4])
    fits = [
        SoftmaxRegression(early_stopping=True, random_state=0).fit(data, y)
        for data in (X.astype(np.float32), shifted, sp.csr_matrix(shifted))
    ]
    plain, dense, sparse = (fit.best_validation_score_ for fit in fits)
    assert dense == plain
    assert sparse == plain
    assert fits[2].n_iter_ == fits[1].n_iter_


@pytest.mark.parametrize("solver", SOLVERS)
def test_all_features_constant_gives_the_class_priors(solver):
    X = np.full((40, 3), 2.5)
    y = np.r_[np.zeros(10), np.ones(30)].astype(int)
    clf = SoftmaxRegression(solver=solver, random_state=0, max_iter=2000)
    clf = _fit_finite_or_clear_error(clf, X, y)
    assert clf is not None
    if solver != "adam":  # Adam's fixed 1e-3 steps need many epochs
        np.testing.assert_allclose(clf.predict_proba(X[:1]), [[0.25, 0.75]], atol=1e-3)


@pytest.mark.parametrize("solver", SOLVERS)
def test_one_sample_per_class(solver):
    X, y = _data(n_samples=3)
    clf = _fit_finite_or_clear_error(
        SoftmaxRegression(solver=solver, random_state=0), X, y, X_predict=_data()[0]
    )
    assert clf is not None
    np.testing.assert_array_equal(clf.classes_, [0, 1, 2])


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_more_classes_than_samples(solver):
    """Only partial_fit can declare more classes than there are samples."""
    X, y = _data(n_samples=3)
    clf = SoftmaxRegression(solver=solver, random_state=0)
    clf.partial_fit(X, y, classes=np.arange(10))
    # (A new optimizer waits for 10 rows: until then, the starting model.)
    np.testing.assert_array_equal(clf.predict_proba(X), np.full((3, 10), 0.1))
    for _ in range(3):
        clf.partial_fit(X, y)
    _assert_valid_outputs(clf, _data()[0])
    assert clf.coef_.shape == (10, X.shape[1])
    # Classes never seen are less likely than the ones seen.
    proba = clf.predict_proba(X)
    assert np.all(proba[:, 3:].max(axis=1) < proba[:, :3].max(axis=1))


SPARSE_CONSTRUCTORS = [
    pytest.param(getattr(sp, f"{fmt}_{container}"), id=f"{fmt}_{container}")
    for fmt in ["csr", "csc", "coo", "dok", "lil", "dia", "bsr"]
    for container in ["matrix", "array"]
]


_DENSE_FITS = {}


def _dense_fit(solver):
    if solver not in _DENSE_FITS:
        X, y = _data()
        _DENSE_FITS[solver] = SoftmaxRegression(solver=solver, random_state=0).fit(X, y)
    return _DENSE_FITS[solver]


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("constructor", SPARSE_CONSTRUCTORS)
@pytest.mark.parametrize("solver", SOLVERS)
def test_every_sparse_format(solver, constructor):
    X, y = _data()
    X[np.abs(X) < 0.5] = 0.0  # genuinely sparse
    X_sparse = constructor(X)
    dense = SoftmaxRegression(solver=solver, random_state=0).fit(X, y)
    clf = SoftmaxRegression(solver=solver, random_state=0).fit(X_sparse, y)
    _assert_valid_outputs(clf, X_sparse)
    # Same objective, other paths: the curvature bound (hence the step) may
    # differ slightly between the dense and sparse code paths, L-BFGS centers
    # dense X only, and both stop at tol=1e-4.  Adam scales sparse features
    # by their size where stored, dense ones by their spread: 200 steps of
    # 0.001 on 60 samples end elsewhere, so its reference is CSR.
    reference = dense
    if solver == "adam":
        X = sp.csr_matrix(X)
        reference = SoftmaxRegression(solver=solver, random_state=0).fit(X, y)
    np.testing.assert_array_equal(clf.predict(X_sparse), reference.predict(X))
    np.testing.assert_allclose(
        clf.predict_proba(X_sparse), reference.predict_proba(X), rtol=0, atol=1e-3
    )
    # A model fitted on dense data predicts on every sparse format too.
    np.testing.assert_allclose(
        dense.predict_proba(X_sparse), dense.predict_proba(X), rtol=1e-10, atol=1e-12
    )


def _int64_indexed(X, fmt):
    X = sp.csr_matrix(X) if fmt == "csr" else sp.csc_matrix(X)
    X.indices = X.indices.astype(np.int64)
    X.indptr = X.indptr.astype(np.int64)
    return X


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("fmt", ["csr", "csc"])
@pytest.mark.parametrize("solver", SOLVERS)
def test_int64_indexed_sparse(solver, fmt):
    X, y = _data()
    X_sparse = _int64_indexed(X, fmt)
    assert X_sparse.indices.dtype == np.int64
    assert X_sparse.indptr.dtype == np.int64
    clf = SoftmaxRegression(solver=solver, random_state=0).fit(X_sparse, y)
    _assert_valid_outputs(clf, X_sparse)
    # Other paths to the same optimum, both stopped at tol=1e-4 (as above);
    # Adam's sparse coordinates differ from its dense ones: the reference is
    # the same matrix with int32 indices.
    reference = _dense_fit(solver)
    if solver == "adam":
        X = sp.csr_matrix(X)
        reference = SoftmaxRegression(solver=solver, random_state=0).fit(X, y)
    np.testing.assert_allclose(
        clf.predict_proba(X_sparse), reference.predict_proba(X), rtol=0, atol=1e-3
    )


# ============================================================== divergence

DIVERGENCE_SETUPS = {
    "sgd-full-nesterov": {"solver": "sgd", "batch_size": None},
    "sgd-full-heavy-ball": {
        "solver": "sgd",
        "batch_size": None,
        "nesterovs_momentum": False,
    },
    "sgd-minibatch-nesterov": {"solver": "sgd", "batch_size": 16},
    "sgd-minibatch-heavy-ball": {
        "solver": "sgd",
        "batch_size": 16,
        "nesterovs_momentum": False,
    },
    "adam-full": {"solver": "adam", "batch_size": None},
    "adam-minibatch": {"solver": "adam", "batch_size": 16},
}


def _assert_recovered_or_reported(action, X, y):
    """Either a ValueError telling to lower learning_rate_init, or a good fit.

    "Recovered" means finite coefficients and a final training objective
    below its value at the zero start (log K): a run that silently ends far
    uphill is an undetected divergence.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        try:
            clf = action()
        except ValueError as exc:
            assert "learning_rate_init" in str(exc), repr(exc)
            return
    _assert_valid_outputs(clf, X)
    start = math.log(clf.classes_.size)
    final = _objective(clf, X, y)
    assert final < start, (
        f"training diverged silently: objective {final:.4g} after fitting, "
        f"{start:.4g} at the start, and no error"
    )


@pytest.mark.parametrize("learning_rate_init", [1e8, 1e4])
@pytest.mark.parametrize(
    "params", DIVERGENCE_SETUPS.values(), ids=DIVERGENCE_SETUPS.keys()
)
def test_divergence_is_recovered_or_reported(params, learning_rate_init):
    X, y = _data()

    def action():
        clf = SoftmaxRegression(
            learning_rate_init=learning_rate_init, momentum=0.9, random_state=0
        )
        return clf.set_params(**params).fit(X, y)

    _assert_recovered_or_reported(action, X, y)


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_divergence_in_partial_fit_is_recovered_or_reported(solver):
    X, y = _data()
    clf = SoftmaxRegression(solver=solver, learning_rate_init=1e8, random_state=0)
    clf.partial_fit(X, y, classes=[0, 1, 2])
    for _ in range(5):
        _assert_recovered_or_reported(lambda: clf.partial_fit(X, y), X, y)


# ============================================================== properties


def _random_problem(seed, n_samples, n_features, n_classes, dtype, weights):
    rng = np.random.RandomState(seed)
    X = (rng.randn(n_samples, n_features) * rng.choice([0.1, 1.0, 10.0])).astype(dtype)
    y = rng.randint(n_classes, size=n_samples)
    y[:n_classes] = np.arange(n_classes)[: min(n_classes, n_samples)]
    if weights == "none":
        sample_weight = None
    else:
        sample_weight = rng.uniform(0.1, 3.0, size=n_samples)
        if weights == "some-zero":
            sample_weight[rng.rand(n_samples) < 0.3] = 0.0
            # Every class keeps some weight, else its unpenalized intercept
            # has no finite optimum.
            sample_weight[:n_classes] = 1.0
    return X, y, sample_weight


def _problems(
    *,
    samples=(2, 30),
    max_classes=4,
    weights=("none", "positive", "some-zero"),
    max_smoothing=0.9,
    alpha=None,
):
    """Hypothesis strategies for a random problem and its penalties.

    The arguments of :func:`_random_problem`, plus ``label_smoothing`` and
    ``alpha`` (by default 0, or 1e-6 to 10).
    """
    return dict(
        seed=st.integers(0, 2**31 - 1),
        n_samples=st.integers(*samples),
        n_features=st.integers(1, 5),
        n_classes=st.integers(2, max_classes),
        dtype=st.sampled_from([np.float64, np.float32]),
        weights=st.sampled_from(list(weights)),
        label_smoothing=st.floats(0.0, max_smoothing),
        alpha=alpha or st.one_of(st.just(0.0), st.floats(1e-6, 10.0)),
    )


@PROPERTY_SETTINGS
@given(
    **_problems(samples=(1, 15), max_classes=5, max_smoothing=0.95),
    fit_intercept=st.booleans(),
    sparse=st.booleans(),
)
def test_gradient_matches_finite_differences(
    seed,
    n_samples,
    n_features,
    n_classes,
    dtype,
    weights,
    label_smoothing,
    alpha,
    fit_intercept,
    sparse,
):
    X, y, sample_weight = _random_problem(
        seed, n_samples, n_features, n_classes, dtype, weights
    )
    rng = np.random.RandomState(seed + 1)
    coef = rng.randn(n_classes, n_features)
    intercept = rng.randn(n_classes) if fit_intercept else None
    X_in = sp.csr_matrix(X) if sparse else X
    loss, grad_coef, grad_intercept = loss_and_gradient(
        coef,
        intercept,
        X_in,
        y,
        alpha=alpha,
        label_smoothing=label_smoothing,
        sample_weight=sample_weight,
    )
    assert grad_coef.dtype == dtype
    assert grad_coef.shape == coef.shape
    assert np.isfinite(loss)

    # Central differences of the float64 objective on the same data.
    X64 = X.astype(np.float64)

    def objective(params):
        c = params[: coef.size].reshape(coef.shape)
        b = params[coef.size :] if fit_intercept else None
        value, _, _ = loss_and_gradient(
            c,
            b,
            X64,
            y,
            alpha=alpha,
            label_smoothing=label_smoothing,
            sample_weight=sample_weight,
        )
        return float(value)

    params = np.r_[coef.ravel(), intercept if fit_intercept else []]
    step = 1e-6 * max(1.0, np.abs(params).max())
    numeric = np.empty_like(params)
    for i in range(params.size):
        delta = np.zeros_like(params)
        delta[i] = step
        numeric[i] = (objective(params + delta) - objective(params - delta)) / (
            2 * step
        )
    analytic = np.r_[grad_coef.ravel(), grad_intercept if fit_intercept else []]
    tol = 1e-5 if dtype == np.float64 else 1e-3
    scale = max(1.0, np.abs(numeric).max())
    np.testing.assert_allclose(analytic, numeric, rtol=tol, atol=tol * scale)
    if grad_intercept is None:
        assert not fit_intercept


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@PROPERTY_SETTINGS
@given(
    **_problems(samples=(2, 40), max_classes=5),
    solver=st.sampled_from(SOLVERS),
    batch_size=st.sampled_from(["auto", None, 4]),
    test_scale=st.sampled_from([1.0, 1e3, 1e6]),
)
def test_probabilities_are_valid(
    seed,
    n_samples,
    n_features,
    n_classes,
    dtype,
    weights,
    label_smoothing,
    alpha,
    solver,
    batch_size,
    test_scale,
):
    """Finite, in [0, 1], rows sum to 1; predict is their argmax; the log is exact.

    Inputs far from the training data (``test_scale``) drive probabilities
    to underflow: predict_log_proba must stay finite there.
    """
    X, y, sample_weight = _random_problem(
        seed, n_samples, n_features, n_classes, dtype, weights
    )
    clf = SoftmaxRegression(
        solver=solver,
        alpha=alpha,
        label_smoothing=label_smoothing,
        batch_size=batch_size,
        max_iter=50,
        random_state=seed,
    ).fit(X, y, sample_weight=sample_weight)
    rng = np.random.RandomState(seed + 2)
    X_test = (rng.randn(20, n_features) * test_scale).astype(dtype)
    _assert_valid_outputs(clf, X_test)

    proba = clf.predict_proba(X_test)
    log_proba = clf.predict_log_proba(X_test)
    # Where log(predict_proba) is finite and not subnormal (whose log has
    # lost digits), predict_log_proba equals it.
    normal = proba >= np.finfo(proba.dtype).tiny
    tol = 1e-6 if dtype == np.float64 else 1e-4
    np.testing.assert_allclose(
        log_proba[normal], np.log(proba[normal]), rtol=tol, atol=tol
    )


def _fit_exact(params, X, y, sample_weight, *, alpha, label_smoothing, dtype):
    tol = 1e-10 if dtype == np.float64 else 1e-5
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return SoftmaxRegression(
            alpha=alpha,
            label_smoothing=label_smoothing,
            tol=tol,
            max_iter=5000,
            **params,
        ).fit(X, y, sample_weight=sample_weight)


def _gradient_norm(clf, X, y, sample_weight=None):
    """The Euclidean norm of the gradient of J at the fitted parameters."""
    _, grad_coef, grad_intercept = loss_and_gradient(
        clf.coef_.astype(np.float64),
        clf.intercept_.astype(np.float64),
        X.astype(np.float64),
        np.searchsorted(clf.classes_, y),
        alpha=clf.alpha,
        label_smoothing=clf.label_smoothing,
        sample_weight=sample_weight,
    )
    return float(np.sqrt(np.sum(grad_coef**2) + np.sum(grad_intercept**2)))


def _smallest_curvature(clf, X, sample_weight=None):
    """The smallest eigenvalue of J's Hessian at the fitted parameters.

    Over ``[W, b]`` (class by class), but for the one flat direction,
    every intercept raised alike.  The cross-entropy's Hessian is
    ``sum_i s_i (diag(p_i) - p_i p_i^T) kron x_i x_i^T`` with ``x_i`` extended
    by a 1, whatever the (smoothed) targets; the penalty adds alpha on ``W``.
    """
    X = X.astype(np.float64)
    n_samples, n_features = X.shape
    proba = clf.predict_proba(X).astype(np.float64)
    n_classes = proba.shape[1]
    weights = np.ones(n_samples) if sample_weight is None else sample_weight
    weights = np.asarray(weights, dtype=np.float64) / np.sum(weights)
    rows = np.c_[X, np.ones(n_samples)]
    hessian = -np.einsum("i,ik,il,ij,im->kjlm", weights, proba, proba, rows, rows)
    diagonal = np.einsum("i,ik,ij,im->kjm", weights, proba, rows, rows)
    for k in range(n_classes):
        hessian[k, :, k, :] += diagonal[k]
    size = n_classes * (n_features + 1)
    hessian = hessian.reshape(size, size)
    penalized = np.tile(np.r_[np.ones(n_features), 0.0], n_classes)
    hessian += np.diag(clf.alpha * penalized)
    flat = np.tile(np.r_[np.zeros(n_features), 1.0], n_classes)
    # An orthonormal basis of the directions orthogonal to the flat one.
    basis = np.linalg.svd(np.eye(size) - np.outer(flat, flat) / (flat @ flat))[0]
    basis = basis[:, : size - 1]
    return float(np.linalg.eigvalsh(basis.T @ hessian @ basis)[0])


def _assert_same_optimum(fit_a, fit_b, X, y_a, y_b, sample_weight, columns):
    """Two fits of one problem that differ only in rounding agree.

    ``columns[j]`` is the column of ``fit_b`` holding class j of ``fit_a``.
    float64: coefficients and probabilities to ~1e-6 relative (summation
    order changes the rounding), plus what the fits' own gradients allow:
    L-BFGS stops once the relative loss decrease falls below 64 eps, which
    can leave a gradient g of ~1e-6, and a point with gradient g lies about
    |g| / mu from the optimum, mu the smallest curvature.  So the
    parameters of two such stops may differ by about (|g_a| + |g_b|) / mu
    (11 samples, alpha=0.05: 1e-5).  The penalty gives the coefficients a
    curvature of alpha at least, but not the intercept: mu is computed (it
    was taken as alpha, and an intercept with 1/3 of it differed by 7e-6
    against an allowed 6e-6).
    float32: the objective is only known to
    ~1e-7, which locates the optimum to about sqrt(1e-7) along weakly curved
    directions, so the objective values and probabilities are compared.
    L-BFGS stops where float32 no longer resolves a decrease, which on a
    weakly penalized problem can leave gradients of ~1e-3 (alpha=0.075 and
    22 samples: parameters ~1e-2 apart, probabilities ~2e-2): hence the
    probabilities' 5e-2.  The objective values agree to 1e-4 relative, or
    1e-5 absolute where the objective is small (4 samples, alpha=0.05: two
    float32 stops at J=0.0336 were 3.7e-6 apart, 1.1e-4 of it).
    """
    proba_a = fit_a.predict_proba(X)
    proba_b = fit_b.predict_proba(X)[:, columns]
    if X.dtype == np.float64:
        rtol, atol = 1e-5, 1e-6
        slack = (
            _gradient_norm(fit_a, X, y_a, sample_weight)
            + _gradient_norm(fit_b, X, y_b, sample_weight)
        ) / _smallest_curvature(fit_a, X, sample_weight)
        np.testing.assert_allclose(
            fit_b.coef_[columns], fit_a.coef_, rtol=rtol, atol=atol + slack
        )
        np.testing.assert_allclose(
            fit_b.intercept_[columns], fit_a.intercept_, rtol=rtol, atol=atol + slack
        )
        np.testing.assert_allclose(proba_b, proba_a, rtol=rtol, atol=atol)
    else:
        np.testing.assert_allclose(
            _objective(fit_b, X, y_b, sample_weight),
            _objective(fit_a, X, y_a, sample_weight),
            rtol=1e-4,
            atol=1e-5,
        )
        np.testing.assert_allclose(proba_b, proba_a, rtol=0, atol=5e-2)


@pytest.mark.parametrize("params", FULL_BATCH.values(), ids=FULL_BATCH.keys())
@PROPERTY_SETTINGS
@given(**_problems(alpha=st.floats(0.05, 5.0)))
@example(
    seed=785,
    n_samples=22,
    n_features=4,
    n_classes=4,
    dtype=np.float32,
    weights="some-zero",
    label_smoothing=0.0,
    alpha=0.07506034220149285,
)
@example(
    seed=4,
    n_samples=11,
    n_features=4,
    n_classes=4,
    dtype=np.float64,
    weights="none",
    label_smoothing=0.05,
    alpha=0.05,
)
def test_full_batch_fit_does_not_depend_on_sample_order(
    params,
    seed,
    n_samples,
    n_features,
    n_classes,
    dtype,
    weights,
    label_smoothing,
    alpha,
):
    X, y, sample_weight = _random_problem(
        seed, n_samples, n_features, n_classes, dtype, weights
    )
    perm = np.random.RandomState(seed + 3).permutation(n_samples)
    kwargs = {"alpha": alpha, "label_smoothing": label_smoothing, "dtype": dtype}
    first = _fit_exact(params, X, y, sample_weight, **kwargs)
    second = _fit_exact(
        params,
        X[perm],
        y[perm],
        None if sample_weight is None else sample_weight[perm],
        **kwargs,
    )
    np.testing.assert_array_equal(first.classes_, second.classes_)
    columns = np.arange(first.classes_.size)
    _assert_same_optimum(first, second, X, y, y, sample_weight, columns)


@pytest.mark.parametrize("params", FULL_BATCH.values(), ids=FULL_BATCH.keys())
@PROPERTY_SETTINGS
@given(
    **_problems(weights=("none", "positive"), alpha=st.floats(0.05, 5.0)),
    string_labels=st.booleans(),
)
def test_relabelling_classes_permutes_outputs(
    params,
    seed,
    n_samples,
    n_features,
    n_classes,
    dtype,
    weights,
    label_smoothing,
    alpha,
    string_labels,
):
    X, y, sample_weight = _random_problem(
        seed, n_samples, n_features, n_classes, dtype, weights
    )
    perm = np.random.RandomState(seed + 4).permutation(n_classes)
    # Sorted new labels: old class k becomes labels[perm[k]], column perm[k].
    labels = (
        np.array([f"class_{i}" for i in range(n_classes)])
        if string_labels
        else np.arange(n_classes) * 10 - 7
    )
    y_new = labels[perm[y]]
    kwargs = {"alpha": alpha, "label_smoothing": label_smoothing, "dtype": dtype}
    original = _fit_exact(params, X, y, sample_weight, **kwargs)
    relabelled = _fit_exact(params, X, y_new, sample_weight, **kwargs)

    present = np.unique(y)
    np.testing.assert_array_equal(relabelled.classes_, np.sort(labels[perm[present]]))
    columns = np.searchsorted(relabelled.classes_, labels[perm[present]])
    _assert_same_optimum(original, relabelled, X, y, y_new, sample_weight, columns)
    if dtype == np.float64:
        np.testing.assert_array_equal(
            relabelled.predict(X), labels[perm[original.predict(X)]]
        )


@pytest.mark.parametrize(
    "params",
    [
        {"solver": "sgd", "batch_size": None},
        {"solver": "sgd", "batch_size": 16},
        {"solver": "adam", "batch_size": 16},
        {"solver": "sgd", "batch_size": 16, "learning_rate_init": 0.01},
    ],
    ids=["sgd-full-batch", "sgd-mini-batch", "adam", "sgd-fixed-step"],
)
@PROPERTY_SETTINGS
@given(exponents=st.lists(st.integers(-30, 30), min_size=4, max_size=4))
def test_first_order_solvers_do_not_depend_on_feature_units(params, exponents):
    # The first-order solvers work on standardized dense features:
    # multiplying a feature by a power of two divides its coefficient by it
    # and changes nothing else, bit for bit (without penalty, which the
    # units reweight), also where the values pass 2**16 and the spreads are
    # computed in the units of a common power of two.
    X, y = _data()
    units = np.exp2(exponents)
    fits = []
    for data in (X, X * units):
        clf = SoftmaxRegression(alpha=0.0, max_iter=15, random_state=0, **params)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            fits.append(clf.fit(data, y))
    plain, scaled = fits
    np.testing.assert_array_equal(scaled.coef_ * units, plain.coef_)
    np.testing.assert_array_equal(scaled.intercept_, plain.intercept_)
    np.testing.assert_array_equal(scaled.loss_curve_, plain.loss_curve_)


def _standardizing_scale(clf):
    """The per-feature scales of a fit: in its coordinates or in its steps."""
    folded = clf._folded_scale
    return clf._scale if folded is None else folded


@pytest.mark.parametrize("batch_size", [None, 16])
@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_sparse_feature_scales(solver, batch_size):
    # sgd's automatic step is a curvature bound in whatever coordinates it
    # works in, so sparse features are standardized for it as dense ones
    # are.  Adam moves every coordinate by about its learning rate a step:
    # standardized very sparse features (about 1 / sqrt(density) where
    # stored) make that far too long, plain small units far too short, and
    # it scales each by its size where stored.
    X, y = _data()
    X[np.abs(X) < 0.7] = 0.0  # half the entries or so
    units = np.array([2.0**-4, 1.0, 2.0**3, 2.0**8])
    clf = SoftmaxRegression(
        solver=solver, batch_size=batch_size, max_iter=2, random_state=0
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(sp.csr_matrix(X * units), y)
    stored = X != 0
    if solver == "adam":  # centered, over the stored entries
        centered = np.where(stored, X - X.mean(axis=0), 0.0)
        size = np.sqrt((centered**2).sum(axis=0) / stored.sum(axis=0))
    else:
        size = X.std(axis=0)
    np.testing.assert_array_equal(
        _standardizing_scale(clf), units * 2.0 ** np.round(np.log2(size))
    )
    if solver == "adam":  # (not the spreads: the test tells them apart)
        assert not np.array_equal(
            np.round(np.log2(size)), np.round(np.log2(X.std(axis=0)))
        )


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
@pytest.mark.parametrize(
    "batch_size, nesterov",
    [(16, True), (16, False), (None, False)],
    ids=["mini-batch-nesterov", "mini-batch-heavy-ball", "full-batch-heavy-ball"],
)
@pytest.mark.parametrize("learning_rate_init", ["auto", 0.05])
def test_momentum_takes_the_standardized_coordinates_as_steps(
    sparse, batch_size, nesterov, learning_rate_init
):
    # "sgd" with momentum folds the scales into per-parameter steps and works
    # on the plain coefficients; the same rule given as a custom rule works
    # in the scaled coordinates.  Powers of two: the same fit, bit for bit,
    # down to the full-batch stopping test (tol is loose enough to stop).
    X, y = _data(n_samples=90)
    X = X * np.array([2.0**-5, 1.0, 2.0**3, 2.0**9])
    if sparse:
        X = sp.csr_matrix(X)
    params = dict(
        batch_size=batch_size,
        max_iter=6 if batch_size else 300,
        tol=1e-3,
        random_state=0,
        learning_rate_init=learning_rate_init,
        momentum=0.9,
        nesterovs_momentum=nesterov,
    )
    _assert_folded_fit_is_the_scaled_one(
        "sgd", Momentum(momentum=0.9, nesterov=nesterov), params, X, y
    )


def _assert_folded_fit_is_the_scaled_one(name, rule, params, X, y):
    """The solver ``name`` folds the scales in; ``rule`` works in them."""
    fits = []
    for solver in (name, rule):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            fits.append(SoftmaxRegression(solver=solver, **params).fit(X, y))
    folded, scaled = fits
    np.testing.assert_array_equal(folded._scale, 1.0)
    np.testing.assert_array_equal(folded._folded_scale, scaled._scale)
    assert scaled._folded_scale is None
    assert np.unique(scaled._scale).size == 4
    np.testing.assert_array_equal(folded.coef_, scaled.coef_)
    np.testing.assert_array_equal(folded.intercept_, scaled.intercept_)
    np.testing.assert_array_equal(folded.loss_curve_, scaled.loss_curve_)


@pytest.mark.parametrize("batch_size", [16, None])
def test_adam_takes_the_standardized_coordinates_as_steps_and_epsilons(batch_size):
    # In the coordinates W diag(s), Adam's step is (rate / s) m / (sqrt(v) +
    # epsilon s) on W, with the moments of W's gradient: "adam" folds the
    # scales in (no pass over the coefficients to change coordinates at each
    # mini-batch, a quarter of a sparse epoch); the same rule given as a
    # custom rule works in the coordinates.  Powers of two: bit for bit.
    X, y = _data(n_samples=90)
    X = X * np.array([2.0**-5, 1.0, 2.0**3, 2.0**9])
    params = dict(
        batch_size=batch_size, max_iter=6, random_state=0, learning_rate_init=1e-3
    )
    _assert_folded_fit_is_the_scaled_one("adam", Adam(), params, X, y)


def test_adaptive_schedule_floor_is_read_in_the_scaled_coordinates():
    # The "adaptive" schedule stops once the step falls below 1e-6; with the
    # scales folded into the steps it reads the step in the standardized
    # coordinates, where a float learning_rate_init is given: one reduction
    # (3e-6 -> 6e-7), then a stop, as for the rule in those coordinates.
    X, y = _data(n_samples=90)
    X = X * np.array([2.0**-5, 1.0, 2.0**3, 2.0**9])
    params = dict(
        batch_size=16,
        learning_rate="adaptive",
        learning_rate_init=3e-6,
        n_iter_no_change=1,
        tol=10.0,  # no epoch improves by that much
        max_iter=50,
        random_state=0,
    )
    fits = [
        SoftmaxRegression(solver=solver, **params).fit(X, y)
        for solver in ("sgd", Momentum(momentum=0.9, nesterov=True))
    ]
    folded, scaled = fits
    assert folded._folded_scale is not None
    assert scaled.n_iter_ == 5
    assert folded.n_iter_ == scaled.n_iter_
    np.testing.assert_array_equal(folded.coef_, scaled.coef_)


# ============================================================= persistence


def _fitted_models():
    X, y = _data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        models = {
            solver: SoftmaxRegression(solver=solver, random_state=0).fit(X, y)
            for solver in SOLVERS
        }
        models["sgd-partial_fit"] = SoftmaxRegression(
            batch_size=16, random_state=0
        ).partial_fit(X, y, classes=[0, 1, 2])
        models["early_stopping"] = SoftmaxRegression(
            early_stopping=True, batch_size=8, random_state=0
        ).fit(X, y)
    return X, models


PERSISTED = ["sgd", "adam", "lbfgs", "sgd-partial_fit", "early_stopping"]


def _assert_same_predictions(loaded, original, X):
    assert type(loaded) is SoftmaxRegression
    np.testing.assert_array_equal(loaded.coef_, original.coef_)
    np.testing.assert_array_equal(loaded.intercept_, original.intercept_)
    np.testing.assert_array_equal(loaded.classes_, original.classes_)
    np.testing.assert_array_equal(loaded.predict(X), original.predict(X))
    np.testing.assert_array_equal(loaded.predict_proba(X), original.predict_proba(X))
    np.testing.assert_array_equal(
        loaded.predict_log_proba(X), original.predict_log_proba(X)
    )
    assert loaded.get_params() == original.get_params()


@pytest.mark.parametrize("name", PERSISTED)
def test_pickle_round_trip(name):
    X, models = _fitted_models()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # same version: no warning at all
        loaded = pickle.loads(pickle.dumps(models[name]))
    _assert_same_predictions(loaded, models[name], X)


@pytest.mark.parametrize("name", PERSISTED)
def test_skops_round_trip_with_trusted_types(name, tmp_path):
    X, models = _fitted_models()
    path = tmp_path / "model.skops"
    sio.dump(models[name], path)
    untrusted = sio.get_untrusted_types(file=path)
    # Only our estimator needs trusting: numpy arrays and builtins are safe.
    assert untrusted == ["sk_softmax._softmax.SoftmaxRegression"]
    # skops refuses to load a type nobody trusted.
    with pytest.raises(sio.exceptions.UntrustedTypesFoundException):
        sio.load(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = sio.load(path, trusted=untrusted)
    _assert_same_predictions(loaded, models[name], X)


def test_partial_fit_continues_identically_after_pickle():
    X, y = _data()
    clf = SoftmaxRegression(batch_size=16, random_state=0, shuffle=False)
    clf.partial_fit(X[:30], y[:30], classes=[0, 1, 2])
    copy = pickle.loads(pickle.dumps(clf))
    clf.partial_fit(X[30:], y[30:])
    copy.partial_fit(X[30:], y[30:])
    np.testing.assert_array_equal(copy.coef_, clf.coef_)
    np.testing.assert_array_equal(copy.intercept_, clf.intercept_)


def test_pickled_state_carries_the_version():
    _, models = _fitted_models()
    clf = models["lbfgs"]
    state = clf.__getstate__()
    assert state["_sk_softmax_version"] == sk_softmax.__version__
    loaded = pickle.loads(pickle.dumps(clf))
    # The marker lives in the pickle only, not on the loaded estimator.
    assert not hasattr(loaded, "_sk_softmax_version")


def test_pickling_does_not_modify_the_estimator():
    _, models = _fitted_models()
    clf = models["sgd"]
    before = dict(vars(clf))
    pickle.dumps(clf)
    sio.dumps(clf)
    assert set(vars(clf)) == set(before), "pickling added attributes: " + ", ".join(
        sorted(set(vars(clf)) - set(before))
    )


def test_unpickling_another_version_warns(monkeypatch):
    X, models = _fitted_models()
    clf = models["lbfgs"]
    monkeypatch.setattr("sk_softmax._softmax.__version__", "0.0.0-other")
    data = pickle.dumps(clf)
    monkeypatch.undo()
    pattern = (
        r"unpickle SoftmaxRegression from sk_softmax version 0\.0\.0-other when "
        rf"using version {re.escape(sk_softmax.__version__)}"
    )
    with pytest.warns(UserWarning, match=pattern):
        loaded = pickle.loads(data)
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))


def test_altered_version_in_state_warns():
    _, models = _fitted_models()
    state = dict(models["sgd"].__getstate__())
    state["_sk_softmax_version"] = "99.0"
    fresh = SoftmaxRegression.__new__(SoftmaxRegression)
    with pytest.warns(UserWarning, match=r"sk_softmax version 99\.0"):
        fresh.__setstate__(state)
    np.testing.assert_array_equal(fresh.coef_, models["sgd"].coef_)


def test_state_without_version_loads_silently():
    """Pickles written before the marker existed load without a warning."""
    _, models = _fitted_models()
    state = dict(models["sgd"].__getstate__())
    del state["_sk_softmax_version"]
    fresh = SoftmaxRegression.__new__(SoftmaxRegression)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fresh.__setstate__(state)


# ========================================================= inputs untouched


def _read_only(array):
    array = np.array(array)
    array.flags.writeable = False
    return array


def _read_only_memmap(array, path):
    writer = np.memmap(path, dtype=array.dtype, mode="w+", shape=array.shape)
    writer[...] = array
    writer.flush()
    del writer
    return np.memmap(path, dtype=array.dtype, mode="r", shape=array.shape)


FIT_SETUPS = {
    "sgd": {"solver": "sgd"},
    "sgd-minibatch": {"solver": "sgd", "batch_size": 16},
    "adam": {"solver": "adam"},
    "lbfgs": {"solver": "lbfgs"},
    "balanced-early-stopping": {
        "solver": "sgd",
        "batch_size": 16,
        "class_weight": "balanced",
        "early_stopping": True,
    },
}


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("storage", ["read-only-array", "read-only-memmap"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("params", FIT_SETUPS.values(), ids=FIT_SETUPS.keys())
def test_fit_never_writes_into_its_inputs(params, dtype, storage, tmp_path):
    X, y = _data()
    X = X.astype(dtype)
    sample_weight = np.random.RandomState(0).uniform(0.5, 2.0, size=len(y))
    originals = [X.copy(), y.copy(), sample_weight.copy()]
    if storage == "read-only-array":
        inputs = [_read_only(a) for a in originals]
    else:
        inputs = [
            _read_only_memmap(a, tmp_path / f"{name}.dat")
            for a, name in zip(originals, ["X", "y", "w"], strict=True)
        ]
    assert not any(a.flags.writeable for a in inputs)
    X_in, y_in, w_in = inputs

    clf = SoftmaxRegression(random_state=0, **params).fit(X_in, y_in, w_in)
    _assert_valid_outputs(clf, X_in)
    # Same model as from ordinary writeable arrays.
    reference = SoftmaxRegression(random_state=0, **params).fit(*originals)
    np.testing.assert_allclose(clf.coef_, reference.coef_, rtol=1e-12, atol=0)
    if params.get("class_weight") == "balanced":
        # partial_fit refuses to balance by one chunk's class totals.
        with pytest.raises(ValueError, match="'balanced' is not supported"):
            clf.partial_fit(X_in, y_in, sample_weight=w_in)
    elif params["solver"] != "lbfgs":
        clf.partial_fit(X_in, y_in, sample_weight=w_in)
    for given_array, original in zip(inputs, originals, strict=True):
        np.testing.assert_array_equal(np.asarray(given_array), original)


@pytest.mark.parametrize("solver", SOLVERS)
def test_fit_never_writes_into_read_only_sparse_input(solver):
    X, y = _data()
    X_sparse = sp.csr_matrix(X)
    for array in (X_sparse.data, X_sparse.indices, X_sparse.indptr):
        array.flags.writeable = False
    data = X_sparse.data.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = SoftmaxRegression(solver=solver, random_state=0).fit(X_sparse, y)
    _assert_valid_outputs(clf, X_sparse)
    np.testing.assert_array_equal(X_sparse.data, data)


# ============================================================ thread safety


@pytest.mark.parametrize("fmt", ["dense", "csr"])
def test_concurrent_predict_proba_is_identical(fmt):
    X, y = _data(n_samples=2000, n_features=30, n_classes=5)
    clf = SoftmaxRegression(solver="lbfgs").fit(X, y)
    X_test = sp.csr_matrix(X) if fmt == "csr" else X
    expected = clf.predict_proba(X_test)
    n_threads, repeats = 8, 20
    barrier = threading.Barrier(n_threads)
    results = [[] for _ in range(n_threads)]
    errors = []

    def work(i):
        try:
            barrier.wait()
            for _ in range(repeats):
                results[i].append(clf.predict_proba(X_test))
        except Exception as exc:  # reported in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n_threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    for per_thread in results:
        assert len(per_thread) == repeats
        for result in per_thread:
            np.testing.assert_array_equal(result, expected)


@pytest.mark.parametrize("random_state", range(6))
def test_nan_in_validation_rows_is_an_error(random_state):
    # Early stopping splits X before the finiteness pass over the training
    # rows; a NaN that lands in the validation rows must still be caught.
    X, y = _data()
    X = X.copy()
    X[0, 0] = np.nan
    clf = SoftmaxRegression(
        early_stopping=True, validation_fraction=0.5, random_state=random_state
    )
    with pytest.raises(ValueError, match="Input X contains NaN"):
        clf.fit(X, y)


@pytest.mark.parametrize(
    "largest, tol, warns",
    [(0.24, 1e-4, True), (1e-8, 1e-10, False), (5e-5, 1e-4, False)],
)
def test_float64_lbfgs_says_when_it_stops_far_from_tol(
    monkeypatch, largest, tol, warns
):
    # L-BFGS-B stops where the loss no longer decreases measurably (or its
    # line search fails).  In float64 that is the optimum up to rounding,
    # with the gradient near 1e-8 for a tol below it: silent.  A stop with
    # the gradient far above tol (a badly conditioned problem) is no
    # optimum, and the user must hear of it.
    from scipy.optimize import OptimizeResult

    import sk_softmax._solvers as solvers

    def stops_at_once(fun, x0, **options):
        loss, _ = fun(x0)
        jac = np.zeros_like(x0)
        jac[0] = largest
        return OptimizeResult(x=x0, fun=loss, jac=jac, status=2, nit=1, nfev=1)

    monkeypatch.setattr(solvers, "minimize_lbfgsb", stops_at_once)
    X, y = _data()
    clf = SoftmaxRegression(solver="lbfgs", tol=tol)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clf.fit(X, y)
    messages = [str(w.message) for w in caught if w.category is ConvergenceWarning]
    assert bool(messages) == warns, messages
    if warns:
        assert "badly conditioned" in messages[0], messages


def test_float32_lbfgs_says_when_precision_stops_it():
    # L-BFGS stops where the float32 loss no longer decreases measurably,
    # here with the gradient 10x above tol: a ConvergenceWarning says so and
    # points to float64, which reaches tol on the same problem silently.
    X, y, sample_weight = _random_problem(785, 22, 4, 4, np.float32, "some-zero")
    params = dict(solver="lbfgs", alpha=0.075, tol=1e-5, max_iter=5000)
    with pytest.warns(ConvergenceWarning, match="float32 resolves the loss"):
        SoftmaxRegression(**params).fit(X, y, sample_weight=sample_weight)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        SoftmaxRegression(**params).fit(
            X.astype(np.float64), y, sample_weight=sample_weight
        )
