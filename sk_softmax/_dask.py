"""Dask arrays: full-batch fitting on data that stays in its chunks.

The full-batch solvers only ever ask for the objective and its gradient at
some parameters, and both are sums over samples.  For a dask array X each
chunk of rows computes its share where it lives, through the same objective
as in-memory data (:func:`sk_softmax._softmax._make_objective`), and the
shares are added up in a tree: X is persisted once and never gathered; only
the parameters and gradients (``n_classes x n_features``) and a few vectors
of length ``n_samples`` travel.  The scheduler is dask's current one: its
threads, or the workers of a ``dask.distributed`` cluster when a ``Client``
is active.

dask is imported only when a dask array is passed.
"""

import math

import numpy as np
from sklearn.exceptions import DataConversionWarning
from sklearn.utils import check_array

from ._compat import (
    assert_all_finite,
    check_classification_targets,
    check_label_types,
    raise_for_sample_weight,
    raise_not_finite,
    warn_at_caller,
)
from ._loss import (
    _curvature_sample,
    _std_from_sums,
    single_threaded_blas,
    softmax_curvature,
)

# Partial sums combined per task of the reduction tree.
_FAN_IN = 8


def is_dask_array(X):
    """Whether ``X`` is a ``dask.array.Array`` (without importing dask).

    Examples
    --------
    >>> import numpy as np
    >>> from sk_softmax._dask import is_dask_array
    >>> is_dask_array(np.ones((2, 2)))
    False
    """
    return type(X).__module__.startswith("dask.array") and hasattr(X, "chunks")


def check_fit_input(X, y, sample_weight, *, estimator_name):
    """Validated ``(X, y, sample_weight)`` for fitting on a dask array X.

    X becomes float32 or float64 (other numbers are cast to float64, lazily)
    with whole rows in every chunk; ``y`` and ``sample_weight`` (dask or
    in-memory, one value per sample; y may be a column) become dask arrays
    chunked like X's rows.  All three are persisted here, once: every later
    pass of the fit (labels, range, spreads, objective) reads the persisted
    chunks instead of building them again from their source.  The checks
    that need the data (labels, weights, finiteness) run later, in one pass
    each.
    """
    import dask
    import dask.array as da

    if X.ndim != 2:
        raise ValueError(
            f"Expected a 2D dask array for X, got {X.ndim} dimension(s); "
            "reshape it to (n_samples, n_features)."
        )
    if any(math.isnan(size) for size in X.shape):
        raise ValueError(
            "X has chunks of unknown size; call X.compute_chunk_sizes() "
            f"before fitting {estimator_name}."
        )
    if not isinstance(X._meta, np.ndarray):
        # (scipy's sparse chunks convert with toarray, pydata's with todense.)
        pydata = type(X._meta).__module__.startswith("sparse")
        dense = "todense" if pydata else "toarray"
        raise TypeError(
            f"{estimator_name} fits dask arrays of numpy chunks; got chunks of "
            f"type {type(X._meta).__name__}. Convert them to numpy arrays, e.g. "
            f"sparse ones with X.map_blocks(lambda block: block.{dense}(), "
            "meta=np.empty((0, 0), dtype=X.dtype)), or pass the sparse matrix "
            "itself (in memory)."
        )
    if X.dtype.kind == "c":
        raise ValueError(f"Complex data not supported in {estimator_name}.")
    if X.dtype.kind not in "biuf":
        raise ValueError(
            f"dask array X must hold numbers to fit {estimator_name}; got "
            f"dtype {X.dtype}."
        )
    n_samples, n_features = X.shape
    if n_samples < 1 or n_features < 1:
        raise ValueError(
            f"Found array with {n_samples} sample(s) and {n_features} "
            f"feature(s) while a minimum of 1 is required by {estimator_name}."
        )
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float64)
    X = X.rechunk({1: -1})
    # Chunks of no rows (a boolean mask's, say) merge into their neighbours:
    # a reduction over an empty chunk has no identity (min, max) in dask.
    rows = tuple(size for size in X.chunks[0] if size)
    if len(rows) < len(X.chunks[0]):
        X = X.rechunk({0: rows})

    def aligned(values, name):
        if name == "y" and not is_dask_array(values):
            # As validation converts y in memory: pandas' nullable Int64
            # labels become float64 (scikit-learn's classes_), say.
            values = check_array(
                values,
                ensure_2d=False,
                dtype=None,
                ensure_min_samples=0,
                input_name="y",
            )
        elif not is_dask_array(values):
            values = np.asarray(values)
        elif any(math.isnan(size) for size in values.shape):
            raise ValueError(
                f"{name} has chunks of unknown size; call "
                f"{name}.compute_chunk_sizes() before fitting {estimator_name}."
            )
        if name == "sample_weight" and values.ndim == 0:
            # A number weighs every row alike, as for data in memory.
            if is_dask_array(values):
                values = values.compute()
            values = np.full(n_samples, values, dtype=np.float64)
        if name == "y" and values.ndim == 2 and values.shape[1] == 1:
            warn_at_caller(
                "A column-vector y was passed when a 1d array was expected. "
                "Please change the shape of y to (n_samples, ), for example "
                "using ravel().",
                DataConversionWarning,
            )
            values = values[:, 0]
        if values.ndim != 1 or values.shape[0] != n_samples:
            raise ValueError(
                f"{name} must have shape ({n_samples},) to match X; got {values.shape}."
            )
        if is_dask_array(values):
            return values.rechunk((rows,))
        return da.from_array(values, chunks=(rows,))

    y = aligned(y, "y")
    if sample_weight is not None:
        # In float64 whatever X's dtype, as in memory: only their ratios
        # count, and float32 X turned weights of 1e39 into inf.
        sample_weight = aligned(sample_weight, "sample_weight").astype(np.float64)
    return dask.persist(X, y, sample_weight)


def encode_labels(y):
    """``(classes, y_index)``: the distinct labels (computed), lazy indices."""
    import dask.array as da

    try:
        classes = da.unique(y).compute()
    except TypeError:
        # Labels that do not sort together (None, strings and numbers): the
        # distinct values of each chunk, unsorted, tell which.
        check_label_types(
            y.map_blocks(_distinct_unsorted, dtype=object, chunks=(np.nan,)).compute()
        )
        raise
    if classes.dtype.kind == "f":
        # scikit-learn's error for y in memory (its check of the targets
        # first warned that NaN cannot be cast to an integer).
        assert_all_finite(classes, estimator_name=None, input_name="y")
    check_classification_targets(classes)
    return classes, y.map_blocks(_searchsorted_block, classes, dtype=np.intp)


def _distinct_unsorted(y_block):
    return np.array(list(dict.fromkeys(y_block.tolist())), dtype=object)


def _searchsorted_block(y_block, classes):
    return np.searchsorted(classes, y_block)


def sample_weights(sample_weight, X):
    """Validated weights as a dask array (all ones when None)."""
    import dask
    import dask.array as da

    if sample_weight is None:
        return da.ones(X.shape[0], dtype=np.float64, chunks=(X.chunks[0],))
    finite, negative, positive, totals, largest = dask.compute(
        da.isfinite(sample_weight).all(),
        (sample_weight < 0).any(),
        (sample_weight > 0).any(),
        sample_weight.map_blocks(
            _block_total,
            chunks=((1,) * sample_weight.numblocks[0],),
            dtype=np.float64,
        ),
        sample_weight.max(),
    )
    raise_for_sample_weight(
        finite=finite, negative=negative, positive=positive, size=X.shape[0]
    )
    with np.errstate(over="ignore"):
        total = totals.sum()
    if not np.isfinite(total):
        # Divided by the largest, as in memory (see _summable_weights): the
        # fit divides them by their sum, which overflowed, and every weight
        # became 0 (a model of zeros, silently).
        return sample_weight / largest
    return sample_weight


def _block_total(block):
    """A chunk's sum, as a one-entry array (inf where it overflows)."""
    with np.errstate(over="ignore"):
        return np.array([block.sum()])


def class_totals(y_index, weights, n_classes):
    """Total weight of each class, computed."""
    import dask.array as da

    return da.bincount(y_index, weights=weights, minlength=n_classes).compute()


def take(values, y_index):
    """``values[y_index]`` for a small in-memory ``values``, lazily."""
    return y_index.map_blocks(_take_block, values, dtype=values.dtype)


def _take_block(index_block, values):
    return values[index_block]


def mean_and_range(X, sample_weight, *, mean=True, per_feature=False, estimator_name):
    """``(weighted mean, min, max)`` of X in one computation, as in memory.

    ``sample_weight`` sums to one.  The range is over rows of positive
    weight and includes 0 (with ``per_feature``: arrays, one range per
    feature, 0 where no row has positive weight); non-finite values
    anywhere in X raise scikit-learn's errors.
    """
    import dask
    import dask.array as da

    weighted = sample_weight[:, None] > 0
    if per_feature:
        low = da.where(weighted, X, np.inf).min(axis=0)
        high = da.where(weighted, X, -np.inf).max(axis=0)
    else:
        kept = da.where(weighted, X, 0)
        low, high = da.minimum(kept.min(), 0), da.maximum(kept.max(), 0)
    # In float64: a float32 sum down a long chunk of values far from 0
    # drifts (see sk_softmax._loss._weighted_column_sums).
    total = X.T @ da.asarray(sample_weight).astype(np.float64) if mean else None
    total, low, high, has_nan, has_inf = dask.compute(
        total, low, high, da.isnan(X).any(), da.isinf(X).any()
    )
    if has_nan or has_inf:
        raise_not_finite(has_nan=has_nan, dtype=X.dtype, estimator_name=estimator_name)
    if mean:
        total = np.asarray(total, dtype=np.float64)
    if per_feature:
        low, high = (np.asarray(bound, dtype=np.float64) for bound in (low, high))
        empty = low > high  # no row of positive weight
        low[empty] = high[empty] = 0.0
        return total, low, high
    return total, float(low), float(high)


def mean_shift(X, sample_weight, mean, columns):
    """As :func:`sk_softmax._loss.mean_shift`, computed (in memory)."""
    import dask.array as da

    weights = da.asarray(sample_weight).astype(np.float64)
    # (Rows of zero weight may overflow: 0 * inf is NaN.)
    deviations = da.where(
        weights[:, None] > 0, X[:, columns].astype(np.float64) - mean, 0.0
    )
    total, weight = da.compute(deviations.T @ weights, weights.sum())
    total = np.asarray(total, dtype=np.float64)
    return total / float(weight) if weight > 0 else total


def curvature_sample(X, sample_weight):
    """The rows the curvature bound is estimated on, computed (in memory)."""
    import dask

    return dask.compute(*_curvature_sample(X, sample_weight))


def make_objective(X, y_index, weights, *, alpha, n_threads=1, **options):
    """``objective(params, None) -> (loss, grad)`` summed over X's chunks.

    The same signature as :func:`sk_softmax._softmax._make_objective`
    (``n_threads`` is dask's business here); ``weights`` sum to one over
    all samples, or are None (all equal).  The penalty is added by the first
    chunk only.  Full batch only: there are no mini-batches of a dask array.
    """
    import dask

    # Persisted collections hold their chunks (on a cluster: futures that
    # keep them on the workers) as long as the objective refers to them.
    if weights is None:
        X, y_index = dask.persist(X, y_index)
        weights = [1.0 / X.shape[0]] * X.numblocks[0]
    else:
        X, y_index, weights = dask.persist(X, y_index, weights)

    def objective(params, batch):
        if batch is not None:
            raise ValueError("A dask array is fitted on the full batch only.")
        chunks = zip(
            X.to_delayed().ravel(),
            y_index.to_delayed().ravel(),
            weights if isinstance(weights, list) else weights.to_delayed().ravel(),
            strict=True,
        )
        shared = dask.delayed(params)
        parts = [
            dask.delayed(_chunk_objective)(
                shared, X_c, y_c, w_c, alpha if k == 0 else 0.0, options
            )
            for k, (X_c, y_c, w_c) in enumerate(chunks)
        ]
        while len(parts) > 1:
            parts = [
                dask.delayed(_add)(*parts[k : k + _FAN_IN])
                for k in range(0, len(parts), _FAN_IN)
            ]
        ((loss, grad),) = dask.compute(parts[0])
        return loss, grad

    return objective


def _chunk_objective(params, X, y_index, weights, alpha, options):
    """One chunk's share of the loss and gradient (runs on a worker)."""
    from ._softmax import _make_objective

    # Workers may run several chunks at once: one BLAS thread each, and
    # overflow is reported by the solver, not by numpy warnings.
    with single_threaded_blas(), np.errstate(all="ignore"):
        objective = _make_objective(X, y_index, weights, alpha=alpha, **options)
        return objective(params, None)


def _add(*parts):
    loss = sum(part[0] for part in parts)
    grad = parts[0][1].copy()
    for part in parts[1:]:
        grad += part[1]
    return loss, grad


def map_rows(function, X, n_features, *, n_columns, dtype):
    """``function`` applied to each chunk of rows of X, lazily.

    ``n_columns`` None means one value per sample (a 1-D result).
    """
    if X.ndim != 2:
        # scikit-learn's message for arrays in memory.
        raise ValueError(
            f"Expected 2D array, got {X.ndim}D array instead. Reshape your "
            "data either using array.reshape(-1, 1) if your data has a single "
            "feature or array.reshape(1, -1) if it contains a single sample."
        )
    if X.shape[1] != n_features:
        raise ValueError(
            f"X has {X.shape[1]} features, but "
            f"SoftmaxRegression is expecting {n_features} features as input."
        )
    X = X.rechunk({1: -1})
    empty = np.empty((0,) if n_columns is None else (0, n_columns), dtype=dtype)

    def on_block(block):
        # A chunk of no rows (a boolean mask's, say): validation refuses it.
        return empty if block.shape[0] == 0 else function(block)

    if n_columns is None:
        return X.map_blocks(on_block, drop_axis=1, dtype=dtype)
    return X.map_blocks(on_block, chunks=(X.chunks[0], (n_columns,)), dtype=dtype)


def weighted_std(X, sample_weight, mean, unit=1.0):
    """Weighted standard deviation of each feature, computed (in memory).

    As :func:`sk_softmax._loss.weighted_std`: one pass over the chunks, in
    units of ``unit`` (see :func:`sk_softmax._loss._std_from_sums`).
    """
    import dask.array as da

    # In float64 whatever X's dtype (see the in-memory one); rows of zero
    # weight may overflow, and 0 * inf is NaN.
    centered = (X.astype(np.float64) - mean) * (1.0 / unit)
    weights = da.asarray(sample_weight).astype(np.float64)
    centered = da.where(weights[:, None] > 0, centered, 0.0)
    first, second, total = da.compute(
        centered.T @ weights, (centered * centered).T @ weights, weights.sum()
    )
    return _std_from_sums(first, second, total, mean, unit)


def weighted_gram(X, sample_weight, mean, scale, coef=None, intercept=None, y=None):
    """``X_c^T diag(s) X_c``, ``X_c = (X - mean) / scale``, computed (in memory).

    As :func:`sk_softmax._loss.weighted_gram`, in float64: a sum of the
    chunks' Gram matrices; given ``coef``, each row also weighs its
    curvature at the logits ``X_c coef + intercept`` (and its label ``y``).
    """
    import dask.array as da

    centered = (X.astype(np.float64) - mean) * (1.0 / scale)
    weights = da.asarray(sample_weight).astype(np.float64)
    if coef is not None:
        logits = centered @ np.asarray(coef, dtype=np.float64)
        if intercept is not None:
            logits = logits + np.asarray(intercept, dtype=np.float64)
        logits = logits.rechunk({1: -1})
        if y is None:
            curvature = logits.map_blocks(
                softmax_curvature, drop_axis=1, dtype=np.float64
            )
        else:
            labels = da.asarray(y).rechunk((logits.chunks[0],))[:, None]
            curvature = da.map_blocks(
                _labeled_curvature, logits, labels, drop_axis=1, dtype=np.float64
            )
        weights = weights * curvature
    root = da.sqrt(weights)
    # Rows of zero weight may overflow: 0 * inf is NaN.
    rows = da.where(root[:, None] > 0, centered * root[:, None], 0.0)
    return np.asarray((rows.T @ rows).compute(), dtype=np.float64)


def _labeled_curvature(logits, labels):
    """softmax_curvature of a chunk, its labels a column."""
    return softmax_curvature(logits, labels[:, 0])
