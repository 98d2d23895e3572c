"""The one place that imports private scikit-learn helpers.

scikit-learn >= 1.6 is supported; anything whose location or signature
moved between releases is adapted here so the rest of the package imports
from one stable spot.
"""

from functools import partial

import numpy as np
import scipy.sparse as sp
from sklearn.base import _fit_context
from sklearn.utils._array_api import (
    _convert_to_numpy,
    _is_numpy_namespace,
    _max_precision_float_dtype,
    get_namespace,
    get_namespace_and_device,
)
from sklearn.utils._param_validation import Hidden, Interval, StrOptions
from sklearn.utils.multiclass import (
    _check_partial_fit_first_call,
    check_classification_targets,
)
from sklearn.utils.validation import (
    _assert_all_finite,
    _check_sample_weight,
    validate_data,
)

__all__ = [
    "array_namespace",
    "max_float_dtype",
    "to_numpy",
    "Hidden",
    "Interval",
    "StrOptions",
    "_fit_context",
    "assert_all_finite",
    "check_classification_targets",
    "check_partial_fit_first_call",
    "check_sample_weight",
    "raise_for_sample_weight",
    "raise_not_finite",
    "to_numpy_namespace",
    "validate_data",
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


check_partial_fit_first_call = _check_partial_fit_first_call


def raise_not_finite(*, has_nan, dtype, estimator_name):
    """scikit-learn's error for X with NaN (or else infinity), read elsewhere.

    For data checked where it lives (dask chunks, another device): the
    message comes from scikit-learn's own check, on a stand-in value of X's
    numpy ``dtype``.
    """
    bad = np.array([np.nan if has_nan else np.inf], dtype=dtype)
    assert_all_finite(bad, estimator_name=estimator_name)


def assert_all_finite(X, *, estimator_name):
    """Raise scikit-learn's error if X (dense or sparse) has NaN or infinity.

    Under ``sklearn.set_config(assume_finite=True)`` scikit-learn's check
    does nothing; fitting on non-finite data would end in NaN, so this one
    still checks.
    """
    values = X.data if sp.issparse(X) else X
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(values.sum()):
            return
    _assert_all_finite(values, input_name="X", estimator_name=estimator_name)
    # Either checks are off, or the sum overflowed on finite values.
    if not np.all(np.isfinite(values)):
        raise ValueError("Input X contains NaN or infinity.")


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


def _as_numpy(values):
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
    # numpy itself, and dask arrays, which the estimator reads chunk by chunk.
    if X is None or isinstance(X, np.ndarray) or type(X).__module__.startswith("dask."):
        return None
    xp, is_array_api, device = get_namespace_and_device(X)
    if not is_array_api or _is_numpy_namespace(xp):
        return None
    return xp, device


def to_numpy(values):
    """An array of any array API namespace as a numpy array on the CPU."""
    xp, _ = get_namespace(values)
    return _convert_to_numpy(values, xp)


max_float_dtype = _max_precision_float_dtype
