"""Fitting and predicting on dask arrays (the optional ``dask`` extra).

The full-batch solvers compute each gradient as a sum over the chunks of a
dask array: the fit must equal the in-memory fit on the same data, the
predictions must stay lazy dask arrays, and bad input must fail with the
same kind of error as in memory.
"""

import contextlib
import logging
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.datasets import load_iris, load_wine, make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.preprocessing import StandardScaler

from sk_softmax import SoftmaxRegression
from sk_softmax._dask import is_dask_array

da = pytest.importorskip("dask.array")


def _data(name="wine"):
    X, y = (load_wine if name == "wine" else load_iris)(return_X_y=True)
    return StandardScaler().fit_transform(X), y


def _fit(params, X, y, **fit_params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return SoftmaxRegression(**params).fit(X, y, **fit_params)


def _assert_same_model(a, b, rtol=1e-7):
    scale = max(np.abs(a.coef_).max(), 1.0)
    np.testing.assert_allclose(b.coef_, a.coef_, rtol=rtol, atol=rtol * scale)
    np.testing.assert_allclose(b.intercept_, a.intercept_, rtol=rtol, atol=rtol * scale)
    assert b.n_iter_ == a.n_iter_
    np.testing.assert_array_equal(b.classes_, a.classes_)
    assert b.coef_.dtype == a.coef_.dtype


FULL_BATCH = {
    "lbfgs": dict(solver="lbfgs"),
    "sgd-full-batch": dict(solver="sgd", batch_size=None, max_iter=40),
    "adam-full-batch": dict(solver="adam", batch_size=None, max_iter=40),
    "lbfgs-no-intercept": dict(solver="lbfgs", fit_intercept=False),
    "lbfgs-smoothing": dict(solver="lbfgs", label_smoothing=0.2, alpha=1e-2),
    "lbfgs-balanced": dict(solver="lbfgs", class_weight="balanced"),
    "sgd-class-weight": dict(
        solver="sgd", batch_size=None, max_iter=40, class_weight={0: 2.0, 2: 0.5}
    ),
}


@pytest.mark.parametrize("params", FULL_BATCH.values(), ids=FULL_BATCH.keys())
def test_fit_equals_the_in_memory_fit(params):
    X, y = _data()
    memory = _fit(params, X, y)
    # Uneven row chunks, and columns split (fit puts whole rows together).
    X_dask = da.from_array(X, chunks=((50, 50, 40, 38), (7, 6)))
    chunked = _fit(params, X_dask, y)
    _assert_same_model(memory, chunked)
    assert chunked.n_features_in_ == X.shape[1]
    assert not hasattr(chunked, "feature_names_in_")


@pytest.mark.parametrize("magnitude", [1.0, 2.0**40], ids=["wine", "wine-2**40"])
@pytest.mark.parametrize("n_samples", [178, 9000])
@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_unscaled_features_fit_equals_the_in_memory_fit(solver, n_samples, magnitude):
    # The standardized coordinates of sgd and adam come from the features'
    # spreads, computed over the chunks (past 2**16 in the units of a common
    # power of two): the same scales as in memory, and the same iterates
    # (above 8192 rows, the curvature bound's strided sample is brought to
    # memory too).
    X, y = load_wine(return_X_y=True)  # features from 0.1 to 1000
    rows = np.random.default_rng(0).integers(0, len(y), n_samples)
    X, y = X[rows] * magnitude, y[rows]
    params = dict(solver=solver, batch_size=None, max_iter=20)
    memory = _fit(params, X, y)
    # (In the coordinates, or, folded in, in the steps.)
    scales = memory._scale if memory._folded_scale is None else memory._folded_scale
    assert np.unique(scales).size > 3
    _assert_same_model(memory, _fit(params, da.from_array(X, chunks=1000), y))


@pytest.mark.parametrize("weights_in_dask", [False, True])
def test_sample_weight(weights_in_dask):
    X, y = _data()
    weights = np.random.default_rng(0).uniform(0.0, 3.0, size=y.size)
    weights[:20] = 0.0
    memory = _fit(dict(solver="lbfgs"), X, y, sample_weight=weights)
    if weights_in_dask:
        weights = da.from_array(weights, chunks=33)
    chunked = _fit(
        dict(solver="lbfgs"),
        da.from_array(X, chunks=40),
        da.from_array(y, chunks=70),
        sample_weight=weights,
    )
    _assert_same_model(memory, chunked)


def test_a_number_as_sample_weight_weighs_every_row_alike():
    # As for data in memory (the dask path refused it: "got ()").
    X, y = _data()
    X_dask = da.from_array(X, chunks=40)
    _assert_same_model(
        _fit(dict(solver="lbfgs"), X_dask, y),
        _fit(dict(solver="lbfgs"), X_dask, y, sample_weight=2.5),
    )
    with pytest.raises(ValueError, match="Negative values in sample_weight"):
        _fit(dict(solver="lbfgs"), X_dask, y, sample_weight=-1.0)
    # A dask number too (dask warned that np.copyto is not implemented).
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        _assert_same_model(
            _fit(dict(solver="lbfgs"), X_dask, y),
            _fit(dict(solver="lbfgs"), X_dask, y, sample_weight=da.asarray(2.5)),
        )


@pytest.mark.parametrize("magnitude", [1e39, 1e-50])
def test_float32_X_keeps_float64_weights(magnitude):
    # As in memory, where only the weights' ratios count: float32 X cast
    # them to float32, 1e39 to inf ("must be finite") and 1e-50 to 0.
    X, y = _data()
    X = X.astype(np.float32)
    weights = magnitude * np.linspace(1.0, 2.0, X.shape[0])
    memory = _fit(dict(solver="lbfgs"), X, y, sample_weight=weights)
    chunked = _fit(
        dict(solver="lbfgs"), da.from_array(X, chunks=60), y, sample_weight=weights
    )
    _assert_same_model(memory, chunked, rtol=1e-5)


@pytest.mark.parametrize("heavy", ["every-row", "every-third-row"])
@pytest.mark.parametrize("weights_in_dask", [False, True])
def test_weights_whose_sum_overflows_fit_as_in_memory(heavy, weights_in_dask):
    # Their sum is inf: divided by it, every weight was 0, and the fit
    # returned a model of zeros, silently.  In memory they are divided by
    # the largest first (only their ratios count); so are they here.
    X, y = _data()
    if heavy == "every-row":
        weights = np.linspace(1e306, 2e306, y.size)
    else:
        weights = np.ones(y.size)
        weights[::3] = 1e308
    with np.errstate(over="ignore"):
        assert np.isinf(weights.sum())
    memory = _fit(dict(solver="lbfgs"), X, y, sample_weight=weights)
    assert np.abs(memory.coef_).max() > 0.1
    if weights_in_dask:
        weights = da.from_array(weights, chunks=50)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # (no overflow warning)
        chunked = _fit(
            dict(solver="lbfgs"), da.from_array(X, chunks=60), y, sample_weight=weights
        )
    _assert_same_model(memory, chunked)


def test_float32_means_of_columns_far_from_zero():
    # Each chunk's column sums were one float32 sum: over 60,000 float32
    # timestamps (1.7e9 + up to 1e5) they drifted by 1.5e5, five spreads,
    # and full-batch sgd ran to max_iter where the in-memory fit stopped.
    rng = np.random.default_rng(0)
    n = 120_000
    X = np.c_[1.7e9 + rng.uniform(0, 1e5, n), rng.normal(size=n)]
    X = X.astype(np.float32)
    y = (X[:, 1] > 0).astype(int)
    params = dict(batch_size=None, max_iter=60)
    fitted = _fit(params, da.from_array(X, chunks=(60_000, 2)), y)
    spread = X.astype(np.float64).std(axis=0)
    error = np.abs(fitted._mean - X.astype(np.float64).mean(axis=0))
    assert np.all(error < 0.02 * spread), error / spread
    assert fitted.n_iter_ < 60


def test_float32_feature_far_from_zero_fits_as_in_memory():
    # float32 chunks with a feature of 1e4 + N(0, 1): in memory the loss
    # centers each row block (see _far_from_zero), the chunks' loss did not,
    # and lost 2**-24 of 1e4 in both products: full-batch sgd ran to
    # max_iter (300 epochs against 48) and the coefficients were off by
    # 7e-4 of their size against 3e-7 in memory.
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20_000, 5))
    y = np.argmax(X[:, :3] @ rng.standard_normal((3, 3)), axis=1)
    X[:, 1] += 1e4
    X = X.astype(np.float32)
    params = dict(batch_size=None, max_iter=300, tol=1e-7)
    memory = _fit(params, X, y)
    chunked = _fit(params, da.from_array(X, chunks=(2500, 5)), y)
    assert chunked.n_iter_ < 300
    scale = np.abs(memory.coef_).max()
    assert np.abs(chunked.coef_ - memory.coef_).max() < 1e-5 * scale


def test_features_far_from_zero_fit_as_in_memory():
    # A feature of unit spread at 1e14: its spread about the rows' own mean,
    # its mean again from the deviations, and each chunk centered.  Its
    # spread, below 2**-40 of the mean, made it constant; or, summed down a
    # chunk, its mean came out spreads off.
    rng = np.random.default_rng(0)
    X = rng.standard_normal((9000, 5))
    y = np.argmax(X[:, :3] @ rng.standard_normal((3, 3)), axis=1)
    params = dict(batch_size=None)
    plain = _fit(params, X, y)
    X_far = X + [0.0, 1e14, 0.0, 0.0, 0.0]
    memory = _fit(params, X_far, y)
    chunked = _fit(params, da.from_array(X_far, chunks=(2000, 5)), y)
    _assert_same_model(memory, chunked)
    assert chunked.n_iter_ <= plain.n_iter_ + 2
    assert chunked.score(X_far, y) >= plain.score(X, y) - 0.01


def test_float32_and_string_labels():
    X, y = _data()
    X = X.astype(np.float32)
    labels = np.array(["red", "white", "rose"])[y]
    memory = _fit(dict(solver="lbfgs"), X, labels)
    chunked = _fit(dict(solver="lbfgs"), da.from_array(X, chunks=60), labels)
    _assert_same_model(memory, chunked, rtol=1e-5)
    assert chunked.coef_.dtype == np.float32
    assert chunked.predict(da.from_array(X, chunks=60)).dtype == labels.dtype


def test_labels_are_validated_as_in_memory():
    # Validation in memory turns pandas' Int64 labels into float64 (as for
    # LogisticRegression); the dask path kept int64 classes_ and predictions.
    pd = pytest.importorskip("pandas")
    X, y = _data()
    labels = pd.Series(y, dtype="Int64")
    memory = _fit(dict(solver="lbfgs"), X, labels)
    chunked = _fit(dict(solver="lbfgs"), da.from_array(X, chunks=60), labels)
    _assert_same_model(memory, chunked)
    assert chunked.classes_.dtype == memory.classes_.dtype == np.float64
    assert chunked.predict(X).dtype == np.float64
    # A missing label gets the in-memory error (object labels with pd.NA
    # failed in numpy's truth test: "boolean value of NA is ambiguous"), and
    # so do float labels of NaN or infinity, with no warning first (that NaN
    # cannot be cast to an integer).
    cases = []
    names = pd.Series(np.array(["a", "b", "c"])[y])
    for message, missing, value in [
        ("pd.NA", labels.astype(object), pd.NA),
        ("NaN", labels, pd.NA),
        ("pd.NA", names.astype("string"), pd.NA),  # ("boolean value of NA")
        ("NaN", names.astype(object), np.nan),  # ("Mix of label input types")
    ]:
        missing = missing.copy()
        missing.iloc[3] = value
        cases.append((message, missing))
    for value, message in [(np.nan, "NaN"), (np.inf, "infinity")]:
        bad = y.astype(float)
        bad[3] = value
        cases += [(message, bad), (message, da.from_array(bad, chunks=50))]
    for message, bad in cases:
        for data in (X, da.from_array(X, chunks=60)):
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                with pytest.raises(ValueError, match=f"Input (y )?contains {message}"):
                    SoftmaxRegression(solver="lbfgs").fit(data, bad)


def test_integer_X_is_cast_to_float64():
    X, y = _data()
    X_int = np.round(10 * X).astype(np.int64)
    memory = _fit(dict(solver="lbfgs"), X_int, y)
    chunked = _fit(dict(solver="lbfgs"), da.from_array(X_int, chunks=50), y)
    _assert_same_model(memory, chunked)
    assert chunked.coef_.dtype == np.float64


def test_warm_start_continues_on_dask_data():
    X, y = _data()
    X_dask = da.from_array(X, chunks=45)
    params = dict(solver="sgd", batch_size=None, max_iter=5, warm_start=True)
    memory = _fit(params, X, y)
    chunked = _fit(params, X_dask, y)
    first = chunked.coef_.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        memory.fit(X, y)
        chunked.fit(X_dask, y)
    _assert_same_model(memory, chunked)
    assert not np.allclose(chunked.coef_, first)
    # Other features get the in-memory error, and the model stays.
    with pytest.raises(ValueError, match="X has 3 features, but warm_start=True"):
        chunked.fit(X_dask[:, :3], y)
    assert chunked.n_features_in_ == X.shape[1]


@pytest.mark.parametrize("name", ["wine", "binary"])
def test_predictions_stay_lazy(name):
    X, y = _data("iris" if name == "binary" else name)
    if name == "binary":
        y = (y == 1).astype(int)
    clf = _fit(dict(solver="lbfgs"), X, y)
    X_dask = da.from_array(X, chunks=(40, 2))
    for method in (
        "decision_function",
        "predict",
        "predict_proba",
        "predict_log_proba",
    ):
        lazy = getattr(clf, method)(X_dask)
        assert is_dask_array(lazy), method
        expected = getattr(clf, method)(X)
        assert lazy.shape == expected.shape
        assert lazy.dtype == expected.dtype
        np.testing.assert_allclose(lazy.compute(), expected, rtol=1e-12, atol=1e-14)
    assert clf.score(X_dask, y) == pytest.approx(clf.score(X, y))


def test_chunks_of_no_rows():
    # Masking by rows (then compute_chunk_sizes) leaves chunks of no rows,
    # on which fit's reductions and the per-chunk predictions failed.
    X, y = _data()
    keep = np.ones(y.size, dtype=bool)
    keep[40:80] = False
    mask = da.from_array(keep, chunks=40)
    X_dask = da.from_array(X, chunks=(40, 13))[mask]
    y_dask = da.from_array(y, chunks=40)[mask]
    X_dask.compute_chunk_sizes()
    y_dask.compute_chunk_sizes()
    assert 0 in X_dask.chunks[0]
    params = dict(solver="lbfgs")
    _assert_same_model(_fit(params, X[keep], y[keep]), _fit(params, X_dask, y_dask))
    clf = _fit(params, X, y)
    for method in ("decision_function", "predict", "predict_proba"):
        np.testing.assert_allclose(
            getattr(clf, method)(X_dask).compute(),
            getattr(clf, method)(X[keep]),
            rtol=1e-12,
        )
    # Unknown chunk sizes: the empty chunks are only seen when computing.
    unknown = da.from_array(X, chunks=(40, 13))[mask]
    assert np.isnan(unknown.shape[0])
    np.testing.assert_array_equal(clf.predict(unknown).compute(), clf.predict(X[keep]))


@contextlib.contextmanager
def _local_cluster():
    """A two-worker ``distributed`` cluster in this process, as the client."""
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=False,
            dashboard_address=None,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


def test_distributed_cluster():
    X, y = _data()
    memory = _fit(dict(solver="lbfgs"), X, y)
    with _local_cluster():
        X_dask = da.from_array(X, chunks=50)
        chunked = _fit(dict(solver="lbfgs"), X_dask, da.from_array(y, chunks=50))
        proba = chunked.predict_proba(X_dask).compute()
    _assert_same_model(memory, chunked)
    np.testing.assert_allclose(proba, memory.predict_proba(X), rtol=1e-10)


def test_distributed_cluster_with_weights(caplog):
    # Lazy weights, computed in several graphs, were submitted with
    # differently optimized tasks under one key, which the scheduler
    # reports ("can cause failures and deadlocks").
    X, y = _data()
    params = dict(solver="lbfgs", class_weight="balanced")
    memory = _fit(params, X, y)
    with caplog.at_level(logging.WARNING, logger="distributed"), _local_cluster():
        chunked = _fit(params, da.from_array(X, chunks=50), y)
    _assert_same_model(memory, chunked)
    assert not [r for r in caplog.records if "run_spec" in r.getMessage()]


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    "params",
    [
        dict(nesterovs_momentum=False),
        dict(learning_rate_init=0.01),
        dict(solver="adam"),
        dict(solver="sgd", batch_size=32),
    ],
    ids=["heavy-ball-above-4096", "step-by-hand-above-4096", "adam", "sgd-32"],
)
def test_mini_batches_are_refused(params):
    rng = np.random.default_rng(0)
    # batch_size="auto" means mini-batches above 4096 samples here.
    n = 200 if "batch_size" in params else 5000
    X = da.from_array(rng.standard_normal((n, 3)), chunks=1000)
    y = rng.integers(0, 3, size=n)
    with pytest.raises(ValueError, match="full batch only.*partial_fit"):
        SoftmaxRegression(**params).fit(X, y)


@pytest.mark.parametrize("weighted_by", ["sample_weight", "class_weight"])
def test_auto_batch_counts_the_rows_of_positive_weight(weighted_by):
    # Rows of zero weight are rows removed: 6,000 rows of which under 4,096
    # weigh take the full batch, as in memory (dask refused them as
    # mini-batches of 6,000 rows).
    rng = np.random.default_rng(0)
    X = rng.standard_normal((6000, 4))
    y = rng.integers(0, 3, size=6000)
    params = dict(nesterovs_momentum=False, max_iter=20, random_state=0)
    fit_params = {}
    if weighted_by == "sample_weight":
        weights = (rng.random(6000) < 0.5).astype(float)
        fit_params["sample_weight"] = da.from_array(weights, chunks=1000)
        expected = _fit(params, X, y, sample_weight=weights)
    else:
        params["class_weight"] = {0: 1.0, 1: 1.0, 2: 0.0}
        expected = _fit(params, X, y)
    assert expected._batch_size_used < 4096  # (the full batch in memory)
    clf = _fit(params, da.from_array(X, chunks=1000), y, **fit_params)
    _assert_same_model(expected, clf)


def test_weighted_mini_batches_are_refused():
    # Weighed, mini-batches are refused once the weights are known.
    rng = np.random.default_rng(0)
    X = da.from_array(rng.standard_normal((6000, 3)), chunks=1000)
    weights = da.from_array((rng.random(6000) < 0.9).astype(float), chunks=1000)
    y = rng.integers(0, 3, size=6000)
    with pytest.raises(ValueError, match="full batch only.*positive weight"):
        SoftmaxRegression(nesterovs_momentum=False).fit(X, y, sample_weight=weights)


def test_default_estimator_fits_small_dask_data_on_the_full_batch():
    X, y = _data()
    clf = _fit(dict(random_state=0), da.from_array(X, chunks=50), y)
    _assert_same_model(_fit(dict(random_state=0), X, y), clf)


@pytest.mark.parametrize("correlated", [False, True])
def test_default_estimator_fits_large_dask_data_on_the_full_batch(correlated):
    # Above 4096 samples the defaults choose by the features' correlation:
    # in memory, batches for strongly correlated ones beyond 256 features
    # (up to 256, the preconditioned full batch); a dask array, whose
    # mini-batches fit refuses, always takes the full batch.
    rng = np.random.default_rng(0)
    X = rng.standard_normal((5000, 300))
    if correlated:
        X += 0.24 * rng.standard_normal((5000, 1))  # correlation eigenvalue 18
    y = (X[:, 0] - X[:, 1] > 0).astype(int) + (X[:, 2] > X[:, 3])
    params = dict(random_state=0, max_iter=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        chunked = _fit(params, da.from_array(X, chunks=1000), y)
        full = _fit(dict(params, batch_size=None), X, y)
        auto = _fit(params, X, y)
    _assert_same_model(full, chunked)
    assert chunked.n_iter_ == 5
    assert np.allclose(auto.coef_, full.coef_) != correlated


def test_correlated_features_take_the_same_preconditioner():
    # Above the 8192 rows of the curvature sample, the Gram matrix that
    # preconditions the full batch is summed over the chunks: the same
    # model as in memory, in as few passes.
    rng = np.random.default_rng(0)
    factors = rng.standard_normal((9000, 4))
    X = factors @ rng.standard_normal((4, 30)) + 0.05 * rng.standard_normal((9000, 30))
    y = (factors[:, 0] > 0).astype(int) + (factors[:, 1] > 0.5)
    weights = rng.uniform(0.5, 2.0, 9000)
    params = dict(random_state=0)
    memory = _fit(params, X, y, sample_weight=weights)
    chunked = _fit(
        params,
        da.from_array(X, chunks=(2000, 30)),
        y,
        sample_weight=da.from_array(weights, chunks=2000),
    )
    _assert_same_model(memory, chunked, rtol=1e-6)
    assert memory.n_iter_ < 40


def test_preconditioner_formed_again_from_the_chunks():
    # One outlying row, soon predicted confidently: the preconditioner is
    # formed again at the current curvature, from the chunks' logits (see
    # test_preconditioner_follows_confident_rows): the same model as in
    # memory, in as few passes.
    X, y = make_classification(
        n_samples=9000,
        n_features=20,
        n_informative=10,
        n_redundant=0,
        n_classes=3,
        random_state=0,
    )
    X[0] *= 1e3
    memory = _fit({}, X, y)
    chunked = _fit({}, da.from_array(X, chunks=(2000, 20)), y)
    _assert_same_model(memory, chunked, rtol=1e-6)
    assert memory.n_iter_ == chunked.n_iter_ < 30


def test_early_stopping_is_refused():
    X, y = _data()
    with pytest.raises(ValueError, match="early_stopping"):
        SoftmaxRegression(solver="sgd", batch_size=None, early_stopping=True).fit(
            da.from_array(X), y
        )


@pytest.mark.parametrize(
    "params",
    [
        dict(nesterovs_momentum=False),
        dict(solver="adam", batch_size=32),
        dict(early_stopping=True),
    ],
    ids=["heavy-ball-above-4096", "adam-32", "early-stopping"],
)
def test_refused_settings_read_no_chunk(params):
    # The input checks persist X: refused settings read it all first.
    rng = np.random.default_rng(0)
    built = []

    def load(block):
        built.append(block.shape[0])
        return block

    X = da.from_array(rng.standard_normal((5000, 3)), chunks=500)
    X = X.map_blocks(load, dtype=X.dtype)
    with pytest.raises(ValueError, match="full batch only|early_stopping"):
        SoftmaxRegression(**params).fit(X, rng.integers(0, 3, size=5000))
    assert not any(built), built  # (dask's meta inference: blocks of 0 rows)


@pytest.mark.parametrize("value, message", [(np.nan, "NaN"), (np.inf, "infinity")])
def test_non_finite_X(value, message):
    X, y = _data()
    X[5, 3] = value
    with pytest.raises(ValueError, match=f"Input X contains {message}"):
        SoftmaxRegression(solver="lbfgs").fit(da.from_array(X, chunks=50), y)


def test_non_finite_X_in_a_row_of_zero_weight():
    X, y = _data()
    X[5, 3] = np.nan
    weights = np.ones(y.size)
    weights[5] = 0.0
    with pytest.raises(ValueError, match="Input X contains NaN"):
        SoftmaxRegression(solver="lbfgs").fit(
            da.from_array(X, chunks=50), y, sample_weight=weights
        )


@pytest.mark.parametrize(
    "weights, message",
    [
        (-1.0, "Negative values in sample_weight"),
        (np.nan, "sample_weight must be finite"),
        (0.0, "at least one non-zero"),
    ],
)
def test_bad_sample_weight(weights, message):
    X, y = _data()
    sample_weight = np.ones(y.size)
    sample_weight[3 if weights else slice(None)] = weights
    with pytest.raises(ValueError, match=message):
        SoftmaxRegression(solver="lbfgs").fit(
            da.from_array(X, chunks=50), y, sample_weight=sample_weight
        )


@pytest.mark.parametrize("case", ["far-from-zero-lbfgs", "spreads-1e22-apart-sgd"])
def test_extreme_columns_fit_as_in_memory(case):
    # lbfgs's common factor from the centered range per feature, and the
    # spreads summed in float64: the dask versions lagged behind memory's.
    rng = np.random.default_rng(0)
    Z = rng.normal(size=(600, 3))
    y = (Z[:, 0] - Z[:, 1] > 0).astype(int)
    if case == "far-from-zero-lbfgs":
        X, params = Z.copy(), dict(solver="lbfgs")
        X[:, 0] += 1e10
        X[:, 1] = X[:, 1] * 1e3 + 1.7e9
    else:
        X, params = (Z[:, :2] * [1e22, 1.0]).astype(np.float32), dict(batch_size=None)
    expected = SoftmaxRegression(**params).fit(X, y)
    clf = SoftmaxRegression(**params).fit(da.from_array(X, chunks=200), y)
    # (Both stop at tol: the rounding of 1e10 +- 1 leaves the paths apart.)
    assert expected.score(X, y) > 0.9
    assert abs(clf.score(X, y) - expected.score(X, y)) <= 0.01


def test_column_vector_y_warns_and_fits():
    # As in memory: scikit-learn's DataConversionWarning, then the fit.
    from sklearn.exceptions import DataConversionWarning

    X, y = _data()
    with pytest.warns(DataConversionWarning, match="column-vector y") as record:
        clf = SoftmaxRegression(solver="lbfgs").fit(
            da.from_array(X, chunks=50), y[:, None]
        )
    assert [w.filename for w in record] == [__file__]
    expected = SoftmaxRegression(solver="lbfgs").fit(X, y)
    np.testing.assert_allclose(clf.coef_, expected.coef_, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("params", [dict(solver="lbfgs"), dict(batch_size=None)])
def test_fit_builds_the_chunks_of_X_once(params):
    # Every pass of the fit (labels, range, spreads, curvature sample, the
    # objective) reads persisted chunks: they were built (read from their
    # source) up to four times.
    X, y = _data()
    built = []

    def load(block):
        built.append(block.shape[0])
        return block

    X_dask = da.from_array(X, chunks=25).map_blocks(load, dtype=X.dtype)
    SoftmaxRegression(**params).fit(X_dask, y)
    assert sum(built) == X.shape[0], built


def test_pydata_sparse_chunks_are_advised_their_own_conversion():
    # scipy's sparse chunks convert with toarray(), pydata's with todense()
    # (the advice named toarray for both).
    sparse = pytest.importorskip("sparse")
    X, y = _data()
    chunks = da.from_array(sparse.COO.from_numpy(X), chunks=(50, 13), asarray=False)
    with pytest.raises(TypeError, match=r"block\.todense\(\)") as info:
        SoftmaxRegression(solver="lbfgs").fit(chunks, y)
    assert "toarray" not in str(info.value)
    dense = chunks.map_blocks(
        lambda block: block.todense(), meta=np.empty((0, 0), dtype=X.dtype)
    )
    _assert_same_model(
        SoftmaxRegression(solver="lbfgs").fit(X, y),
        SoftmaxRegression(solver="lbfgs").fit(dense, y),
    )


def test_bad_shapes_and_types():
    X, y = _data()
    X_dask = da.from_array(X, chunks=50)
    clf = SoftmaxRegression(solver="lbfgs")
    with pytest.raises(ValueError, match="y must have shape"):
        clf.fit(X_dask, y[:-1])
    with pytest.raises(ValueError, match="sample_weight must have shape"):
        clf.fit(X_dask, y, sample_weight=np.ones(3))
    with pytest.raises(ValueError, match="Expected a 2D dask array"):
        clf.fit(X_dask[:, 0], y)
    with pytest.raises(ValueError, match="Complex data not supported"):
        clf.fit(X_dask.astype(np.complex128), y)
    with pytest.raises(ValueError, match="must hold numbers"):
        clf.fit(da.from_array(X.astype(str), chunks=50), y)
    sparse_chunks = da.from_array(sp.csr_matrix(X), chunks=(50, 13), asarray=False)
    with pytest.raises(
        TypeError, match=r"numpy chunks; got chunks of type csr.*block.toarray\(\)"
    ):
        clf.fit(sparse_chunks, y)
    # The conversion it advises works (np.asarray, advised before, wrapped
    # each sparse chunk in an object array, and the fit failed in numpy).
    dense_chunks = sparse_chunks.map_blocks(
        lambda block: block.toarray(), meta=np.empty((0, 0), dtype=X.dtype)
    )
    _assert_same_model(clf.fit(X, y), clone(clf).fit(dense_chunks, y))
    unknown = X_dask[X_dask[:, 0] > 0]
    with pytest.raises(ValueError, match="compute_chunk_sizes"):
        clf.fit(unknown, y)
    for name in ("y", "sample_weight"):
        values = da.from_array(np.c_[y, np.ones_like(y)], chunks=50)
        values = values[values[:, 1] > 0][:, 0]  # chunk sizes unknown
        fit_params = {"y": values} if name == "y" else {"y": y, "sample_weight": values}
        with pytest.raises(ValueError, match=f"{name}.compute_chunk_sizes"):
            clf.fit(X_dask, **fit_params)
    with pytest.raises(ValueError, match="Unknown label type"):
        clf.fit(X_dask, y + 0.5)
    # Labels that do not sort together: the in-memory messages, not a
    # TypeError from dask's unique.
    labels = np.array(["a", "b", None] * (y.size // 3) + ["a"] * (y.size % 3))
    with pytest.raises(ValueError, match="y contains None"):
        clf.fit(X_dask, labels.astype(object))
    labels[2::3] = 1
    with pytest.raises(ValueError, match="Mix of label input types"):
        clf.fit(X_dask, labels.astype(object))
    clf.fit(X_dask, y)
    with pytest.raises(ValueError, match="X has 5 features, but SoftmaxRegression"):
        clf.predict(X_dask[:, :5])
    # One sample's worth of values: scikit-learn's 2D message, as in memory
    # (it said "X has 600 features").
    with pytest.raises(ValueError, match="Expected 2D array, got 1D array"):
        clf.predict(X_dask[:, 0])


# ---------------------------------------------- dask_ml.wrappers.Incremental

INCREMENTAL = {
    "sgd": dict(solver="sgd", random_state=0),
    "adam-smoothing": dict(solver="adam", label_smoothing=0.1, random_state=0),
    "sgd-batch-16-class-weight": dict(
        solver="sgd",
        learning_rate_init=0.05,
        class_weight={"red": 2.0, "rose": 0.5},
        batch_size=16,
        random_state=0,
    ),
}


def _partial_fits(params, X, y, chunk, classes, order=None, passes=1):
    """The model that ``partial_fit`` on the row chunks of X, in ``order``, gives."""
    model = SoftmaxRegression(**params)
    starts = list(range(0, y.size, chunk))
    for _ in range(passes):
        for block in order if order is not None else range(len(starts)):
            rows = slice(starts[block], starts[block] + chunk)
            model.partial_fit(X[rows], y[rows], classes=classes)
    return model


@pytest.mark.parametrize("params", INCREMENTAL.values(), ids=INCREMENTAL.keys())
def test_incremental_trains_on_the_chunks_in_turn(params):
    # dask_ml's Incremental calls partial_fit on each block of rows, as a
    # chain of tasks: the model is the one partial_fit on the chunks gives,
    # and the wrapper's predictions are lazy.
    wrappers = pytest.importorskip("dask_ml.wrappers")
    X, y = _data()
    labels = np.array(["red", "white", "rose"])[y]
    classes = np.unique(labels)
    X_dask = da.from_array(X, chunks=(40, -1))
    y_dask = da.from_array(labels, chunks=40)
    incremental = wrappers.Incremental(
        SoftmaxRegression(**params), shuffle_blocks=False, scoring="accuracy"
    )
    incremental.fit(X_dask, y_dask, classes=classes)
    expected = _partial_fits(params, X, labels, 40, classes)
    model = incremental.estimator_
    np.testing.assert_allclose(model.coef_, expected.coef_, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(model.intercept_, expected.intercept_, rtol=1e-12)
    assert model.n_iter_ == expected.n_iter_ == 5
    np.testing.assert_array_equal(incremental.classes_, classes)
    # The estimator is not the one passed in (Incremental clones it).
    assert not hasattr(incremental.estimator, "coef_")

    proba = incremental.predict_proba(X_dask)
    assert is_dask_array(proba)
    np.testing.assert_allclose(proba.compute(), expected.predict_proba(X), rtol=1e-12)
    predicted = incremental.predict(X_dask)
    assert is_dask_array(predicted)
    np.testing.assert_array_equal(predicted.compute(), expected.predict(X))
    assert incremental.score(X_dask, y_dask) == pytest.approx(expected.score(X, labels))


def test_incremental_shuffled_blocks_and_more_passes():
    # Blocks in the order Incremental's random_state draws, and partial_fit on
    # the wrapper continuing from the fitted model: a second pass over the
    # chunks is a second epoch of partial_fit.
    wrappers = pytest.importorskip("dask_ml.wrappers")
    from sklearn.utils import check_random_state

    X, y = _data()
    classes = np.unique(y)
    X_dask = da.from_array(X.astype(np.float32), chunks=(30, -1))
    y_dask = da.from_array(y, chunks=30)
    n_blocks = len(X_dask.chunks[0])
    params = dict(solver="sgd", random_state=0)
    incremental = wrappers.Incremental(SoftmaxRegression(**params), random_state=7)
    incremental.fit(X_dask, y_dask, classes=classes)
    incremental.partial_fit(X_dask, y_dask)

    order = list(range(n_blocks))
    check_random_state(7).shuffle(order)
    assert order != sorted(order)
    expected = _partial_fits(params, X.astype(np.float32), y, 30, classes, order, 2)
    model = incremental.estimator_
    assert model.coef_.dtype == np.float32
    np.testing.assert_allclose(model.coef_, expected.coef_, rtol=1e-6, atol=1e-7)
    assert model.n_iter_ == expected.n_iter_ == 2 * n_blocks


def test_incremental_on_a_distributed_cluster():
    wrappers = pytest.importorskip("dask_ml.wrappers")
    X, y = _data()
    classes = np.unique(y)
    params = dict(solver="adam", random_state=0)
    with _local_cluster():
        X_dask = da.from_array(X, chunks=(50, -1))
        incremental = wrappers.Incremental(
            SoftmaxRegression(**params), shuffle_blocks=False
        )
        incremental.fit(X_dask, da.from_array(y, chunks=50), classes=classes)
        proba = incremental.predict_proba(X_dask).compute()
    expected = _partial_fits(params, X, y, 50, classes)
    np.testing.assert_allclose(
        incremental.estimator_.coef_, expected.coef_, rtol=1e-12, atol=1e-15
    )
    np.testing.assert_allclose(proba, expected.predict_proba(X), rtol=1e-12)


def test_partial_fit_on_a_whole_dask_array_reads_it_into_memory():
    X, y = _data()
    classes = np.unique(y)
    params = dict(solver="sgd", batch_size=32, random_state=0)
    memory = SoftmaxRegression(**params).partial_fit(X, y, classes=classes)
    chunked = SoftmaxRegression(**params).partial_fit(
        da.from_array(X, chunks=50), da.from_array(y, chunks=50), classes=classes
    )
    np.testing.assert_array_equal(chunked.coef_, memory.coef_)
    assert chunked.n_iter_ == memory.n_iter_ == 1


def test_incremental_errors():
    wrappers = pytest.importorskip("dask_ml.wrappers")
    X, y = _data()
    X_dask, y_dask = da.from_array(X, chunks=(50, -1)), da.from_array(y, chunks=50)
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        wrappers.Incremental(SoftmaxRegression()).fit(X_dask, y_dask)
    with pytest.raises(ValueError, match=r"y contains labels \[2\] that are not in"):
        wrappers.Incremental(SoftmaxRegression()).fit(X_dask, y_dask, classes=[0, 1])
    # L-BFGS has no partial_fit: Incremental says so.
    with pytest.raises(ValueError, match="does not implement 'partial_fit'"):
        wrappers.Incremental(SoftmaxRegression(solver="lbfgs")).fit(
            X_dask, y_dask, classes=np.unique(y)
        )
