"""Inputs of other array namespaces under ``array_api_dispatch=True``.

scikit-learn's array API dispatch needs ``SCIPY_ARRAY_API=1`` before scipy is
imported, which would change scipy for the whole test session: the checks run
in a fresh interpreter instead.  With dispatch on, torch tensors are accepted
by every method; the fit runs on numpy (on the CPU), and the predictions come
back as tensors on the input's device.
"""

import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("torch")

SCRIPT = textwrap.dedent(
    """
    import numpy as np
    import sklearn
    import torch
    from sklearn.datasets import make_classification

    from sk_softmax import SoftmaxRegression

    X, y = make_classification(
        n_samples=300, n_features=8, n_informative=5, n_classes=3, random_state=0
    )
    weights = np.linspace(0.5, 2.0, y.size)
    X_t, y_t, w_t = torch.asarray(X), torch.asarray(y), torch.asarray(weights)
    expected = SoftmaxRegression(solver="lbfgs").fit(X, y, sample_weight=weights)

    with sklearn.config_context(array_api_dispatch=True):
        clf = SoftmaxRegression(solver="lbfgs").fit(X_t, y_t, sample_weight=w_t)
        np.testing.assert_allclose(clf.coef_, expected.coef_, rtol=1e-12)
        assert isinstance(clf.coef_, np.ndarray)
        for method in (
            "predict", "predict_proba", "predict_log_proba", "decision_function"
        ):
            result = getattr(clf, method)(X_t)
            assert isinstance(result, torch.Tensor), method
            assert result.device == X_t.device, method
            np.testing.assert_allclose(
                result.numpy(), getattr(expected, method)(X), rtol=1e-12
            )
        # (scikit-learn computes the accuracy of tensors in float32.)
        assert abs(clf.score(X_t, y_t) - expected.score(X, y)) < 1e-6

        # float32 tensors train in float32, as float32 arrays do.
        clf32 = SoftmaxRegression(solver="lbfgs").fit(X_t.float(), y_t)
        assert clf32.coef_.dtype == np.float32
        assert clf32.predict_proba(X_t.float()).dtype == torch.float32

        stream = SoftmaxRegression(batch_size=32, random_state=0)
        stream.partial_fit(X_t[:150], y_t[:150], classes=torch.arange(3))
        stream.partial_fit(X_t[150:], y_t[150:])
        assert stream.n_iter_ == 2

        # String labels have no tensor dtype: predict returns them as numpy.
        labels = np.array(["a", "b", "c"])[y]
        named = SoftmaxRegression(solver="lbfgs").fit(X_t, labels)
        predicted = named.predict(X_t)
        assert isinstance(predicted, np.ndarray)
        reference = SoftmaxRegression(solver="lbfgs").fit(X, labels).predict(X)
        np.testing.assert_array_equal(predicted, reference)

        # Bad input still gets scikit-learn's errors.
        bad = X_t.clone()
        bad[0, 0] = float("nan")
        try:
            SoftmaxRegression().fit(bad, y_t)
        except ValueError as exc:
            assert "NaN" in str(exc)
        else:
            raise AssertionError("NaN in a tensor was accepted")
    print("ok")
    """
)


def test_torch_tensors_under_array_api_dispatch():
    env = dict(os.environ, SCIPY_ARRAY_API="1")
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("ok")
