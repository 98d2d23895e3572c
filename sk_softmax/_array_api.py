"""Array API inputs: training where the data lives (a GPU, say).

With ``sklearn.set_config(array_api_dispatch=True)``, X may be an array of
another namespace than numpy, a torch tensor on a GPU for instance.  The
solvers keep their parameters in numpy on the CPU and only ever ask for the
loss and gradient at some parameters, over the full batch or over a batch of
row indices.  :func:`sk_softmax._softmax._make_objective` handles the
parameters for every kind of X; :func:`device_loss` sends the coefficients
(``n_classes x n_features`` numbers) and a batch's row indices to X's
device, computes the data term there in X's namespace, and brings back the
loss and the gradient in one transfer (the L2 penalty is added on the CPU):
X never leaves its device.  Labels and sample weights (one number a sample)
are validated and encoded on the CPU; those of all samples go to the device
once, and a batch takes its labels there.

The math is that of :func:`sk_softmax.loss_and_gradient`, written with the
array API standard's functions only; the numpy core keeps its
numpy-specific layout and threading.  After the fit, the fitted arrays go
to X's namespace and device (:func:`converter_to`), as scikit-learn keeps
them; ``classes_`` of strings and the solver's state stay numpy.
"""

import numpy as np

from ._compat import (
    array_namespace,
    host_array,
    max_float_dtype,
    raise_not_finite,
    to_numpy,
)
from ._loss import (
    _CHUNK_ROWS,
    _curvature_sample,
    _std_from_sums,
    softmax_curvature,
)


def float_dtypes(X):
    """The float dtypes X is fitted in: ``[float64, float32]`` of its namespace.

    Only float32 where the device has no float64 (Apple's MPS).
    """
    found = array_namespace(X)
    if found is None:
        return [np.float64, np.float32]
    xp, device = found
    if max_float_dtype(xp, device) == xp.float32:
        return [xp.float32]
    return [xp.float64, xp.float32]


def reject_unsupported(X):
    """Errors for complex X (scikit-learn's check misses it on torch), sparse tensors.

    (A complex tensor was cast to its real part, silently.)  Sparse torch
    tensors, which the array API does not describe, are refused too (they
    failed deep in torch's reductions).
    """
    found = array_namespace(X)
    if found is not None and found[0].isdtype(X.dtype, "complex floating"):
        raise ValueError("Complex data not supported.")
    layout = getattr(X, "layout", None)
    if found is not None and layout is not None and "strided" not in str(layout):
        raise TypeError(
            f"A sparse tensor ({layout}) is not supported; pass a "
            "scipy.sparse matrix (CSR), or the dense tensor (X.to_dense())."
        )


def numpy_dtype(X):
    """The numpy dtype matching the float dtype of X."""
    xp, _ = array_namespace(X)
    return np.float32 if X.dtype == xp.float32 else np.float64


def _on_device(values, X, dtype=None):
    """``values`` (numpy) on X's device, in ``dtype`` (default: X's)."""
    xp, device = array_namespace(X)
    return xp.asarray(values, dtype=X.dtype if dtype is None else dtype, device=device)


def converter_to(X):
    """``convert(values)``: an array (numpy or not) moved to X's namespace and device.

    For the fitted arrays of a model trained on X; float64 becomes float32
    where the device has no float64.
    """
    xp, device = array_namespace(X)
    narrow = max_float_dtype(xp, device) == xp.float32

    def convert(values):
        values = host_array(values)
        if narrow and values.dtype == np.float64:
            values = values.astype(np.float32)
        return xp.asarray(values, device=device)

    return convert


def mean_and_range(X, sample_weight, *, mean=True, per_feature=False, estimator_name):
    """``(weighted mean, min, max)`` of X on its device, as in memory.

    ``sample_weight`` (numpy) sums to one.  The range is over rows of
    positive weight and includes 0 (with ``per_feature``: numpy arrays, one
    range per feature, 0 where no row has positive weight); NaN or infinity
    anywhere in X raise scikit-learn's errors.
    """
    xp, where = array_namespace(X)
    weights = _on_device(sample_weight, X)
    low, high = xp.min(X), xp.max(X)
    bad = not (bool(xp.isfinite(low)) and bool(xp.isfinite(high)))
    if bad:
        has_nan = bool(xp.any(xp.isnan(X)))
        raise_not_finite(
            has_nan=has_nan,
            dtype=X.dtype,
            estimator_name=estimator_name,
            xp=xp,
            device=where,
        )
    kept = X
    if not bool(xp.all(weights > 0)):
        kept = X[weights > 0]
        low, high = xp.min(kept), xp.max(kept)
    total = None
    if mean:
        total = np.asarray(to_numpy(weights @ X), dtype=np.float64)
    if per_feature:
        if kept.shape[0] == 0:
            return total, np.zeros(X.shape[1]), np.zeros(X.shape[1])
        low, high = (
            np.asarray(to_numpy(bound(kept, axis=0)), dtype=np.float64)
            for bound in (xp.min, xp.max)
        )
        return total, low, high
    return total, min(float(low), 0.0), max(float(high), 0.0)


def mean_shift(X, sample_weight, mean, columns):
    """As :func:`sk_softmax._loss.mean_shift`, on X's device, as numpy."""
    xp, device = array_namespace(X)
    wide = max_float_dtype(xp, device)
    center = _on_device(mean, X, dtype=wide)
    indices = _on_device(np.asarray(columns), X, dtype=xp.int64)
    total = np.zeros(len(columns))
    for start in range(0, X.shape[0], _CHUNK_ROWS):
        stop = min(start + _CHUNK_ROWS, X.shape[0])
        chunk = xp.astype(xp.take(X[start:stop, :], indices, axis=1), wide) - center
        weights = _on_device(sample_weight[start:stop], X, dtype=wide)
        # Rows of zero weight may overflow: 0 * inf is NaN.
        chunk = xp.where(weights[:, None] > 0, chunk, xp.zeros_like(chunk))
        total += np.asarray(to_numpy(weights @ chunk), dtype=np.float64)
    weight = float(np.sum(np.asarray(sample_weight, dtype=np.float64)))
    return total / weight if weight > 0 else total


def curvature_sample(X, sample_weight):
    """The rows the curvature bound is estimated on, copied to numpy."""
    xp, device = array_namespace(X)

    def take(X, rows):
        return xp.take(X, xp.asarray(rows, device=device), axis=0)

    rows, weights = _curvature_sample(X, sample_weight, take=take)
    return to_numpy(rows), weights


def weighted_std(X, sample_weight, mean, unit=1.0):
    """Weighted standard deviation of each feature, on X's device, as numpy.

    As :func:`sk_softmax._loss.weighted_std`: one pass, a chunk of rows at a
    time, in units of ``unit`` (see :func:`sk_softmax._loss._std_from_sums`).
    """
    xp, device = array_namespace(X)
    # In the widest float of the device: float32 squares of a feature 2**64
    # times narrower than the widest underflowed (see the in-memory one).
    wide = max_float_dtype(xp, device)
    center = _on_device(mean, X, dtype=wide)
    n_samples = X.shape[0]
    first, second = np.zeros(X.shape[1]), np.zeros(X.shape[1])
    for start in range(0, n_samples, _CHUNK_ROWS):
        stop = min(start + _CHUNK_ROWS, n_samples)
        chunk = (xp.astype(X[start:stop, :], wide) - center) * (1.0 / unit)
        weights = _on_device(sample_weight[start:stop], X, dtype=wide)
        # Rows of zero weight may overflow: 0 * inf is NaN.
        chunk = xp.where(weights[:, None] > 0, chunk, xp.zeros_like(chunk))
        first += np.asarray(to_numpy(weights @ chunk), dtype=np.float64)
        second += np.asarray(to_numpy(weights @ (chunk * chunk)), dtype=np.float64)
    total = float(np.sum(np.asarray(sample_weight, dtype=np.float64)))
    return _std_from_sums(first, second, total, mean, unit)


def weighted_gram(X, sample_weight, mean, scale, coef=None, intercept=None, y=None):
    """``X_c^T diag(s) X_c``, ``X_c = (X - mean) / scale``, as float64 numpy.

    As :func:`sk_softmax._loss.weighted_gram`: one pass, a chunk of rows at
    a time on X's device, in the widest float there; given ``coef``, each
    row also weighs its curvature at the logits ``X_c coef + intercept``
    (and its label ``y``, in memory), computed on the host from the chunk's
    logits.
    """
    xp, device = array_namespace(X)
    wide = max_float_dtype(xp, device)
    center = _on_device(mean, X, dtype=wide)
    inverse = _on_device(1.0 / scale, X, dtype=wide)
    if coef is not None:
        coef_there = _on_device(coef, X, dtype=wide)
    n_samples, n_features = X.shape
    gram = np.zeros((n_features, n_features))
    for start in range(0, n_samples, _CHUNK_ROWS):
        stop = min(start + _CHUNK_ROWS, n_samples)
        chunk = (xp.astype(X[start:stop, :], wide) - center) * inverse
        weights = np.asarray(sample_weight[start:stop], dtype=np.float64)
        if coef is not None:
            logits = np.asarray(to_numpy(chunk @ coef_there), dtype=np.float64)
            if intercept is not None:
                logits += intercept
            labels = None if y is None else y[start:stop]
            weights = weights * softmax_curvature(logits, labels)
        root = _on_device(np.sqrt(weights), X, dtype=wide)
        # Rows of zero weight may overflow: 0 * inf is NaN.
        chunk = xp.where(root[:, None] > 0, chunk * root[:, None], 0.0)
        gram += np.asarray(to_numpy(chunk.T @ chunk), dtype=np.float64)
    return gram


def row_norms_sq(X, mean, scale):
    """``||(x_i - mean) / scale||^2`` for every row, on X's device, as numpy."""
    xp, _ = array_namespace(X)
    center = _on_device(mean, X)
    inverse = _on_device(1.0 / scale, X)
    n_samples = X.shape[0]
    norms = np.empty(n_samples)
    for start in range(0, n_samples, _CHUNK_ROWS):
        stop = min(start + _CHUNK_ROWS, n_samples)
        chunk = (X[start:stop, :] - center) * inverse
        norms[start:stop] = to_numpy(xp.sum(chunk * chunk, axis=1))
    return norms


def loss_and_gradient(xp, coef, intercept, X, y, weights, label_smoothing, classes):
    """``(loss, grad_coef, grad_intercept)`` of the data term, on X's device.

    ``y`` holds class indices, ``weights`` sums to one over X's rows (a
    scalar when equal); ``intercept`` may be None; ``classes`` is
    ``arange(n_classes)`` on the device, in ``y``'s dtype.  The math of
    :func:`sk_softmax._loss._loss_and_gradient`, without offset or penalty
    (the caller adds it where the coefficients are, on the CPU), in as few
    operations as the standard allows: on an accelerator each is a kernel
    launch, which costs more than its work at mini-batch sizes.
    """
    n_classes = coef.shape[0]
    eps = label_smoothing
    logits = X @ coef.T
    if intercept is not None:
        logits = logits + intercept
    logits = logits - xp.max(logits, axis=1, keepdims=True)
    exp = xp.exp(logits)
    total = xp.sum(exp, axis=1)
    # Each row's true class, as a boolean mask (the standard has no
    # scatter): the smoothed targets themselves are never formed.
    true = y[:, None] == classes
    true_logit = xp.sum(xp.where(true, logits, 0.0), axis=1)
    per_sample = xp.log(total) - (true_logit if not eps else (1.0 - eps) * true_logit)
    if eps:
        per_sample = per_sample - (eps / n_classes) * xp.sum(logits, axis=1)
    grad = exp / total[:, None]
    if eps:
        grad = grad - eps / n_classes
    grad = xp.where(true, grad - (1.0 - eps), grad)
    if np.ndim(weights) == 0:
        loss = xp.sum(per_sample) * weights
        grad = grad * weights
    else:
        # Rows of zero weight count for nothing, and so do their logits,
        # which may have overflowed (0 * inf is NaN).
        kept = weights > 0
        loss = xp.sum(xp.where(kept, per_sample * weights, 0.0))
        grad = xp.where(kept[:, None], grad * weights[:, None], 0.0)
    grad_coef = grad.T @ X
    grad_intercept = xp.sum(grad, axis=0) if intercept is not None else None
    return loss, grad_coef, grad_intercept


def device_loss(
    X,
    y_index,
    weights,
    *,
    alpha,
    label_smoothing,
    offset,
    n_threads,
    center_rows=None,
):
    """``loss(coef, intercept, y, weights, batch)`` computed on X's device.

    What :func:`sk_softmax._softmax._make_objective` calls for an X of
    another array namespace (the same contract as its in-memory default;
    ``n_threads`` is the device's business): the numpy coefficients and the
    batch's row indices go to the device, the loss and the gradient come
    back as numpy, in one transfer.  The labels and weights of all samples
    are sent once: a batch takes its labels there, by its indices, and only
    unequal weights (scaled for the batch by the caller) travel with
    each batch.  Every transfer waits for the device, so a mini-batch step
    makes as few as it can.  With ``center_rows`` (the features far from
    0, or None), the rows are centered on the device (a copy of the batch)
    rather than the intercept shifted: see
    :func:`sk_softmax._loss._loss_and_gradient`.
    """
    xp, device = array_namespace(X)

    def to_device(values, dtype=X.dtype):
        # A scalar (equal weights) stays a Python number.
        if np.ndim(values) == 0:
            return values
        return xp.asarray(values, dtype=dtype, device=device)

    all_y = to_device(y_index, dtype=xp.int64)
    all_weights = to_device(weights)
    offset = None if offset is None else to_device(offset)
    arange = {}  # n_classes -> arange(n_classes) on the device

    def loss(coef, intercept, y, weights, batch):
        n_classes, n_coef = coef.shape[0], coef.size
        if n_classes not in arange:
            arange[n_classes] = xp.arange(n_classes, dtype=xp.int64, device=device)
        coef_host, coef = coef, to_device(coef)
        intercept = None if intercept is None else to_device(intercept)
        if batch is None:
            X_b, y, weights = X, all_y, all_weights
        else:
            rows = to_device(batch, dtype=xp.int64)
            X_b, y = xp.take(X, rows, axis=0), xp.take(all_y, rows)
            weights = to_device(weights)
        implicit = offset is not None and intercept is not None
        if implicit and center_rows is not None:
            X_b, implicit = X_b - offset, False
            if np.ndim(weights):
                # Rows of zero weight may overflow: 0 * inf is NaN.
                X_b = xp.where(weights[:, None] > 0, X_b, xp.zeros_like(X_b))
        elif implicit:
            # z = W (x - offset) + b': shift the intercept, not the data.
            intercept = intercept - coef @ offset
        value, grad_coef, grad_intercept = loss_and_gradient(
            xp, coef, intercept, X_b, y, weights, label_smoothing, arange[n_classes]
        )
        parts = [xp.reshape(value, (1,))]
        if grad_intercept is not None:
            if implicit:
                grad_coef = grad_coef - grad_intercept[:, None] * offset[None, :]
            parts.append(grad_intercept)
        parts.append(xp.reshape(grad_coef, (-1,)))
        # One transfer back: [loss, grad_intercept, grad_coef].
        host = to_numpy(xp.concat(parts), xp)
        start = host.size - n_coef
        grad_intercept = None if grad_intercept is None else host[1:start]
        value, grad_coef = float(host[0]), host[start:].reshape(coef_host.shape)
        if alpha:
            # The penalty, on the CPU: its coefficients are already there.
            value += 0.5 * alpha * float(np.vdot(coef_host, coef_host))
            grad_coef += alpha * coef_host
        return value, grad_coef, grad_intercept

    return loss


def logits(X, coef, intercept):
    """``X W^T + b`` on X's device, or None unless every entry is finite.

    ``coef`` and ``intercept`` are the fitted arrays (on X's device after a
    fit there, numpy after a fit on numpy).  Where finite
    inputs overflow, the caller takes the numpy path, which rescales them.
    """
    xp, _ = array_namespace(X)
    raw = X @ _on_device(coef, X).T + _on_device(intercept, X)
    return raw if bool(xp.all(xp.isfinite(raw))) else None


def predictions(method, raw, classes):
    """What the estimator's ``method`` returns, from the logits ``raw``.

    ``classes`` is the fitted numpy ``classes_``: ``predict`` returns
    labels on the device, or numpy for string labels (no array API dtype).
    """
    xp, device = array_namespace(raw)
    if method == "decision_function":
        return raw[:, 1] - raw[:, 0] if classes.size == 2 else raw
    if method == "predict":
        best = xp.argmax(raw, axis=1)
        narrow = classes.dtype == np.float64 and (
            max_float_dtype(xp, device) == xp.float32
        )
        if classes.dtype.kind not in "biuf" or narrow:
            # (Labels the device cannot hold, strings or float64 where it
            # has no float64, come back as numpy.)
            return classes[to_numpy(best)]
        if classes.dtype.kind == "u" and classes.dtype.itemsize > 1:
            # (torch takes no elements of uint16 to uint64 tensors.)
            return xp.asarray(classes[to_numpy(best)], device=device)
        return xp.take(xp.asarray(classes, device=device), best)
    shifted = raw - xp.max(raw, axis=1, keepdims=True)
    log_proba = shifted - xp.log(xp.sum(xp.exp(shifted), axis=1, keepdims=True))
    if method == "predict_log_proba":
        return log_proba
    proba = xp.exp(log_proba)
    return proba / xp.sum(proba, axis=1, keepdims=True)
