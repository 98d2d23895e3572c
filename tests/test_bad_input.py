"""Bad input is rejected with scikit-learn's error types and a clear message.

One table row per case of the reliability issue: the error type follows
scikit-learn's conventions (ValueError for bad values and shapes, TypeError
for wrong types, NotFittedError before fit, InvalidParameterError -- both a
ValueError and a TypeError -- for constructor parameters) and the message
must name the problem, so the user never sees a crash deep inside numpy.

Each row is ``(id, action, error type, message regex)``; ``action`` is a
zero-argument callable that builds its own data, so the rows are
independent.
"""

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import sklearn
from sklearn.exceptions import NotFittedError

from sk_softmax import SoftmaxRegression

# --------------------------------------------------------------------- data

N_SAMPLES, N_FEATURES = 30, 4
_RNG = np.random.RandomState(0)
X = _RNG.randn(N_SAMPLES, N_FEATURES)
Y = np.arange(N_SAMPLES) % 3
FEATURE_NAMES = ["a", "b", "c", "d"]

_FITTED = {}


def _fitted(kind="array"):
    """A fitted estimator (on an array or on a named DataFrame), cached.

    The predict-side rows never modify it.
    """
    if kind not in _FITTED:
        data = X if kind == "array" else pd.DataFrame(X, columns=FEATURE_NAMES)
        _FITTED[kind] = SoftmaxRegression(solver="lbfgs").fit(data, Y)
    return _FITTED[kind]


def _with(value, dtype=float):
    """X with ``value`` at [0, 0]."""
    out = X.astype(dtype)
    out[0, 0] = value
    return out


def _sparse_with(value):
    """CSR X whose stored entries include ``value``."""
    return sp.csr_matrix(_with(value))


def _frame_with_na(dtype):
    """DataFrame of X with pd.NA at [0, 0]: nullable Float64 or object."""
    frame = pd.DataFrame(X, columns=FEATURE_NAMES).astype(dtype)
    frame.iloc[0, 0] = pd.NA
    return frame


def _sparse_frame_with_na():
    """A pandas sparse DataFrame (fill value 0) holding a missing value."""
    values = _with(np.nan)
    return pd.DataFrame(
        {
            name: pd.arrays.SparseArray(values[:, j], fill_value=0.0)
            for j, name in enumerate(FEATURE_NAMES)
        }
    )


def _y_with(value):
    out = Y.astype(float)
    out[0] = value
    return out


def fit(X_=None, y=None, **params):
    """Action: ``SoftmaxRegression(**params).fit(X_, y, sample_weight=...)``."""
    sample_weight = params.pop("sample_weight", None)

    def action():
        X_fit = X if X_ is None else (X_() if callable(X_) else X_)
        y_fit = Y if y is None else y
        SoftmaxRegression(**params).fit(X_fit, y_fit, sample_weight=sample_weight)

    return action


def predict(X_, method="predict", fitted_on="array"):
    """Action: ``method`` of a fitted estimator on ``X_``."""

    def action():
        X_pred = X_() if callable(X_) else X_
        getattr(_fitted(fitted_on), method)(X_pred)

    return action


def unfitted(method):
    def action():
        getattr(SoftmaxRegression(), method)(X)

    return action


def _with_config(action, **config):
    with sklearn.config_context(**config):
        action()


def partial_fit_then(X_second, y_second):
    """Action: a first partial_fit with classes [0, 1, 2], then a bad second one."""

    def action():
        clf = SoftmaxRegression().partial_fit(X, Y, classes=[0, 1, 2])
        clf.partial_fit(X_second, y_second)

    return action


def partial_fit_held(X_second):
    """Action: partial_fit calls of few rows, which it holds back (fewer
    than 10): clean ones with classes [0, 1, 2], then bad ones."""

    def action():
        clf = SoftmaxRegression().partial_fit(X[:3], Y[:3], classes=[0, 1, 2])
        clf.partial_fit(X_second()[:5], Y[:5])

    return action


# ----------------------------------------------------------- message regexes

NAN = r"Input X contains NaN"
INF = r"Input X contains infinity"
MISSING = r"Input X contains NaN|missing value|pd\.NA"
N_FEAT = r"X has 3 features, but SoftmaxRegression is expecting 4 features"
SW_SHAPE = r"sample_weight\.shape == \(29,\), expected \(30,\)"
UNFITTED = r"This SoftmaxRegression instance is not fitted yet"


def _param(name, value, error=ValueError):
    return pytest.param(
        fit(**{name: value}),
        error,
        rf"The '{name}' parameter of SoftmaxRegression must be",
        id=f"param-{name}={value!r}",
    )


CASES = [
    # --- NaN / inf / pd.NA in X, fit and predict, dense and sparse
    pytest.param(fit(_with(np.nan)), ValueError, NAN, id="fit-X-nan-dense"),
    pytest.param(
        fit(lambda: _sparse_with(np.nan)), ValueError, NAN, id="fit-X-nan-sparse"
    ),
    pytest.param(predict(_with(np.nan)), ValueError, NAN, id="predict-X-nan-dense"),
    pytest.param(
        predict(lambda: _sparse_with(np.nan)),
        ValueError,
        NAN,
        id="predict-X-nan-sparse",
    ),
    pytest.param(
        predict(_with(np.nan), "predict_proba"),
        ValueError,
        NAN,
        id="predict_proba-X-nan-dense",
    ),
    pytest.param(fit(_with(np.inf)), ValueError, INF, id="fit-X-inf-dense"),
    pytest.param(
        fit(lambda: _sparse_with(-np.inf)), ValueError, INF, id="fit-X-inf-sparse"
    ),
    pytest.param(predict(_with(np.inf)), ValueError, INF, id="predict-X-inf-dense"),
    pytest.param(
        predict(lambda: _sparse_with(np.inf)),
        ValueError,
        INF,
        id="predict-X-inf-sparse",
    ),
    # X's finiteness is checked in fit's first pass over the data: also
    # where that pass skips rows (zero weight), in partial_fit's later
    # calls, with early stopping, and when scikit-learn's checks are off.
    pytest.param(
        fit(_with(np.nan), sample_weight=np.r_[0.0, np.ones(N_SAMPLES - 1)]),
        ValueError,
        NAN,
        id="fit-X-nan-in-zero-weight-row",
    ),
    pytest.param(
        fit(
            lambda: _sparse_with(np.inf),
            sample_weight=np.r_[0.0, np.ones(N_SAMPLES - 1)],
        ),
        ValueError,
        INF,
        id="fit-X-inf-in-zero-weight-row-sparse",
    ),
    pytest.param(
        partial_fit_then(_with(np.nan), Y), ValueError, NAN, id="partial_fit-X-nan"
    ),
    # ...and in the rows partial_fit holds back (fewer than 10): NaN held
    # failed every later call.
    pytest.param(
        partial_fit_held(lambda: _with(np.nan)),
        ValueError,
        NAN,
        id="partial_fit-X-nan-held-back",
    ),
    pytest.param(
        partial_fit_held(lambda: _sparse_with(np.inf)),
        ValueError,
        INF,
        id="partial_fit-X-inf-held-back-sparse",
    ),
    pytest.param(
        fit(_with(np.inf), early_stopping=True, validation_fraction=0.5),
        ValueError,
        INF,
        id="fit-X-inf-early-stopping",
    ),
    pytest.param(
        lambda: _with_config(fit(_with(np.nan)), assume_finite=True),
        ValueError,
        NAN,
        id="fit-X-nan-assume-finite",
    ),
    pytest.param(
        fit(lambda: _frame_with_na("Float64")),
        ValueError,
        MISSING,
        id="fit-X-pdNA-Float64-frame",
    ),
    pytest.param(
        fit(lambda: _frame_with_na(object)),
        ValueError,
        MISSING,
        id="fit-X-pdNA-object-frame",
    ),
    pytest.param(
        fit(_sparse_frame_with_na),
        ValueError,
        MISSING,
        id="fit-X-pdNA-sparse-frame",
    ),
    pytest.param(
        predict(lambda: _frame_with_na("Float64"), fitted_on="frame"),
        ValueError,
        MISSING,
        id="predict-X-pdNA-Float64-frame",
    ),
    pytest.param(
        predict(lambda: _frame_with_na(object), fitted_on="frame"),
        ValueError,
        MISSING,
        id="predict-X-pdNA-object-frame",
    ),
    pytest.param(
        predict(_sparse_frame_with_na, fitted_on="frame"),
        ValueError,
        MISSING,
        id="predict-X-pdNA-sparse-frame",
    ),
    # --- NaN / inf in y
    pytest.param(
        fit(y=_y_with(np.nan)), ValueError, r"Input y contains NaN", id="fit-y-nan"
    ),
    pytest.param(
        fit(y=_y_with(np.inf)),
        ValueError,
        r"Input y contains infinity",
        id="fit-y-inf",
    ),
    pytest.param(
        fit(y=pd.array([pd.NA, *Y[1:]], dtype="Int64")),
        ValueError,
        r"Input y contains NaN",
        id="fit-y-pdNA-Int64",
    ),
    pytest.param(
        fit(y=pd.Series([pd.NA, *Y[1:]], dtype=object)),
        ValueError,
        r"Input y contains NaN|missing value|pd\.NA",
        id="fit-y-pdNA-object",
    ),
    # --- X of the wrong kind or shape
    pytest.param(
        fit(np.full((N_SAMPLES, N_FEATURES), "a")),
        ValueError,
        r"could not convert string to float",
        id="fit-X-strings",
    ),
    pytest.param(
        predict(np.full((2, N_FEATURES), "a")),
        ValueError,
        r"could not convert string to float",
        id="predict-X-strings",
    ),
    pytest.param(
        fit(X + 1j), ValueError, r"Complex data not supported", id="fit-X-complex"
    ),
    pytest.param(
        predict(X + 1j),
        ValueError,
        r"Complex data not supported",
        id="predict-X-complex",
    ),
    pytest.param(
        fit(X[:, 0]), ValueError, r"Expected 2D array, got 1D array", id="fit-X-1d"
    ),
    pytest.param(
        predict(X[0]),
        ValueError,
        r"Expected 2D array, got 1D array",
        id="predict-X-1d",
    ),
    pytest.param(
        fit(X[:, :, None]), ValueError, r"Found array with dim 3", id="fit-X-3d"
    ),
    pytest.param(
        predict(X[:, :, None]), ValueError, r"Found array with dim 3", id="predict-X-3d"
    ),
    # --- y that is not a usable classification target
    pytest.param(
        fit(y=np.zeros(N_SAMPLES)),
        ValueError,
        r"only one class: 0\.0\.$",
        id="fit-y-one-class",
    ),
    pytest.param(
        fit(y=np.linspace(0.0, 1.0, N_SAMPLES)),
        ValueError,
        r"Unknown label type: continuous",
        id="fit-y-continuous",
    ),
    pytest.param(
        fit(y=np.array([1, "a"] * (N_SAMPLES // 2), dtype=object)),
        ValueError,
        r"Mix of label input types \(string and number\)",
        id="fit-y-mixed-number-first",
    ),
    pytest.param(
        fit(y=np.array(["a", 1] * (N_SAMPLES // 2), dtype=object)),
        ValueError,
        r"Mix of label input types \(string and number\)",
        id="fit-y-mixed-string-first",
    ),
    pytest.param(
        fit(y=np.array(["a", None] * (N_SAMPLES // 2), dtype=object)),
        ValueError,
        r"y contains None: every sample needs a label",
        id="fit-y-string-and-none",
    ),
    pytest.param(
        fit(y=np.c_[Y, Y]),
        ValueError,
        r"y should be a 1d array, got an array of shape \(30, 2\)",
        id="fit-y-shape-n-2",
    ),
    pytest.param(
        fit(y=Y[:-1]),
        ValueError,
        r"inconsistent numbers of samples: \[30, 29\]",
        id="fit-length-mismatch",
    ),
    # --- sizes
    pytest.param(predict(X[:, :3]), ValueError, N_FEAT, id="predict-wrong-n-features"),
    pytest.param(
        predict(sp.csr_matrix(X[:, :3]), "predict_proba"),
        ValueError,
        N_FEAT,
        id="predict_proba-wrong-n-features-sparse",
    ),
    pytest.param(
        fit(X[:0], Y[:0]),
        ValueError,
        r"Found array with 0 sample\(s\)",
        id="fit-0-samples",
    ),
    pytest.param(
        predict(X[:0]),
        ValueError,
        r"Found array with 0 sample\(s\)",
        id="predict-0-samples",
    ),
    pytest.param(
        fit(X[:, :0]),
        ValueError,
        r"Found array with 0 feature\(s\)",
        id="fit-0-features",
    ),
    # --- sample weights
    pytest.param(
        fit(sample_weight=np.zeros(N_SAMPLES)),
        ValueError,
        r"(?i)sample weights must contain at least one non-zero number",
        id="sample_weight-all-zero",
    ),
    pytest.param(
        fit(sample_weight=np.r_[-1.0, np.ones(N_SAMPLES - 1)]),
        ValueError,
        r"Negative values in sample_weight are not allowed",
        id="sample_weight-negative",
    ),
    pytest.param(
        fit(sample_weight=np.r_[np.nan, np.ones(N_SAMPLES - 1)]),
        ValueError,
        r"sample_weight contains NaN",
        id="sample_weight-nan",
    ),
    pytest.param(
        fit(sample_weight=np.r_[np.inf, np.ones(N_SAMPLES - 1)]),
        ValueError,
        r"sample_weight contains infinity",
        id="sample_weight-inf",
    ),
    pytest.param(
        fit(sample_weight=np.ones(N_SAMPLES - 1)),
        ValueError,
        SW_SHAPE,
        id="sample_weight-wrong-length",
    ),
    pytest.param(
        fit(sample_weight=np.ones((N_SAMPLES, 2))),
        ValueError,
        r"Sample weights must be 1D array or scalar",
        id="sample_weight-2d",
    ),
    pytest.param(
        fit(sample_weight=np.zeros(N_SAMPLES), class_weight="balanced"),
        ValueError,
        r"(?i)sample weights must contain at least one non-zero number",
        id="sample_weight-all-zero-balanced",
    ),
    # --- invalid constructor parameters (InvalidParameterError)
    _param("alpha", -1.0),
    _param("alpha", "big", TypeError),
    _param("label_smoothing", 1.0),
    _param("label_smoothing", -0.1),
    _param("fit_intercept", "yes", TypeError),
    _param("solver", "newton-cg"),
    _param("batch_size", 0),
    _param("batch_size", 2.5, TypeError),
    _param("learning_rate", "optimal"),
    _param("learning_rate_init", 0.0),
    _param("learning_rate_init", -1e-3),
    _param("momentum", 1.5),
    _param("momentum", 1.0),
    _param("nesterovs_momentum", 1, TypeError),
    _param("max_iter", 0),
    _param("tol", -1e-4),
    _param("n_iter_no_change", 0),
    _param("early_stopping", "no", TypeError),
    _param("validation_fraction", 1.0),
    _param("validation_fraction", 0.0),
    _param("shuffle", None, TypeError),
    _param("class_weight", "auto"),
    _param("warm_start", 2, TypeError),
    _param("random_state", "seed", TypeError),
    _param("verbose", "loud", TypeError),
    pytest.param(
        fit(class_weight={7: 2.0}),
        ValueError,
        r"class_weight has labels \[7\], which are not in classes \[0, 1, 2\], "
        r"and no weight for classes \[0, 1, 2\]",
        id="param-class_weight-unknown-label",
    ),
    pytest.param(
        fit(class_weight={(0, 1, 2): 2.0}),
        ValueError,
        r"class_weight has labels \[\(0, 1, 2\)\], which are not in classes",
        id="param-class_weight-tuple-label",
    ),
    # --- predict before fit
    pytest.param(unfitted("predict"), NotFittedError, UNFITTED, id="unfitted-predict"),
    pytest.param(
        unfitted("predict_proba"),
        NotFittedError,
        UNFITTED,
        id="unfitted-predict_proba",
    ),
    pytest.param(
        unfitted("predict_log_proba"),
        NotFittedError,
        UNFITTED,
        id="unfitted-predict_log_proba",
    ),
    pytest.param(
        unfitted("decision_function"),
        NotFittedError,
        UNFITTED,
        id="unfitted-decision_function",
    ),
    # --- feature names that differ between fit and predict
    pytest.param(
        predict(
            lambda: pd.DataFrame(X, columns=["a", "b", "c", "e"]), fitted_on="frame"
        ),
        ValueError,
        r"The feature names should match those that were passed during fit",
        id="predict-feature-names-differ",
    ),
    pytest.param(
        predict(
            lambda: pd.DataFrame(X, columns=["b", "a", "c", "d"]), fitted_on="frame"
        ),
        ValueError,
        r"The feature names should match those that were passed during fit",
        id="predict-feature-names-reordered",
    ),
    # --- partial_fit
    pytest.param(
        partial_fit_then(X, np.r_[3, Y[1:]]),
        ValueError,
        r"y contains labels \[3\] that are not in classes \[0, 1, 2\]",
        id="partial_fit-label-outside-classes",
    ),
    pytest.param(
        lambda: SoftmaxRegression().fit(X, Y).partial_fit(X, np.r_[3, Y[1:]]),
        ValueError,
        r"y contains labels \[3\] that are not in classes \[0, 1, 2\], the "
        r"model's \(from the first call to partial_fit, or from fit\)",
        id="partial_fit-after-fit-label-outside-classes",
    ),
    pytest.param(
        lambda: SoftmaxRegression().partial_fit(X, np.r_[3, Y[1:]], classes=[0, 1, 2]),
        ValueError,
        r"y contains labels \[3\] that are not in classes \[0, 1, 2\]",
        id="partial_fit-first-call-label-outside-classes",
    ),
    pytest.param(
        partial_fit_then(X[:, :3], Y),
        ValueError,
        N_FEAT,
        id="partial_fit-different-n-features",
    ),
    pytest.param(
        lambda: SoftmaxRegression().partial_fit(X, Y),
        ValueError,
        r"classes must be passed on the first call to partial_fit",
        id="partial_fit-first-call-without-classes",
    ),
]


@pytest.mark.parametrize("action, error, match", CASES)
def test_bad_input(action, error, match):
    with warnings.catch_warnings():
        # A rejected input must fail with the error, not merely warn.
        warnings.simplefilter("ignore")
        with pytest.raises(error, match=match):
            action()


def test_partial_fit_goes_on_after_rows_it_would_hold_are_refused():
    clf = SoftmaxRegression(random_state=0)
    with pytest.raises(ValueError, match=NAN):
        clf.partial_fit(_with(np.nan)[:5], Y[:5], classes=[0, 1, 2])
    clf.partial_fit(X[:5], Y[:5], classes=[0, 1, 2])
    with pytest.raises(ValueError, match=NAN):
        clf.partial_fit(_with(np.nan)[:3], Y[:3])
    clf.partial_fit(X[5:], Y[5:])
    assert clf.n_iter_ == 1 and np.isfinite(clf.coef_).all()
    reference = SoftmaxRegression(random_state=0)
    reference.partial_fit(X[:5], Y[:5], classes=[0, 1, 2])
    reference.partial_fit(X[5:], Y[5:])
    np.testing.assert_array_equal(clf.coef_, reference.coef_)


def test_number_of_cases():
    """Rows are only ever added (80 at the time of writing), ids unique."""
    assert len(CASES) >= 80
    assert len({case.id for case in CASES}) == len(CASES)


def test_feature_names_missing_at_predict_only_warns():
    """scikit-learn's convention: no names at predict after names at fit warns."""
    clf = _fitted("frame")
    with pytest.warns(UserWarning, match="X does not have valid feature names"):
        clf.predict(X)
