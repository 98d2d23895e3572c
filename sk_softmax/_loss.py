"""Softmax cross-entropy with label smoothing and L2: value, gradient, curvature.

The objective
-------------
For ``n`` samples ``x_i`` (rows of ``X``), ``K`` classes, labels ``y_i`` in
``{0, ..., K-1}`` and sample weights ``s_i >= 0`` with ``S = sum_i s_i``::

    z_i = W x_i + b                               raw prediction, shape (K,)
    log p_i = z_i - logsumexp(z_i)                log-probabilities
    t_i = (1 - eps) onehot(y_i) + eps / K         smoothed target
    J(W, b) = 1/S sum_i s_i (-sum_k t_ik log p_ik) + alpha/2 ||W||_F^2

Because ``sum_k t_ik = 1``, the per-sample term simplifies to::

    logsumexp(z_i) - (1 - eps) z_{i, y_i} - eps/K sum_k z_ik

and its gradient in ``z_i`` is ``p_i - t_i`` whatever ``eps`` is.  With
``G = diag(s) (P - T) / S`` of shape (n, K)::

    dJ/dW = G^T X + alpha W         dJ/db = 1^T G

The intercept is never penalized.

Conventions
-----------
- ``coef`` is ``W`` of shape (n_classes, n_features), ``intercept`` is ``b``
  of shape (n_classes,).
- Internally the raw prediction is held transposed, shape (n_classes,
  n_samples): with few classes, per-sample reductions over classes then run
  along contiguous rows, which is what numpy vectorizes well.
- The smoothed target matrix ``T`` is never built: the gradient block is
  ``P`` scaled by the normalized weights, minus ``eps/K``, minus ``1 - eps``
  at each sample's true class.
- Every computation stays in the dtype of ``X`` (float32 or float64).
"""

import contextlib
import math
import numbers
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import cache, lru_cache, partial

import numpy as np
import scipy.sparse as sp
import threadpoolctl
from scipy.linalg import cholesky, eigvalsh, get_blas_funcs
from scipy.sparse.linalg import LinearOperator, eigsh
from threadpoolctl import ThreadpoolController

try:  # (scipy's compiled sparse routines: see _sparse_product)
    from scipy.sparse import _sparsetools
except ImportError:  # pragma: no cover - scipy keeps them there since 1.8
    _sparsetools = None

__all__ = [
    "loss_and_gradient",
    "log_softmax",
    "softmax",
    "lipschitz_constants",
    "largest_eigenvalue",
    "mini_batch_curvature",
    "feature_scales",
    "weighted_std",
    "stored_magnitudes",
]


# |logit| bounds within which exp(z), and the sum of exp over up to 2**20
# classes, stay finite and normal: exp(+-64) in float32 (range 1e+-38),
# exp(+-512) in float64 (range 1e+-308).
_EXP_SAFE = {np.float32: 64.0, np.float64: 512.0}
# The range of a sample's sum of exp(logits) within which the gradient takes
# the logits unshifted (see _gradient_block_inplace): about exp(+-64) in
# float32 and exp(+-512) in float64, up to 1024 classes.  Below it, an exp
# that underflows errs by at most half the smallest subnormal number,
# 2**-1075 (float32: 2**-150), a probability by far less than its dtype's
# precision; within it, the loss log(sum) - z_true of a sample loses at most
# what rounding logits of that size loses (about 512 * 2**-53), as with the
# logits within +-_EXP_SAFE that the shift skipped before.
_SUM_EXP_RANGE = {
    np.float32: (2.0**-92, 2.0**103),
    np.float64: (2.0**-738, 2.0**749),
}


def log_softmax(raw_prediction):
    """Row-wise log-softmax ``z - logsumexp(z)``, computed stably.

    Parameters
    ----------
    raw_prediction : ndarray of shape (n_samples, n_classes)
        Logits ``z``.

    Returns
    -------
    log_proba : ndarray of shape (n_samples, n_classes)
        ``log softmax(z)``, finite wherever ``z`` is finite and the row
        range does not overflow, even where ``softmax(z)`` underflows to 0;
        ``-inf`` (without a warning) where ``z_k - max(z)`` is below the
        dtype's range, and where ``z_k = -inf``.

    See Also
    --------
    softmax : The probabilities.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_softmax._loss import log_softmax
    >>> log_softmax(np.array([[0.0, 1000.0]])).round(3)
    array([[-1000.,     0.]])
    """
    shifted = _float_logits(raw_prediction)
    if not _exp_safe(shifted):
        with np.errstate(over="ignore"):
            shifted = shifted - shifted.max(axis=1, keepdims=True)
    exp = np.exp(shifted, order="C")  # (for the flat indices below)
    sum_exp = _class_sums(exp)
    # A likely class: log(sum) rounds the others' small share away (logits
    # -20, 20: 0 for the top class, not -4.2e-18).  Its log is log1p(-q) of
    # the others' share q < 1/2 of the sum instead.  (One class of a row at
    # most is above 1/2: a flat mask, no reduction along the short rows;
    # two of 1/2 each would both be right.)  float64 only: in float32 a
    # probability within 2**-24 of 1 rounds to 1, and scikit-learn's checks
    # want its log at 0 (within 1e-9), as log(predict_proba) gives it.
    likely = np.empty(0, dtype=np.intp)
    if exp.dtype == np.float64:
        likely = np.flatnonzero((exp > 0.5 * sum_exp[:, None]).reshape(-1))
    if likely.size:
        rows = likely // exp.shape[1]
        exp.reshape(-1)[likely] = 0.0
        share = _class_sums(exp)[rows] / sum_exp[rows]
    log_proba = np.subtract(shifted, np.log(sum_exp)[:, None], out=exp)
    if likely.size:
        log_proba.reshape(-1)[likely] = np.log1p(-share) + 0.0  # (no -0.0)
    return log_proba


def softmax(raw_prediction, *, copy=True):
    """Row-wise softmax ``exp(z) / sum(exp(z))``, computed stably.

    Parameters
    ----------
    raw_prediction : ndarray of shape (n_samples, n_classes)
        Logits ``z``, finite or ``-inf``.
    copy : bool, default=True
        False overwrites ``raw_prediction`` with the result when it is a
        float32 or float64 array.

    Returns
    -------
    proba : ndarray of shape (n_samples, n_classes)
        Rows sum to one; 0 only where the probability underflows the dtype.

    See Also
    --------
    log_softmax : The log-probabilities, finite where these underflow.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_softmax._loss import softmax
    >>> softmax(np.array([[0.0, np.log(3.0)], [1000.0, 1000.0]]))
    array([[0.25, 0.75],
           [0.5 , 0.5 ]])
    """
    proba = _float_logits(raw_prediction)
    if copy and proba is raw_prediction:
        proba = proba.copy()
    if not _exp_safe(proba):
        # z_k - max(z) beyond the dtype's range is -inf: probability 0.
        with np.errstate(over="ignore"):
            proba -= proba.max(axis=1, keepdims=True)
    np.exp(proba, out=proba)
    proba /= _class_sums(proba)[:, None]
    return proba


# The bound along the steps of a confident row, over its bound at the
# current point (see softmax_curvature).  Without it, a preconditioner
# formed again from the curvature at the current point took 1.5 to 2.1 times
# the passes on data of one class at 96 to 98.5% (the confident majority
# near the minority gains curvature as the steps move the boundary), where
# a slack of 4 takes 1 to 1.5 times; it gives up the gains on noisy
# low-rank data (40,000 x 100 of rank 8: 108 passes, as with the bound
# formed once, against 87).
_CURVATURE_SLACK = 4.0


def softmax_curvature(raw_prediction, y=None):
    """Per row, a bound on the softmax cross-entropy's curvature in the logits.

    The loss's Hessian in a row's logits is ``diag(p) - p p^T`` (``p`` its
    probabilities), whatever the targets and their smoothing.  Its largest
    eigenvalue is at most ``max_k p_k`` (the matrix is below ``diag(p)``)
    and at most ``max_k 2 p_k (1 - p_k)`` (Gershgorin's discs), so at most
    1/2; both are exact (``1 / K``) where the probabilities are uniform.
    A confident row, whose largest probability is near 1, curves the loss
    little: its bound goes to 0 with ``1 - max_k p_k``.

    Parameters
    ----------
    raw_prediction : ndarray of shape (n_samples, n_classes)
        Finite logits ``z``.
    y : ndarray of shape (n_samples,), default=None
        Class indices, for a bound along the next steps rather than at this
        point: a row whose class has a probability below 1/2 gets 1/2
        (steps move it towards its class, through the uncertain region,
        where its curvature grows: a row confidently wrong curves the loss
        little at this point only), the others ``_CURVATURE_SLACK`` times
        their bound (a confident row's curvature, about ``exp(-margin)``,
        grows that much where a step takes 1.4 from its margin), at most
        1/2.

    Returns
    -------
    curvature : ndarray of shape (n_samples,)
        ``min(max_k p_k, max_k 2 p_k (1 - p_k))``, in float64, in [0, 1/2]
        (with ``y``, as above).

    Examples
    --------
    >>> import numpy as np
    >>> from sk_softmax._loss import softmax_curvature
    >>> logits = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 20.0]])
    >>> softmax_curvature(logits).round(6)
    array([0.333333, 0.      ])
    >>> softmax_curvature(logits, y=np.array([0, 2])).round(6)
    array([0.5, 0. ])
    """
    # Classes along the first axis: reductions over a few classes are far
    # faster across rows than along them.
    proba = np.array(np.asarray(raw_prediction).T, dtype=np.float64, order="C")
    proba -= proba.max(axis=0)
    np.exp(proba, out=proba)
    total = proba.sum(axis=0)
    proba /= total
    largest = 1.0 / total  # (the largest logit's term is exp(0) = 1)
    if y is not None:
        uncertain = proba[np.asarray(y), np.arange(proba.shape[1])] < 0.5
    np.multiply(proba, 1.0 - proba, out=proba)
    curvature = np.minimum(largest, 2.0 * proba.max(axis=0))
    if y is not None:
        curvature *= _CURVATURE_SLACK
        curvature[uncertain | (curvature > 0.5)] = 0.5
    return curvature


def _float_logits(raw_prediction):
    """The logits as a float32 or float64 array (float64 for other types)."""
    raw_prediction = np.asarray(raw_prediction)
    if raw_prediction.dtype != np.float32:
        raw_prediction = raw_prediction.astype(np.float64, copy=False)
    return raw_prediction


def _exp_safe(raw):
    """Whether every logit lies within ``+-_EXP_SAFE``: no shift needed.

    There exp neither overflows nor underflows to 0, nor does a sum of up
    to 2**20 of them: softmax and logsumexp need no shift by each row's
    maximum (a reduction along short rows, slow in numpy, and a pass).
    """
    limit = _EXP_SAFE[raw.dtype.type]
    return bool(raw.max(initial=-np.inf) <= limit and raw.min(initial=np.inf) >= -limit)


def _class_sums(values):
    """Row sums of an (n_samples, n_classes) array.

    As a product with ones: with few classes, about six times faster than a
    reduction along the short rows.
    """
    return values @ _ones(values.shape[1], values.dtype)


@lru_cache(maxsize=16)
def _ones(size, dtype):
    """A read-only vector of ones (sums as products, without allocating it)."""
    ones = np.ones(size, dtype=dtype)
    ones.flags.writeable = False
    return ones


@lru_cache(maxsize=8)
def _blas(name, dtype):
    """scipy's BLAS function ``name`` for arrays of ``dtype``.

    (Looking it up costs about a microsecond, much of a small product's time.)
    """
    return get_blas_funcs(name, (np.empty(0, dtype=dtype),))


def _solve_lower(factor, rhs, transpose=False):
    """``L^-1 rhs``, or ``L^-T rhs`` with ``transpose``, for a lower
    triangular ``L`` (``factor``) with a nonzero diagonal.

    BLAS trsm on ``L^T`` as the upper triangle of a Fortran-ordered array
    (the view, no copy): ``scipy.linalg.solve_triangular`` gives the same
    array, but its checks and conversions took 12 us of the 13 for a
    30 x 30 factor and 2 columns, and it copied a C-ordered factor.
    Non-finite values pass through, as in a product.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_softmax._loss import _solve_lower
    >>> L = np.array([[2.0, 0.0], [1.0, 4.0]])
    >>> _solve_lower(L, np.array([[2.0], [5.0]])).ravel().tolist()
    [1.0, 1.0]
    >>> _solve_lower(L, np.array([[3.0], [4.0]]), transpose=True).ravel().tolist()
    [1.0, 1.0]
    """
    trsm = _blas("trsm", np.result_type(factor.dtype, rhs.dtype))
    return trsm(1.0, factor.T, rhs, lower=0, trans_a=0 if transpose else 1)


def _scaled_logits(X, coef, intercept):
    """Logits ``Z = X W^T + b`` as ``Z' 2^E`` entry by entry, ``Z'`` finite.

    For rows whose logits overflow the dtype: X's rows and each class's
    row of ``W`` are scaled by powers of two (exactly) before the product,
    so that ``|Z'| <= n_features + 1`` whatever the magnitudes.  Each
    class has its own exponent: with one for all (the largest), a logit
    of -1e400 flushed the others of the row (1 and 0) to 0, a tie, and
    ``predict`` took the wrong class.

    Parameters
    ----------
    X : {ndarray, sparse matrix} of shape (n_samples, n_features)
        Finite samples.
    coef : ndarray of shape (n_classes, n_features)
        Finite ``W``.
    intercept : ndarray of shape (n_classes,)
        Finite ``b``.

    Returns
    -------
    scaled : ndarray of shape (n_samples, n_classes)
        ``Z'``, finite.
    exponent : ndarray of shape (n_samples, n_classes), int
        ``E``: ``Z = Z' * 2**E`` entry by entry.

    Examples
    --------
    ``z_0 = 2e308`` is beyond float64, ``z_0 - z_1`` too, but not their
    scaled versions:

    >>> import numpy as np
    >>> from sk_softmax._loss import _scaled_logits
    >>> X, coef = np.array([[1e308, 1e308]]), np.array([[1.0, 1.0], [1.0, -1.0]])
    >>> scaled, exponent = _scaled_logits(X, coef, np.zeros(2))
    >>> scaled.round(4), exponent.tolist()
    (array([[0.5563, 0.    ]]), [[1025, 1025]])
    """
    rows = np.abs(X).max(axis=1)
    rows = rows.toarray().ravel() if sp.issparse(rows) else np.asarray(rows).ravel()
    x_exp = np.frexp(rows)[1][:, None]
    w_exp = np.frexp(np.abs(coef).max(axis=1, initial=0))[1]
    b_exp = np.frexp(np.abs(intercept))[1]
    if sp.issparse(X):
        X = sp.diags(np.ldexp(np.ones(1, X.dtype), -x_exp[:, 0])) @ X
    else:
        X = np.ldexp(X, -x_exp)
    # |X' W'^T| <= n_features: every entry of X' and W' is at most 1.
    product = np.asarray(X @ np.ldexp(coef, -w_exp[:, None]).T)
    exponent = np.maximum(x_exp + w_exp, b_exp)
    scaled = np.ldexp(product, x_exp + w_exp - exponent)
    scaled += np.ldexp(intercept, -exponent)
    return scaled, exponent


def _from_scaled(scaled, exponent, shift):
    """The logits ``scaled * 2**exponent`` (see :func:`_scaled_logits`)
    rounded to the dtype, ``+-inf`` beyond its range; with ``shift``, less
    each row's largest logit, which may lie beyond the range itself.

    Examples
    --------
    Logits of ``2 * 2**1024`` and ``1.5 * 2**1024``: beyond float64,
    their difference is not.

    >>> import numpy as np
    >>> from sk_softmax._loss import _from_scaled
    >>> scaled, exponent = np.array([[2.0, 1.5, -1.0]]), np.array([[1024, 1024, 0]])
    >>> _from_scaled(scaled, exponent, shift=False)
    array([[inf, inf, -1.]])
    >>> _from_scaled(scaled, exponent, shift=True) / 2.0**1023
    array([[  0.,  -1., -inf]])
    """
    with np.errstate(over="ignore"):
        logits = np.ldexp(scaled, exponent)
    if not shift:
        return logits
    top = logits.max(axis=1, keepdims=True)
    beyond = np.flatnonzero(~np.isfinite(top[:, 0]))
    top[beyond] = 0.0
    logits -= top
    if beyond.size:
        # The largest logit lies beyond the range: it is found exactly, by
        # sign, binary exponent and mantissa in turn (by the logarithm of
        # the magnitudes, two logits 1e-12 apart tied, the smaller won, and
        # the other's shifted logit was +inf), and the differences are
        # taken in its units.
        s, e = scaled[beyond], exponent[beyond]
        mantissa, binary = np.frexp(s)
        binary = binary + e  # (|exponents| below 1e4)
        sign = np.sign(s).astype(np.int64)
        order = np.where(sign > 0, 20000 + binary, -20000 - binary) * np.abs(sign)
        top = order == order.max(axis=1, keepdims=True)
        best = np.argmax(np.where(top, mantissa, -np.inf), axis=1)
        rows = np.arange(beyond.size)
        top_e = e[rows, best][:, None]
        with np.errstate(over="ignore"):
            difference = np.ldexp(s, e - top_e) - s[rows, best][:, None]
            logits[beyond] = np.ldexp(np.minimum(difference, 0.0), top_e)
    return logits


def _gradient_block_inplace(raw_t, y, sample_weight, label_smoothing, shift=False):
    """Turn the raw prediction into the gradient block G^T, in place.

    Parameters
    ----------
    raw_t : C-contiguous ndarray of shape (n_classes, n_samples)
        ``Z^T``; overwritten with ``G^T = ((P - T) diag(s) / S)^T``.
    y : ndarray of shape (n_samples,), integer
        Class indices.
    sample_weight : float or ndarray of shape (n_samples,)
        Weights already divided by their sum (a scalar ``1/n`` when
        unweighted).
    label_smoothing : float
        ``eps`` in [0, 1).
    shift : bool, default=False
        Shift each sample's logits by their largest first.  Without it, the
        logits are taken as they are, as long as every sample's sum of exp
        lies in ``_SUM_EXP_RANGE``; otherwise nothing is returned, and the
        caller computes ``Z^T`` again to call with ``shift=True``.  (A
        shift costs a reduction along the short class axis, slow in numpy,
        and a pass; checking the sums is cheap.)

    Returns
    -------
    loss : float or None
        ``1/S sum_i s_i CE_i``, without the L2 term; None where exp of the
        unshifted logits left the range (``raw_t`` is then spoiled).
    """
    n_classes, n_samples = raw_t.shape
    # Flat positions of the true classes in raw_t: one-dimensional take and
    # put are several times faster than indexing with (row, column) pairs.
    true = np.multiply(y, n_samples, dtype=np.intp)
    true += np.arange(n_samples)
    flat = raw_t.reshape(-1)
    if shift:
        raw_t -= raw_t.max(axis=0)
    # Per-sample loss on the (shifted) logits: a shift cancels exactly since
    # the smoothed targets sum to one.
    per_sample = flat.take(true)
    per_sample *= label_smoothing - 1.0
    if label_smoothing:
        per_sample -= (label_smoothing / n_classes) * raw_t.sum(axis=0)
    np.exp(raw_t, out=raw_t)
    sum_exp = raw_t.sum(axis=0)
    low, high = _SUM_EXP_RANGE[raw_t.dtype.type]
    if not shift and not (
        sum_exp.min(initial=np.inf) >= low and sum_exp.max(initial=0.0) <= high
    ):
        return None
    per_sample += np.log(sum_exp)
    if getattr(sample_weight, "ndim", 0):
        loss = per_sample @ sample_weight
    else:
        loss = per_sample.sum() * sample_weight
    # One division per sample, then a product over the block.
    np.divide(sample_weight, sum_exp, out=sum_exp)
    raw_t *= sum_exp
    if label_smoothing:
        raw_t -= (label_smoothing / n_classes) * sample_weight
    flat[true] -= (1.0 - label_smoothing) * sample_weight
    return loss


# Rows per dense block: a block of X (about 4 MiB) is still in cache when
# the backward product reads it again, and the (n_classes, rows) logits stay
# in L2 for the elementwise softmax passes.  Measured on 100k x 100 x 10 and
# 20k x 1000 x 20, float32 and float64: 4 MiB beats 2, 8 and 16 MiB.  (With
# the products stacked in the small kernels' chunks, see _SMALL_GEMM, the
# loss takes float64 blocks of half that: see _loss_and_gradient.)
_BLOCK_BYTES = 4 << 20
# ...and at most this many bytes of logits: on narrow X the rows of 4 MiB
# gave logits far beyond L2 (500,000 rows of 2 features, 3 classes: two
# blocks of 6 MiB of logits, an evaluation 2.5 times as slow as in blocks
# of 512 KiB, and twice the memory).
_LOGIT_BLOCK_BYTES = 512 << 10
# Smaller data is shared among the threads down to blocks of this size:
# handing a block to another thread costs tens of microseconds (the worker's
# wake-up, about 50 us on the 2-core benchmark machine), more than the work
# on a smaller block saves...
_MIN_BLOCK_BYTES = 1 << 20
# ...unless each of its two products takes this many multiply-adds (rows x
# features x classes; about 100 us on one core): a float32 mini-batch of
# 256 rows of 1000 features and 100 classes, one 1 MiB block, took 1.52
# ms an evaluation on one thread, 1.11 split in two.
_MIN_BLOCK_PRODUCT = 1 << 21
# A dense evaluation shares its blocks among threads only where its products
# take this many multiply-adds in all (rows x features x classes, twice; one
# column for two classes, see _binary_forward): below it the threads' hand-
# off and their turns at the GIL, which numpy's many small calls on the
# logits hold, cost more than the second core saves.  Measured at one and
# two threads on the 2-core Zen 4 machine, below 4M one thread won: two
# classes of 5000 x 50 rows, 167 against 413 us an evaluation (0.5M
# multiply-adds); three classes of 5000 x 50, 255 against 407 us (1.5M);
# two of 20000 x 50, 0.56 against 0.64 ms (2M).  Between 4M and 8M it went
# either way, and the threads stay: two classes of 5000 x 500, 1.26 against
# 1.49 ms, five of 5000 x 100, 0.78 against 0.85 ms (5M), but three of
# 20000 x 50, 1.68 against 1.59 ms (6M; a whole L-BFGS fit 8% slower on one
# thread).  From 8M on the threads won, 0.62 to 0.93 of the time (ten
# classes of 20000 x 64, two of 20000 x 500, 20000 x 200 and 5000 x 1000,
# three of 20000 x 100).
_MIN_SHARED_PRODUCT = 1 << 22
# With the products stacked in the small kernels' chunks (see _SMALL_GEMM),
# float32 evaluations of more than two classes share their blocks only
# from this many multiply-adds instead, float64 ones from twice the above.
# Measured at one and two threads on the Zen 4 machine, one thread won
# below: float32 mini-batches of 256 and 512 rows of 1000 features and 20
# classes (10M and 20M; 374 against 659 us, 632 against 726), float64
# 4000 x 64 x 10 (5M; 464 against 562).  Two won above: float32 1024 x
# 1000 x 20 and 16384 x 100 x 10 (41M and 33M; 0.84 and 0.66 of the time),
# float64 4096 x 100 x 10, 512 x 1000 x 20, 512 x 500 x 50 and 1000 x 300 x
# 100 (8M to 60M; 0.88, 0.75, 0.40 and 0.81).  (Float32 8192 x 100 x 10,
# 16M, was 0.86 on two threads; 256 x 1000 x 100, 51M, even.)
_MIN_SHARED_STACKED = {4: 1 << 25, 8: 1 << 23}
_MIN_SPARSE_BLOCK_ROWS = 1024
_EXECUTOR = None


def _block_rows(X, n_samples, n_threads=1, block_bytes=None, n_classes=None):
    """Rows per block when ``n_samples`` rows of X are processed.

    Dense blocks of ``block_bytes`` (default ``_BLOCK_BYTES``; with
    ``n_classes``, the loss's, of at most ``_LOGIT_BLOCK_BYTES`` of logits),
    or fewer rows for the threads to share them: down to
    ``_MIN_BLOCK_BYTES``, or with ``n_classes`` down to blocks whose
    products take ``_MIN_BLOCK_PRODUCT`` multiply-adds, if that is fewer
    rows.
    Sparse (CSR) blocks: one per thread, or with ``block_bytes`` (centered
    copies) about that many bytes of stored entries, or the gradient's size
    if larger; at least ``_MIN_SPARSE_BLOCK_ROWS`` rows either way.
    """
    n_samples = max(n_samples, 1)
    share = -(-n_samples // n_threads)
    if not isinstance(X, np.ndarray):
        # The backward product of a sparse block writes a dense
        # (n_features, n_classes) result: one block per thread, not per
        # cache line.  Row slices of formats other than CSR are copies.
        if X.format != "csr":
            return n_samples
        rows = max(_MIN_SPARSE_BLOCK_ROWS, share)
        if block_bytes is not None:
            # Centered blocks are copies: of ``block_bytes``, or of the
            # gradient's size if larger, which each block writes anyway.
            stored = max(X.nnz / max(X.shape[0], 1), 1.0)
            row_bytes = stored * (X.dtype.itemsize + X.indices.itemsize)
            size = max(block_bytes, X.shape[1] * (n_classes or 1) * X.dtype.itemsize)
            rows = min(rows, max(_MIN_SPARSE_BLOCK_ROWS, int(size // row_bytes)))
        return rows
    row_bytes = max(X.shape[1] * X.dtype.itemsize, 1)
    rows = max((block_bytes or _BLOCK_BYTES) // row_bytes, 1)
    if n_classes:
        rows = min(rows, max(_LOGIT_BLOCK_BYTES // (n_classes * X.dtype.itemsize), 1))
    least = _MIN_BLOCK_BYTES // row_bytes
    if n_classes:
        least = min(least, -(-_MIN_BLOCK_PRODUCT // max(X.shape[1] * n_classes, 1)))
    return min(rows, max(share, least, 1))


def _row_block(X, start, stop, rows=None):
    """Rows ``start:stop`` of X, or of ``X[rows]`` when ``rows`` is given.

    Slices share memory with X (CSR slices share data and indices); rows
    given by index are gathered, block by block, by the thread that uses
    them.
    """
    if rows is not None:
        index = rows[start:stop]
        if isinstance(X, np.ndarray):
            return np.take(X, index, axis=0)
        return X[index]
    if isinstance(X, np.ndarray):
        return X[start:stop]
    if start == 0 and stop == X.shape[0]:
        return X
    lo, hi = X.indptr[start], X.indptr[stop]
    return _compressed_view(
        "csr",
        X.data[lo:hi],
        X.indices[lo:hi],
        X.indptr[start : stop + 1] - lo,
        (stop - start, X.shape[1]),
    )


# Rows folded into rows of about this many entries by _column_extreme.
_FOLD_ENTRIES = 2048


def _column_extreme(ufunc, block, initial):
    """``ufunc.reduce(block, axis=0, initial=initial)``, ``ufunc`` either of
    ``np.minimum`` and ``np.maximum``, for a dense 2-D block.

    numpy reduces a C-ordered block down its columns one row at a time:
    on narrow blocks the short inner loops cost most of it (a column
    minimum of 1437 x 64 float32 entries took 50 us).  Groups of rows are
    folded into single long rows first, reduced elementwise, then the
    groups' results: 15 us there.  The values are the same, NaN included
    (a minimum or maximum does not depend on the order).
    """
    rows, columns = block.shape
    group = _FOLD_ENTRIES // max(columns, 1)
    if group < 4 or rows < 2 * group or not block.flags.c_contiguous:
        return ufunc.reduce(block, axis=0, initial=initial)
    whole = rows - rows % group
    folded = ufunc.reduce(block[:whole].reshape(-1, group * columns), axis=0)
    result = ufunc.reduce(folded.reshape(group, columns), axis=0, initial=initial)
    if whole < rows:
        ufunc(result, ufunc.reduce(block[whole:], axis=0), out=result)
    return result


def _transpose(X):
    """``X.T``; for CSR X, a CSC view of the same arrays.

    (scipy's transpose would copy them when they are views of a larger X.)
    """
    if isinstance(X, np.ndarray) or X.format != "csr":
        return X.T
    return _compressed_view("csc", X.data, X.indices, X.indptr, X.shape[::-1])


def _sparse_product(A, B, out=None):
    """``A @ B`` of a CSR or CSC A and a C-contiguous dense B, into ``out``
    (zeros, C-contiguous, A's dtype) where given.

    scipy's product allocates its result: written into ``out`` by the same
    routine (scipy's ``csr_matvecs`` / ``csc_matvecs``, which add ``A B`` to
    their output), where it can be reached; otherwise computed and copied.
    """
    if out is None:
        return A @ B
    matvecs = getattr(_sparsetools, A.format + "_matvecs", None)
    if (
        matvecs is None
        or A.indptr.dtype != A.indices.dtype
        or not (A.dtype == B.dtype == out.dtype)
        or not (B.flags.c_contiguous and out.flags.c_contiguous)
    ):
        out[...] = A @ B
        return out
    matvecs(*A.shape, B.shape[1], A.indptr, A.indices, A.data, B.ravel(), out.ravel())
    return out


def _compressed_view(fmt, data, indices, indptr, shape):
    """A CSR or CSC matrix on the given arrays, without copying them.

    The arrays are set after construction: given them, scipy's constructor
    copies views that are less than half of their base ("pruning"), which
    would copy X's values and indices block by block at every evaluation.
    """
    matrix = (sp.csr_matrix if fmt == "csr" else sp.csc_matrix)(shape, dtype=data.dtype)
    matrix.data, matrix.indices, matrix.indptr = data, indices, indptr
    return matrix


_FLOAT32 = np.dtype(np.float32)
_FLOAT64 = np.dtype(np.float64)
# OpenBLAS's AVX-512 kernels (SkylakeX: the ones numpy's and scipy's wheels
# pick on Intel's AVX-512 chips and on Zen 4) compute a product of at most
# 1e6 multiply-adds (M x N x K) in their "small matrix" kernels, without
# packing the operands first: on the loss's products, of a few columns,
# about twice as fast as the same product just above the size.  Measured
# on the 2-core Zen 4 machine at one thread, 1563 rows of 64 features and
# 10 classes (1,000,320 multiply-adds) took 96 us backward and 88 forward
# in float64, 1562 rows 45 and 43.  So a block's products are computed as
# a stack of such products, in one call (numpy's matmul loops over the
# stack without the GIL; a loop of calls, one a chunk, lost that gain and
# more to the threads' turns at the GIL)...
_SMALL_GEMM = 10**6
# ...each of at least this many rows (or columns): beyond, the product is as
# wide as the small kernels' size, and is computed whole.
_MIN_CHUNK = 32
# The backward product is stacked by columns of X where chunks of this many
# columns fit the size (blocks of few rows), by rows otherwise (see
# _backward).
_MIN_COLUMN_CHUNK = 80
# ...and by rows only in chunks of at least this many: the sum over rows is
# then the small kernels' short inner dimension (1000 rows of 300 features
# and 100 classes, in chunks of 33 rows: 1872 against 1415 us whole; 1048
# rows of 1000 features and 20 classes, in chunks of 50: 446 against 569).
_MIN_ROW_CHUNK = 48
# The x86 cores of OpenBLAS whose kernels have the small-matrix path:
# SkylakeX's (Cooperlake's and Sapphire Rapids' take them).  Other kernels
# compute the whole product as fast as its stack or faster: on the 2-core
# Zen 5 machine, whose OpenBLAS takes its Haswell kernels, the stacks made
# the large evaluations 4 to 12% slower, and with the thread and block
# rules made for them (see _MIN_SHARED_STACKED and _loss_and_gradient) a
# float32 mini-batch of 256 x 1000 and 20 classes took 309 us against 228
# (dense 100k x 100 x 10: 9.0 against 8.1 ms).  See :func:`_small_kernels`.
_SMALL_KERNEL_CORES = frozenset({"skylakex", "cooperlake", "sapphirerapids"})
# Without them, float64 blocks of more than _SMALL_GEMM multiply-adds and at
# most this many features take the forward product as ``W X^T`` (see
# _forward): evaluations on the Zen 5 machine took 0.88 to 0.94 of their
# time at 100 and 200 features (10 and 20 classes; 0.92 at 3 classes), 1.02
# to 1.04 at 400 and 500, 1.11 at 1000.
_MAX_TRANSPOSED_FEATURES = 256


@cache
def _numpy_blas():
    """threadpoolctl's records (dicts) of numpy's BLAS: numpy's wheels keep
    theirs in ``numpy.libs``; elsewhere (a BLAS shared with scipy), every
    BLAS loaded.  Found once per process (walking the loaded libraries
    takes about 2 ms)."""
    blas = [lib for lib in threadpoolctl.threadpool_info() if lib["user_api"] == "blas"]
    wheel = os.path.join(os.path.dirname(os.path.dirname(np.__file__)), "numpy.libs")
    own = [lib for lib in blas if os.path.dirname(lib["filepath"]) == wheel]
    return tuple(own or blas)


@cache
def _small_kernels():
    """Whether numpy's BLAS computes small products in OpenBLAS's small
    kernels (see ``_SMALL_GEMM``): an OpenBLAS of a core in
    ``_SMALL_KERNEL_CORES``, as threadpoolctl reports it."""
    blas = _numpy_blas()
    return bool(blas) and all(
        lib["internal_api"] == "openblas"
        and str(lib.get("architecture")).lower() in _SMALL_KERNEL_CORES
        for lib in blas
    )


def _chunk_size(n, per_unit):
    """Rows (or columns) per chunk of a product whose ``n`` rows (or
    columns) take ``per_unit`` multiply-adds each: the most within
    ``_SMALL_GEMM``, or None where that is fewer than ``_MIN_CHUNK`` or the
    product fits whole.

    Examples
    --------
    >>> from sk_softmax._loss import _chunk_size
    >>> _chunk_size(2000, 640), _chunk_size(1000, 640), _chunk_size(100, 50000)
    (1562, None, None)
    """
    size = _SMALL_GEMM // max(per_unit, 1)
    if size < _MIN_CHUNK or n <= size:
        return None
    return size


def _stacked(A, size, axis=0):
    """``(stack, stop)``: the first ``stop`` rows (axis 0) or columns (axis
    1) of the C-contiguous 2-d ``A`` as a view of shape (chunks, size,
    n_columns) or (chunks, n_rows, size)."""
    count = A.shape[axis] // size
    stop = count * size
    if axis == 0:
        return A[:stop].reshape(count, size, A.shape[1]), stop
    stack = np.lib.stride_tricks.as_strided(
        A,
        shape=(count, A.shape[0], size),
        strides=(size * A.strides[1], A.strides[0], A.strides[1]),
        writeable=False,
    )
    return stack, stop


def _forward(X_block, coef_t, intercept_raw):
    """``Z^T = W X_block^T + b``, C-contiguous of shape (n_classes, rows).

    ``coef_t`` is ``W^T``, C-contiguous.  The product is computed as
    ``X_block W^T`` (stacked in chunks of rows for C-contiguous blocks where
    numpy's BLAS has the small kernels, see ``_SMALL_GEMM``; without them,
    large float64 blocks of few features as ``W X_block^T``, see
    ``_MAX_TRANSPOSED_FEATURES``), then transposed: OpenBLAS computes the (rows,
    n_classes) product with a C-ordered ``W^T`` faster than the (n_classes,
    rows) one, even with the transposing pass (on the Zen 4 machine, 5242
    rows of 100 features and 10 classes, both in chunks: 266 against 382
    us in float64, 180 against 384 in float32); scipy's sparse product
    wants C-ordered operands too.
    """
    n_rows, n_classes = X_block.shape[0], coef_t.shape[1]
    dense = isinstance(X_block, np.ndarray)
    dtype = X_block.dtype
    if coef_t.dtype != dtype:
        dtype = np.result_type(dtype, coef_t.dtype)
    if dense and dtype is _FLOAT32 and n_rows * coef_t.size <= _SMALL_GEMM:
        # Small float32 blocks: sgemm writes the (n_classes, rows) layout
        # directly about as fast, and the transposing pass goes (digits,
        # 1437 x 64 x 10: 99 against 106 us an evaluation).
        raw_t = np.empty((n_classes, n_rows), dtype=dtype)
        np.matmul(X_block, coef_t, out=raw_t.T)
        if intercept_raw is not None:
            raw_t += intercept_raw[:, None]
        return raw_t
    if (
        dense
        and X_block.dtype is _FLOAT64
        and n_rows * coef_t.size > _SMALL_GEMM
        and X_block.shape[1] <= _MAX_TRANSPOSED_FEATURES
        and not _small_kernels()
    ):
        # Large float64 blocks of few features, without the small kernels:
        # the (n_classes, rows) product directly, no transposing pass.
        raw_t = np.matmul(coef_t.T, X_block.T)
        if intercept_raw is not None:
            raw_t += intercept_raw[:, None]
        return raw_t
    size = None
    if dense and X_block.flags.c_contiguous and _small_kernels():
        size = _chunk_size(n_rows, coef_t.size)
    if size is None:
        raw = X_block @ coef_t
    else:
        raw = np.empty((n_rows, n_classes), dtype=dtype)
        stack, stop = _stacked(X_block, size)
        np.matmul(stack, coef_t, out=raw[:stop].reshape(-1, size, n_classes))
        if stop < n_rows:
            np.matmul(X_block[stop:], coef_t, out=raw[stop:])
    raw_t = np.empty((n_classes, n_rows), dtype=raw.dtype)
    if intercept_raw is None:
        np.copyto(raw_t, raw.T)
    else:
        np.add(raw.T, intercept_raw[:, None], out=raw_t)
    return raw_t


def _backward(X_block, raw_t, out=None):
    """``X_block^T G`` of a dense block, shape (n_features, n_classes); given
    ``out``, in it.  ``raw_t`` holds ``G^T``, (n_classes, rows).

    As (G^T X)^T = X^T G, both operands transposed (no copy), in stacked
    chunks (see ``_SMALL_GEMM``) for C-contiguous blocks where numpy's BLAS
    has the small kernels (whole otherwise): of columns of X
    where chunks of ``_MIN_COLUMN_CHUNK`` columns fit, one product each
    into its rows of the result (256 rows of 1000 features and 20 classes:
    196 against 246 us by rows, 314 whole); of rows otherwise, the
    chunks' products summed (5000 rows of 100 features and 10 classes: 221
    against 286 by columns, 485 whole).
    """
    n_rows, n_features = X_block.shape
    n_classes = raw_t.shape[0]
    if (
        n_rows * n_features * n_classes <= _SMALL_GEMM
        or not X_block.flags.c_contiguous
        or not _small_kernels()
    ):
        return np.matmul(X_block.T, raw_t.T, out=out)
    columns = _chunk_size(n_features, n_rows * n_classes)
    if columns is not None and columns >= _MIN_COLUMN_CHUNK:
        if out is None:
            out = np.empty((n_features, n_classes), dtype=raw_t.dtype)
        stack, stop = _stacked(X_block, columns, axis=1)
        np.matmul(
            stack.transpose(0, 2, 1),
            raw_t.T,
            out=out[:stop].reshape(-1, columns, n_classes),
        )
        if stop < n_features:
            np.matmul(X_block[:, stop:].T, raw_t.T, out=out[stop:])
        return out
    size = _chunk_size(n_rows, n_features * n_classes)
    if size is None or size < _MIN_ROW_CHUNK:
        return np.matmul(X_block.T, raw_t.T, out=out)
    stack, stop = _stacked(X_block, size)
    chunks_t = raw_t[:, :stop].reshape(n_classes, -1, size).transpose(1, 2, 0)
    products = np.matmul(stack.transpose(0, 2, 1), chunks_t)
    out = np.sum(products, axis=0, out=out)
    if stop < n_rows:
        out += X_block[stop:].T @ raw_t[:, stop:].T
    return out


def _binary_difference(coef, intercept_raw):
    """``(w_1 - w_0, b_1 - b_0)`` of a two-class model (b: None or 0-d).

    None where a difference overflows (rows of opposite signs near the
    largest float, as at the optimum ``w_0 = -w_1`` of data of about its
    reciprocal): the two products of the rows then still fit.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        difference = np.ascontiguousarray(coef[1] - coef[0])
        intercept = None
        if intercept_raw is not None:
            intercept = intercept_raw[1] - intercept_raw[0]
    if not np.isfinite(difference).all():
        return None
    if intercept is not None and not np.isfinite(intercept):
        return None
    return difference, intercept


def _binary_forward(X_block, difference, intercept_difference):
    """Logits ``Z^T`` of two classes as ``[0, z_1 - z_0]``, shape (2, rows).

    The softmax, and so the loss and its gradient in the logits, depend only
    on the difference: one matrix-vector product instead of a product with
    two columns, which OpenBLAS computes about three times slower on this
    shape (100,000 x 50: 11.1 against 3.6 ms for both directions).
    """
    raw_t = np.zeros((2, X_block.shape[0]), dtype=difference.dtype)
    if isinstance(X_block, np.ndarray):
        np.matmul(X_block, difference, out=raw_t[1])
    else:
        raw_t[1] = X_block @ difference
    if intercept_difference is not None:
        raw_t[1] += intercept_difference
    return raw_t


def _blocks_loss_and_gradient(
    coef,
    intercept_raw,
    X,
    y,
    sample_weight,
    label_smoothing,
    rows,
    center,
    blocks,
    out=None,
):
    """Sum over row blocks of the data term and of ``G^T X``, ``1^T G``.

    With ``center`` (an offset for dense X, a :class:`_SparseCenter` for
    sparse X), each block's rows less ``center`` take X's place in both
    products.  ``out``, a C-contiguous (n_features, n_classes) array of
    zeros in X's dtype, receives ``(G^T X)^T`` (see :func:`_loss_and_gradient`).
    """
    grad_coef = grad_intercept = None
    loss = 0.0
    sparse = not isinstance(X, np.ndarray)
    # Two classes: only z_1 - z_0 matters, one matrix-vector product each
    # way (see _binary_forward), unless the difference overflows.
    binary = _binary_difference(coef, intercept_raw) if coef.shape[0] == 2 else None
    # W^T, C-ordered (see _forward): no copy when coef is the Fortran-ordered
    # view of the solvers' parameters.  The gradient accumulates as
    # (n_features, n_classes).
    coef_t = np.ascontiguousarray(coef.T) if binary is None else None
    weighted = getattr(sample_weight, "ndim", 0) > 0
    for start, stop in blocks:
        X_block = _row_block(X, start, stop, rows)
        weight = sample_weight[start:stop] if weighted else sample_weight
        if sparse and center is not None:
            X_block = center.block(X_block, weight if weighted else None)
        elif center is not None:
            # (In place where the block is already a copy: gathered rows.)
            X_block = np.subtract(
                X_block, center, out=X_block if rows is not None else None
            )
            if weighted:
                # Rows of zero weight lie outside the range that keeps their
                # deviations finite: 0 * inf is NaN.
                X_block[weight == 0] = 0.0
        # (Nothing but X_block may hold the block past this iteration: a
        # centered copy would stay alive into the next one's.)
        if binary is not None:
            raw_t = _binary_forward(X_block, *binary)
        else:
            raw_t = _forward(X_block, coef_t, intercept_raw)
        block_loss = _gradient_block_inplace(
            raw_t, y[start:stop], weight, label_smoothing
        )
        if block_loss is None:
            # exp of the logits as they are left the range: again, shifted.
            if binary is not None:
                raw_t = _binary_forward(X_block, *binary)
                # (Samples whose difference overflows, where each logit
                # may not: from both rows' logits.  A sample's shift is
                # its own, so the two forms mix.)
                overflowed = np.flatnonzero(~np.isfinite(raw_t[1]))
                if overflowed.size:
                    raw_t[:, overflowed] = _forward(
                        X_block[overflowed],
                        np.ascontiguousarray(coef.T),
                        intercept_raw,
                    )
            else:
                raw_t = _forward(X_block, coef_t, intercept_raw)
            if weighted:
                # Rows of zero weight count for nothing, and so do their
                # logits, which may have overflowed (0 * inf is NaN).
                raw_t[:, weight == 0] = 0.0
            block_loss = _gradient_block_inplace(
                raw_t, y[start:stop], weight, label_smoothing, shift=True
            )
        loss += block_loss
        # (G^T X)^T = X^T G, (n_features, n_classes) (see _backward).  The
        # first block's product goes straight into ``out``; the others' are
        # added to it.
        into = out if grad_coef is None else None
        if binary is not None:
            # G's columns sum to 0 (the probabilities and the targets each
            # sum to 1): X^T G is [-g, g] with g = X^T G_1.
            column = (_transpose(X_block) if sparse else X_block.T) @ raw_t[1]
            block_grad = into
            if block_grad is None:
                block_grad = np.empty((column.shape[0], 2), dtype=column.dtype)
            np.subtract(0.0, column, out=block_grad[:, 0])  # (no -0.0)
            block_grad[:, 1] = column
        elif sparse:
            block_grad = _sparse_product(
                _transpose(X_block), np.ascontiguousarray(raw_t.T), into
            )
        else:
            block_grad = _backward(X_block, raw_t, into)
        # 1^T G as a product: faster than a sum along rows.
        block_grad_intercept = raw_t @ _ones(raw_t.shape[1], raw_t.dtype)
        if binary is not None:
            block_grad_intercept[0] = 0.0 - block_grad_intercept[1]
        if grad_coef is None:
            grad_coef, grad_intercept = block_grad, block_grad_intercept
        else:
            grad_coef += block_grad
            grad_intercept += block_grad_intercept
    # (n_classes, n_features), Fortran-ordered: the layout of the solvers'
    # parameters, so no transposing copy.
    grad_coef = np.asarray(grad_coef).T
    return loss, grad_coef, grad_intercept


def _loss_and_gradient(
    coef,
    intercept,
    X,
    y,
    sample_weight,
    alpha,
    label_smoothing,
    offset=None,
    n_threads=1,
    rows=None,
    center_rows=None,
    out=None,
):
    """Unvalidated core of :func:`loss_and_gradient`.

    ``sample_weight`` must already be normalized to sum to one (or be the
    scalar ``1 / n_samples``).  ``intercept`` may be None (no intercept).
    ``offset`` (n_features,), when given with an intercept, is subtracted
    from every row of X implicitly: ``z = W (x - offset) + b``.  It lets
    solvers work in centered coordinates without copying X.  ``rows``, an
    index array, restricts the loss to the mini-batch ``X[rows]`` (then
    ``y`` and an array ``sample_weight`` are the batch's own).

    ``center_rows`` (with an offset and an intercept), the indices of the
    features far from 0, subtracts the offset from each row block instead,
    at the cost of a pass over the block: the products of float32 X far
    from 0 then keep their precision.  Implicitly, the forward product of
    a timestamp column (1.7e9 +- 1e5) rounds at 2**-24 of 1.7e9 per term
    and the backward one cancels the offset out of sums of that size: a
    gradient off by 3e-4 of its scale, and full-batch sgd never reached
    ``tol=1e-4``.  Dense blocks are centered whole; a sparse block only
    in those features (a copy of the block, where they are dense), the
    others implicitly.

    The samples are processed in row blocks that stay in cache between the
    forward and the backward product; with ``n_threads > 1`` the blocks are
    shared among that many threads (numpy and scipy release the GIL), which
    is only sensible when the BLAS itself runs one thread, and for dense X
    only where the products take ``_MIN_SHARED_PRODUCT`` multiply-adds
    (``_MIN_SHARED_STACKED`` for more than two classes with the small
    kernels).  Smaller dense evaluations of at least
    ``_MIN_BLAS_THREADS_PRODUCT`` run numpy's BLAS at ``n_threads`` instead
    (see :func:`_with_blas_threads`), where its kernels are not the small
    ones.

    Returns ``(loss, grad_coef, grad_intercept)``; ``grad_intercept`` is
    None without intercept.  ``grad_coef`` is Fortran-ordered (it is
    computed as its transpose).  Given ``out``, a C-contiguous
    (n_features, n_classes) array of zeros in X's dtype, ``grad_coef`` is
    ``out.T``: computed in that memory, which a solver's flat gradient can
    hold, with no copy (on 20 x 2**18 coefficients, a copy and the first
    touch of a fresh array cost about 9 ms an evaluation).
    """
    implicit = offset is not None and intercept is not None
    center = None
    if implicit and center_rows is not None:
        if isinstance(X, np.ndarray):
            implicit, center = False, offset
        else:
            center = _SparseCenter(center_rows, offset, X.shape[1])
            offset = center.rest
    intercept_raw = intercept - coef @ offset if implicit else intercept
    n_samples = X.shape[0] if rows is None else rows.shape[0]
    blas_threads = 1
    dense = isinstance(X, np.ndarray)
    small_kernels = dense and _small_kernels()
    if dense:
        columns = 1 if coef.shape[0] == 2 else coef.shape[0]
        least = _MIN_SHARED_PRODUCT
        if columns > 1 and small_kernels:
            least = _MIN_SHARED_STACKED.get(X.itemsize, least)
        products = 2 * n_samples * X.shape[1] * columns
        if products < least:
            if (
                n_threads > 1
                and products >= _MIN_BLAS_THREADS_PRODUCT
                and not small_kernels
            ):
                blas_threads = n_threads
            n_threads = 1
    # Centered blocks are copies, one per thread: 1 MiB ones.  Float64
    # blocks of half the bytes of the passes over X: with the products
    # stacked, an evaluation on the Zen 4 machine took 0.88 to 0.91 of its
    # time (100k x 100 x 10), 0.86 to 0.88 (20k x 1000 x 20), and L-BFGS fits
    # about 0.94 and 0.89; float32 blocks of 2 MiB took 1.04 to 1.06 on the
    # first (0.89 on the second).
    block_bytes = None if center is None else _MIN_BLOCK_BYTES
    if block_bytes is None and small_kernels and X.dtype == np.float64:
        block_bytes = _BLOCK_BYTES // 2
    blocks = _row_blocks(X, n_samples, n_threads, block_bytes, coef.shape[0])
    args = (coef, intercept_raw, X, y, sample_weight, label_smoothing, rows, center)
    if blas_threads > 1:
        parts = [
            _with_blas_threads(
                blas_threads,
                partial(_blocks_loss_and_gradient, *args, blocks, out=out),
            )
        ]
    elif min(n_threads, len(blocks)) <= 1:
        # (One share: no partials to make, a few microseconds of a small
        # evaluation.)
        parts = [_blocks_loss_and_gradient(*args, blocks, out=out)]
    else:
        # The calling thread's share writes into out, the others' are added.
        work = partial(_blocks_loss_and_gradient, *args)
        parts = _per_thread(work, blocks, n_threads, first=partial(work, out=out))
    loss, grad_coef, grad_intercept = parts[0]
    for part in parts[1:]:
        loss += part[0]
        grad_coef += part[1]
        grad_intercept += part[2]
    if intercept is None:
        grad_intercept = None
    elif implicit:
        _subtract_outer(grad_coef, grad_intercept, offset)
    if alpha:
        # In memory order: a view for C- or Fortran-ordered coef (vdot would
        # copy a Fortran-ordered one).
        flat = coef.ravel(order="K")
        loss += _penalty(alpha, flat)
        _axpy(alpha, coef, grad_coef)
    return loss, grad_coef, grad_intercept


def _penalty(alpha, flat):
    """``alpha/2 ||flat||^2``, finite wherever the product is.

    Coefficients of 1e155 and more (on features of 1e-154, which a tiny
    alpha leaves unpenalized in effect) have a sum of squares beyond the
    largest float, but with ``alpha = 1e-310`` a penalty of about 0.01:
    those are summed relative to the largest.
    """
    squares = float(flat @ flat)
    if math.isfinite(squares):
        return 0.5 * alpha * squares
    top = float(np.max(np.abs(flat)))
    if not math.isfinite(top):
        return math.inf
    relative = flat / np.asarray(top, dtype=flat.dtype)
    return 0.5 * (alpha * top) * top * float(relative @ relative)


class _SparseCenter:
    """The centering of sparse X's ``columns`` (features far from 0, stored
    in about every row) by ``offset``, block by block.

    ``rest`` is ``offset`` with those columns at 0: the offset of the other
    features, which the loss subtracts implicitly.
    """

    def __init__(self, columns, offset, n_features):
        self.columns = np.sort(columns)
        self.center = offset[self.columns]
        self.rest = offset.copy()
        self.rest[self.columns] = 0.0
        self.is_column = np.zeros(n_features, dtype=bool)
        self.is_column[self.columns] = True

    def block(self, X_block, weights=None):
        """A CSR copy of ``X_block`` with the columns less their center
        (0 in rows of zero ``weights``, whose deviations may overflow)."""
        X_block = X_block.tocsr()
        indices, data, indptr = X_block.indices, X_block.data, X_block.indptr
        n_rows, n_columns = X_block.shape[0], self.columns.size
        # The columns' stored entries, by one mask over the block's entries
        # (scipy's column indexing took 0.27 ms on 256 rows of 2**18
        # features, a pass over all of them), summed where duplicated.
        stored = self.is_column[indices]
        at = np.flatnonzero(stored)
        rows = np.searchsorted(indptr, at, side="right") - 1
        dense = np.zeros((n_rows, n_columns), dtype=data.dtype)
        position = np.searchsorted(self.columns, indices[at])
        np.add.at(dense, (rows, position), data[at])
        # (In float64, rounded once to X's dtype.)
        np.subtract(dense, self.center, out=dense)
        if weights is not None:
            dense[weights == 0] = 0.0
        others = _compressed_view(
            "csr", np.where(stored, 0, data), indices, indptr, X_block.shape
        )
        columns = _compressed_view(
            "csr",
            dense.ravel(),
            np.tile(self.columns.astype(indices.dtype), n_rows),
            np.arange(0, n_rows * n_columns + 1, n_columns, dtype=indices.dtype),
            X_block.shape,
        )
        return others + columns


# Rows up to which _subtract_outer updates a Fortran-ordered matrix by rows.
_AXPY_ROWS = 5


def _subtract_outer(matrix, u, v):
    """``matrix -= outer(u, v)`` in place, without a temporary matrix.

    BLAS ``ger`` updates a C- or Fortran-ordered ``matrix`` in one pass; with
    (n_classes, n_features) = (20, 50000) that is 4 to 7 times faster than
    numpy's outer product and subtraction.  A Fortran-ordered matrix of a
    few rows goes row by row instead, one strided ``axpy`` each: ``ger``
    then runs an inner loop of a few entries per column (2 x 2**18: 0.50
    against 0.09 ms; 5 rows, 0.56 against 0.37).
    """
    if matrix.size == 0:
        return
    if matrix.flags.f_contiguous and matrix.shape[0] <= _AXPY_ROWS:
        flat = matrix.ravel(order="F")  # (a view)
        axpy = _blas("axpy", matrix.dtype)
        for row, factor in enumerate(u):
            axpy(v, flat, n=v.size, a=-factor, offy=row, incy=matrix.shape[0])
    elif matrix.flags.f_contiguous:
        _blas("ger", matrix.dtype)(-1.0, u, v, a=matrix, overwrite_a=True)
    elif matrix.flags.c_contiguous:
        _blas("ger", matrix.dtype)(-1.0, v, u, a=matrix.T, overwrite_a=True)
    else:
        matrix -= np.multiply.outer(u, v)


_MIN_AXPY_SIZE = 4096


def _axpy(a, x, y):
    """``y += a * x`` in place, for a scalar ``a``.

    BLAS ``axpy`` when x and y share their dtype and memory order: one pass
    and no temporary (numpy's ``y += a * x`` makes two passes and allocates
    ``a * x``, which costs as much again on large arrays).

    Examples
    --------
    >>> import numpy as np
    >>> from sk_softmax._loss import _axpy
    >>> y = np.ones(5000)
    >>> _axpy(2.0, np.arange(5000.0), y)
    >>> y[:3]
    array([1., 3., 5.])
    """
    if y.size < _MIN_AXPY_SIZE:
        # Below this size the BLAS call's own overhead costs more.
        y += a * x
        return
    same_order = (x.flags.c_contiguous and y.flags.c_contiguous) or (
        x.flags.f_contiguous and y.flags.f_contiguous
    )
    blas_type = y.dtype in (np.float32, np.float64) and x.dtype == y.dtype
    if same_order and blas_type and x.shape == y.shape:
        _blas("axpy", y.dtype)(x.ravel(order="K"), y.ravel(order="K"), a=a)
    else:
        y += a * x


def _row_blocks(X, n_samples, n_threads=1, block_bytes=None, n_classes=None):
    """``((start, stop), ...)`` covering ``n_samples`` rows of X (see
    :func:`_block_rows`)."""
    return _blocks_of(
        n_samples, _block_rows(X, n_samples, n_threads, block_bytes, n_classes)
    )


# A pass over dense X (its mean and range, spreads, the Gram matrix) shares
# its blocks among threads where it reads this many bytes of X.  Below, the hand-off and
# the threads' turns at the GIL, which a block's numpy calls take and give
# back, cost more than the second core saves: at one and two threads on the
# 2-core Zen 4 machine, 5000 x 50 float64 (2 MB) took 193 against 448 us
# (mean and range), 257 against 377 (spreads), 460 against 705
# (dominant_rows); 20000 x 50 (8 MB) 1.14 against 1.37 ms (spreads), in
# float32 (4 MB) 0.76 against 1.50 ms; from 50000 x 100 float32 (20 MB)
# on, the threads won (spreads 2.6 against 3.6 ms).
_MIN_SHARED_PASS_BYTES = 16 << 20


def _pass_blocks(X, n_samples, n_threads, columns=None):
    """``(blocks, n_threads)`` of a pass over the rows of X: its row blocks
    (see :func:`_row_blocks`) and the threads that share them, one for
    dense X where the pass reads less than ``_MIN_SHARED_PASS_BYTES`` (of
    ``columns`` columns, all by default)."""
    if isinstance(X, np.ndarray):
        read = n_samples * (X.shape[1] if columns is None else columns)
        if read * X.itemsize < _MIN_SHARED_PASS_BYTES:
            n_threads = 1
    return _row_blocks(X, n_samples, n_threads), n_threads


@lru_cache(maxsize=64)
def _blocks_of(n_samples, step):
    """``((start, stop), ...)``: ``n_samples`` rows in blocks of ``step``
    (made once for each size: an evaluation asks again every time)."""
    return tuple((a, min(a + step, n_samples)) for a in range(0, n_samples, step))


def _per_thread(work, blocks, n_threads, first=None):
    """``[work(blocks[k::n]) for k in range(n)]`` on ``n`` threads.

    The calling thread takes the first share: one hand-off per extra thread.
    ``first`` (default ``work``) does the first share's work.
    """
    if first is None:
        first = work
    global _EXECUTOR
    n_threads = min(n_threads, len(blocks))
    if n_threads <= 1:
        return [first(blocks)]
    if _EXECUTOR is None or _EXECUTOR._max_workers < n_threads - 1:
        _EXECUTOR = ThreadPoolExecutor(max_workers=n_threads - 1)
    futures = [
        _EXECUTOR.submit(_with_errstate, np.geterr(), work, blocks[k::n_threads])
        for k in range(1, n_threads)
    ]
    return [first(blocks[::n_threads])] + [future.result() for future in futures]


def _with_errstate(errstate, work, blocks):
    """``work(blocks)`` under the caller's floating-point error handling.

    numpy's error state belongs to a thread: the workers take the caller's,
    so that what ``np.errstate`` silences in the caller stays silent.
    """
    with np.errstate(**errstate):
        return work(blocks)


_BLAS_CONTROLLER = None
# Fits and loss evaluations may run in several threads at once (a threaded
# joblib or dask scheduler): the first to enter limits the pools, the last
# to leave restores them, and all see the budget found by the first.
_BLAS_LOCK = threading.Lock()
_BLAS_USERS = 0
_BLAS_BUDGET = 1
# The pools' sizes before the limit, while it holds (None otherwise).  Still
# set on entry, they were left limited (a fork while another thread was
# fitting, an interrupt during the restore): they are restored first.
_BLAS_ORIGINAL = None


def _release_blas_control():
    """Let other threads set OpenBLAS's pool size again.

    threadpoolctl (>= 3.8) lets one thread at a time set the size of a
    process-wide OpenBLAS pool: the first to set it, until it releases it
    (its ``with threadpool_limits()`` block does so on exit) or dies; the
    calls of other threads do nothing.  The limit and its restore may come
    from different threads (the first fit to enter, the last to leave), so
    each releases the control it took.  Control held by another thread (a
    user's ``with threadpool_limits()`` block) stays with it.
    """
    ownership = getattr(threadpoolctl, "CONTROLLING_THREAD_OWNERSHIP", None)
    if getattr(ownership, "count", 0) > 0:
        return  # this thread's own with-block keeps it until its end
    controller = getattr(threadpoolctl, "OpenBLASController", None)
    clear = getattr(controller, "clear_controlling_thread", None)
    if clear is not None:
        clear()  # only where this thread holds it


def _set_blas_threads(counts, libs=None):
    """Set each BLAS pool of ``libs`` (default: the controller's) to its
    count, and release control."""
    if libs is None:
        libs = _BLAS_CONTROLLER.lib_controllers
    try:
        for lib, count in zip(libs, counts, strict=True):
            lib.set_num_threads(count)
    finally:
        _release_blas_control()


def _available_cpus():
    """CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return max(len(os.sched_getaffinity(0)), 1)
    return os.cpu_count() or 1


@contextlib.contextmanager
def single_threaded_blas():
    """Run the body with every BLAS pool at one thread; yield the thread budget.

    numpy and scipy may each load their own OpenBLAS.  When both pools keep
    threads spinning on the same cores (numpy's in the matrix products,
    scipy's in L-BFGS-B's vector work and in the in-place updates of
    :func:`_axpy` and :func:`_subtract_outer`) they slow each other down by
    up to an order of magnitude.  So while fitting, and inside
    :func:`loss_and_gradient`, every BLAS runs one thread, and the loss
    parallelizes itself over row blocks of the data with the thread budget
    yielded here: the largest BLAS pool size found on entry, which respects
    ``OPENBLAS_NUM_THREADS``, ``threadpoolctl.threadpool_limits`` and the
    limits that joblib's workers set, and at most the CPUs the process may
    use.  (Giving the budget back to the BLAS in the mini-batch loop
    measured no faster, and leaves OpenBLAS threads spinning for about 0.1 s
    after the fit.)

    The limit is shared: nested uses, and uses in several threads at once,
    keep it until the last one leaves, which restores the pools as the
    first one found them.  Where the pools cannot be limited (another
    thread holds threadpoolctl's control of OpenBLAS, see
    :func:`_release_blas_control`), the budget is one thread.

    Yields
    ------
    n_threads : int
        Threads the objective may use.

    Examples
    --------
    >>> from threadpoolctl import threadpool_info
    >>> from sk_softmax._loss import single_threaded_blas
    >>> with single_threaded_blas() as n_threads:
    ...     pools = [p["num_threads"] for p in threadpool_info()
    ...              if p["user_api"] == "blas"]
    >>> set(pools) <= {1}, n_threads >= 1
    (True, True)
    """
    global _BLAS_CONTROLLER, _BLAS_USERS, _BLAS_BUDGET, _BLAS_ORIGINAL
    with _BLAS_LOCK:
        if _BLAS_CONTROLLER is None:
            # Finding the libraries walks every loaded shared object (about
            # 2 ms a fit): once per process.  numpy's and scipy's BLAS are
            # loaded by then, since this package imports both.
            _BLAS_CONTROLLER = ThreadpoolController().select(user_api="blas")
        if _BLAS_USERS == 0:
            if _BLAS_ORIGINAL is not None:
                _set_blas_threads(_BLAS_ORIGINAL)
                _BLAS_ORIGINAL = None
            libs = _BLAS_CONTROLLER.lib_controllers
            counts = [lib.num_threads for lib in libs]
            _BLAS_BUDGET = min(max(counts, default=1), _available_cpus())
            if max(counts, default=1) > 1:
                _BLAS_ORIGINAL = counts
                _set_blas_threads([1] * len(libs))
                if any(lib.num_threads > 1 for lib in libs):
                    # Not limited (see above): the pools keep their threads,
                    # so ours would only compete with them.
                    _BLAS_BUDGET = 1
        _BLAS_USERS += 1
        n_threads = _BLAS_BUDGET
    try:
        yield n_threads
    finally:
        with _BLAS_LOCK:
            _BLAS_USERS -= 1
            if _BLAS_USERS == 0 and _BLAS_ORIGINAL is not None:
                _set_blas_threads(_BLAS_ORIGINAL)
                _BLAS_ORIGINAL = None


# A dense evaluation too small to share its blocks among threads (see
# _MIN_SHARED_PRODUCT), of at least this many multiply-adds (rows x features
# x classes, twice), runs with numpy's BLAS at the thread budget instead,
# where its kernels are not the small ones (see _SMALL_GEMM; those run one
# thread).  On the 2-core Zen 5 machine (Haswell kernels), evaluations took
# 0.75 of their time on digits (1437 x 64 x 10; 121 against 162 us), 0.74
# on 2000 x 64 x 10, 0.71 on 1000 x 100 x 10, 0.68 on 5000 x 50 x 3, 0.84
# on two classes of 20000 x 50, 0.85 on float32 digits; 600 x 64 x 10
# (0.8M) 0.99.  Above _MIN_SHARED_PRODUCT the row threads stay: numpy's
# BLAS at two threads instead took 1.2 to 1.65 times as long (4000 x 64 x
# 10 and 512 x 1000 x 20 float64, 16384 x 100 x 10 float32).
_MIN_BLAS_THREADS_PRODUCT = 1 << 20


def _with_blas_threads(n_threads, work):
    """``work()`` with numpy's BLAS at ``n_threads`` threads, inside the
    limit of :func:`single_threaded_blas` (back at one thread after; the
    other pools stay at one).  Only where this thread's fit or evaluation
    is the limit's only user: no other starts while the pool is larger
    (this holds the limit's lock meanwhile); otherwise ``work()`` runs with
    the pools as they are.
    """
    with _BLAS_LOCK:
        if _BLAS_USERS == 1 and _BLAS_ORIGINAL is not None:
            libs = _numpy_blas_controllers(_BLAS_CONTROLLER)
            try:
                _set_blas_threads([n_threads] * len(libs), libs)
                return work()
            finally:
                _set_blas_threads([1] * len(libs), libs)
    return work()


@lru_cache(maxsize=4)
def _numpy_blas_controllers(controller):
    """The controllers of numpy's BLAS among ``controller``'s (see
    :func:`_numpy_blas`), found once: a small evaluation sets their pools'
    size twice, and only theirs (1.5% of one on digits, about 2 us)."""
    paths = {lib["filepath"] for lib in _numpy_blas()}
    return tuple(lib for lib in controller.lib_controllers if lib.filepath in paths)


def _reset_after_fork():
    """In a forked child: no worker threads, no fit inside the limit.

    The child inherits the executor's record of worker threads that it does
    not have (a block handed to them would never be computed), the lock
    possibly held, and the count of fits running in the parent's other
    threads.  Pools a parent's fit left limited are restored on the next
    entry (see ``_BLAS_ORIGINAL``).
    """
    global _EXECUTOR, _BLAS_LOCK, _BLAS_USERS
    _EXECUTOR = None
    _BLAS_LOCK = threading.Lock()
    _BLAS_USERS = 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def _real_array(values, name, dtype):
    """``values`` as a finite ndarray of ``dtype``, or a ValueError naming it.

    Sparse matrices, strings, complex values, NaN, infinity and finite
    values beyond ``dtype``'s range (coefficients of 1e39 for float32 X,
    long doubles of 1e400) are errors.
    """
    if sp.issparse(values):
        raise ValueError(f"{name} must be a dense array, got a sparse matrix.")
    values = np.asarray(values)
    if values.dtype.kind == "c":
        raise ValueError(f"Complex data not supported in {name}.")
    if values.dtype.kind not in "biuf":
        try:
            if _holds_strings(values):
                raise TypeError(f"got {values.dtype} values")
            values = values.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name} must hold numbers; {exc}") from exc
    if not _all_finite(values):
        raise ValueError(f"{name} contains NaN or infinity.")
    with np.errstate(over="ignore"):
        converted = values.astype(dtype, copy=False)
    if not _all_finite(converted):
        advice = ": pass X as float64" if dtype == np.float32 else ""
        raise ValueError(
            f"{name} has values beyond the range of {np.dtype(dtype).name} "
            f"(largest {np.finfo(dtype).max:.3g}){advice}."
        )
    return converted


def _holds_strings(values):
    """Whether ``values`` holds strings (numpy would parse "1" as a number)."""
    return values.dtype.kind in "SU" or (
        values.dtype.kind == "O"
        and any(isinstance(v, (str, bytes)) for v in values.ravel())
    )


def _summable_weights(weights):
    """Finite non-negative ``weights``, divided by their largest if their sum overflows.

    The objective is a weighted mean, which a common factor leaves
    unchanged; dividing by the sum of weights near the largest float would
    make every weight 0.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_softmax._loss import _summable_weights
    >>> _summable_weights(np.array([1e308, 1e308, 5e307])).tolist()
    [1.0, 1.0, 0.5]
    """
    with np.errstate(over="ignore"):
        total = weights.sum()
    if np.isfinite(total):
        return weights
    return weights / weights.max()


def _class_indices(y, n_samples, n_classes):
    """``y`` as intp class indices in ``[0, n_classes)``, or a ValueError."""
    y = np.asarray(y)
    if y.shape != (n_samples,):
        raise ValueError(f"y must have shape ({n_samples},) to match X, got {y.shape}.")
    if y.dtype.kind not in "biu":
        # Floats (or objects holding numbers) must be whole; strings, complex
        # numbers and the like are labels, not indices.
        values = None
        if y.dtype.kind in "fO" and not _holds_strings(y):
            try:
                values = y.astype(np.float64, copy=False)
            except (TypeError, ValueError):
                pass
        if values is None or not (
            np.all(np.isfinite(values)) and np.all(np.mod(values, 1) == 0)
        ):
            y = None
        else:
            y = values
    if y is None or (n_samples and (y.min() < 0 or y.max() >= n_classes)):
        raise ValueError(
            f"y must hold class indices in [0, {n_classes - 1}] (n_classes is "
            "coef.shape[0])."
        )
    return y.astype(np.intp, copy=False)


def _as_float_array(X):
    """X as float32 or float64: an ndarray, or CSR / CSC."""
    if not sp.issparse(X):
        X = np.asarray(X)
    if X.dtype.kind == "c":
        raise ValueError("Complex data not supported in X.")
    if X.dtype not in (np.float32, np.float64):
        try:
            X = X.astype(np.float64)
        except (TypeError, ValueError) as exc:  # pd.NA, strings, objects
            raise ValueError(
                f"X must hold numbers without missing values (pd.NA); {exc}"
            ) from exc
    if sp.issparse(X) and X.format not in ("csr", "csc"):
        X = X.tocsr()
    return X


def loss_and_gradient(
    coef, intercept, X, y, *, alpha=0.0, label_smoothing=0.0, sample_weight=None
):
    """Regularized softmax cross-entropy ``J(W, b)`` and its gradient.

    ``J(W, b) = 1/S sum_i s_i (-sum_k t_ik log softmax(W x_i + b)_k)
    + alpha/2 ||W||_F^2`` with smoothed targets
    ``t_i = (1 - eps) onehot(y_i) + eps/K``, ``eps = label_smoothing`` and
    ``S = sum_i s_i``.  The gradient is ``dJ/dW = G^T X + alpha W`` and
    ``dJ/db = 1^T G`` with ``G = diag(s) (P - T) / S``.

    Parameters
    ----------
    coef : array-like of shape (n_classes, n_features)
        Weights ``W``.
    intercept : array-like of shape (n_classes,) or None
        Bias ``b``; None means no intercept (then ``grad_intercept`` is None).
    X : {array-like, sparse matrix} of shape (n_samples, n_features)
        Samples.  Dense or any scipy.sparse format.
    y : array-like of shape (n_samples,)
        Class indices in ``0, ..., n_classes - 1``.
    alpha : float, default=0.0
        L2 strength on ``coef`` (never on the intercept).
    label_smoothing : float, default=0.0
        ``eps`` in [0, 1), as in ``torch.nn.CrossEntropyLoss``.
    sample_weight : array-like of shape (n_samples,), default=None
        Non-negative weights with a positive sum; None means all ones.

    Returns
    -------
    loss : float
        ``J(W, b)``, a scalar of the dtype of ``X``.
    grad_coef : ndarray of shape (n_classes, n_features)
        ``dJ/dW``.
    grad_intercept : ndarray of shape (n_classes,) or None
        ``dJ/db``.

    Raises
    ------
    ValueError
        On arrays of the wrong shape, labels outside ``0, ..., K-1``, an
        invalid ``alpha``, ``label_smoothing`` or ``sample_weight``, a NaN or
        an infinity in ``coef``, ``intercept`` or ``X`` (in scikit-learn's
        words), ``coef`` or ``intercept`` beyond the range of float32 X's
        dtype, sparse ``coef``, ``intercept`` or ``sample_weight``, and
        where finite inputs overflow the dtype: the result is never NaN.

    Notes
    -----
    Computation runs in float32 when ``X`` is float32 and in float64
    otherwise; the outputs have that dtype.  Past one row block of X (1 MiB)
    or 4096 coefficients, it runs as inside ``fit``: every BLAS pool at one
    thread and the rows shared among as many Python threads (see
    :func:`single_threaded_blas`), so numpy's and scipy's BLAS never compete
    for the cores.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_softmax import loss_and_gradient
    >>> X = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    >>> y = np.array([0, 1, 2])
    >>> W, b = np.zeros((3, 2)), np.zeros(3)
    >>> loss, grad_W, grad_b = loss_and_gradient(W, b, X, y)
    >>> round(float(loss), 6) == round(float(np.log(3)), 6)
    True
    >>> grad_W.shape, grad_b.shape
    ((3, 2), (3,))
    """
    X = _as_float_array(X)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-dimensional, got shape {X.shape}.")
    dtype = X.dtype
    coef = _real_array(coef, "coef", dtype)
    n_samples, n_features = X.shape
    if coef.ndim != 2 or coef.shape[1] != n_features or not coef.shape[0]:
        raise ValueError(
            f"coef must have shape (n_classes, {n_features}) with n_classes >= 1, "
            f"got {coef.shape}."
        )
    n_classes = coef.shape[0]
    if intercept is not None:
        intercept = _real_array(intercept, "intercept", dtype)
        if intercept.shape != (n_classes,):
            raise ValueError(
                f"intercept must have shape ({n_classes},), got {intercept.shape}."
            )
    y = _class_indices(y, n_samples, n_classes)
    if (
        isinstance(alpha, bool)
        or not isinstance(alpha, numbers.Real)
        or not 0 <= alpha < math.inf
    ):
        raise ValueError(f"alpha must be a finite non-negative float, got {alpha!r}.")
    if (
        isinstance(label_smoothing, bool)
        or not isinstance(label_smoothing, numbers.Real)
        or not 0 <= label_smoothing < 1
    ):
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing!r}.")
    if sample_weight is None:
        if n_samples == 0:
            raise ValueError("X has 0 samples; the loss is undefined.")
        sample_weight = 1.0 / n_samples
    else:
        # Checked and normalized in float64, then in X's dtype: the weighted
        # mean depends on their ratios only (float32 X refused weights of
        # 1e300 as infinite and summed weights of 1e-50 to 0).
        sample_weight = _real_array(sample_weight, "sample_weight", np.float64)
        if sample_weight.shape != (n_samples,):
            raise ValueError(
                f"sample_weight must have shape ({n_samples},), got "
                f"{sample_weight.shape}."
            )
        if np.any(sample_weight < 0):
            raise ValueError("sample_weight must be finite and non-negative.")
        sample_weight = _summable_weights(sample_weight)
        weight_sum = sample_weight.sum()
        if weight_sum <= 0:
            raise ValueError("sample_weight must have a positive sum.")
        sample_weight = (sample_weight / weight_sum).astype(dtype, copy=False)
    core = partial(
        _loss_and_gradient,
        coef,
        intercept,
        X,
        y,
        sample_weight,
        float(alpha),
        float(label_smoothing),
    )
    # Non-finite values are reported below, as errors: numpy's warnings about
    # them would only come first.
    with np.errstate(all="ignore"):
        if coef.size < _MIN_AXPY_SIZE and _block_rows(X, n_samples, 2) >= n_samples:
            # Small problems: one row block and no large in-place update, so
            # numpy's BLAS keeps its threads for the products.
            loss, grad_coef, grad_intercept = core()
        else:
            # As in fit: every BLAS pool at one thread, the rows shared among
            # threads (scipy's BLAS, which the in-place updates use, would
            # otherwise leave threads spinning against numpy's).
            with single_threaded_blas() as n_threads:
                loss, grad_coef, grad_intercept = core(n_threads=n_threads)
    # X's finiteness is read from the result rather than checked up front (a
    # pass over X): a NaN or infinity in X reaches every entry of its column
    # of G^T X, whatever G is.
    if not (math.isfinite(loss) and _all_finite(grad_coef, grad_intercept)):
        _check_finite_X(X)
        raise ValueError(
            f"The loss or its gradient overflowed {dtype.name} although every "
            "input is finite: the logits W x + b (or alpha ||coef||^2) exceed "
            "its range. Rescale X or coef, or lower alpha."
        )
    return dtype.type(loss), np.ascontiguousarray(grad_coef), grad_intercept


def _all_finite(*arrays):
    """Whether every entry of the given arrays (None skipped) is finite."""
    return all(a is None or bool(np.isfinite(a).all()) for a in arrays)


def _check_finite_X(X):
    """Raise scikit-learn's ValueError for a NaN or an infinity in X."""
    values = X.data if sp.issparse(X) else X
    if np.isnan(values).any():
        raise ValueError("Input X contains NaN.")
    if not np.isfinite(values).all():
        raise ValueError(
            f"Input X contains infinity or a value too large for {X.dtype!r}."
        )


def lipschitz_constants(
    X,
    sample_weight,
    *,
    alpha,
    fit_intercept,
    batch_size=None,
    mean=None,
    scale=None,
    joint=None,
    sample=None,
    row_norms_sq=None,
    largest=None,
):
    """Curvature bounds of ``J`` per parameter block, in centered coordinates.

    The Hessian of the cross-entropy in ``z`` is ``diag(p) - p p^T``, whose
    largest eigenvalue is at most 1/2.  Writing the model as
    ``z = W (x - mu) + b'`` with ``mu`` the weighted feature mean, the
    Hessian of ``J`` is bounded by
    ``1/2 [X_c, 1]^T diag(s) [X_c, 1] / S + alpha`` on ``W``, and that matrix
    is block diagonal because the centered columns are orthogonal to the
    ones column.  So ``W`` and ``b'`` get their own bounds::

        L_coef = lambda_max(X_c^T diag(s) X_c) / (2 S) + alpha
        L_intercept = 1/2

    For a mini-batch of ``B`` rows drawn without replacement the expected
    smoothness interpolates between the full-batch bound and the largest
    per-sample bound ``L_max = max_i n s_i (||x_i - mu||^2 + 1) / (2 S) +
    alpha`` (the 1 is the intercept column, which a single centered row is
    not orthogonal to; Gower et al., 2019), with ``n`` the rows of positive
    weight, which the batches are drawn from::

        L(B) = n (B - 1) / (B (n - 1)) L + (n - B) / (B (n - 1)) L_max

    Above 8192 samples, ``lambda_max`` is estimated on at most 8192 evenly
    spaced rows (a strided view, not a copy): it only sets a step size,
    which the accelerated solver adapts and the mini-batch loop checks for
    divergence.

    Parameters
    ----------
    X : {ndarray, sparse matrix} of shape (n_samples, n_features)
        Training samples (never modified or copied whole).
    sample_weight : ndarray of shape (n_samples,)
        Weights normalized to sum to one.
    alpha : float
        L2 strength.
    fit_intercept : bool
        Whether to center (the intercept absorbs the mean).
    batch_size : int or None, default=None
        Mini-batch size; None for the full batch.
    mean : ndarray of shape (n_features,) or None, default=None
        Center to use instead of the weighted mean of ``X`` (``partial_fit``
        keeps the mean of its first chunk).  The blocks then no longer
        separate, and both bounds become the joint bound
        ``(lambda_max(X_c^T diag(s) X_c) + 1) / 2 + alpha``.
    scale : ndarray of shape (n_features,) or None, default=None
        Per-feature scale ``sigma`` (see :func:`feature_scales`): the bounds
        are then those of the coordinates ``W diag(sigma)``, in which the
        data curvature is computed on ``X_c diag(1/sigma)`` and the penalty
        adds ``alpha / sigma_j^2`` per feature, so ``lipschitz_coef`` is an
        array of shape (n_features,).
    joint : bool or None, default=None
        Whether ``mean`` may differ from the weighted mean of ``X`` (then
        the joint bound above applies).  None means: exactly when ``mean``
        is given.
    sample : tuple of (ndarray, ndarray), default=None
        The rows ``lambda_max`` is estimated on and their weights, as
        :func:`_curvature_sample` selects them, already in memory; for data
        that lives elsewhere (a dask array, a GPU), whose rows this function
        then never reads (``mean`` must be given, X gives only its shape).
    row_norms_sq : ndarray of shape (n_samples,), default=None
        ``||(x_i - mean) / scale||^2`` for every row, if already computed
        (mini-batches only); for data elsewhere, computed where X lives.
    largest : float, default=None
        ``lambda_max(X_c^T diag(s) X_c)`` as :func:`largest_eigenvalue`
        estimates it, if already known (its estimate is then skipped).

    Returns
    -------
    lipschitz_coef : float or ndarray of shape (n_features,)
        Bound on the curvature along ``W`` (per feature with ``scale``).
    lipschitz_intercept : float
        Bound along the intercept: 1/2 for the full batch at the weighted
        mean, otherwise the joint bound without its ``alpha`` (the intercept
        is not penalized); 0 without intercept.
    mean : ndarray of shape (n_features,)
        The weighted mean ``mu`` used for centering (zeros when
        ``fit_intercept`` is False).

    Examples
    --------
    >>> import numpy as np
    >>> from sk_softmax._loss import lipschitz_constants
    >>> X = np.array([[1.0, 0.0], [-1.0, 0.0]])
    >>> L_coef, L_b, mu = lipschitz_constants(
    ...     X, np.full(2, 0.5), alpha=0.0, fit_intercept=True)
    >>> round(float(L_coef), 12), L_b
    (0.5, 0.5)
    """
    n_samples, n_features = X.shape
    sample_weight = np.broadcast_to(
        np.asarray(sample_weight, dtype=np.float64), (n_samples,)
    )
    if joint is None:
        joint = mean is not None
    if not fit_intercept:
        mean = np.zeros(n_features)
    elif mean is None:
        mean = weighted_mean(X, sample_weight)
    if scale is None:
        penalty, scale = alpha, np.ones(n_features)
    else:
        # alpha/2 ||W||^2 = alpha/2 sum_j (W diag(sigma))_j^2 / sigma_j^2
        # (Divided twice: scale**2 overflows for scales near 2**512, those of
        # alpha near 1e308.)
        penalty = alpha / scale / scale
    if largest is None:
        largest = largest_eigenvalue(
            X, sample_weight, mean=mean, scale=scale, sample=sample
        )
    if joint and fit_intercept:
        largest += 1.0
    data_term = 0.5 * largest
    # (Batches are drawn from the rows of positive weight.)
    drawn = np.count_nonzero(sample_weight) if batch_size is not None else 0
    if batch_size is not None and batch_size < drawn and drawn > 1:
        if row_norms_sq is None:
            row_norms_sq = _centered_row_norms_sq(X, mean, scale)
        data_term = mini_batch_curvature(
            data_term,
            row_norms_sq,
            sample_weight,
            batch_size=batch_size,
            fit_intercept=fit_intercept,
        )
        joint = True
    lipschitz = data_term + penalty
    if not fit_intercept:
        lipschitz_intercept = 0.0
    else:
        lipschitz_intercept = data_term if joint else 0.5
    return lipschitz, lipschitz_intercept, mean


def largest_eigenvalue(
    X, sample_weight, *, mean, scale, sample=None, correlation=False, gram=None
):
    """``lambda_max(X_c^T diag(s) X_c)`` with ``X_c = (X - mean) / scale``.

    The largest eigenvalue of the weighted second-moment matrix of the
    centered, scaled rows, estimated as in :func:`lipschitz_constants` on at
    most 8192 evenly spaced rows (exactly up to 256 features, otherwise by
    Lanczos with a 2% margin above).  With ``correlation``, that of the
    weighted correlation matrix instead (each feature scaled to unit
    spread on those rows; a constant one is left out), whose eigenvalues
    average 1: far above 1, the features are strongly correlated.

    Parameters
    ----------
    X : {ndarray, sparse matrix} of shape (n_samples, n_features)
        Samples (never modified or copied whole).
    sample_weight : ndarray of shape (n_samples,)
        Weights normalized to sum to one.
    mean : ndarray of shape (n_features,)
        Center of the rows.
    scale : ndarray of shape (n_features,)
        Divisor of each centered feature.
    sample : tuple of (ndarray, ndarray), default=None
        Rows and weights already selected (see :func:`lipschitz_constants`).
    correlation : bool, default=False
        Whether to scale each feature to unit spread first.
    gram : ndarray of shape (n_features, n_features), default=None
        The sample's :func:`weighted_gram` in these coordinates, already
        formed (at most 256 features): no pass over the rows.

    Returns
    -------
    largest : float

    Examples
    --------
    >>> import numpy as np
    >>> from sk_softmax._loss import largest_eigenvalue
    >>> X = np.array([[1.0, 2.0], [-1.0, -2.0]])
    >>> w, zero, one = np.full(2, 0.5), np.zeros(2), np.ones(2)
    >>> round(largest_eigenvalue(X, w, mean=zero, scale=one), 12)
    5.0
    >>> round(largest_eigenvalue(X, w, mean=zero, scale=one, correlation=True), 12)
    2.0
    """
    if gram is not None:
        if correlation:
            # (The spreads on the sample: the square roots of its diagonal.)
            spread = np.sqrt(np.diag(gram))
            kept = spread > 0
            gram = gram[np.ix_(kept, kept)] / np.outer(spread[kept], spread[kept])
        return float(eigvalsh(gram)[-1]) if gram.size else 0.0
    if sample is None:
        sample = _curvature_sample(X, sample_weight)
    if correlation:
        spread = weighted_std(*sample, mean) / scale
        scale = np.where(spread > 0, scale * spread, np.inf)
    return _largest_weighted_eigenvalue(*sample, mean, scale)


def mini_batch_curvature(
    data_term, row_norms_sq, sample_weight, *, batch_size, fit_intercept
):
    """Expected curvature bound of mini-batches of ``batch_size`` rows.

    The interpolation of :func:`lipschitz_constants` between the full
    batch's data term and the largest per-sample one,
    ``n max_i s_i (||x_i - mu||^2 + 1) / 2`` (the 1 is the intercept column,
    which a single centered row is not orthogonal to), for batches drawn
    without replacement (Gower et al., 2019); at least 1/2 with an
    intercept.

    Parameters
    ----------
    data_term : float
        The full batch's bound without the penalty, ``lambda_max / 2``.
    row_norms_sq : ndarray of shape (n_samples,)
        ``||(x_i - mu) / scale||^2`` for every row.
    sample_weight : ndarray of shape (n_samples,)
        Weights normalized to sum to one.
    batch_size : int
        Rows per batch, drawn among the rows of positive weight.
    fit_intercept : bool
        Whether the model has an intercept.

    Returns
    -------
    bound : float

    Examples
    --------
    >>> import numpy as np
    >>> from sk_softmax._loss import mini_batch_curvature
    >>> float(mini_batch_curvature(1.0, np.array([3.0, 3.0, 3.0]),
    ...                            np.full(3, 1 / 3), batch_size=1,
    ...                            fit_intercept=False))
    1.5
    """
    row_norms = row_norms_sq + (1.0 if fit_intercept else 0.0)
    # Rows of zero weight count for nothing, whatever their norm (one of
    # 1e300 made the bound NaN, and a mini-batch fit "diverged"), nor are
    # they drawn: the batches come from the ``n`` others.
    n, b = int(np.count_nonzero(sample_weight)), batch_size
    bound = data_term  # (the full batch)
    if b < n:
        data_max = (
            0.5
            * n
            * float(
                np.max(sample_weight * row_norms, where=sample_weight > 0, initial=0.0)
            )
        )
        bound = (n * (b - 1) * data_term + (n - b) * data_max) / (b * (n - 1))
    return max(bound, 0.5) if fit_intercept else bound


def weighted_mean(X, sample_weight):
    """Weighted mean of the rows of X (weights summing to one), float64.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_softmax._loss import weighted_mean
    >>> weighted_mean(np.array([[0.0, 2.0], [4.0, 6.0]]), np.array([0.75, 0.25]))
    array([1., 3.])
    """
    return _mean_and_range(X, sample_weight)[0]


def mean_shift(X, sample_weight, mean, columns):
    """The error of ``mean`` on ``columns`` of X: ``sum w (x - mean) /
    sum w``, float64.

    A sum of values far from 0 rounds at their size: the mean of 9,000 rows
    of 1e14 + N(0, 1) came out 3.5 spreads off (the rounding of 1e14 is
    0.016), and centered about it the feature took the full batch to
    max_iter.  The deviations from it are of the spread's size, and so is
    their sum's rounding.  Chunks of about 512 KiB of rows, in float64.

    Parameters
    ----------
    X : {ndarray, sparse matrix} of shape (n_samples, n_features)
        Finite samples (a sparse X in CSR or CSC format).
    sample_weight : ndarray of shape (n_samples,)
        Non-negative weights.
    mean : ndarray of shape (n_columns,)
        The approximate mean of the columns.
    columns : ndarray of shape (n_columns,)
        Indices of the columns.

    Returns
    -------
    shift : ndarray of shape (n_columns,)
        Zeros where the weights sum to 0.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_softmax._loss import mean_shift
    >>> X = np.array([[1e14 + 1.0, 0.0], [1e14 + 3.0, 1.0]])
    >>> mean_shift(X, np.ones(2), np.array([1e14]), np.array([0])).tolist()
    [2.0]
    """
    n_samples = X.shape[0]
    weights = np.broadcast_to(np.asarray(sample_weight, dtype=np.float64), (n_samples,))
    rows = max(1, (1 << 16) // max(len(columns), 1))
    total = np.zeros(len(columns))
    for lo in range(0, n_samples, rows):
        chunk = X[lo : lo + rows][:, columns]
        if sp.issparse(chunk):
            chunk = chunk.toarray()
        chunk = chunk.astype(np.float64) - mean
        # Rows of zero weight may overflow: 0 * inf is NaN.
        chunk[weights[lo : lo + rows] == 0] = 0.0
        total += weights[lo : lo + rows] @ chunk
    weight = float(np.sum(weights))
    return total / weight if weight > 0 else total


def _mean_and_range(X, sample_weight, *, n_threads=1, mean=True, per_feature=False):
    """``(weighted mean of the rows, min value, max value)`` in one pass.

    Row blocks are shared among ``n_threads`` threads; each block gives
    its weighted column sums, its minimum and its maximum.  The range is
    over rows of positive weight and includes 0 (the implicit entries of a
    sparse X); it is NaN or infinite where X is not finite.  With
    ``per_feature`` and a dense X, it is one range per feature instead
    (arrays of shape (n_features,), 0 where no row has positive weight),
    at about twice the cost.  ``mean=False`` skips the mean (returns None
    for it).
    """
    n_samples, n_features = X.shape
    # In the dtype of X: a float64 weight vector would upcast (copy) X.
    weights = np.broadcast_to(sample_weight, (n_samples,)).astype(X.dtype)
    columns = per_feature and not sp.issparse(X)

    def work(blocks):
        total = np.zeros(n_features) if mean else None
        low = np.full(n_features, np.inf) if columns else 0.0
        high = -low
        for start, stop in blocks:
            X_block, w_block = _row_block(X, start, stop), weights[start:stop]
            if mean:
                total += _weighted_column_sums(X_block, w_block)
            if not np.all(w_block > 0):
                X_block = X_block[np.flatnonzero(w_block > 0)]
            # minimum and maximum (unlike fmin and fmax) keep NaN: a NaN
            # range tells the caller that X is not finite.
            if columns:
                low = np.minimum(low, _column_extreme(np.minimum, X_block, np.inf))
                high = np.maximum(high, _column_extreme(np.maximum, X_block, -np.inf))
            else:
                values = X_block.data if sp.issparse(X_block) else X_block
                low = np.minimum(low, values.min(initial=0))
                high = np.maximum(high, values.max(initial=0))
        return total, low, high

    parts = _per_thread(work, *_pass_blocks(X, n_samples, n_threads))
    total = sum(part[0] for part in parts) if mean else None
    low = np.minimum.reduce([part[1] for part in parts])
    high = np.maximum.reduce([part[2] for part in parts])
    if not columns:
        return total, float(low), float(high)
    empty = low > high  # no row of positive weight
    low[empty] = high[empty] = 0.0
    return total, low.astype(np.float64), high.astype(np.float64)


# Rows of float32 X summed in float32 at a time by _weighted_column_sums.
_FLOAT32_SUM_ROWS = 1024


def _weighted_column_sums(X_block, w_block):
    """``X_block^T w_block``, float64, for X's dtype of weights.

    float32 X is summed in float32 over at most 1024 rows at a time, the
    partial sums in float64: a single float32 sum down a long column far
    from 0 drifts (over 120,000 timestamps of 1.7e9 +- 1e5, by 8e5: the
    mean then lay 30 spreads off, which inflated the feature's scale 32
    times and slowed its training).  A sparse float32 block is summed in
    float64, a chunk of entries at a time.
    """
    if X_block.dtype != np.float32:
        return np.asarray(_transpose(X_block) @ w_block, dtype=np.float64).ravel()
    if not isinstance(X_block, np.ndarray):
        return _sparse_product_float64(_transpose(X_block), w_block.astype(np.float64))
    total = np.zeros(X_block.shape[1])
    for lo in range(0, X_block.shape[0], _FLOAT32_SUM_ROWS):
        hi = lo + _FLOAT32_SUM_ROWS
        total += X_block[lo:hi].T @ w_block[lo:hi]
    return total


# A standardized feature whose spread is at most this fraction of its mean
# is constant (see feature_scales): for float64 X (True), float32 X.  Dense
# spreads are computed about the rows' own mean (see weighted_std): a
# constant column's is far below one unit in the last place of its mean,
# and 4 units (2**-50, float32 2**-21) mark it.  (2**-40 took X + 1e15,
# features of unit spread, for constants: the default fit stopped after 3
# passes at chance accuracy.)  Sparse spreads are about the given mean,
# whose sums round by up to ``n_samples * 2**-52`` of it: they keep the
# wider bounds.
_CONSTANT_SPREAD = {True: 2.0**-50, False: 2.0**-21}
_SPARSE_CONSTANT_SPREAD = {True: 2.0**-40, False: 2.0**-20}


def constant_noise(X):
    """The spread, relative to a feature's mean, at and below which
    :func:`weighted_std` of X leaves it constant (see feature_scales).

    About 4 units in the last place of the mean for dense X, whose spreads
    are about the rows' own mean; for sparse X, about the given mean, that
    mean's rounding: up to about ``n_samples * 2**-53`` of it.

    Parameters
    ----------
    X : {ndarray, sparse matrix} of shape (n_samples, n_features)
        The samples (only their dtype, format and number count).

    Returns
    -------
    noise : float

    Examples
    --------
    >>> import numpy as np
    >>> import scipy.sparse as sp
    >>> from sk_softmax._loss import constant_noise
    >>> float(np.log2(constant_noise(np.ones((3, 2)))))
    -50.0
    >>> float(np.log2(constant_noise(sp.csr_matrix(np.ones((3, 2))))))
    -40.0
    """
    float64 = not str(X.dtype).endswith("float32")
    if sp.issparse(X):
        return max(_SPARSE_CONSTANT_SPREAD[float64], X.shape[0] * 2.0**-52)
    return _CONSTANT_SPREAD[float64]


# A constant feature whose centered values (its mean's rounding noise) stay
# below this in plain units may take the scale 1 (see feature_scales).
_QUIET_NOISE = 2.0**-8
# Data whose largest centered value lies in this range is solved as given
# (see feature_scales).
_PLAIN_RANGE = (2.0**-16, 2.0**16)
# Below this magnitude (data plus mean), the plain coordinates of centered
# dense X take their common factor from the centered values alone: the
# products with the coefficients, in the plain units, stay far from
# overflow.
_CENTERED_TOP = 2.0**64


def feature_scales(
    X,
    sample_weight,
    mean,
    *,
    value_range=None,
    standardize=False,
    alpha=0.0,
    spread=None,
    n_threads=1,
    plain_range=_PLAIN_RANGE,
    return_constant=False,
):
    """Scale of the coordinates the solvers work in, per feature.

    Solvers work on ``W diag(scale)``, with data ``(X - mean) / scale``.
    Every scale is a power of two, so the change of coordinates is exact.

    With ``standardize``, the scale of each feature is the power of two
    nearest its weighted standard deviation (or ``sqrt(alpha)``, whichever
    is larger), whatever the magnitude of the data.  Without it, the scale
    is 1 when ``m``, the largest absolute value of X plus that of the mean
    (a bound on the largest centered value; with per-feature ranges, a
    nonzero mean and ``m`` below ``2**64``, the largest centered value
    itself), lies in ``plain_range``; outside it, features of 1e-150 or
    1e150 say, every feature is
    divided by the power of two just below ``m``, so that products, squares
    and curvature bounds stay finite.  That common factor is also the scale
    of a constant feature (1 where that is larger and the feature's mean
    rounds below ``2**-8``), and the unit in which the standard deviations
    are computed.  No scale of data below that range is finer than
    ``sqrt(alpha)`` (to the nearest power of two), with or without
    ``standardize``: the penalty on a coordinate, ``alpha / scale**2``,
    stays at most about 2, where it would otherwise dwarf the curvature of
    the data (and of the intercept) by up to 1e296.  For the same reason,
    without ``standardize``, an ``alpha`` above ``2**32`` times the square
    of the common factor makes the scale about ``sqrt(alpha)`` whatever
    the magnitude of the data.  Rows of zero weight are ignored, so removing
    them changes nothing.

    One common factor leaves the conditioning of the problem unchanged: L-BFGS
    then follows LogisticRegression's iterates.  Standardized coordinates
    are what first-order methods need: gradient steps on raw features of
    very different spreads (a feature in the thousands next to one below 1)
    crawl along the narrow ones.  The penalty becomes ``alpha / scale_j**2``
    on coordinate ``j`` (see :func:`lipschitz_constants`), and the optimum
    is the same.

    Parameters
    ----------
    X : {ndarray, sparse matrix} of shape (n_samples, n_features)
        Training samples.
    sample_weight : ndarray of shape (n_samples,)
        Non-negative weights, summing to one with ``standardize``.
    mean : ndarray of shape (n_features,)
        The center (zeros without intercept).
    value_range : tuple, default=None
        The smallest and largest values of X over rows of positive weight,
        when already known (computed otherwise): floats (0 included), or
        arrays of shape (n_features,), one range per feature.
    standardize : bool, default=False
        Scale each feature by the power of two nearest its standard
        deviation (within the ordinary range of magnitudes only).
    plain_range : tuple of (float, float), default=(2**-16, 2**16)
        The ordinary range of ``m``.  A common factor leaves the
        conditioning among the coefficients unchanged, but not between them
        and the intercept, which it does not scale: L-BFGS, which needs no
        curvature bound, takes a wider range.
    alpha : float, default=0.0
        The L2 strength: with ``standardize`` (or for data below the
        ordinary range), no scale is below ``sqrt(alpha)`` (to the nearest
        power of two), so the penalty on a coordinate, ``alpha /
        scale**2``, is at most 2.
    spread : callable, default=None
        ``spread(unit) -> ndarray of shape (n_features,)``, the weighted
        standard deviations of ``X / unit`` (``unit`` a power of two; for
        dense X about the rows' own mean), computed where X lives (a dask
        cluster, a device); called only with ``standardize``.  By default
        :func:`weighted_std` of X in memory, on ``n_threads`` threads.
    n_threads : int, default=1
        Threads sharing the pass over X for the standard deviations.
    return_constant : bool, default=False
        Also return which features are constant: with ``standardize``, a
        spread of at most ``2**-50`` (float32 X: ``2**-21``), about 4 units
        in the last place of the feature's mean; for sparse X, whose spreads
        are about the given mean, ``2**-40`` (float32 X: ``2**-20``; at
        least ``n_samples * 2**-52``), that mean's rounding noise.

    Returns
    -------
    scale : ndarray of shape (n_features,)
        Powers of two.
    constant : ndarray of shape (n_features,), bool
        Only with ``return_constant``.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_softmax._loss import feature_scales
    >>> X = np.array([[1e-150, 3e-150], [-1e-150, 5e-150]])
    >>> np.log2(feature_scales(X, np.ones(2), np.array([0.0, 4e-150]))).tolist()
    [-496.0, -496.0]
    >>> X = np.array([[1.0, 900.0], [-3.0, 1100.0]])
    >>> feature_scales(X, np.full(2, 0.5), X.mean(axis=0))
    array([1., 1.])
    >>> feature_scales(X, np.full(2, 0.5), X.mean(axis=0), standardize=True)
    array([  2., 128.])
    """
    n_features = X.shape[1]
    if value_range is None:
        value_range = _mean_and_range(X, sample_weight, mean=False)[1:]
    low, high = (np.asarray(bound, dtype=np.float64) for bound in value_range)
    largest = max(float(np.max(high, initial=0)), -float(np.min(low, initial=0)))
    with np.errstate(over="ignore"):
        top = largest + float(np.max(np.abs(mean), initial=0))
    if not np.isfinite(top) or top == 0:
        top = largest
    if not standardize and low.ndim and np.any(mean != 0) and top <= _CENTERED_TOP:
        # The features as given, centered: the range per feature bounds the
        # centered values themselves.  A large offset with an ordinary
        # spread (timestamps, a column of 1e10 +- 1) is then solved as
        # given; a common factor from the offset would shrink every
        # feature's curvature next to the intercept's, by 2**-68 for 1e10.
        with np.errstate(over="ignore"):
            top = float(np.max(np.maximum(high - mean, mean - low), initial=0))
    if top == 0 or not np.isfinite(top):
        if return_constant:  # X is all zeros
            return np.ones(n_features), np.full(n_features, standardize)
        return np.ones(n_features)
    # The common factor of data of extreme magnitude; the standard
    # deviations are computed in its units, so that their squares stay
    # finite.
    unit = 1.0
    if not plain_range[0] <= top <= plain_range[1]:
        unit = float(np.exp2(np.floor(np.log2(top))))
    # No coordinate of tiny data is finer than sqrt(alpha): the penalty on
    # it, alpha / scale**2, would dwarf the data's curvature (at most about
    # 1 in those units) by as much as 1e296 for data of 1e-150, and no
    # solver could then move the intercept, whose curvature is the data's.
    floor_exponent = -np.inf
    if alpha > 0:
        floor_exponent = round(0.5 * math.log2(alpha) - math.log2(unit))
    if not standardize:
        # Nor, as given, where the penalty is stiffer than the data by more
        # than 2**(2 _STIFF_PENALTY_EXPONENT): between it and the intercept
        # L-BFGS lost its way (alpha 1e14 on iris: it stopped after one
        # iteration with the intercept 0.61 off the log prior, warned).
        if (unit < 1.0 and floor_exponent > 0) or (
            floor_exponent > _STIFF_PENALTY_EXPONENT
        ):
            unit = math.ldexp(unit, floor_exponent)  # about sqrt(alpha)
        if return_constant:
            return np.full(n_features, unit), np.zeros(n_features, dtype=bool)
        return np.full(n_features, unit)
    if spread is None:

        def spread(unit):
            return weighted_std(X, sample_weight, mean, unit=unit, n_threads=n_threads)

    float32 = str(X.dtype).endswith("float32")
    noise = constant_noise(X)
    std = np.asarray(spread(unit), dtype=np.float64)
    if floor_exponent < _FAINT_EXPONENT:
        std = _faint_spreads(spread, std, np.abs(mean) / unit, unit, noise)
    # A constant feature keeps the common factor: its centered values are
    # rounding noise of the mean, which a tiny scale would blow up into a
    # signal (Adam's normalized steps follow any gradient however small).
    # Dense spreads are about the rows' own mean, where that noise cancels:
    # a spread above 4 units in the last place of the mean is a feature's,
    # timestamps', coordinates' and X + 1e15's included.  Sparse spreads
    # are about the given mean, whose sums round by up to about n_samples *
    # 2**-52 of it (float32: 2**-20).
    # Below sqrt(alpha), a scale would make the penalty on the coordinate,
    # alpha / scale**2, stiffer than the data (about 1 for a standardized
    # feature), and Adam's steps of learning_rate_init would oscillate
    # across it; such a feature's coefficient is mostly penalty anyway.
    # Every scale stays a normal number of X's precision.
    exponent = np.zeros(n_features)  # of scale / unit
    constant = ~(std > noise * np.abs(mean) / unit)
    spread_out = ~constant
    exponent[spread_out] = np.round(np.log2(std[spread_out]))
    # Above a common factor of 1 (a column of incomes in dollars), a
    # constant feature whose rounding noise stays below 2**-8 in plain
    # units takes the scale 1 instead: that of a feature of unit spread.  A
    # partial_fit chunk is not the data, and its scales only grow later: a
    # column absent from the first chunk (0 there), at the scale 2**17 of
    # the incomes, kept steps 2**34 times too short, and its coefficient
    # stayed 0 for the whole stream.
    if unit > 1.0:
        quiet = constant & (np.abs(mean) * noise <= _QUIET_NOISE)
        exponent[quiet] = -math.log2(unit)
    exponent = np.maximum(exponent, floor_exponent)
    info = np.finfo(np.float32 if float32 else np.float64)
    exponent = np.clip(
        exponent, info.minexp + 1 - np.log2(unit), info.maxexp - 2 - np.log2(unit)
    )
    if return_constant:
        return unit * np.exp2(exponent), constant
    return unit * np.exp2(exponent)


# feature_scales leaves the features of ordinary magnitude as given up to
# a penalty 2**32 times their curvature (in their units), and beyond divides
# them by about sqrt(alpha): at alpha = 1e10 to 1e12 L-BFGS reached the
# optimum but could warn that the loss no longer decreased; at 1e14 it
# stopped after one iteration (LogisticRegression converged there in 34; at
# 1e16 it stopped after one, without a warning).  Divided, 7 or 8.
_STIFF_PENALTY_EXPONENT = 16

# Spreads below 2**_FAINT_EXPONENT of the unit they were computed in may
# have lost their squares to underflow (float64 squares of values below
# about 2**-537 of the unit are 0): see _faint_spreads.
_FAINT_EXPONENT = -450
_UNDERFLOW_EXPONENT = -537


def _faint_spreads(spread, std, relative_mean, unit, noise):
    """``std`` with the spreads of faint features computed again, in finer units.

    A feature ``2**-540`` times narrower than the unit (float64 columns of
    1e-170 next to ordinary ones) has squares that underflow: its standard
    deviation came out 0, it counted as constant, and the first-order
    solvers never moved its coefficient.  Such features, unless their mean
    would make them constant anyway, are computed again in a unit near
    their own size: one more pass over X for faint features within about
    ``2**-500`` of each other, at most four (float64 spans ``2**-2098``).
    All-zero features, and data of ordinary ranges, cost nothing.

    Parameters
    ----------
    spread : callable
        ``spread(unit)``, the standard deviations of ``X / unit``.
    std : ndarray of shape (n_features,)
        ``spread(unit)``.
    relative_mean : ndarray of shape (n_features,)
        ``|mean| / unit``.
    unit : float
        The unit of ``std``, a power of two.
    noise : float
        Relative spread below which a feature is constant (see
        :func:`feature_scales`).

    Returns
    -------
    std : ndarray of shape (n_features,)
        In units of ``unit``; 0 where the spread is below float64's range
        in those units.
    """
    faint = (
        (std < 2.0**_FAINT_EXPONENT)
        & ((std > 0) | (relative_mean > 0))
        & (noise * relative_mean < 2.0**_FAINT_EXPONENT)
    )
    if not faint.any():
        return std
    std = std.copy()
    # Bounds on each faint spread, in binary orders of the unit: where a
    # square survived, about its value; otherwise between the least spread
    # that would not make the feature constant and the largest whose
    # squares all underflow.
    with np.errstate(divide="ignore"):
        low = np.where(std > 0, np.log2(std), np.log2(noise * relative_mean))
    high = np.where(std > 0, low, _UNDERFLOW_EXPONENT)
    smallest = math.log2(np.finfo(np.float64).tiny)
    for _ in range(4):
        top = float(np.max(high[faint], initial=-np.inf))
        # A unit of at least the smallest normal number: X's values are not
        # finer than that.
        shift = round(max(top, smallest - math.log2(unit)))
        if not faint.any() or not math.isfinite(top):
            break
        # Features far wider overflow in that unit: only the faint are read.
        with np.errstate(over="ignore", invalid="ignore"):
            again = np.asarray(spread(math.ldexp(unit, shift)), dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            size = np.log2(again) + shift
        resolved = faint & (again >= 2.0**_FAINT_EXPONENT) & np.isfinite(again)
        std[resolved] = np.ldexp(again[resolved], shift)
        faint &= ~resolved
        # Narrower still: a surviving square bounds the spread; none, the
        # finer unit's own underflow.
        hint = faint & (again > 0)
        low[hint] = high[hint] = size[hint]
        below = faint & ~(again > 0)
        high[below] = shift + _UNDERFLOW_EXPONENT
        # Bounds that cross: below float64's range in these units.
        gone = faint & (high < low)
        std[gone] = 0.0
        faint &= ~gone
    return std


def weighted_std(X, sample_weight, mean, *, unit=1.0, n_threads=1):
    """Weighted standard deviation of each feature of X about ``mean``, float64.

    One pass over every row of X (a sample would miss the rare values of a
    mostly constant feature, and so underestimate its spread), in row blocks
    shared among ``n_threads`` threads.  Dense blocks are centered in chunks
    of about 512 KiB, in float64 (float32 X of ordinary magnitudes: in
    float32, twice as fast) and one buffer per thread.  A sparse
    X is read a chunk of stored entries at a time, each centered in
    float64; its implicit zeros count as ``-mean``.

    Parameters
    ----------
    X : {ndarray, sparse matrix} of shape (n_samples, n_features)
        Finite samples.
    sample_weight : ndarray of shape (n_samples,)
        Non-negative weights summing to one.
    mean : ndarray of shape (n_features,)
        The center.
    unit : float, default=1.0
        A power of two: the deviations are those of ``X / unit``, whose
        squares stay finite for data of extreme magnitude.
    n_threads : int, default=1
        Threads sharing the rows of a dense X.

    Returns
    -------
    std : ndarray of shape (n_features,)
        In units of ``unit``.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_softmax._loss import weighted_std
    >>> X = np.array([[0.0, 10.0], [2.0, 10.0], [4.0, 10.0]])
    >>> weighted_std(X, np.array([0.25, 0.5, 0.25]), np.array([2.0, 10.0]))
    array([1.41421356, 0.        ])
    """
    n_samples, n_features = X.shape
    weights = np.broadcast_to(sample_weight, (n_samples,))
    if sp.issparse(X):
        # Column sums of centered squares: the row sums of X^T, each
        # sample's entries scaled by the root of its weight.  Centered entry
        # by entry, not as E[x^2] - mean^2, whose cancellation hides the
        # spread of a feature far from 0 (a float32 column of 1000 +- 0.1,
        # timestamps).  The implicit zeros lie at -mean.
        # (A column stored in every row of positive weight has no implicit
        # zero: the difference of the sums would leave rounding noise.)
        roots = np.sqrt(weights.astype(np.float64))
        squares, covered, stored = _sparse_row_sums_sq(
            _transpose(X), roots, offset=mean, unit=unit
        )
        # (In place: arrays of 2**18 features for hashed text, every chunk.)
        uncovered = np.subtract(float(roots @ roots), covered, out=covered)
        np.maximum(uncovered, 0.0, out=uncovered)
        uncovered[stored == np.count_nonzero(roots)] = 0.0
        spread = np.divide(mean, unit)
        spread *= spread
        spread *= uncovered
        spread += squares
        return np.sqrt(spread, out=spread)
    if X.dtype == np.float32 and (
        _FLOAT32_RANGE[0] <= _FLOAT32_PRESCALE / unit <= _FLOAT32_RANGE[1]
    ):
        std = _weighted_std_float32(X, weights, mean, unit, n_threads)
    else:
        std = np.sqrt(_centered_squares(X, weights, mean, unit, np.float64, n_threads))
    # Features whose spread is close to their mean's rounding: again about
    # the rows' own weighted mean (see _centered_squares), in float64.
    near = (std <= _NEAR_CONSTANT * np.abs(mean) / unit) & (mean != 0)
    if near.any():
        columns = np.flatnonzero(near)
        std[columns] = np.sqrt(
            _centered_squares(
                X[:, columns],
                weights,
                mean[columns],
                unit,
                np.float64,
                n_threads,
                about_mean=True,
            )
        )
    return std


# A spread below this fraction of the mean may be the mean's own rounding
# (float32 means, summed in float32 over 1024 rows, can be off by 2**-14 of
# themselves): such features' spreads are computed about the rows' mean.
_NEAR_CONSTANT = 2.0**-12


# float32 deviations are multiplied by this before they are squared: the
# largest, at most 2**17 in the unit, stay below float32's largest square,
# and spreads down to about 2**-100 of the unit keep squares above its
# smallest normal number.
_FLOAT32_PRESCALE = 2.0**40
# float32 spreads below this fraction of the unit, of features whose mean is
# below _FLOAT32_FAINT_MEAN of it (a spread of 2**-90 is above the rounding
# noise of the mean, 2**-20 of it), are computed again in float64.
_FLOAT32_FAINT = 2.0**-90
_FLOAT32_FAINT_MEAN = 2.0**-70
# The float32 path's factor ``_FLOAT32_PRESCALE / unit`` stays in this range
# (data beyond, of 1e-27 or 1e38, are computed in float64).
_FLOAT32_RANGE = (2.0**-100, 2.0**100)


def _weighted_std_float32(X, weights, mean, unit, n_threads):
    """:func:`weighted_std` of dense float32 X, computed in float32.

    About twice as fast as in float64, whose copy of each chunk costs as
    much as the rest.  The squares of a chunk of at most 1024 rows are
    summed in float32 and the chunks' sums in float64: a relative error of
    at most about ``1024 * 2**-24`` (6e-5), which the scales, powers of two,
    do not see; the mean's own error, as large, is corrected for where it
    matters (see :func:`weighted_std`), so that a constant feature's spread
    stays below the ``2**-20`` of its mean that marks it constant.  The
    deviations are multiplied by ``2**40`` first, so that the squares of a
    feature ``2**64`` times narrower than the unit (ordinary
    data next to a feature of 1e22) do not underflow to a constant
    feature.  Features narrower than ``2**-90`` of the unit, whose mean
    does not make them constant anyway (all-zero ones aside), and those
    whose squares overflowed, are computed again in float64, from a copy
    of their columns.
    """
    factor = _FLOAT32_PRESCALE / unit
    squares = _centered_squares(X, weights, mean, 1.0 / factor, np.float32, n_threads)
    std = np.sqrt(squares) / _FLOAT32_PRESCALE  # in units of unit
    relative_mean = np.abs(mean) / unit
    faint = (
        (std < _FLOAT32_FAINT)
        & (relative_mean < _FLOAT32_FAINT_MEAN)
        & ((std > 0) | (relative_mean > 0))
    )
    # (Squares that overflowed: deviations beyond 2**24 of the unit, which
    # feature_scales's unit rules out, but not every caller's.)
    again = faint | ~np.isfinite(std)
    if again.any():
        columns = np.flatnonzero(again)
        std[columns] = np.sqrt(
            _centered_squares(
                X[:, columns], weights, mean[columns], unit, np.float64, n_threads
            )
        )
    return std


# Rows of X centered and squared at a time by _centered_squares: on the
# Zen 4 machine (1 MiB of L2 a core), the spreads of 20000 x 1000 float32
# took 5.5 ms on two threads in chunks of 2 MiB, 6.1 in chunks of 1 MiB,
# 7.1 in chunks of 512 KiB (more numpy calls, and more turns at the GIL).
_SQUARES_CHUNK_BYTES = 2 << 20


def _centered_squares(X, weights, mean, unit, dtype, n_threads, about_mean=False):
    """``sum_i w_i ((x_i - mean) / unit)**2`` per feature of dense X, float64.

    With ``about_mean``, about the rows' weighted mean ``mu`` instead, of
    which ``mean`` is an approximation: with deviations ``d_i = x_i -
    mean``, ``sum w d^2 - (sum w d)^2 / sum w``, at the cost of one more
    product per chunk.  (A float32 mean, summed in float32 over 1024 rows
    at a time, can be off by 6e-6 of itself: the deviations of a constant
    column about it made a spread above the ``2**-20`` of the mean that
    marks the column constant.)  Chunks of about ``_SQUARES_CHUNK_BYTES``
    of rows (float32: at most 1024 rows) are centered and squared in
    ``dtype`` (one buffer per thread), their weighted sums added in float64.
    """
    n_samples, n_features = X.shape
    center = mean.astype(dtype)
    chunk_weights = weights.astype(dtype)
    rows = max(1, _SQUARES_CHUNK_BYTES // max(n_features * np.dtype(dtype).itemsize, 1))
    rows = min(rows, max(n_samples, 1))  # (a buffer no larger than X)
    if dtype == np.float32:
        rows = min(rows, _FLOAT32_SUM_ROWS)  # (see _weighted_column_sums)
    inverse = dtype(1.0 / unit)
    # (Checked once: most weights have no zeros, and two calls a chunk add
    # up over thousands of chunks.)
    some_unweighted = bool(np.any(weights == 0))

    def work(blocks):
        first = np.zeros(n_features) if about_mean else None
        second = np.zeros(n_features)
        buffer = np.empty((rows, n_features), dtype=dtype)
        for start, stop in blocks:
            for lo in range(start, stop, rows):
                hi = min(lo + rows, stop)
                chunk = np.subtract(X[lo:hi], center, out=buffer[: hi - lo])
                if inverse != 1.0:
                    chunk *= inverse
                # Rows of zero weight are out of the range the unit comes
                # from: their deviations may overflow, and 0 * inf is NaN.
                if some_unweighted:
                    chunk[weights[lo:hi] == 0] = 0.0
                if about_mean:
                    first += chunk_weights[lo:hi] @ chunk
                chunk *= chunk
                second += chunk_weights[lo:hi] @ chunk
        return first, second

    parts = _per_thread(work, *_pass_blocks(X, n_samples, n_threads))
    second = sum(part[1] for part in parts)
    if not about_mean:
        return np.maximum(second, 0.0)
    first = sum(part[0] for part in parts)
    return _variance_about_mean(
        first, second, float(np.sum(chunk_weights, dtype=np.float64))
    )


def _variance_about_mean(first, second, total_weight):
    """``second - first**2 / total_weight``, float64 and at least 0.

    The weighted variance about the rows' own mean from the sums ``first =
    sum w d`` and ``second = sum w d^2`` of the deviations ``d`` from an
    approximation of it: the approximation's error cancels (a constant
    column's spread comes out far below the rounding of its mean).
    ``second`` alone where the weights sum to 0.
    """
    first = np.asarray(first, dtype=np.float64)
    second = np.asarray(second, dtype=np.float64)
    if total_weight > 0:
        with np.errstate(over="ignore"):
            second = second - first * first / float(total_weight)
    return np.maximum(second, 0.0)


def _std_from_sums(first, second, total_weight, mean, unit):
    """:func:`weighted_std` from the sums of the deviations from ``mean``.

    ``first = sum w d`` and ``second = sum w d^2`` per feature, in units of
    ``unit``, computed where X lives (a dask cluster, a device): the spread
    about ``mean``, as the in-memory one, except for the features whose
    spread is close to their mean's rounding, about the rows' own mean.
    """
    variance = np.maximum(np.asarray(second, dtype=np.float64), 0.0)
    near = (variance <= (_NEAR_CONSTANT * np.abs(mean) / unit) ** 2) & (mean != 0)
    variance[near] = _variance_about_mean(
        np.asarray(first)[near], variance[near], total_weight
    )
    return np.sqrt(variance)


def stored_magnitudes(X, sample_weight, mean, *, unit=1.0):
    """Weighted root mean square of each feature's centered stored entries.

    ``sqrt(sum s_i (x_ij - mean_j)^2 / sum s_i)`` over the rows ``i`` where
    sparse X stores feature ``j`` (0 for a feature stored nowhere), in
    float64: the size of the centered feature where it is present,
    whatever its density (the spread of a feature stored in every row), in
    units of ``unit`` (a power of two).  One pass over the stored entries.

    Parameters
    ----------
    X : sparse matrix of shape (n_samples, n_features)
        Finite samples.
    sample_weight : ndarray of shape (n_samples,)
        Non-negative weights.
    mean : ndarray of shape (n_features,)
        The center.
    unit : float, default=1.0
        The unit of the result.

    Returns
    -------
    magnitude : ndarray of shape (n_features,)

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> from sk_softmax._loss import stored_magnitudes
    >>> X = sp.csr_matrix(np.array([[3.0, 0.0], [0.0, 0.0], [5.0, 0.0]]))
    >>> stored_magnitudes(X, np.full(3, 1 / 3), np.array([4.0, 0.0]))
    array([1., 0.])
    """
    weights = np.broadcast_to(sample_weight, (X.shape[0],)).astype(np.float64)
    squares, covered, _ = _sparse_row_sums_sq(
        _transpose(X), np.sqrt(weights), offset=mean, unit=unit
    )
    return np.sqrt(
        np.divide(squares, covered, out=np.zeros_like(squares), where=covered > 0)
    )


# lambda_max is estimated on at most this many evenly spaced rows: the
# estimate only sets a step size, which the solvers adapt or check.
_CURVATURE_ROWS = 8192


# A feature is dominated by one row where the other rows' spread, about
# their own mean, is at most this fraction of the feature's (the row holds
# some 99% of its variance), and more than _BULK_SPREAD of it and the
# constant bound of their mean (see constant_noise): they still vary (see
# dominant_rows).  One row 1e3 times the others among 300 (their spread 0.08
# of the feature's) left the default fit 40% above the optimal loss at
# max_iter; at 1e6, it stopped after 17 passes at 0.39 accuracy (3 classes),
# and L-BFGS, centered on the mean that row pulls, ran to max_iter 22% above
# it.  At 0.26 (5,000 rows, one 1e3 times out) the default fit reached the
# optimum.
_OTHERS_SPREAD = 0.1
_BULK_SPREAD = 2.0**-40
# Fewer rows of positive weight say nothing of the kind: among 3 to 5
# Gaussian rows, one held 99% of a feature's variance in 16% to 0.2% of
# the features.
_DOMINANT_MIN_ROWS = 10


def dominant_rows(X, sample_weight, mean, value_range, *, n_threads=1):
    """Features whose spread one row holds, and the mean of their other rows.

    For each feature, the row of largest weighted squared deviation from
    ``mean``.  Where the other rows' spread about their own mean is at most
    ``_OTHERS_SPREAD`` of the feature's (that row holds some 99% of the
    variance) and they still vary (a spread above ``_BULK_SPREAD`` of the
    feature's, and above the constant bound of their mean), the feature is
    dominated by that row: a value 1000 times as far out as the others, say.
    Standardized by its spread, such a feature's other values shrink to
    next to nothing, and centered on a mean that row pulls, they lie far
    from 0.  A one-hot column of a single sample is no such feature: its
    other rows are constant.  Nor are those of fewer than
    ``_DOMINANT_MIN_ROWS`` rows of positive weight.

    Per-feature ranges rule most features out at no cost: with equal
    weights and at least 10 rows, such a row lies more than 4 times as far
    from ``mean`` as any row on the other side.  Of those left (skewed
    features: counts, log-normal values), the squared deviations of the
    ends and of a few hundred evenly spaced rows rule out most (see
    :func:`_range_peaks`).  Where some may be left, one pass over their
    columns, in float64 chunks of about 512 KiB shared among ``n_threads``
    threads, then two over the columns that one row may hold most of (its
    row, then the others' spread).  Rows of zero weight count for nothing.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Dense, finite samples.
    sample_weight : ndarray of shape (n_samples,)
        Non-negative weights summing to one.
    mean : ndarray of shape (n_features,)
        Their weighted mean.
    value_range : tuple
        ``(low, high)``: the smallest and largest value of each feature in
        rows of positive weight (arrays of shape (n_features,)), or of all
        features (floats, which rule nothing out).
    n_threads : int, default=1
        Threads sharing the rows.

    Returns
    -------
    dominated : ndarray of shape (n_features,), bool
        The features one row dominates.
    rows : ndarray of shape (n_features,), int
        That row, for each dominated feature (-1 elsewhere).
    bulk_mean : ndarray of shape (n_features,)
        The weighted mean of the other rows of each dominated feature,
        ``mean`` elsewhere.
    bulk_range : tuple of two ndarrays of shape (n_features,)
        The smallest and largest value of those other rows (of positive
        weight) for each dominated feature, ``value_range`` elsewhere.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_softmax._loss import dominant_rows
    >>> X = np.c_[np.arange(12.0), np.arange(12.0) % 2]
    >>> X[11, 0] = 1e4  # one value far out
    >>> w = np.full(12, 1 / 12)
    >>> found = dominant_rows(X, w, w @ X, (X.min(axis=0), X.max(axis=0)))
    >>> found[0].tolist(), found[1].tolist(), found[2].round(6).tolist()
    ([True, False], [11, -1], [5.0, 0.5])
    >>> [bound.tolist() for bound in found[3]]
    [[0.0, 0.0], [10.0, 1.0]]
    """
    n_samples, n_features = X.shape
    weights = np.broadcast_to(sample_weight, (n_samples,)).astype(np.float64)
    mean = np.asarray(mean, dtype=np.float64)
    dominated = np.zeros(n_features, dtype=bool)
    rows = np.full(n_features, -1, dtype=np.intp)
    bulk_mean = mean.copy()
    low, high = (
        np.broadcast_to(np.asarray(v, dtype=np.float64), (n_features,))
        for v in value_range
    )
    bulk_low, bulk_high = low.copy(), high.copy()
    # (Filled in place below: so far, nothing found.)
    result = dominated, rows, bulk_mean, (bulk_low, bulk_high)
    if n_features == 0 or np.count_nonzero(weights) < _DOMINANT_MIN_ROWS:
        return result
    possible = np.ones(n_features, dtype=bool)
    # Equal weights among the rows that weigh, and each feature's range.
    same = bool(np.ndim(value_range[0])) and bool(
        np.all(weights[weights > 0] == weights.max())
    )
    if same:
        with np.errstate(invalid="ignore", over="ignore"):
            far, near = np.maximum(high - mean, 0.0), np.maximum(mean - low, 0.0)
            possible = np.maximum(far, near) > 4.0 * np.minimum(far, near)
        if not possible.any():
            return result
    # Deviations in a power-of-two unit of the largest value: their squares
    # stay finite whatever the magnitude of the data.  (Rows of zero weight
    # may lie beyond it: theirs are set to 0.)
    largest = float(
        np.max(np.abs(np.concatenate([np.ravel(low), np.ravel(high), mean])))
    )
    if not largest > 0 or not math.isfinite(largest):
        return result
    unit = math.ldexp(1.0, math.frexp(largest)[1] - 1)  # (at most 2**1023)
    center = mean / unit
    total = float(weights.sum())
    limit = 1.0 - _OTHERS_SPREAD**2
    least_others = total - float(weights.max())
    range_peak = None
    if same:
        range_peak = _range_peaks(
            X,
            weights,
            center,
            unit,
            (low, high),
            possible,
            limit * least_others / total,
        )
        if not possible.any():
            return result
    # (Equal weights: the rows' order is that of their squared deviations.)
    equal = float(weights[0]) if np.all(weights == weights[0]) else None
    # Each feature's largest weighted squared deviation and the sum of them,
    # over the features the ranges leave possible only.
    features = (
        None
        if np.count_nonzero(possible) * 4 > n_features
        else np.flatnonzero(possible)
    )
    peak, second = _deviation_peaks(
        X,
        weights,
        center,
        unit,
        features,
        equal is None,
        n_threads,
        peaks=range_peak is None,
    )
    if range_peak is not None:
        peak = range_peak if features is None else range_peak[features]
    elif equal is not None:
        peak *= equal
    # With weights summing to one, the variance about ``mean`` is that row's
    # share ``peak / (1 - w_row)`` (its own and the pull on the others' mean)
    # plus ``1 - w_row`` times the others' variance: the candidates, first
    # with the heaviest row's weight (``w_row`` is not known yet: a weight
    # of the row less than the heaviest asks more of its share).
    columns = np.arange(n_features) if features is None else features
    with np.errstate(divide="ignore", invalid="ignore"):
        kept = (
            possible[columns]
            & (second > 0)
            & (peak * total >= limit * least_others * second)
        )
    candidates, peak, second = columns[kept], peak[kept], second[kept]
    if not candidates.size:
        return result
    where = _deviation_rows(X, weights, center, unit, candidates, equal is None)
    others = total - weights[where]
    with np.errstate(divide="ignore", invalid="ignore"):
        kept = (others > 0) & (peak * total >= limit * others * second)
    candidates, peak_rows, second = candidates[kept], where[kept], second[kept]
    if not candidates.size:
        return result
    # The other rows' mean, spread about that mean, and range, with each
    # column's row left out.
    peak_weights = weights[peak_rows]
    others = total - peak_weights
    held = X[peak_rows, candidates].astype(np.float64) / unit
    with np.errstate(divide="ignore", invalid="ignore"):
        others_mean = (center[candidates] * total - peak_weights * held) / others
    first, squares = np.zeros(candidates.size), np.zeros(candidates.size)
    # (Deviations left out are 0, the others' mean: inside their range.)
    least, most = np.zeros(candidates.size), np.zeros(candidates.size)
    chunk_rows = max(8, (1 << 19) // (8 * candidates.size))
    for lo in range(0, n_samples, chunk_rows):
        hi = min(lo + chunk_rows, n_samples)
        with np.errstate(over="ignore", invalid="ignore"):
            deviation = X[lo:hi, candidates].astype(np.float64) / unit - others_mean
        w = weights[lo:hi]
        deviation[w == 0] = 0.0
        inside = np.flatnonzero((peak_rows >= lo) & (peak_rows < hi))
        deviation[peak_rows[inside] - lo, inside] = 0.0
        first += w @ deviation
        squares += w @ (deviation * deviation)
        np.minimum(least, deviation.min(axis=0), out=least)
        np.maximum(most, deviation.max(axis=0), out=most)
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = first / others
        variance = squares / others - shift**2
        spread = np.sqrt(second / total)
        # (About a mean of rounding, a constant column's residue: float32
        # X's mean in float32 is off by up to 2**-21 of itself.)
        noise = constant_noise(X) * np.abs(others_mean + shift)
        varies = (
            (others > 0)
            & (variance <= (_OTHERS_SPREAD * spread) ** 2)
            & (variance > (_BULK_SPREAD * spread) ** 2)
            & (variance > noise**2)
        )
    chosen = candidates[varies]
    dominated[chosen] = True
    rows[chosen] = peak_rows[varies]
    bulk_mean[chosen] = (others_mean[varies] + shift[varies]) * unit
    bulk_low[chosen] = (others_mean[varies] + least[varies]) * unit
    bulk_high[chosen] = (others_mean[varies] + most[varies]) * unit
    return result


def _squared_deviations(X, lo, hi, features, center, unit, weights, out=None):
    """``((x - center * unit) / unit)**2`` of rows ``lo:hi`` of X, float64.

    Of the columns ``features`` (None: all), whose ``center`` is given;
    rows of zero weight give 0 (whatever their size: 0 * inf is NaN).
    """
    block = X[lo:hi] if features is None else X[lo:hi, features]
    with np.errstate(over="ignore", invalid="ignore"):
        chunk = np.multiply(block, 1.0 / unit, out=out, dtype=np.float64)
        chunk -= center
    chunk[weights[lo:hi] == 0] = 0.0
    chunk *= chunk
    return chunk


# Rows of the evenly spaced sample whose squared deviations bound each
# feature's sum of them from below (see _range_peaks).
_PEAK_SAMPLE_ROWS = 256


def _range_peaks(X, weights, center, unit, value_range, possible, share):
    """Each feature's largest squared deviation, from its range; fewer possible.

    For dense X whose rows of positive weight weigh the same (``v``): the
    largest of ``((x - center * unit) / unit)**2`` over those rows is that
    of one end of the feature's range (the same floats as a pass computes),
    times ``v``: the ``peak`` of :func:`_deviation_peaks`.  A feature is a
    candidate of :func:`dominant_rows` only where that peak is at least
    ``share`` of the sum of the squared deviations, times ``v``; lower
    bounds of the sum rule out, in ``possible`` (in place), the features
    that fall short even so, with a margin for the sum's rounding:

    - the two ends, held by two rows (one of a constant feature, among at
      least 10 rows);
    - the squared deviations of about ``_PEAK_SAMPLE_ROWS`` evenly spaced
      rows, plus the peak in place of the sample's largest (which may be
      the peak's row).

    Of many rows, the ends alone leave the features whose other end lies
    within about a tenth of the far one's distance; the sample leaves
    those whose other rows barely vary.
    """
    low, high = value_range
    with np.errstate(over="ignore", invalid="ignore"):
        ends = [np.square(np.multiply(v, 1.0 / unit) - center) for v in (high, low)]
        top = np.maximum(*ends)
        bound = (1.0 - 1e-6) * share
        possible &= top >= bound * (ends[0] + ends[1])
        step = -(-X.shape[0] // _PEAK_SAMPLE_ROWS)
        columns = np.flatnonzero(possible)
        if step > 1 and columns.size:
            squares = _squared_deviations(
                X[::step], 0, None, columns, center[columns], unit, weights[::step]
            )
            # (The peak is at least the sample's largest: the bound is at
            # least the sample's sum.)
            least = top[columns] + squares.sum(axis=0) - squares.max(axis=0)
            possible[columns] &= top[columns] >= bound * least
    return top * float(weights.max())


def _deviation_peaks(
    X, weights, center, unit, features, weighted, n_threads, *, peaks=True
):
    """Per feature, the largest squared deviation of a row and their sum.

    ``(peak, second)`` over the columns ``features`` (None: all) of dense
    X, deviations as :func:`_squared_deviations` gives them: ``peak`` the
    largest one (times its row's weight if ``weighted``; None without
    ``peaks``), ``second`` their weighted sum.  One pass in float64 chunks
    of about 512 KiB, shared among ``n_threads`` threads.
    """
    if features is not None:
        center = center[features]
    size = center.size
    chunk_rows = max(8, (1 << 19) // (8 * size))

    def work(blocks):
        peak, second = np.zeros(size), np.zeros(size)
        buffer = np.empty((chunk_rows, size))
        for start, stop in blocks:
            for lo in range(start, stop, chunk_rows):
                hi = min(lo + chunk_rows, stop)
                chunk = _squared_deviations(
                    X, lo, hi, features, center, unit, weights, buffer[: hi - lo]
                )
                w = weights[lo:hi]
                second += w @ chunk
                if not peaks:
                    continue
                if weighted:
                    chunk *= w[:, None]
                np.maximum(peak, _column_extreme(np.maximum, chunk, None), out=peak)
        return peak if peaks else None, second

    parts = _per_thread(work, *_pass_blocks(X, X.shape[0], n_threads, size))
    peak, second = parts[0]
    for other_peak, other_second in parts[1:]:
        if peaks:
            np.maximum(peak, other_peak, out=peak)
        second += other_second
    return peak, second


def _deviation_rows(X, weights, center, unit, features, weighted):
    """The first row of each feature's largest squared deviation.

    The row of :func:`_deviation_peaks`'s ``peak`` for each of the columns
    ``features`` (a few: one pass over those columns).
    """
    center = center[features]
    best = np.full(features.size, -1.0)
    where = np.zeros(features.size, dtype=np.intp)
    positions = np.arange(features.size)
    chunk_rows = max(8, (1 << 19) // (8 * features.size))
    for lo in range(0, X.shape[0], chunk_rows):
        hi = min(lo + chunk_rows, X.shape[0])
        chunk = _squared_deviations(X, lo, hi, features, center, unit, weights)
        if weighted:
            chunk *= weights[lo:hi, None]
        top = chunk.argmax(axis=0)
        value = chunk[top, positions]
        higher = value > best
        best[higher], where[higher] = value[higher], lo + top[higher]
    return where


def _curvature_rows(sample_weight, n_samples):
    """Which rows :func:`_curvature_sample` takes: a slice, or an index.

    At most ``_CURVATURE_ROWS`` evenly spaced rows; where some rows weigh 0
    (numpy weights), evenly spaced among the others, as without those rows.
    (Spaced among all rows, a sample of 1,000,000 rows of which 1% weigh
    holds about 80 that do; and with half of 12,000 rows at 0, its
    curvature bound was 0.4% off that of the rows without them, and so was
    every step.)
    """
    step = -(-n_samples // _CURVATURE_ROWS)
    if step == 1:
        return slice(None)
    if isinstance(sample_weight, np.ndarray):
        positive = np.flatnonzero(sample_weight)
        if positive.size < n_samples:
            return positive[:: -(-positive.size // _CURVATURE_ROWS)]
    # (Spaced among all rows of weights that are not numpy, the sample may
    # hold none that weighs: then all rows.)
    return slice(None, None, step) if sample_weight[::step].sum() > 0 else slice(None)


def _take_rows(X, rows):
    """``X[rows]`` for an index array ``rows`` (numpy or scipy.sparse X)."""
    return X[rows]


def _curvature_sample(X, sample_weight, labels=None, take=_take_rows):
    """Evenly spaced rows of X and their weights, renormalized to sum to one
    (and the rows' ``labels``, when given, as a third item); see
    :func:`_curvature_rows`.

    A strided slice, a view of dense X, unless some rows weigh 0 among more
    than ``_CURVATURE_ROWS``: then a copy of at most that many rows, made by
    ``take(X, rows)``.
    """
    rows = _curvature_rows(sample_weight, X.shape[0])
    sample = X, sample_weight
    if isinstance(rows, np.ndarray) or rows.step is not None:
        weights = sample_weight[rows]
        taken = take(X, rows) if isinstance(rows, np.ndarray) else X[rows, :]
        sample = taken, weights / weights.sum()
    if labels is None:
        return sample
    return *sample, labels[rows]


def _centered_row_norms_sq(X, mean, scale):
    """``||(x_i - mean) / scale||^2`` for every row, in float64."""
    if sp.issparse(X):
        far = np.flatnonzero(np.abs(mean / scale) > _SPARSE_EXPANSION_RATIO)
        if far.size:
            # Features that far from 0 are stored in about every row: their
            # deviations exactly, from a dense copy of their columns, the
            # others expanded.
            if X.format not in ("csr", "csc"):
                X = X.tocsr()
            near = np.setdiff1d(np.arange(X.shape[1]), far)
            columns = X[:, far].toarray().astype(np.float64, copy=False)
            columns -= mean[far]
            columns /= scale[far]
            sq = np.einsum("ij,ij->i", columns, columns)
            if near.size:
                sq += _centered_row_norms_sq(X[:, near], mean[near], scale[near])
            return sq
        sq = _sparse_row_sums_sq(X, 1.0 / scale)
        # (mean / scale) / scale: scale**2 underflows below 1e-154.
        projection = _sparse_product_float64(X, mean / scale / scale)
        return np.maximum(sq - 2.0 * projection + np.sum((mean / scale) ** 2), 0.0)
    if np.all(scale == 1) and _expansion_is_accurate(X.dtype, mean, X.shape[1]):
        # Ordinary magnitudes: one pass in the dtype of X, no float64 copy.
        sq = np.einsum("ij,ij->i", X, X).astype(np.float64)
        projection = (X @ mean.astype(X.dtype)).astype(np.float64)
        return np.maximum(sq - 2.0 * projection + mean @ mean, 0.0)
    sq = np.empty(X.shape[0])
    for start in range(0, X.shape[0], _CHUNK_ROWS):
        chunk = np.array(X[start : start + _CHUNK_ROWS], dtype=np.float64)
        chunk -= mean
        chunk /= scale
        sq[start : start + _CHUNK_ROWS] = np.einsum("ij,ij->i", chunk, chunk)
    return sq


# The largest ``||mean||^2 / n_features`` at which the expansion
# ``||x||^2 - 2 x.mean + ||mean||^2`` keeps its terms' rounding (relative
# ``eps * ||mean||^2``) below about 1e-3 (float32) and 1e-4 (float64) of a
# centered norm of about ``n_features`` (unit spreads).
_EXPANSION_LIMIT = {np.dtype(np.float32): 2.0**14, np.dtype(np.float64): 2.0**40}
# Sparse X's expansion, in float64, per feature: beyond this ratio of mean
# to scale (a column at 1e9 +- 1: the largest norm 128 instead of 20), the
# feature's deviations are computed from its column.
_SPARSE_EXPANSION_RATIO = 2.0**16


def _expansion_is_accurate(dtype, mean, n_features):
    """Whether the rows' centered norms may be expanded in X's ``dtype``.

    A feature at 1e5 +- 1 in float32 (air pressure in Pa, say) made the
    expansion's largest centered norm 1825 instead of 8: the mini-batch
    step, sized by it, was 200 times too short, and sgd learned far less,
    silently.
    """
    limit = _EXPANSION_LIMIT.get(np.dtype(dtype), 0.0)
    return float(mean @ mean) <= limit * max(n_features, 1)


_CHUNK_ROWS = 4096
# Stored entries of a sparse X read at a time (two temporaries of 2 MiB).
_CHUNK_ENTRIES = 1 << 18


def _entry_chunks(X):
    """Chunks of about ``_CHUNK_ENTRIES`` stored entries of a CSR or CSC X.

    Their bounds along the compressed axis (rows of CSR, columns of CSC).
    """
    indptr = X.indptr
    marks = np.arange(0, X.nnz, _CHUNK_ENTRIES)
    bounds = np.unique(
        np.r_[np.searchsorted(indptr, marks, side="right") - 1, indptr.size - 1]
    )
    bounds[0] = 0
    return bounds


def stored_share(X, sample_weight):
    """Per feature of a sparse X, the weight of the rows where it is stored.

    Stored zeros do not count.  A chunk of stored entries at a time (see
    :func:`_entry_chunks`): one cheap pass, with temporaries of the size of
    a chunk.  Other formats than CSR and CSC are converted to CSR.

    Parameters
    ----------
    X : sparse matrix of shape (n_samples, n_features)
        The samples.
    sample_weight : ndarray of shape (n_samples,)
        Non-negative weights.

    Returns
    -------
    share : ndarray of shape (n_features,)
        float64; with weights summing to one, the share of the weight.

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> from sk_softmax._loss import stored_share
    >>> X = sp.csr_matrix(np.array([[1.0, 0.0], [2.0, 0.0], [3.0, 4.0]]))
    >>> stored_share(X, np.array([0.5, 0.25, 0.25])).tolist()
    [1.0, 0.25]
    """
    if X.format not in ("csr", "csc"):
        X = X.tocsr()
    weights = np.asarray(sample_weight, dtype=np.float64)
    n_features = X.shape[1]
    share = np.zeros(n_features)
    indptr = X.indptr
    bounds = _entry_chunks(X)
    for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
        lo, hi = indptr[start], indptr[stop]
        if hi == lo:
            continue
        stored = X.data[lo:hi] != 0
        if X.format == "csr":
            counts = np.diff(indptr[start : stop + 1])
            entry_weights = np.repeat(weights[start:stop], counts) * stored
            share += np.bincount(
                X.indices[lo:hi], weights=entry_weights, minlength=n_features
            )
        else:
            sums = np.r_[0.0, np.cumsum(weights[X.indices[lo:hi]] * stored)]
            ends = indptr[start : stop + 1] - lo
            share[start:stop] = sums[ends[1:]] - sums[ends[:-1]]
    return share


def _sparse_product_float64(X, vector):
    """``X @ vector`` for a sparse X, in float64, a chunk of entries at a time.

    scipy upcasts the values of a float32 X to the vector's float64 all at
    once: a copy twice the size of ``X.data``.
    """
    if X.dtype == np.float64:
        return np.asarray(X @ vector, dtype=np.float64).ravel()
    if X.format not in ("csr", "csc"):
        X = X.tocsr()
    out = np.zeros(X.shape[0])
    bounds = _entry_chunks(X)
    for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
        lo, hi = X.indptr[start], X.indptr[stop]
        data = X.data[lo:hi].astype(np.float64)
        indptr = X.indptr[start : stop + 1] - lo
        if X.format == "csr":
            shape = (stop - start, X.shape[1])
            chunk = _compressed_view("csr", data, X.indices[lo:hi], indptr, shape)
            out[start:stop] = chunk @ vector
        else:
            shape = (X.shape[0], stop - start)
            chunk = _compressed_view("csc", data, X.indices[lo:hi], indptr, shape)
            out += chunk @ vector[start:stop]
    return out


def _sparse_row_sums_sq(X, inv_scale, offset=None, unit=1.0):
    """``sum_j (x_ij * inv_scale_j)^2`` for every row of a sparse X, in float64.

    CSR and CSC are read as they are, a chunk of about ``_CHUNK_ENTRIES``
    stored entries at a time, so the temporaries stay of the size of a
    chunk, not of X (other formats are converted to CSR).

    With ``offset`` (one per row), the sums are over the stored entries of
    ``((x_ij - offset_i) / unit * inv_scale_j)^2`` (``unit``, a power of
    two, keeps them finite for data of extreme magnitude), and the result
    is ``(sums, covered, stored)``: over the stored entries of row i,
    ``covered_i = sum_j inv_scale_j^2`` and ``stored_i`` their number where
    ``inv_scale_j > 0``.  The implicit zeros add ``(offset_i / unit)^2``
    times the rest of ``sum_j inv_scale_j^2`` (none where ``stored_i``
    counts every ``j`` of positive ``inv_scale_j``).  Stored zeros count as
    implicit ones: the same matrix gives the same sums, however stored.

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> from sk_softmax._loss import _sparse_row_sums_sq
    >>> X = sp.csc_matrix(np.array([[1.0, 0.0], [0.0, 0.0], [3.0, 4.0]]))
    >>> _sparse_row_sums_sq(X, np.ones(2))
    array([ 1.,  0., 25.])
    """
    if X.format not in ("csr", "csc"):
        X = X.tocsr()
    n_samples = X.shape[0]
    indptr = X.indptr
    bounds = _entry_chunks(X)
    # Entries stored twice for one (row, column) add up: their sum is squared.
    canonical = X.has_canonical_format
    csr = X.format == "csr"
    # CSC sums come whole from each chunk (one, mostly): the first is kept,
    # not added to zeros (on the 2**18 features of a hashed-text chunk,
    # passes over three arrays of 2 MiB each).
    sq, covered, stored = (np.zeros(n_samples) for _ in range(3)) if csr else [None] * 3
    if offset is not None:
        offset = np.asarray(offset, dtype=np.float64)
    for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
        lo, hi = indptr[start], indptr[stop]
        if hi == lo:
            continue
        data, indices = X.data[lo:hi], X.indices[lo:hi]
        chunk_indptr = indptr[start : stop + 1] - lo
        if not canonical:
            if X.format == "csr":
                shape = (stop - start, X.shape[1])
            else:
                shape = (X.shape[0], stop - start)
            chunk = _compressed_view(X.format, data, indices, chunk_indptr, shape)
            chunk = chunk.copy()
            chunk.sum_duplicates()
            data, indices, chunk_indptr = chunk.data, chunk.indices, chunk.indptr
        counts = np.diff(chunk_indptr)
        if X.format == "csr":
            factors = inv_scale[indices]
            if offset is not None:
                # A stored zero is an implicit one (see above).
                factors *= data != 0
                data = data / unit - np.repeat(offset[start:stop] / unit, counts)
            values = data * factors
            values *= values
            filled = np.flatnonzero(counts)
            sq[start + filled] = np.add.reduceat(values, chunk_indptr[:-1][filled])
            if offset is not None:
                starts = chunk_indptr[:-1][filled]
                stored[start + filled] = np.add.reduceat(factors > 0, starts)
                factors *= factors
                covered[start + filled] = np.add.reduceat(factors, starts)
        else:
            factors = np.repeat(inv_scale[start:stop], counts)
            if offset is not None:
                factors *= data != 0
                data = data / unit - offset[indices] / unit
            values = data * factors
            values *= values
            sq = _summed(sq, np.bincount(indices, weights=values, minlength=n_samples))
            if offset is not None:
                stored = _summed(
                    stored,
                    np.bincount(indices, weights=factors > 0, minlength=n_samples),
                )
                factors *= factors
                covered = _summed(
                    covered, np.bincount(indices, weights=factors, minlength=n_samples)
                )
    if sq is None:  # (no entry stored)
        sq, covered, stored = (np.zeros(n_samples) for _ in range(3))
    return sq if offset is None else (sq, covered, stored)


def _summed(total, part):
    """``total + part``, in ``total``'s memory; ``part`` itself for None."""
    if total is None:
        return part
    total += part
    return total


# Up to this many features the (n_features, n_features) weighted Gram
# matrix of the centered, scaled rows is formed exactly (see weighted_gram):
# at most 512 KiB, and for the full batch's preconditioner (see
# gram_preconditioner) one pass over X costing about n_features / (6
# n_classes) evaluations of the loss.
_GRAM_FEATURES = 256


def weighted_gram(
    X, sample_weight, *, mean, scale, n_threads=1, coef=None, intercept=None, y=None
):
    """``X_c^T diag(s) X_c`` with ``X_c = (X - mean) / scale``, in float64.

    One pass over X, by chunks of about 1 MiB of float64 rows (one buffer
    per thread), centered and scaled on the fly: X is neither modified nor
    copied whole, and centering each chunk keeps the rounding of features
    far from 0 out of the result (the difference ``X^T X - mu mu^T`` would
    lose it to cancellation).  Given ``coef``, each row also weighs its
    curvature at the logits ``X_c coef + intercept`` (see
    :func:`softmax_curvature`): the matrix then bounds the data term's
    Hessian there, per class.

    Parameters
    ----------
    X : {ndarray, sparse matrix} of shape (n_samples, n_features)
        Finite samples.
    sample_weight : ndarray of shape (n_samples,)
        Non-negative weights (normalized to sum to one for the weighted
        second-moment matrix).
    mean : ndarray of shape (n_features,)
        Center of the rows.
    scale : ndarray of shape (n_features,)
        Positive divisor of each centered feature.
    n_threads : int, default=1
        Threads that sum row blocks in parallel.
    coef : ndarray of shape (n_features, n_classes), default=None
        Coefficients of the centered, scaled features (``W^T``); None
        weighs the rows by ``sample_weight`` alone.
    intercept : ndarray of shape (n_classes,), default=None
        Intercept of those logits (0 when None).
    y : ndarray of shape (n_samples,), default=None
        The rows' class indices, for their curvature (see
        :func:`softmax_curvature`).

    Returns
    -------
    gram : ndarray of shape (n_features, n_features)
        Symmetric, positive semi-definite.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_softmax._loss import weighted_gram
    >>> X = np.array([[1.0, 2.0], [3.0, 2.0]])
    >>> weighted_gram(X, np.full(2, 0.5), mean=np.array([2.0, 2.0]),
    ...               scale=np.ones(2))
    array([[1., 0.],
           [0., 0.]])
    >>> weighted_gram(X, np.full(2, 0.5), mean=np.array([2.0, 2.0]),
    ...               scale=np.ones(2), coef=np.zeros((2, 2)))
    array([[0.5, 0. ],
           [0. , 0. ]])
    """
    n_samples, n_features = X.shape
    rows = max(1, (1 << 20) // max(8 * n_features, 1))
    weights = np.broadcast_to(sample_weight, (n_samples,))
    inverse = 1.0 / np.asarray(scale, dtype=np.float64)
    if coef is not None:
        coef = np.asarray(coef, dtype=np.float64)

    def work(blocks):
        gram = np.zeros((n_features, n_features))
        buffer = np.empty((rows, n_features))
        for start, stop in blocks:
            for lo in range(start, stop, rows):
                hi = min(lo + rows, stop)
                part, chunk = X[lo:hi], buffer[: hi - lo]
                if sp.issparse(part):
                    chunk[...] = part.toarray()
                    chunk -= mean
                else:
                    np.subtract(part, mean, out=chunk)
                chunk_weights = np.asarray(weights[lo:hi], dtype=np.float64)
                # (A row of zero weight may lie far outside the range the
                # scale comes from: 0 * inf is NaN.)
                chunk[chunk_weights == 0] = 0.0
                chunk *= inverse
                if coef is not None:
                    logits = chunk @ coef
                    if intercept is not None:
                        logits += intercept
                    labels = None if y is None else y[lo:hi]
                    chunk_weights = chunk_weights * softmax_curvature(logits, labels)
                # (sqrt(w) on both sides: the product stays one GEMM.)
                chunk *= np.sqrt(chunk_weights)[:, None]
                gram += chunk.T @ chunk
        return gram

    return sum(_per_thread(work, *_pass_blocks(X, n_samples, n_threads)))


# The full batch takes the preconditioner of gram_preconditioner where the
# condition number of the features' correlation matrix is above this: the
# accelerated diagonal steps need about sqrt(condition number) times more
# passes than on uncorrelated features.  Measured to a 1e-4 gradient, with
# the Gram matrix's pass included: condition numbers of 12 to 37, 2 to 5
# times faster (100 features: 36 passes in 0.24 s against 18 in 0.13 s);
# of 4 to 7, 1.2 to 3 times; Gaussian features (about 1.5) take as many
# passes either way, and the Gram matrix would cost a tenth more time.
_ILL_CONDITIONED = 10.0
# ...and on at most 4096 samples, above this (see
# SoftmaxRegression._precondition_threshold): there the diagonal steps'
# passes grow about 30-fold (the square root), where their cheap passes
# no longer make up for them.
_SMALL_ILL_CONDITIONED = 1000.0
# The ridge of the preconditioner, relative to the mean diagonal of the
# penalized curvature bound: it caps the step along directions the data
# (nearly) lack, where a gradient is rounding noise (float32's 6e-8 of the
# gradient, amplified by at most 1 / ridge), at little cost in passes (a
# ridge of 1e-3 took 11 to 27 passes to a 1e-6 gap where none took 11 to
# 26, on five problems with condition numbers of 1e3 to 1e8).
_GRAM_RIDGE = 1e-3
# Eigenvalues of the correlation matrix below this fraction of the largest
# make its null space (duplicated columns, redundant ones, one-hot columns
# with their sum), where the gradient has no data term: the condition number
# that decides is that of the other directions.  (Singular matrices used to
# keep the diagonal steps: along the null space only the penalty curves the
# loss, and a bound formed once held confident predictions back there; the
# factor formed again at the current curvature does not (see
# sk_softmax._softmax._Whitening).  make_classification's redundant features
# mixed into correlated ones: 110 passes, now 15; one-hot columns keep the
# diagonal steps, their other directions being uncorrelated.)
_RANK_DEFICIENT = 1e-10


def gram_preconditioner(
    gram, penalty, *, constant=None, threshold=_ILL_CONDITIONED, ridge_fraction=1.0
):
    """Cholesky factor of the full batch's curvature bound, where it pays.

    The softmax cross-entropy's Hessian in the coefficients is at most
    ``I_K kron G`` (per class; with centered features the intercept's block
    is separate), where ``G`` is the Gram matrix of the rows weighted by
    their curvature (:func:`weighted_gram` with ``coef``; at most ``gram /
    2`` of the plain one, as ``diag(p) - p p^T <= I / 2``), so with the
    penalty's per-feature curvature ``penalty``::

        P = G + diag(penalty) + ridge I

    bounds it, and steps of ``grad P^{-1}`` (per class) are safe at length
    1, whatever the correlation of the features: the iterations then depend
    on how the probabilities curve, not on the features' condition number.
    That costs the Gram matrix (one pass over X) and two triangular
    solves of ``n_classes x n_features**2`` per step.

    Parameters
    ----------
    gram : ndarray of shape (n_features, n_features)
        ``G``, the weighted Gram matrix of the centered, scaled features (see
        :func:`weighted_gram`); a sample's plain one decides, the
        curvature-weighted one of all rows bounds.
    penalty : ndarray of shape (n_features,)
        Curvature of the penalty per coefficient (``alpha / scale**2``).
    constant : ndarray of shape (n_features,) of bool, default=None
        Features to leave out (held by the caller): their rows and columns
        of ``P`` are those of ``diag(1 + penalty)``.
    threshold : float, default=_ILL_CONDITIONED
        Condition number of the correlation matrix (``gram`` with unit
        diagonal, constant features left out) at and below which no factor
        is returned: diagonal steps are as good there.  Where that matrix
        is singular to rounding (duplicated or redundant columns), its
        smallest eigenvalue above 1e-10 of the largest counts: along the
        null space the gradient has no data term.  0 returns a factor
        wherever ``P`` is positive definite to float64's resolution.
    ridge_fraction : float, default=1.0
        Scales the ridge.  For features far from 0 without an intercept,
        the share of their second moments that is spread: most of ``gram``
        is then the offsets' one direction, and a ridge of the whole mean
        diagonal would drown the directions that tell the classes apart
        (``X + 1e4``: steps 1e5 times too short there, and the fit stopped
        after 3 passes at chance accuracy).

    Returns
    -------
    factor : ndarray of shape (n_features, n_features) or None
        Lower-triangular ``L`` with ``P = L L^T``, or None (also where the
        Cholesky factorization fails).

    Examples
    --------
    >>> import numpy as np
    >>> from sk_softmax._loss import gram_preconditioner
    >>> gram = np.array([[1.0, 0.999], [0.999, 1.0]])  # condition number 1999
    >>> factor = gram_preconditioner(gram, np.zeros(2))
    >>> bool(np.allclose(factor @ factor.T, gram + 1e-3 * np.eye(2)))
    True
    >>> gram_preconditioner(np.eye(2), np.zeros(2)) is None
    True
    """
    n_features = gram.shape[0]
    keep = np.ones(n_features, dtype=bool) if constant is None else ~constant
    diagonal = np.diag(gram)
    keep &= diagonal > 0
    if not np.any(keep):
        return None
    if threshold > 0:
        root = np.sqrt(diagonal[keep])
        eigenvalues = eigvalsh(gram[np.ix_(keep, keep)] / np.outer(root, root))
        largest = eigenvalues[-1]
        # (The data's own directions: along a null space, duplicated or
        # one-hot columns, the gradient has no data term.)
        smallest = eigenvalues[eigenvalues > _RANK_DEFICIENT * largest][0]
        if largest <= threshold * smallest:
            return None
    bound = gram + np.diag(penalty)
    bound[~keep, :] = 0.0
    bound[:, ~keep] = 0.0
    ridge = _GRAM_RIDGE * ridge_fraction * float(np.mean(np.diag(bound)[keep]))
    # (Features left out: a step of 1 is safe for their penalty alone.)
    bound[np.diag_indices(n_features)] += np.where(keep, ridge, 1.0 + penalty)
    try:
        return cholesky(bound, lower=True)
    except np.linalg.LinAlgError:
        # Positive definite only beyond float64's resolution: features 1e8
        # spreads from 0 without intercept, whose Gram matrix about 0 is
        # their offsets' and rounding.
        return None


_LANCZOS_VECTORS = 8


def _largest_weighted_eigenvalue(X, sample_weight, mean, scale):
    """``lambda_max(X_c^T diag(s) X_c)``, ``X_c = (X - mean) / scale``, sum(s) = 1.

    Up to 256 features, the (n_features, n_features) Gram matrix is formed by
    row chunks (exact, one pass over X, sparse or dense); otherwise Lanczos on
    the implicit operator, which only needs products with X and X^T.  With
    fewer rows than features, Lanczos runs on the (n_samples, n_samples)
    operator ``A A^T`` of ``A = diag(s)^(1/2) X_c``, whose nonzero eigenvalues
    are those of ``A^T A``: its vectors are as long as the rows are many.
    (On a ``partial_fit`` chunk of 1000 rows of 2**18 hashed features: 22
    ms against 126, which ARPACK spent on vectors of 2**18; on 8192 rows
    of 50,000 sparse features, 69 ms against 136.)
    """
    n_samples, n_features = X.shape
    if n_features == 0:
        return 0.0
    if n_features <= _GRAM_FEATURES:
        gram = weighted_gram(X, sample_weight, mean=mean, scale=scale)
        return float(
            eigvalsh(gram, subset_by_index=[n_features - 1, n_features - 1])[0]
        )

    # The vectors of length n_features live in buffers made once, updated in
    # place: on a partial_fit chunk of 2**18 hashed features, the fresh
    # arrays of each product (five of 2 MiB) took most of its 3.8 ms.
    inverse = 1.0 / scale  # (0 for the infinite scale of a left-out feature)
    centered = bool(np.any(mean))
    # Products in the dtype of X (a float64 vector would upcast, copy, X);
    # the centering in float64.
    in_dtype = np.empty(n_features, dtype=X.dtype)
    column = in_dtype if X.dtype == np.float64 else np.empty(n_features)

    def times_rows(v):  # X_c (v / scale) for v of length n_features
        np.multiply(v, inverse, out=column)
        if column is not in_dtype:
            np.copyto(in_dtype, column, casting="same_kind")
        rows = np.asarray(X @ in_dtype, dtype=np.float64).ravel()
        if centered:
            rows -= mean @ column
        return rows

    def times_columns(u):  # X_c^T u / scale, u of length n_samples, in column
        u_in_dtype = u.astype(X.dtype, copy=False)
        if isinstance(X, np.ndarray):
            np.matmul(X.T, u_in_dtype, out=in_dtype)
        else:
            in_dtype.fill(0.0)
            _sparse_product(_transpose(X), u_in_dtype[:, None], in_dtype[:, None])
        if column is not in_dtype:
            np.copyto(column, in_dtype)
        if centered:
            _axpy(-float(u.sum()), mean, column)
        return np.multiply(column, inverse, out=column)

    if n_samples < n_features:
        roots = np.sqrt(np.asarray(sample_weight, dtype=np.float64))
        size = n_samples

        def matvec(u):
            u = np.asarray(u, dtype=np.float64).ravel() * roots
            rows = times_rows(times_columns(u))
            rows *= roots
            return rows

    else:
        size = n_features

        def matvec(v):
            u = times_rows(np.asarray(v, dtype=np.float64).ravel())
            u *= sample_weight
            # (ARPACK copies the result: the buffer may be handed out.)
            return times_columns(u)

    operator = LinearOperator((size, size), matvec=matvec, dtype=np.float64)
    if size <= 2:
        gram = np.column_stack([matvec(e).copy() for e in np.eye(size)])
        return float(eigvalsh(gram)[-1])
    v0 = np.random.RandomState(0).uniform(0.5, 1.5, size=size)
    if not np.any(matvec(v0)):
        # Every centered row is 0 (one row, identical rows, all-zero X): the
        # operator is 0, and ARPACK would fail on its zero starting vector.
        return 0.0
    # A Krylov space of 8 vectors (ARPACK's default is 20, whose first
    # round alone takes 20 products with X and X^T): the same tolerance in
    # 9 to 25 products instead of 21 to 31 (a 2000 x 20000 X: 0.52 s
    # against 0.28 s, a third of the default fit).
    value = eigsh(
        operator,
        k=1,
        which="LA",
        tol=1e-2,
        v0=v0,
        ncv=min(_LANCZOS_VECTORS, size - 1),
        return_eigenvectors=False,
    )
    # Lanczos approaches lambda_max from below; the margin keeps the step safe.
    return float(value[0]) * 1.02
