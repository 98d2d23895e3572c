"""The one place that imports private scikit-learn helpers.

scikit-learn >= 1.6 is supported; anything whose location or signature
moved between releases is adapted here so the rest of the package imports
from one stable spot.
"""

import numpy as np
import scipy.sparse as sp
from sklearn.base import _fit_context
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
    "Hidden",
    "Interval",
    "StrOptions",
    "_fit_context",
    "assert_all_finite",
    "check_classification_targets",
    "check_partial_fit_first_call",
    "check_sample_weight",
    "raise_for_sample_weight",
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
