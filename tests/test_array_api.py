"""Arrays of other namespaces under ``array_api_dispatch=True``.

scikit-learn's array API dispatch needs ``SCIPY_ARRAY_API=1`` before scipy is
imported, which would change scipy for the whole test session: the checks run
in a fresh interpreter instead.  With dispatch on, X stays in its namespace
and on its device: the loss and gradient are computed there (the numpy core
must not run), and every solver reaches the fit it reaches on numpy arrays.
Namespaces: torch (on a CUDA GPU where the machine has one, else the CPU)
and array_api_strict, which rejects anything outside the standard, on its
default device and on the stand-ins for accelerators it offers.  The fitted
arrays live with X, as scikit-learn keeps them (``classes_`` too, unless the
labels are strings).
"""

import os
import re
import subprocess
import sys
import textwrap

import pytest

SETUP = textwrap.dedent(
    """
    import warnings

    import numpy as np
    import sklearn
    from sklearn.base import clone
    from sklearn.datasets import make_classification
    from sklearn.exceptions import ConvergenceWarning

    import sk_softmax._softmax
    from sk_softmax import SoftmaxRegression

    warnings.simplefilter("ignore", ConvergenceWarning)
    try:
        with sklearn.config_context(array_api_dispatch=True):
            pass
    except (ImportError, RuntimeError) as exc:  # scipy or numpy too old
        print(f"unsupported: {exc}")
        raise SystemExit(0)
    X, y = make_classification(
        n_samples=300, n_features=8, n_informative=5, n_classes=3, random_state=0
    )
    weights = np.linspace(0.5, 2.0, y.size)
    weights[:10] = 0.0
    SOLVERS = [
        dict(solver="lbfgs"),
        dict(solver="lbfgs", fit_intercept=False, class_weight="balanced"),
        dict(solver="sgd", batch_size=None, max_iter=20, label_smoothing=0.1),
        dict(solver="sgd", batch_size=32, max_iter=3, random_state=0),
        dict(solver="adam", batch_size=32, max_iter=3, random_state=0),
        dict(solver="sgd", batch_size=32, max_iter=3, random_state=0,
             early_stopping=True),
    ]


    def numpy_core(*args, **kwargs):
        raise AssertionError("the numpy loss ran on data of another namespace")


    def raises(error, text, call):
        # call() raises error with text in its message.
        try:
            call()
        except error as exc:
            assert text in str(exc), exc
        else:
            raise AssertionError(f"no {error.__name__} ({text})")


    def as_numpy(values):
        from sk_softmax._compat import host_array

        return host_array(values)


    def check_where(clf, X_xp):
        # The fitted arrays live with X, as scikit-learn keeps them, the
        # labels too when they are numbers (scikit-learn's cross_val_predict
        # and StackingClassifier failed on numpy ones: "Multiple namespaces").
        for name in ("coef_", "intercept_", "classes_"):
            value = getattr(clf, name)
            assert type(value) is type(X_xp), (name, type(value))
            assert value.device == X_xp.device, (name, value.device)


    def check_fits(to_xp):
        X_xp, y_xp, w_xp = to_xp(X), to_xp(y), to_xp(weights)
        for params in SOLVERS:
            expected = SoftmaxRegression(**params).fit(X, y, sample_weight=weights)
            core = sk_softmax._softmax._loss_and_gradient
            sk_softmax._softmax._loss_and_gradient = numpy_core
            try:
                with sklearn.config_context(array_api_dispatch=True):
                    clf = SoftmaxRegression(**params).fit(
                        X_xp, y_xp, sample_weight=w_xp
                    )
            finally:
                sk_softmax._softmax._loss_and_gradient = core
            # The same solver on the same numbers, summed in another order.
            np.testing.assert_allclose(
                as_numpy(clf.coef_),
                expected.coef_,
                rtol=1e-9,
                atol=1e-12,
                err_msg=params,
            )
            np.testing.assert_allclose(
                as_numpy(clf.intercept_), expected.intercept_, rtol=1e-9, atol=1e-12
            )
            assert clf.n_iter_ == expected.n_iter_
            check_where(clf, X_xp)
        # Above 8192 rows the curvature bound reads a strided sample, and the
        # mini-batch bound every row's norm, a chunk of rows at a time; the
        # features' spreads, which set the solvers' coordinates, are read
        # on the device too (past 2**16, in the units of a common power of
        # two).  Correlated features take the Gram matrix's preconditioner,
        # summed on the device.
        rng = np.random.default_rng(0)
        X_big = rng.standard_normal((9000, 6)) * [0.1, 1.0, 30.0, 1.0, 3.0, 0.5]
        y_big = (X_big[:, :2] @ rng.standard_normal((2, 3))).argmax(axis=1)
        X_correlated = X_big.copy()
        X_correlated[:, 5] = X_big[:, 1] + 0.01 * rng.standard_normal(9000)
        # One outlying row: the preconditioner is formed again from the
        # device's logits once that row is predicted confidently.
        X_outlier = X_big.copy()
        X_outlier[0] *= 1e3
        # A feature of unit spread at 1e14: its mean from the deviations,
        # and the rows centered on the device.
        X_far = X_big + [0.0, 1e14, 0.0, 0.0, 0.0, 0.0]
        for params, X_case in (
            (dict(max_iter=2, random_state=0), X_big),
            (dict(batch_size=None), X_big),
            (dict(max_iter=2, random_state=0), X_big * 2.0**40),
            (dict(batch_size=None), X_correlated),
            (dict(batch_size=None), X_outlier),
            (dict(batch_size=None), X_far),
            (dict(max_iter=2, random_state=0), X_far),
        ):
            reference = SoftmaxRegression(**params).fit(X_case, y_big)
            with sklearn.config_context(array_api_dispatch=True):
                big = SoftmaxRegression(**params).fit(to_xp(X_case), to_xp(y_big))
            np.testing.assert_allclose(as_numpy(big.coef_), reference.coef_, rtol=1e-9)
            assert big.n_iter_ == reference.n_iter_
            if X_case is X_far:  # (not constant: it labels the rows)
                assert np.abs(as_numpy(big.coef_)[:, 1]).max() > 0.1
        # Rows of zero weight at the largest floats count for nothing, their
        # logits too (L-BFGS failed, sgd diverged: 0 * inf is NaN).
        X_huge = X_big.copy()
        X_huge[:5] = 1e308
        w_huge = np.ones(9000)
        w_huge[:5] = 0.0
        for params in (dict(solver="lbfgs", alpha=1e-2), dict(batch_size=None)):
            reference = SoftmaxRegression(**params)
            reference.fit(X_huge, y_big, sample_weight=w_huge)
            with sklearn.config_context(array_api_dispatch=True):
                big = SoftmaxRegression(**params).fit(
                    to_xp(X_huge), to_xp(y_big), sample_weight=to_xp(w_huge)
                )
            # The same optimum (L-BFGS takes these features as given,
            # uncentered: some 140 iterations, which round differently on
            # the device).  Rows of zero weight count for nothing.
            objective = [
                sk_softmax.loss_and_gradient(
                    as_numpy(m.coef_), as_numpy(m.intercept_), X_big[5:],
                    y_big[5:], alpha=m.alpha,
                )[0]
                for m in (big, reference)
            ]
            assert np.isfinite(as_numpy(big.coef_)).all()
            np.testing.assert_allclose(objective[0], objective[1], rtol=1e-6)
        return clf, expected
    """
)

TORCH = textwrap.dedent(
    """
    import torch

    # A GPU where the machine has one (the same checks), the CPU otherwise.
    DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


    def on_device(values):
        return torch.asarray(values, device=DEVICE)


    def to_host(tensor):
        return tensor.cpu().numpy()


    check_fits(on_device)
    X_t, y_t = on_device(X), on_device(y)
    expected = SoftmaxRegression(solver="lbfgs").fit(X, y)
    METHODS = ("predict", "predict_proba", "predict_log_proba", "decision_function")
    with sklearn.config_context(array_api_dispatch=True):
        clf = SoftmaxRegression(solver="lbfgs").fit(X_t, y_t)
        # Predictions are computed on the device: the numpy path must not run.
        host = SoftmaxRegression._raw_prediction
        SoftmaxRegression._raw_prediction = numpy_core
        try:
            results = {method: getattr(clf, method)(X_t) for method in METHODS}
        finally:
            SoftmaxRegression._raw_prediction = host
        for method, result in results.items():
            assert isinstance(result, torch.Tensor), method
            assert result.device == X_t.device, method
            np.testing.assert_allclose(
                to_host(result), getattr(expected, method)(X), rtol=1e-9, atol=1e-12
            )
        # Where finite logits overflow, the numpy path rescales them.
        huge = X[:5] / np.abs(X[:5]).max() * 1e308
        assert not np.isfinite(huge @ as_numpy(clf.coef_).T).all()
        for method in METHODS:
            result = getattr(clf, method)(on_device(huge))
            assert isinstance(result, torch.Tensor), method
            np.testing.assert_allclose(
                to_host(result), getattr(expected, method)(huge), rtol=1e-9
            )
        assert np.isfinite(to_host(clf.predict_log_proba(on_device(huge)))).any()
        binary = SoftmaxRegression(solver="lbfgs").fit(X_t, y_t == 1)
        np.testing.assert_allclose(
            to_host(binary.decision_function(X_t)),
            SoftmaxRegression(solver="lbfgs").fit(X, y == 1).decision_function(X),
            rtol=1e-9,
            atol=1e-12,
        )
        assert binary.predict(X_t).dtype == torch.bool
        # (scikit-learn computes the accuracy of tensors in float32.)
        assert abs(clf.score(X_t, y_t) - expected.score(X, y)) < 1e-6

        # float32 tensors train in float32, as float32 arrays do.
        clf32 = SoftmaxRegression(solver="lbfgs").fit(X_t.float(), y_t)
        assert clf32.coef_.dtype == torch.float32
        assert clf32.predict_proba(X_t.float()).dtype == torch.float32

        stream = SoftmaxRegression(batch_size=32, random_state=0)
        stream.partial_fit(X_t[:150], y_t[:150], classes=on_device(np.arange(3)))
        stream.partial_fit(X_t[150:], y_t[150:])
        assert stream.n_iter_ == 2
        check_where(stream, X_t)
        host_stream = SoftmaxRegression(batch_size=32, random_state=0)
        host_stream.partial_fit(X[:150], y[:150], classes=np.arange(3))
        host_stream.partial_fit(X[150:], y[150:])
        np.testing.assert_allclose(
            as_numpy(stream.coef_), host_stream.coef_, rtol=1e-9, atol=1e-12
        )
        # numpy X under dispatch: scikit-learn's error, naming the method,
        # where scikit-learn checks it (>= 1.9).
        try:
            from sklearn.utils._array_api import move_estimator_to
        except ImportError:
            move_estimator_to = None
        if move_estimator_to is not None:
            try:
                clf.predict(X)
            except ValueError as exc:
                assert "SoftmaxRegression.predict()" in str(exc), exc
            else:
                raise AssertionError("numpy X was accepted by a model on a device")
            # Moved to numpy: the same model, the solver state included.
            moved = move_estimator_to(stream, np, None)
            assert isinstance(moved.coef_, np.ndarray)
            assert isinstance(moved.classes_, np.ndarray)
            assert stream.coef_.device == X_t.device  # the original stays
            moved.partial_fit(X, y)
            host_stream.partial_fit(X, y)
            np.testing.assert_allclose(
                moved.coef_, host_stream.coef_, rtol=1e-9, atol=1e-12
            )
            from sklearn.utils._array_api import get_namespace_and_device

            xp, _, device = get_namespace_and_device(X_t)
            back = move_estimator_to(moved, xp, device)
            check_where(back, X_t)
            np.testing.assert_array_equal(to_host(back.predict(X_t)), moved.predict(X))

    # Without dispatch, a model fitted on a device predicts numpy X (from a
    # CPU copy of its arrays), and a warm refit on numpy X brings it back.
    np.testing.assert_allclose(clf.predict_proba(X), expected.predict_proba(X))
    warm = SoftmaxRegression(solver="lbfgs", warm_start=True)
    with sklearn.config_context(array_api_dispatch=True):
        warm.fit(X_t, y_t)
    warm.fit(X, y)
    assert isinstance(warm.coef_, np.ndarray) and warm.n_iter_ < expected.n_iter_ / 2
    with sklearn.config_context(array_api_dispatch=True):

        # String labels have no tensor dtype: predict returns them as numpy.
        labels = np.array(["a", "b", "c"])[y]
        named = SoftmaxRegression(solver="lbfgs").fit(X_t, labels)
        predicted = named.predict(X_t)
        assert isinstance(predicted, np.ndarray)
        assert isinstance(named.classes_, np.ndarray)
        # scikit-learn's tools that read classes_ with the predictions.
        from sklearn.ensemble import StackingClassifier
        from sklearn.model_selection import cross_val_predict

        proba = cross_val_predict(
            SoftmaxRegression(solver="lbfgs"), X_t, y_t, cv=3, method="predict_proba"
        )
        assert isinstance(proba, torch.Tensor) and tuple(proba.shape) == (300, 3)
        # StackingClassifier joins its estimators' predictions with numpy's
        # hstack (scikit-learn 1.9), which a CUDA tensor cannot enter.
        if X_t.device.type == "cpu":
            stack = StackingClassifier(
                [("a", SoftmaxRegression(solver="lbfgs")), ("b", SoftmaxRegression())],
                cv=3,
            )
            assert float(stack.fit(X_t, y_t).score(X_t, y_t)) > 0.5
        reference = SoftmaxRegression(solver="lbfgs").fit(X, labels).predict(X)
        np.testing.assert_array_equal(predicted, reference)

        # A tensor of an autograd graph (features from a network, say):
        # the model fits and predicts its values, outside the graph.
        X_g = X_t.clone().requires_grad_(True)
        for params in (dict(solver="lbfgs"), dict(batch_size=32, max_iter=2)):
            graph = SoftmaxRegression(random_state=0, **params).fit(X_g, y_t)
            plain = SoftmaxRegression(random_state=0, **params).fit(X_t, y_t)
            assert not graph.coef_.requires_grad
            np.testing.assert_array_equal(to_host(graph.coef_), to_host(plain.coef_))
            proba = graph.predict_proba(X_g)
            assert not proba.requires_grad
            expected_proba = to_host(plain.predict_proba(X_t))
            np.testing.assert_array_equal(to_host(proba), expected_proba)
        graph.partial_fit(X_g, y_t)
        assert X_g.grad is None

        # Bad input still gets scikit-learn's errors.
        for value, message in ((float("nan"), "NaN"), (float("inf"), "infinity")):
            bad = X_t.clone()
            bad[0, 0] = value
            try:
                SoftmaxRegression().fit(bad, y_t)
            except ValueError as exc:
                assert message in str(exc), exc
                if value == float("inf"):
                    # X's dtype as scikit-learn names it for such X.
                    assert str(bad.dtype) in str(exc), exc
            else:
                raise AssertionError(f"{value} in a tensor was accepted")
            # scikit-learn's checks off: still an error, not NaN coefficients.
            try:
                with sklearn.config_context(assume_finite=True):
                    SoftmaxRegression().fit(bad, y_t)
            except ValueError as exc:
                assert "NaN or infinity" in str(exc), exc
            else:
                raise AssertionError(f"{value} accepted with assume_finite")
        # Columns far from 0 (lbfgs's common factor comes from the centered
        # range per feature) and features 1e22 apart (spreads summed in
        # float64): as in memory; the device versions lagged behind.
        rng = np.random.default_rng(0)
        Z = rng.normal(size=(600, 3))
        labels = (Z[:, 0] - Z[:, 1] > 0).astype(int)
        far = Z.copy()
        far[:, 0] += 1e10
        far[:, 1] = far[:, 1] * 1e3 + 1.7e9
        wide = (Z[:, :2] * [1e22, 1.0]).astype(np.float32)
        for data, params in (
            (far, dict(solver="lbfgs")),
            (wide, dict(solver="sgd", batch_size=None)),
        ):
            host_fit = SoftmaxRegression(**params).fit(data, labels)
            device_fit = SoftmaxRegression(**params).fit(
                on_device(data), on_device(labels)
            )
            # (Both stop at tol: the rounding of 1e10 +- 1 parts the paths.)
            device_score = float(device_fit.score(on_device(data), on_device(labels)))
            assert host_fit.score(data, labels) > 0.9
            assert abs(device_score - host_fit.score(data, labels)) <= 0.01
        # A complex tensor was fitted (and predicted) on its real part:
        # scikit-learn's complex check misses torch dtypes.
        complex_t = X_t + 1j * X_t
        for call in (
            lambda: SoftmaxRegression(solver="lbfgs").fit(complex_t, y_t),
            lambda: SoftmaxRegression().partial_fit(
                complex_t, y_t, classes=on_device(np.arange(3))
            ),
            lambda: clf.predict_proba(complex_t),
        ):
            raises(ValueError, "Complex data not supported", call)
    print("ok")
    """
)

STRICT = textwrap.dedent(
    """
    import array_api_strict

    clf, expected = check_fits(array_api_strict.asarray)
    X_s = array_api_strict.asarray(X)
    with sklearn.config_context(array_api_dispatch=True):
        proba = clf.predict_proba(X_s)
    assert type(proba).__module__.startswith("array_api_strict")
    np.testing.assert_allclose(
        np.asarray(proba), expected.predict_proba(X), rtol=1e-9, atol=1e-12
    )
    print("ok")
    """
)


# array_api_strict's other devices stand in for an accelerator: "device1"
# refuses any operation that mixes its arrays with the default device's, so
# every array the fit makes must be made on X's device; "no_float64" has no
# float64 (as Apple's MPS), so float32 data must train without one.
STRICT_DEVICES = textwrap.dedent(
    """
    import array_api_strict

    device1 = array_api_strict.Device("device1")
    clf, expected = check_fits(lambda a: array_api_strict.asarray(a, device=device1))
    X_1 = array_api_strict.asarray(X, device=device1)
    with sklearn.config_context(array_api_dispatch=True):
        for method in ("predict", "predict_proba", "decision_function"):
            result = getattr(clf, method)(X_1)
            assert result.device == device1, method
            np.testing.assert_allclose(
                np.asarray(result.to_device(array_api_strict.Device("CPU_DEVICE"))),
                getattr(expected, method)(X),
                rtol=1e-9,
                atol=1e-12,
            )

    no_float64 = array_api_strict.Device("no_float64")
    X32, w32 = X.astype(np.float32), weights.astype(np.float32)
    X_32, y_32, w_32 = (
        array_api_strict.asarray(a, device=no_float64) for a in (X32, y, w32)
    )
    core = sk_softmax._softmax._loss_and_gradient
    for params in SOLVERS:
        reference = SoftmaxRegression(**params).fit(X32, y, sample_weight=w32)
        sk_softmax._softmax._loss_and_gradient = numpy_core
        try:
            with sklearn.config_context(array_api_dispatch=True):
                clf32 = SoftmaxRegression(**params).fit(X_32, y_32, sample_weight=w_32)
                proba = clf32.predict_proba(X_32)
        finally:
            sk_softmax._softmax._loss_and_gradient = core
        assert clf32.coef_.dtype == array_api_strict.float32
        assert proba.device == no_float64 and proba.dtype == array_api_strict.float32
        # float32 sums in another order: the same model to float32 precision.
        np.testing.assert_allclose(
            as_numpy(clf32.coef_), reference.coef_, rtol=1e-3, atol=1e-4, err_msg=params
        )
    print("ok")
    """
)


# partial_fit on arrays of another namespace: the first rows are held back
# until 10 have come, and a feature's scale grows with its spread, as on
# numpy (neither happened: one-row streams trained on their first row, and
# a feature absent from the first chunk kept a standardized step, the loss
# climbing to 100).
STREAMS = textwrap.dedent(
    """
    def check_streams(to_xp):
        rng = np.random.RandomState(0)
        Z = rng.randn(2000, 5)
        labels = np.argmax(Z[:, :-1] @ rng.randn(4, 3) + rng.gumbel(size=(2000, 3)), 1)
        Z[:, -1] = rng.uniform(20, 40, 2000)
        first = Z[:1000].copy()
        first[:, -1] = 0.0
        for solver in ("sgd", "adam"):
            fits = []
            for convert in (np.asarray, to_xp):
                clf = SoftmaxRegression(solver=solver, random_state=0)
                with sklearn.config_context(array_api_dispatch=True):
                    clf.partial_fit(convert(first[:1]), convert(labels[:1]), [0, 1, 2])
                    assert clf.n_iter_ == 0 and not np.any(as_numpy(clf.coef_))
                    clf.partial_fit(convert(first[1:]), convert(labels[1:1000]))
                    for _ in range(3):
                        clf.partial_fit(convert(Z[1000:]), convert(labels[1000:]))
                fits.append(as_numpy(clf.coef_))
            np.testing.assert_allclose(fits[1], fits[0], rtol=1e-9, atol=1e-12)
            assert np.abs(fits[0]).max() < 10


    """
)

TORCH_INPUTS = textwrap.dedent(
    """
    import torch

    check_streams(torch.asarray)
    X_t = torch.asarray(X)
    with sklearn.config_context(array_api_dispatch=True):
        # torch takes no elements of uint16 to uint64 tensors: predict failed.
        for dtype in (torch.uint16, torch.uint32, torch.uint64):
            clf = SoftmaxRegression(solver="lbfgs").fit(X_t, torch.asarray(y).to(dtype))
            assert clf.predict(X_t).dtype == dtype
            assert clf.score(X_t, torch.asarray(y).to(dtype)) > 0.5
        # Labels and weights of an autograd graph, as X.
        y_g = torch.asarray(y, dtype=torch.float64).requires_grad_(True)
        w_g = torch.asarray(weights).requires_grad_(True)
        SoftmaxRegression(solver="lbfgs").fit(X_t, y_g, sample_weight=w_g)
        # Rows held back follow the next call's data (a torch row, then
        # numpy rows: torch refused to concatenate them), and so does the
        # model.
        held = SoftmaxRegression(random_state=0)
        held.partial_fit(X_t[:4], torch.asarray(y[:4]), classes=[0, 1, 2])
        assert isinstance(held.coef_, torch.Tensor) and held.n_iter_ == 0
        held.partial_fit(X[4:12], y[4:12])
        assert isinstance(held.coef_, np.ndarray) and held.n_iter_ == 1
        # A tensor with the negative bit set (a lazy view, equal to X):
        # torch refused to give its sample of rows to numpy.
        negative_bit = (X_t - 1j * X_t).conj().imag
        assert negative_bit.is_neg()
        for solver in ("lbfgs", "sgd"):
            clf = SoftmaxRegression(solver=solver, random_state=0)
            plain = clone(clf).fit(X_t, torch.asarray(y))
            clf.fit(negative_bit, torch.asarray(y))
            assert torch.equal(clf.coef_, plain.coef_)
        held = SoftmaxRegression().partial_fit(negative_bit[:4], y[:4], [0, 1, 2])
        held.partial_fit(negative_bit[4:12], y[4:12])
        assert held.n_iter_ == 1
        # bfloat16 labels (numpy has no bfloat16).
        bf16 = torch.asarray(y).to(torch.bfloat16)
        SoftmaxRegression(solver="lbfgs").fit(X_t, bf16, sample_weight=bf16 + 1)
        # A number as sample_weight weighs every row alike, as without
        # dispatch (it went to array_api_compat, which raised TypeError),
        # for torch and numpy X, in fit and partial_fit.
        plain = SoftmaxRegression(solver="lbfgs").fit(X, y)
        for data in (X_t, X):
            clf = SoftmaxRegression(solver="lbfgs").fit(data, y, sample_weight=2.0)
            np.testing.assert_allclose(as_numpy(clf.coef_), plain.coef_, rtol=1e-9)
            SoftmaxRegression().partial_fit(data, y, [0, 1, 2], sample_weight=2)
            # (range() as classes reached array_api_compat too.)
            SoftmaxRegression().partial_fit(data, y, classes=range(3))
        # A sparse tensor: a clear error, not one from inside torch.
        for sparse in (X_t.to_sparse(), X_t.to_sparse_csr()):
            fit = SoftmaxRegression().fit
            raises(TypeError, "sparse tensor", lambda: fit(sparse, torch.asarray(y)))
    print("ok")
    """
)

STRICT_STREAMS = textwrap.dedent(
    """
    import array_api_strict

    check_streams(array_api_strict.asarray)
    # float64 labels on a device without float64: narrowed to float32,
    # 16777216 and 16777217 were one class; such labels stay numpy.
    no_float64 = array_api_strict.Device("no_float64")
    labels = np.where(y > 0, 16777217.0, 16777216.0)
    X_32 = array_api_strict.asarray(X.astype(np.float32), device=no_float64)
    with sklearn.config_context(array_api_dispatch=True):
        clf = SoftmaxRegression(solver="lbfgs").fit(X_32, labels)
        predicted = clf.predict(X_32)
    np.testing.assert_array_equal(as_numpy(clf.classes_), [16777216.0, 16777217.0])
    np.testing.assert_array_equal(np.unique(predicted), [16777216.0, 16777217.0])
    print("ok")
    """
)


DASK_PARTIAL_FIT = textwrap.dedent(
    """
    import dask.array as da

    # partial_fit reads a dask array into memory; under dispatch scikit-learn
    # kept it lazy (an array namespace), and the fit failed inside dask.
    Xd, yd = da.from_array(X, chunks=(100, 8)), da.from_array(y, chunks=100)
    wd = da.from_array(weights, chunks=100)
    params = dict(batch_size=32, random_state=0)
    reference = SoftmaxRegression(**params).partial_fit(
        X, y, classes=[0, 1, 2], sample_weight=weights
    )
    with sklearn.config_context(array_api_dispatch=True):
        for labels in (yd, y):
            clf = SoftmaxRegression(**params)
            clf.partial_fit(Xd, labels, classes=[0, 1, 2], sample_weight=wd)
            assert isinstance(clf.coef_, np.ndarray)
            np.testing.assert_array_equal(clf.coef_, reference.coef_)
    print("ok")
    """
)


def _run(script):
    env = dict(os.environ, SCIPY_ARRAY_API="1")
    done = subprocess.run(
        [sys.executable, "-c", SETUP + script],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    if done.stdout.startswith("unsupported"):
        pytest.skip(f"array API dispatch is not available: {done.stdout.strip()}")
    assert done.stdout.strip().endswith("ok")


def test_torch_tensors():
    pytest.importorskip("torch")
    _run(TORCH)


def test_torch_streams_and_inputs():
    pytest.importorskip("torch")
    _run(STREAMS + TORCH_INPUTS)


def test_array_api_strict_streams():
    pytest.importorskip("array_api_strict")
    _run(STREAMS + STRICT_STREAMS)


def test_partial_fit_reads_a_dask_array_under_dispatch():
    pytest.importorskip("dask.array")
    _run(DASK_PARTIAL_FIT)


def test_array_api_strict():
    pytest.importorskip("array_api_strict")
    _run(STRICT)


def test_array_api_strict_other_devices():
    pytest.importorskip("array_api_strict")
    _run(STRICT_DEVICES)


def test_scikit_learn_array_api_checks():
    # scikit-learn's own array API checks (tests/test_common.py), which it
    # skips without SCIPY_ARRAY_API: every namespace and device installed
    # here (numpy, torch on the CPU and on CUDA where there is one,
    # array_api_strict and its devices, CuPy), X with y and sample_weight
    # of another namespace, and its error for predictions on arrays of
    # another namespace than the fit's.
    env = dict(os.environ, SCIPY_ARRAY_API="1")
    probe = (
        "import sklearn; sklearn.config_context(array_api_dispatch=True).__enter__()"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True
    )
    if done.returncode:
        reason = done.stderr.strip().splitlines()[-1]
        pytest.skip(f"array API dispatch is not available: {reason}")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-k",
            "array_api",
            os.path.join(os.path.dirname(__file__), "test_common.py"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    summary = done.stdout.strip().splitlines()[-1]
    counts = {
        word: int(n) for n, word in re.findall(r"(\d+) (passed|skipped)", summary)
    }
    if not counts.get("passed"):
        # (Older scikit-learn releases need array_api_compat installed.)
        pytest.skip(f"scikit-learn ran none of its array API checks: {summary}")
    assert counts["passed"] >= 4, summary  # numpy, at least, for each estimator
