"""The one place that imports private scikit-learn helpers.

scikit-learn >= 1.6 is supported; anything whose location or signature
moved between releases is adapted here so the rest of the package imports
from one stable spot.
"""

import numpy as np
from sklearn.base import _fit_context
from sklearn.utils._param_validation import Hidden, Interval, StrOptions
from sklearn.utils.multiclass import (
    _check_partial_fit_first_call,
    check_classification_targets,
)
from sklearn.utils.validation import _check_sample_weight, validate_data

__all__ = [
    "Hidden",
    "Interval",
    "StrOptions",
    "_fit_context",
    "check_classification_targets",
    "check_partial_fit_first_call",
    "check_sample_weight",
    "validate_data",
]


def check_sample_weight(sample_weight, X, dtype):
    """Validated sample weights of shape (n_samples,): finite, >= 0, sum > 0.

    ``_check_sample_weight`` changed its keyword arguments across releases,
    so only its stable part is used and the sign check is done here.
    """
    sample_weight = _check_sample_weight(sample_weight, X, dtype=dtype)
    if not np.all(np.isfinite(sample_weight)):
        raise ValueError("sample_weight must be finite; got NaN or infinity.")
    if np.any(sample_weight < 0):
        raise ValueError("Negative values in sample_weight are not allowed.")
    if sample_weight.size and not np.any(sample_weight > 0):
        raise ValueError(
            "Sample weights must contain at least one non-zero number; "
            "all sample_weight values are zero."
        )
    return sample_weight


check_partial_fit_first_call = _check_partial_fit_first_call
