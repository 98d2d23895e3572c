"""sk_softmax: a scikit-learn compatible softmax (multinomial logistic) classifier.

Public names
------------
SoftmaxRegression
    The estimator: linear layer + softmax + cross-entropy, with L2 and
    label smoothing, fitted by mini-batch gradient descent, Adam or L-BFGS.
loss_and_gradient
    The objective ``J(W, b)`` and its analytic gradient.
"""

__version__ = "0.1.0"

from ._loss import loss_and_gradient  # noqa: E402
from ._softmax import SoftmaxRegression  # noqa: E402

__all__ = ["SoftmaxRegression", "loss_and_gradient", "__version__"]
