"""scikit-learn's estimator checks, for the default and every solver."""

import pytest
from sklearn.utils.estimator_checks import (
    check_param_validation,
    parametrize_with_checks,
)

from sk_softmax import SoftmaxRegression

ESTIMATORS = [
    SoftmaxRegression(),
    SoftmaxRegression(solver="lbfgs"),
    SoftmaxRegression(solver="adam"),
    SoftmaxRegression(label_smoothing=0.1, alpha=1e-2),
]


@parametrize_with_checks(ESTIMATORS)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=repr)
def test_param_validation(estimator):
    check_param_validation(type(estimator).__name__, estimator)
