"""The one place that imports private scikit-learn and scipy helpers.

scikit-learn >= 1.6 is supported; anything whose location or signature
moved between releases is adapted here so the rest of the package imports
from one stable spot.
"""

import os
import sys
import warnings
from functools import partial

import numpy as np
import scipy
import scipy.optimize
import scipy.sparse as sp
import sklearn.base
from sklearn.base import _fit_context
from sklearn.utils import _safe_indexing
from sklearn.utils._array_api import (
    _convert_to_numpy,
    _is_numpy_namespace,
    _max_precision_float_dtype,
    get_namespace,
    get_namespace_and_device,
)
from sklearn.utils._param_validation import Hidden, Interval, StrOptions
from sklearn.utils.fixes import parse_version
from sklearn.utils.multiclass import (
    _check_partial_fit_first_call,
    check_classification_targets,
)
from sklearn.utils.validation import (
    _assert_all_finite,
    _check_sample_weight,
    validate_data,
)

try:  # vendored by recent scikit-learn; an optional dependency of older ones
    from sklearn.externals import array_api_compat
except ImportError:  # pragma: no cover - the oldest-dependencies CI job runs this
    try:
        import array_api_compat
    except ImportError:  # no array API dispatch: every array is numpy
        array_api_compat = None

try:  # scikit-learn >= 1.9
    from sklearn.utils._array_api import check_same_namespace as _same_namespace
except ImportError:  # pragma: no cover - the oldest-dependencies CI job runs this
    _same_namespace = None

__all__ = [
    "array_namespace",
    "check_same_namespace",
    "host_array",
    "is_array",
    "max_float_dtype",
    "minimize_lbfgsb",
    "to_numpy",
    "Hidden",
    "Interval",
    "StrOptions",
    "_fit_context",
    "_safe_indexing",
    "assert_all_finite",
    "check_classification_targets",
    "check_label_types",
    "check_partial_fit_first_call",
    "check_sample_weight",
    "raise_for_sample_weight",
    "raise_not_finite",
    "to_numpy_namespace",
    "validate_data",
    "warn_at_caller",
]


def check_sample_weight(sample_weight, X, dtype):
    """Validated sample weights of shape (n_samples,): finite, >= 0, sum > 0.

    ``_check_sample_weight`` changed its keyword arguments across releases,
    so only its stable part is used and the sign check is done here.
    """
    sample_weight = _check_sample_weight(sample_weight, X, dtype=dtype)
    raise_for_sample_weight(
        finite=np.all(np.isfinite(sample_weight)),
        negative=np.any(sample_weight < 0),
        positive=np.any(sample_weight > 0),
        size=sample_weight.size,
    )
    return sample_weight


def raise_for_sample_weight(*, finite, negative, positive, size):
    """The error for weights that are not all finite, or negative, or all 0."""
    if not finite:
        raise ValueError("sample_weight must be finite; got NaN or infinity.")
    if negative:
        raise ValueError("Negative values in sample_weight are not allowed.")
    if size and not positive:
        raise ValueError(
            "Sample weights must contain at least one non-zero number; "
            "all sample_weight values are zero."
        )


def check_label_types(labels):
    """Raise for object labels that mix strings with None or with numbers.

    scikit-learn sorts labels and so fails on such a mix with a bare
    ``TypeError``; ``labels`` is any 1-D object array (all of y, or its
    distinct values).
    """
    is_string = np.fromiter((isinstance(v, str) for v in labels), bool, labels.size)
    if is_string.any() and not is_string.all():
        if any(v is None for v in labels):
            raise ValueError(
                "y contains None: every sample needs a label (drop the "
                "unlabelled samples first)."
            )
        raise ValueError("Mix of label input types (string and number) in y.")


check_partial_fit_first_call = _check_partial_fit_first_call


def raise_not_finite(*, has_nan, dtype, estimator_name, xp=None, device=None):
    """scikit-learn's error for X with NaN (or else infinity), read elsewhere.

    For data checked where it lives (dask chunks, another device): the
    message comes from scikit-learn's own check, on a stand-in value of X's
    ``dtype``; with ``xp`` (and ``device``), an array of that namespace, so
    that the message names the dtype as it does for such X
    (``torch.float32``).
    """
    value = np.nan if has_nan else np.inf
    if xp is None:
        bad = np.array([value], dtype=dtype)
    else:
        bad = xp.asarray([value], dtype=dtype, device=device)
    _assert_all_finite(bad, input_name="X", estimator_name=estimator_name)
    # (scikit-learn's checks are off: assume_finite=True; see assert_all_finite.)
    raise ValueError("Input X contains NaN or infinity.")


def assert_all_finite(X, *, estimator_name, input_name="X"):
    """Raise scikit-learn's error if X (dense or sparse) has NaN or infinity.

    Under ``sklearn.set_config(assume_finite=True)`` scikit-learn's check
    does nothing; fitting on non-finite data would end in NaN, so this one
    still checks.  ``input_name`` names the input in the message.
    """
    values = X.data if sp.issparse(X) else X
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(values.sum()):
            return
    _assert_all_finite(values, input_name=input_name, estimator_name=estimator_name)
    # Either checks are off, or the sum overflowed on finite values.
    if not np.all(np.isfinite(values)):
        raise ValueError(f"Input {input_name} contains NaN or infinity.")


def to_numpy_namespace(*arrays):
    """``(arrays, restore)``: array API inputs as numpy arrays, and back.

    Under ``sklearn.set_config(array_api_dispatch=True)`` the inputs may be
    arrays of another namespace (torch tensors, on any device); each such
    array becomes a numpy array on the CPU, and ``restore`` returns a
    numeric result to the namespace and device of the first array.  Without
    dispatch, or for numpy, lists, pandas, sparse or dask input, the arrays
    are returned as they are and ``restore`` is the identity.
    """
    converted = tuple(_as_numpy(values) for values in arrays)
    found = array_namespace(arrays[0])
    if found is None:
        return converted, _unchanged
    xp, device = found
    return converted, partial(_to_namespace, xp=xp, device=device)


def detached(values):
    """``values``, out of an autograd graph where it is a torch tensor of one.

    The model is not part of the graph, and such data cannot go to numpy
    without leaving it.  A tensor with torch's negative bit set (the lazy
    view ``z.conj().imag``) is materialized too: torch refuses to give
    numpy such a view, which fitting does for its samples of rows.
    """
    if getattr(values, "requires_grad", False):
        values = values.detach()
    is_neg = getattr(values, "is_neg", None)
    if callable(is_neg) and is_neg():
        values = values.resolve_neg()
    return values


def _as_numpy(values):
    values = detached(values)
    if str(getattr(values, "dtype", "")) == "torch.bfloat16":
        values = values.float()  # (numpy has no bfloat16; every value fits)
    found = array_namespace(values)
    return values if found is None else _convert_to_numpy(values, found[0])


def _unchanged(result):
    return result


def _to_namespace(result, xp, device):
    # Labels that are strings or objects have no array API dtype.
    if result.dtype.kind not in "biuf":
        return result
    return xp.asarray(result, device=device)


def array_namespace(X):
    """``(xp, device)`` of an array X of another namespace than numpy.

    None unless ``array_api_dispatch`` is on and X is such an array (dask
    arrays, which have their own path, excluded).
    """
    # numpy itself, and dask arrays, which the estimator reads chunk by chunk;
    # no namespace either for what is no array (a number as sample_weight,
    # a list, range(3) as classes), which array_api_compat refused.
    if (
        X is None
        or isinstance(X, (np.ndarray, np.generic))
        or not hasattr(X, "shape")
        or type(X).__module__.startswith("dask.")
    ):
        return None
    xp, is_array_api, device = get_namespace_and_device(X)
    if not is_array_api or _is_numpy_namespace(xp):
        return None
    return xp, device


def host_array(values):
    """``values``, an array of any namespace and device, as numpy on the CPU.

    Whatever ``array_api_dispatch`` is set to: for the fitted arrays of a
    model trained on a device.
    """
    if isinstance(values, np.ndarray) or array_api_compat is None:
        return np.asarray(values)
    return _convert_to_numpy(values, array_api_compat.array_namespace(values))


def is_array(values):
    """Whether ``values`` is an array of any namespace (not a scalar)."""
    if isinstance(values, np.ndarray):
        return True
    # Every array has a shape: the rest (settings, numbers, a generator)
    # is answered without array_api_compat's tests of each namespace in
    # turn (a fitted model's 46 attributes: 20 against 12 us, twice a call).
    if isinstance(values, np.generic) or not hasattr(values, "shape"):
        return False
    if array_api_compat is None:
        return False
    return array_api_compat.is_array_api_obj(values)


def check_same_namespace(X, estimator, *, method):
    """scikit-learn's error when X is not where the model's ``coef_`` lives.

    Under ``array_api_dispatch`` only (scikit-learn >= 1.9; older releases
    have no such check, and the numpy path then copies ``coef_`` to the
    CPU).  The message tells how to move the model with
    ``sklearn.utils._array_api.move_estimator_to``.
    """
    if _same_namespace is not None:
        _same_namespace(X, estimator, attribute="coef_", method=method)


def to_numpy(values, xp=None):
    """An array of any array API namespace (``xp``, if known) as numpy, on the CPU."""
    if xp is None:
        xp, _ = get_namespace(values)
    return _convert_to_numpy(values, xp)


max_float_dtype = _max_precision_float_dtype


# scipy 1.15 rewrote L-BFGS-B in C behind ``_lbfgsb.setulb``, one step of
# its reverse-communication loop; the releases below share its arguments.
# Others (older, and newer until checked) go through scipy.optimize.minimize.
_SETULB_VERSIONS = (parse_version("1.15"), parse_version("1.18"))
_scipy_version = parse_version(parse_version(scipy.__version__).base_version)
if _SETULB_VERSIONS[0] <= _scipy_version < _SETULB_VERSIONS[1]:
    from scipy.optimize import _lbfgsb
else:  # pragma: no cover - the oldest-dependencies CI job runs this
    _lbfgsb = None

# setulb's ``task[0]``: evaluate f and g at x; x is a new iterate;
# converged; stop (set by the caller, with the reason in ``task[1]``).
# Any code but the first two ends the loop.
_FG, _NEW_X, _CONVERGED, _STOP = 3, 1, 4, 5
_STOP_MAXITER = 504
_STOP_MAXFUN = 502


def minimize_lbfgsb(
    fun, x0, *, maxiter, gtol, ftol, maxls=20, maxcor=10, maxfun=15000, callback=None
):
    """Unbounded L-BFGS-B from scipy: ``minimize(method="L-BFGS-B", jac=True)``.

    On scipy 1.15 to 1.17 this runs the loop that ``minimize`` runs around
    scipy's L-BFGS-B step routine, without the per-evaluation bookkeeping of
    ``minimize``'s function wrapper (25 to 55 microseconds an evaluation,
    about a quarter of a float32 digits fit through ``minimize``).  The iterates, the
    evaluations and the result are those of ``minimize`` (tested).  Other
    scipy releases call ``minimize``.

    Parameters
    ----------
    fun : callable
        ``fun(x) -> (f, g)`` with ``x`` and ``g`` of shape (n,), float64:
        ``x`` is a copy of the current point, which ``fun`` must not
        modify, and ``g`` a new array.
    x0 : ndarray of shape (n,)
        Starting point.
    maxiter, gtol, ftol, maxls, maxcor, maxfun :
        L-BFGS-B's options, as in ``scipy.optimize.minimize``.
    callback : callable, default=None
        Called without arguments after each iteration.

    Returns
    -------
    result : scipy.optimize.OptimizeResult
        ``x``, ``fun``, ``jac``, ``nit``, ``nfev`` and ``status`` (0
        converged, 1 iteration or evaluation limit, 2 stopped otherwise).

    Examples
    --------
    >>> import numpy as np
    >>> from sk_softmax._compat import minimize_lbfgsb
    >>> result = minimize_lbfgsb(
    ...     lambda x: (float(x @ x) / 2 - x.sum(), x - 1.0),
    ...     np.zeros(3), maxiter=100, gtol=1e-10, ftol=1e-15,
    ... )
    >>> np.round(result.x, 6), result.status
    (array([1., 1., 1.]), 0)
    """
    if _lbfgsb is None:  # pragma: no cover - as above
        options = dict(maxiter=maxiter, gtol=gtol, ftol=ftol, maxls=maxls)
        return scipy.optimize.minimize(
            fun,
            x0,
            method="L-BFGS-B",
            jac=True,
            callback=None if callback is None else lambda *_: callback(),
            options=dict(options, maxcor=maxcor, maxfun=maxfun),
        )
    x = np.array(x0, dtype=np.float64)
    n, m = x.size, maxcor
    lower, upper = np.zeros(n), np.zeros(n)
    bound_kind = np.zeros(n, dtype=np.int32)  # 0: unbounded
    work = np.zeros(2 * m * n + 5 * n + 11 * m * m + 8 * m)
    iwork = np.zeros(3 * n, dtype=np.int32)
    task, line_task = np.zeros(2, dtype=np.int32), np.zeros(2, dtype=np.int32)
    lsave, isave, dsave = (
        np.zeros(4, dtype=np.int32),
        np.zeros(44, dtype=np.int32),
        np.zeros(29),
    )
    factr = ftol / np.finfo(float).eps
    f, g = 0.0, np.zeros(n)
    # minimize evaluates only at a point other than the last one: the same.
    last_x, last_f, last_g = None, 0.0, None
    nit = nfev = 0
    while True:
        _lbfgsb.setulb(
            m, x, lower, upper, bound_kind, f, g, factr, gtol, work, iwork,
            task, lsave, isave, dsave, maxls, line_task,
        )  # fmt: skip
        if task[0] == _FG:
            if last_x is None or not (x == last_x).all():
                last_x = x.copy()
                last_f, last_g = fun(last_x)
                last_f = float(last_f)
                last_g = np.asarray(last_g, dtype=np.float64)
                nfev += 1
            f = last_f
            g[:] = last_g
        elif task[0] == _NEW_X:
            nit += 1
            if callback is not None:
                callback()
            if nit >= maxiter:
                task[0], task[1] = _STOP, _STOP_MAXITER
            elif nfev > maxfun:
                task[0], task[1] = _STOP, _STOP_MAXFUN
        else:
            break
    if task[0] == _CONVERGED:
        status = 0
    elif nfev > maxfun or nit >= maxiter:
        status = 1
    else:
        status = 2
    return scipy.optimize.OptimizeResult(
        x=x, fun=f, jac=g, nit=nit, nfev=nfev, status=status, success=status == 0
    )


# Frames a warning skips: this package's own, and scikit-learn's fit
# wrapper (``_fit_context``) around its methods.
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_SKLEARN_BASE = os.path.abspath(sklearn.base.__file__)


def warn_at_caller(message, category):
    """``warnings.warn`` attributed to the code that called the estimator.

    A fixed ``stacklevel`` pointed inside this package (the wrappers of
    ``fit`` add frames): the warning's location is the first frame outside
    it and outside scikit-learn's fit wrapper, the user's line (or the
    meta-estimator's that called ``fit``).
    """
    frame, level = sys._getframe(1), 1
    while frame is not None and (
        frame.f_code.co_filename.startswith(_PACKAGE_DIR)
        or os.path.abspath(frame.f_code.co_filename) == _SKLEARN_BASE
    ):
        frame, level = frame.f_back, level + 1
    # (stacklevel 1 is this function's own line.)
    warnings.warn(message, category, stacklevel=level + 1)
