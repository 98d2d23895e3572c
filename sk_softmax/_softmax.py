"""SoftmaxRegression: the estimator around the loss and the solvers."""

import copy
import functools
import math
import numbers
import warnings

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin, clone, config_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import type_of_target, unique_labels
from sklearn.utils.validation import check_is_fitted

from . import __version__, _array_api, _dask
from ._compat import (
    Hidden,
    Interval,
    StrOptions,
    _fit_context,
    _safe_indexing,
    array_namespace,
    assert_all_finite,
    check_classification_targets,
    check_label_types,
    check_partial_fit_first_call,
    check_same_namespace,
    check_sample_weight,
    detached,
    host_array,
    is_array,
    to_numpy,
    to_numpy_namespace,
    validate_data,
    warn_at_caller,
)
from ._dask import is_dask_array
from ._loss import (
    _GRAM_FEATURES,
    _ILL_CONDITIONED,
    _PLAIN_RANGE,
    _SMALL_ILL_CONDITIONED,
    _binary_difference,
    _binary_forward,
    _centered_row_norms_sq,
    _curvature_rows,
    _curvature_sample,
    _from_scaled,
    _loss_and_gradient,
    _mean_and_range,
    _scaled_logits,
    _solve_lower,
    _SparseCenter,
    _subtract_outer,
    _summable_weights,
    constant_noise,
    dominant_rows,
    feature_scales,
    gram_preconditioner,
    largest_eigenvalue,
    lipschitz_constants,
    log_softmax,
    mean_shift,
    mini_batch_curvature,
    single_threaded_blas,
    softmax,
    softmax_curvature,
    stored_magnitudes,
    stored_share,
    weighted_gram,
    weighted_std,
)
from ._solvers import (
    _DIVERGENCE_FACTOR,
    AcceleratedGradient,
    Adam,
    DivergenceError,
    Momentum,
    Restart,
    UpdateRule,
    gradient_descent,
    lbfgs,
)

# Below this many samples, batch_size="auto" trains on the full batch: the
# fit is then deterministic and reaches the exact optimum.
_AUTO_FULL_BATCH_MAX = 4096
# ...where its Gram preconditioner needs a worse condition number, and at
# least this many rows per feature (see _precondition_threshold): fewer
# points than twice the dimension are linearly separable with probability
# above one half (Cover, 1965).
_SMALL_ROWS_PER_FEATURE = 2
# Mini-batches of this many rows, except for sparse X of more features,
# which trains on the full batch.  Each batch's step updates every
# coefficient, which there costs more than the batch's rows; and a
# standardized row's squared norm averages the number of features, so the
# per-row curvature bound, and with it the batch's step, shrinks with
# features / batch (see lipschitz_constants) where the features are weakly
# correlated, as sparse ones are: 100k x 50k sparse took 32 s in 23 epochs,
# 0.9 s in 16 full-batch passes.  (Correlated dense features have a full
# curvature bound large enough for batches to step nearly as far, and
# their full batch may take hundreds of passes.)
_AUTO_BATCH_SIZE = 256
# Above 4096 samples, batch_size="auto" (with the automatic step and
# Nesterov's momentum) trains on the full batch too, unless the features are
# strongly correlated: the largest eigenvalue of their correlation matrix
# (the eigenvalues average 1) above this (see largest_eigenvalue).  The
# accelerated full batch then needs about sqrt(condition number) times more
# passes, and a mini-batch's step is about as long as the full batch's (the
# full batch's curvature bound is large), so the n / 256 steps of an epoch
# pay off: on 100,000 x 300 features of rank 10 plus noise (eigenvalue 40),
# 15 epochs in 1.0 s against 200 full-batch passes in 5.0 s, to about the
# same objective.  Otherwise the full batch's passes, about 3 times cheaper
# than an epoch of batches, reach the exact optimum in about as much time or
# less: 100,000 x 100 Gaussian features, 22 passes in 0.70 to 0.81 s against
# 12 epochs in 1.19 to 1.57 s, to a lower loss; log-normal features, whose per-row
# curvature shortens the batches' steps (see mini_batch_curvature), 1.4 to
# 3.5 times faster (4 to 6 with a log-normal sigma of 2).  This rule decides beyond
# 256 features only: up to 256, correlated features take the full batch
# with steps preconditioned by their Gram matrix (see gram_preconditioner),
# whose passes do not grow with the condition number (the same 100,000
# samples of rank 10 plus noise, 100 features: 26 passes in 0.36 s against
# 19 epochs in 0.46 s).
_CORRELATED_EIGENVALUE = 16.0
# ... and even then, where the batches' curvature bound is at least twice
# the full batch's (a batch's step would be half as long or less).
_SHORTER_BATCH_STEPS = 2.0
# partial_fit sizes a new optimizer's steps and coordinates on at least this
# many rows (of positive weight): smaller chunks wait for the next ones (see
# partial_fit).
_MIN_SIZING_ROWS = 10
# partial_fit's divergence test leaves out the rows of largest loss, up to
# this share of the chunk's weight (see _trimmed_row_loss).
_TRIMMED_SHARE = 0.01
# ... and only rows beyond this many times a feature's kept scale from its
# kept mean (N(0, 1) data: about 5; a data-entry error of 1000 among counts
# of 0 to 3: 1000).
_FAR_ROW = 16.0
# A chunk's farthest row is taken out of a feature's spread with its own
# weight where it lies beyond this many spreads from the mean (see
# _farthest_row_weight): from N(0, 1) rows, up to about 4.
_OWN_WEIGHT_DEVIATIONS = 4.0
_ADAM_AUTO_LEARNING_RATE = 1e-3
# L-BFGS works on the features as given up to these magnitudes (the
# first-order solvers to 2**16, see feature_scales): dividing a column of
# incomes near 60,000 and the other features by 2**16, and not the
# intercept, made the problem a trillion times worse conditioned.  Beyond
# them the coefficients of float32 data, or their squares, could overflow.
_LBFGS_PLAIN_RANGE = (2.0**-32, 2.0**32)
# L-BFGS centers dense X unless every feature's mean lies within this share
# of its range from 0 (see _centered_already)...
_CENTERED_SHARE = 2.0**-8
# ...and then checks whether one row dominates a feature only where it has
# not converged within this many iterations (standardized digits, iris,
# wine and breast cancer: 14 to 39 at tol=1e-4).
_DEFERRED_CHECK_ITERATIONS = 50
# A last epoch's loss this much above the zero model's (relative), with a
# step set by hand, is a failed fit.
_WORSE_THAN_START = 0.1
# L-BFGS on a float64 objective stops where the loss no longer decreases
# measurably with the largest gradient entry at about 1e-8 (rounding, for
# a tol below that); a stop with the gradient above this is no optimum.
_FLOAT64_STOP_GRADIENT = 1e-6
# Scales that Momentum takes as per-parameter steps: 1 / scale**2 stays
# within float32's range times any sensible learning rate.
_FOLD_RANGE = (2.0**-60, 2.0**17)
# How far partial_fit may grow a folded scale (2**-96 as a step factor,
# still 2**30 above float32's smallest normal number): a timestamp column
# spread 2.5e4 in the first chunk of a time-ordered stream (scale 2**15),
# 3e7 later, stopped at 2**17, and its steps stayed 2**18 times too long.
_GROWN_FOLD_CEILING = 2.0**48


_PD_NA_MESSAGE = (
    "Input contains pd.NA (missing values); SoftmaxRegression does not accept "
    "missing values. Impute them first, e.g. with sklearn.impute.SimpleImputer."
)


def _is_object(values):
    """Whether ``values`` (array-like, Series) holds Python objects."""
    return str(getattr(values, "dtype", "")) == "object" or isinstance(values, list)


def _is_pd_na(value):
    # pandas is optional: recognise its missing-value marker by type name.
    return type(value).__name__ == "NAType"


def _reject_pd_na(y):
    """Raise the missing-value error for labels holding ``pd.NA`` (numpy's
    truth test of it fails with a TypeError): object labels, and pandas'
    ``string`` ones."""
    strings = str(getattr(y, "dtype", "")).startswith("string")
    y_values = np.asarray(y, dtype=object) if _is_object(y) or strings else None
    if y_values is not None and any(_is_pd_na(v) for v in y_values.ravel()):
        raise ValueError(_PD_NA_MESSAGE)


def _unchanged_on_error(method):
    """``fit`` or ``partial_fit`` that leaves the estimator as it was if it raises.

    A fit that fails after its checks (a divergence, weights that are all
    zero) would otherwise leave a half-fitted estimator: ``classes_`` of the
    new labels next to the previous ``coef_`` (so ``predict`` named the
    wrong classes), or ``classes_`` without ``coef_`` (so ``partial_fit``
    took its next call for a later one).  The estimator stays unfitted, or
    keeps its previous model, optimizer state included: a fit assigns new
    objects to its attributes, and a resumed optimizer works on copies of
    its state (see ``_fit_single_threaded_blas``), so the previous
    attributes are all there is to restore.  The one object a call updates
    in place, the shuffle generator once it is the estimator's own, is put
    back by the call's ``_undo_on_error``.
    """

    @functools.wraps(method)
    def guarded(self, *args, **kwargs):
        saved = dict(vars(self))
        try:
            return method(self, *args, **kwargs)
        except BaseException:
            # (A generator the call updated in place gets its state back.)
            undo = vars(self).get("_undo_on_error")
            vars(self).clear()
            vars(self).update(saved)
            if undo is not None:
                undo()
            raise
        finally:
            vars(self).pop("_undo_on_error", None)

    return guarded


class SoftmaxRegression(ClassifierMixin, BaseEstimator):
    """Multinomial logistic regression fitted by gradient descent.

    A linear layer followed by a softmax, trained on the cross-entropy with
    L2 regularization and label smoothing::

        J(W, b) = 1/S sum_i s_i CE(softmax(W x_i + b), t_i) + alpha/2 ||W||^2

    with smoothed targets ``t_i = (1 - eps) onehot(y_i) + eps / K`` and
    sample weights ``s_i`` (``sample_weight`` times ``class_weight``),
    ``S = sum_i s_i``.  Parameters that share a name with
    :class:`~sklearn.neural_network.MLPClassifier` mean the same thing,
    except ``alpha`` (MLPClassifier's penalty is ``alpha/(2 B) ||W||^2`` on
    a batch of ``B`` samples: its ``alpha`` is this one times ``B``), ``tol``
    on the full batch (a gradient test, see below) and
    ``learning_rate="invscaling"`` (see ``learning_rate``).

    Relation to :class:`~sklearn.linear_model.LogisticRegression`: with
    ``label_smoothing=0`` both minimize the same objective when
    ``C = 1 / (alpha * n_samples)`` (more than two classes) and
    ``C = 2 / (alpha * n_samples)`` (two classes, because the two softmax
    rows share the penalty: ``W[1] = -W[0]`` at the optimum); with
    ``sample_weight``, ``n_samples`` becomes the sum of the weights.

    Parameters
    ----------
    alpha : float, default=1e-4
        Strength of the L2 penalty ``alpha/2 ||W||^2`` added to the weighted
        mean loss.  The intercept is not penalized.
    label_smoothing : float, default=0.0
        ``eps`` in [0, 1): the target puts ``1 - eps + eps/K`` on the true
        class and ``eps/K`` on every other, as in
        ``torch.nn.CrossEntropyLoss``.
    fit_intercept : bool, default=True
        Whether to fit the bias ``b``.
    solver : {"sgd", "adam", "lbfgs"}, default="sgd"
        ``"sgd"``: (mini-)batch gradient descent with momentum.  On the full
        batch with ``nesterovs_momentum=True`` it runs accelerated gradient
        descent with adaptive restart and converges to the exact optimum.
        ``"adam"``: Adam on mini-batches.  ``"lbfgs"``: scipy's L-BFGS-B on
        the full batch.
    batch_size : int, "auto" or None, default="auto"
        Samples per gradient step.  None means the full batch.  ``"auto"``
        means, for ``"sgd"``, the full batch up to 4096 samples; above, with
        ``nesterovs_momentum=True``, also for sparse X of more than 256
        features (each batch's step would update every coefficient, and the
        safe step shrinks with features / 256) and, with
        ``learning_rate_init="auto"``, for features that are not strongly
        correlated (the largest eigenvalue of their correlation matrix at
        most 16, or batches whose safe step would be less than half the
        full batch's: see Notes) and, up to 256 features, for correlated
        ones (the full batch preconditions their steps: see Notes); 256
        otherwise.  (A dask array always
        takes the full batch then: fit refuses its mini-batches.)  For
        ``"adam"``, 256 (or all samples, when fewer), like
        ``MLPClassifier``'s ``min(200, n_samples)``.  ``partial_fit`` takes
        256 rows of its chunk, or with ``"sgd"`` on sparse X and
        ``learning_rate_init="auto"`` ``1 / density`` rows if that is more
        (each step updates every coefficient).  Ignored by
        ``"lbfgs"``.  On mini-batches, ``fit`` keeps the mean of the last
        epoch's iterates (tail averaging), which removes most of the
        gradient noise; ``partial_fit`` keeps the last iterate.  An epoch's
        batches are of equal sizes up to one row.  With ``"sgd"``, a batch
        of fewer rows than its step was sized for (a small ``partial_fit``
        chunk) takes a step that many times shorter, so every row moves the
        model alike.
    learning_rate : {"constant", "invscaling", "adaptive"}, default="constant"
        Schedule of the step size per epoch (``"sgd"`` and ``"adam"``):
        ``"invscaling"`` divides it by ``sqrt(epoch)``; ``"adaptive"``
        divides it by 5 each time ``n_iter_no_change`` epochs pass without
        improvement, and stops once it falls below 1e-6.
    learning_rate_init : float or "auto", default="auto"
        Initial step size.  ``"auto"`` derives it from a bound ``L`` on the
        curvature of the loss (see :func:`~sk_softmax._loss.lipschitz_constants`),
        so ``fit`` cannot diverge and needs no tuning: ``1/L`` per
        parameter block on the full batch (``(1 - momentum) / L`` with
        ``nesterovs_momentum=False``), ``(1 - momentum) / L(B)`` on
        mini-batches of size ``B``, and 0.001 for Adam, whose steps are
        already normalized: each moves a coefficient by about that much,
        as in MLPClassifier, so on small data, a step or a few an epoch,
        200 epochs may not reach the optimum (iris: 0.74 test accuracy, and
        a ConvergenceWarning at ``max_iter``; raise ``learning_rate_init``
        or ``max_iter``, or use ``"sgd"``, which needs no tuning).  Its
        short steps can also end a fit silently short of the optimum: the
        loss falling by less than ``tol`` an epoch for
        ``n_iter_no_change`` epochs stops it, as in MLPClassifier.  A float is
        a step in the solvers' coordinates,
        which are those of standardized features (see Notes).
    momentum : float, default=0.9
        Momentum of ``"sgd"`` on mini-batches, or on the full batch with
        ``nesterovs_momentum=False``, in [0, 1) (at 1 nothing would ever
        decay, and the automatic step, ``(1 - momentum) / L``, would be 0).
        The accelerated full-batch method sets its own momentum sequence.
    nesterovs_momentum : bool, default=True
        Use Nesterov's momentum (``"sgd"`` only).
    max_iter : int, default=200
        Maximum number of epochs (passes over the data), or L-BFGS
        iterations.
    tol : float, default=1e-4
        Tolerance.  Full-batch ``"sgd"`` and L-BFGS: stop when the largest
        gradient entry is at most ``tol`` (for ``"sgd"``, the gradient in its
        standardized coordinates, or, without intercept on features far
        from 0, the whitened one its steps take, and with ``alpha > 0`` only
        where the last pass also lowered the loss by at most ``tol`` of
        itself, and did not raise it beyond its rounding; for ``"lbfgs"``
        with an intercept, in centered ones on dense X and on the features
        of sparse X whose mean exceeds their spread, where a coefficient's
        entry lacks the intercept's entry times the feature's mean: see
        Notes).  That gradient is in X's units, as in LogisticRegression:
        features in units of 1e-4 stop L-BFGS at its start, silently;
        standardize them, or lower ``tol`` with their units.
        In float64, L-BFGS also stops where the loss no longer decreases
        measurably, with the gradient near 1e-8: a smaller ``tol`` is not
        reached, silently.  Mini-batch, and ``"adam"`` on any batch (its
        steps of about ``learning_rate_init`` hover around the optimum):
        stop when the loss (or the validation score with
        ``early_stopping``) has not improved by at least ``tol`` for
        ``n_iter_no_change`` consecutive epochs.
    n_iter_no_change : int, default=5
        Epochs without improvement tolerated before stopping.
        MLPClassifier waits 10; here the mini-batch result is the mean of an
        epoch's iterates, which settles as soon as the loss plateaus, so
        fewer epochs of waiting suffice.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the training data (stratified
        where every class can be; otherwise at random, but never a class's
        last training row), stop when its accuracy stops improving, and
        keep the parameters of the best epoch: the highest held-out
        accuracy, and of equal ones, the lowest held-out loss (the first of
        them was often barely trained).  ``"sgd"`` and ``"adam"`` only:
        ``"lbfgs"`` ignores it and trains on all the data, as in
        ``MLPClassifier``; ``partial_fit`` refuses it.  On a few hundred
        samples the held-out accuracy moves by one row at a time (5% of 20
        rows), and the best epoch comes early: on 300 x 8 (3 classes,
        3-fold CV) accuracy 0.79 instead of 0.81 at the defaults, 0.63
        instead of 0.72 with ``"adam"``, as well with
        ``n_iter_no_change=20``.  There, leave it off.
    validation_fraction : float, default=0.1
        Fraction held out for early stopping, in (0, 1).
    shuffle : bool, default=True
        Shuffle the samples at each epoch (mini-batch).
    class_weight : dict, "balanced" or None, default=None
        Weights per class, multiplied into ``sample_weight``.
        ``"balanced"`` uses ``S / (n_classes * S_k)`` with ``S_k`` the total
        sample weight of class ``k``; ``partial_fit``, which sees one chunk
        at a time, refuses it (pass a dict computed over the whole data).
    warm_start : bool, default=False
        Start from the previous solution when refitting.  The data must
        have the previous fit's classes and number of features (a
        ``ValueError`` otherwise, as :class:`~sklearn.neural_network.MLPClassifier`
        raises for other classes).
    random_state : int, RandomState instance or None, default=None
        Seeds shuffling and the validation split.
    verbose : int, default=0
        Print one line per epoch when positive.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels: numpy, or after a fit on an array of another
        namespace (array API dispatch) an array there when the labels are
        numbers.
    coef_ : ndarray of shape (n_classes, n_features)
        ``W``, also for two classes.  Fortran-ordered after a fit on data in
        memory: ``coef_.T`` is the C-contiguous ``W^T`` that the products
        with X take.  After a fit on an array of another
        namespace under ``array_api_dispatch`` (a torch tensor on a GPU,
        say), an array of that namespace on X's device, as ``intercept_``.
    intercept_ : ndarray of shape (n_classes,)
        ``b`` (zeros when ``fit_intercept=False``).
    n_iter_ : int
        Epochs (or L-BFGS iterations) run by the last fit; the sum over
        calls for ``partial_fit``.
    n_passes_ : int
        Passes over the training data made by the last call to ``fit`` or
        ``partial_fit`` (one pass for a ``partial_fit`` call, over its
        chunk, or none while it holds back rows): epochs, or objective
        evaluations for L-BFGS (its line search may take several per
        iteration).
    n_features_in_ : int
        Number of features seen in fit.
    feature_names_in_ : ndarray of shape (``n_features_in_``,)
        Feature names, when X had string column names.
    loss_curve_ : list of float
        Training objective of each epoch, as ``MLPClassifier`` records it:
        on the full batch, at the start of the epoch's step; on
        mini-batches, the mean of the batches' losses, each before its
        step.  For L-BFGS, after each iteration (none when the starting
        point already meets ``tol``).  Of the last ``fit`` only, also with
        ``warm_start=True`` (where ``MLPClassifier`` appends to it), as
        ``n_iter_``; ``partial_fit`` calls append to it.
    best_loss_ : float
        Lowest training objective, or lowest validation loss with early
        stopping (the parameters kept are those of the best validation
        accuracy, as in MLPClassifier, which may be another epoch).  A
        ``partial_fit`` after an early-stopping fit makes it the lowest
        training objective of ``loss_curve_`` again.
    validation_scores_ : list of float or None
        Validation accuracy per epoch (early stopping only; None after a
        ``partial_fit`` call, which holds out no validation data).
    validation_loss_ : list of float or None
        Validation cross-entropy per epoch (early stopping only; None after
        ``partial_fit``).
    best_validation_score_ : float or None
        Best validation accuracy (early stopping only; None after
        ``partial_fit``).

    See Also
    --------
    sklearn.linear_model.LogisticRegression : The same model fitted by
        second-order or coordinate solvers.
    sklearn.neural_network.MLPClassifier : Where the solver parameters come
        from.

    Notes
    -----
    ``"sgd"`` and ``"adam"`` work on standardized coordinates: each centered
    feature divided by the power of two nearest its standard deviation (at
    least ``sqrt(alpha)``; 1 for a constant feature), its coefficients
    multiplied by it, so features of any spread train alike, dense or
    sparse.  The change is exact and copies nothing; the objective, and so
    the optimum, stay those of the features as given.  ``"lbfgs"`` works on
    the features as given, centered when X is dense and there is an
    intercept.  ``"adam"`` on sparse X divides each centered feature by the
    power of two nearest its root mean square where stored (its spread for
    a feature stored in every row): standardized
    values, about ``1 / sqrt(density)`` there, would make its steps of
    about ``learning_rate_init`` far too long, and small units (TF-IDF)
    would make them far too short.

    ``batch_size="auto"`` picks the full batch above 4096 samples unless the
    features are strongly correlated.  The accelerated full batch's passes
    then take about the time of the fewer but costlier epochs of 256-row
    batches, or less, and reach the exact optimum, where batches stop at
    their noise: 100,000 x 100 Gaussian features, 22 passes in 0.70 to
    0.81 s against 12 epochs in 1.19 to 1.57 s.  Heavy-tailed features, or
    a row far out, have a large per-row curvature, which shortens the
    batches' safe step: log-normal features train 1.4 to 6 times faster,
    and data with one row 100 times the others 17 times (its batches reach
    ``max_iter``).
    Strongly correlated features (the largest eigenvalue of their
    correlation matrix above 16, where the eigenvalues average 1) slow the
    full batch down, and their batches step about as far as it does:
    100,000 x 300 features of rank 10 plus noise (eigenvalue 40) take 15
    epochs in 1.0 s against 200 passes in 5.0 s.

    Up to 256 features, above 4096 samples of positive weight, the
    accelerated full batch
    (``"sgd"`` with ``nesterovs_momentum=True`` and
    ``learning_rate_init="auto"``) steps by the gradient times the inverse
    of ``X_c^T diag(s) X_c / 2 + alpha diag(1 / scale**2)`` plus a small
    ridge (``X_c`` the centered, standardized features), a bound of the
    loss's curvature, where the condition number of the features'
    correlation matrix is above 10 (of its directions other than a null
    space, for duplicated or redundant columns): its passes then no longer
    grow with that condition number.
    The Gram matrix costs one pass over X, and each step two triangular
    solves of ``n_classes x n_features**2``.  Correlated features that took
    180 to 200 passes, often to ``max_iter`` with a ``ConvergenceWarning``,
    converge in 11 to 35 (40,000 x 100 of rank 8 plus noise: 33 passes
    against 200, five times faster; cubic polynomial features: 13 against
    200, eight times faster, at a gap to the optimum of 2e-6 against 6e-3),
    and so do those that took batches of 256.  Rows predicted confidently
    (separable data, a row far out) curve the loss far less than that bound:
    every 5 steps the fit measures the curvature on its sample of rows, and
    where it has moved sixfold forms the factor again at the current point,
    each row weighted by its curvature along the next steps (1/2 for rows
    not yet predicted as their class; at least 1/100 of the bound in every
    direction; a pass over X), keeping the momentum (separable 20,000 x 200
    low-rank features, given ``max_iter=1000``: 475 passes where the bound
    formed once took 926; one row 1000 times larger than the rest of 50,000
    x 20: 18 passes instead of 108).  On
    fewer samples, where they are at least twice the features, it takes
    the preconditioner above a condition number of 1000 (breast cancer's
    1e5: about 50 passes where the diagonal steps took 120 to 200, often to
    ``max_iter``); below, and on fewer rows per feature, the diagonal steps
    stay: on small, nearly separable data with a weak penalty they stop
    about as soon, or sooner.  Except, with
    ``fit_intercept=False``, for features far from 0 against their spread
    (a mean of about 1.5 spreads and more), whose offset is one stiff
    direction of the curvature: the full batch takes the preconditioner on
    any number of samples (``X + 1e4``: 15 passes, where the diagonal steps
    stopped after 3 at chance accuracy), up to means of about 3 million
    spreads, which float64 still resolves.  Beyond, and for Adam and set
    batch sizes, which take none, ``fit`` warns where the features' squared
    means also add up to more than 1000 times their variances.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sk_softmax import SoftmaxRegression
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = SoftmaxRegression(solver="lbfgs").fit(X, y)
    >>> clf.predict(X[:2])
    array([0, 0])
    >>> clf.predict_proba(X[:1]).shape
    (1, 3)
    >>> clf.score(X, y) > 0.95
    True
    """

    _parameter_constraints: dict = {
        "alpha": [Interval(numbers.Real, 0, None, closed="left")],
        "label_smoothing": [Interval(numbers.Real, 0, 1, closed="left")],
        "fit_intercept": ["boolean"],
        "solver": [StrOptions({"sgd", "adam", "lbfgs"}), Hidden(UpdateRule)],
        "batch_size": [
            Interval(numbers.Integral, 1, None, closed="left"),
            StrOptions({"auto"}),
            None,
        ],
        "learning_rate": [StrOptions({"constant", "invscaling", "adaptive"})],
        "learning_rate_init": [
            Interval(numbers.Real, 0, None, closed="neither"),
            StrOptions({"auto"}),
        ],
        "momentum": [Interval(numbers.Real, 0, 1, closed="left")],
        "nesterovs_momentum": ["boolean"],
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "tol": [Interval(numbers.Real, 0, None, closed="left")],
        "n_iter_no_change": [Interval(numbers.Integral, 1, None, closed="left")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(numbers.Real, 0, 1, closed="neither")],
        "shuffle": ["boolean"],
        "class_weight": [dict, StrOptions({"balanced"}), None],
        "warm_start": ["boolean"],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        *,
        alpha=1e-4,
        label_smoothing=0.0,
        fit_intercept=True,
        solver="sgd",
        batch_size="auto",
        learning_rate="constant",
        learning_rate_init="auto",
        momentum=0.9,
        nesterovs_momentum=True,
        max_iter=200,
        tol=1e-4,
        n_iter_no_change=5,
        early_stopping=False,
        validation_fraction=0.1,
        shuffle=True,
        class_weight=None,
        warm_start=False,
        random_state=None,
        verbose=0,
    ):
        self.alpha = alpha
        self.label_smoothing = label_smoothing
        self.fit_intercept = fit_intercept
        self.solver = solver
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.max_iter = max_iter
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.shuffle = shuffle
        self.class_weight = class_weight
        self.warm_start = warm_start
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ fit

    @_fit_context(prefer_skip_nested_validation=True)
    @_unchanged_on_error
    def fit(self, X, y, sample_weight=None):
        """Fit the model on (X, y).

        Parameters
        ----------
        X : {array-like, sparse matrix, dask array} of shape (n_samples, n_features)
            Training data.  float32 input trains in float32; C-contiguous
            float arrays and CSR matrices are used without a copy.  Other
            layouts are copied at most once: into C order (CSR) where the
            solver gathers mini-batches of rows, and for strided views.  A
            :class:`dask.array.Array` stays in its chunks (full-batch
            solvers only; see the user guide).  Under
            ``array_api_dispatch``, an array of another namespace (a torch
            tensor, say) stays on its device, where the losses and
            gradients are computed.
        y : array-like of shape (n_samples,)
            Class labels (at least two distinct).
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights; None means all ones.

        Returns
        -------
        self : SoftmaxRegression
            The fitted estimator.
        """
        warm = self.warm_start and hasattr(self, "coef_")
        self._classes_on_host()
        # Labels and weights are read on the CPU; X stays where it is.
        (y, sample_weight), _ = to_numpy_namespace(y, sample_weight)
        if is_dask_array(X):
            X, y, sample_weight = self._check_dask_fit(X, y, sample_weight)
            classes, y_index = _dask.encode_labels(y)
        else:
            X, y = self._validate_X_y(
                X, y, reset=True, rows=self._reads_rows(X, partial=False)
            )
            classes, y_index = _encode_labels(y)
        if classes.size < 2:
            raise ValueError(
                "SoftmaxRegression needs samples of at least 2 classes in the "
                f"data, but the data contains only one class: {classes.tolist()[0]!r}."
            )
        if warm:
            self._check_warm_start(classes, X.shape[1])
        self.classes_ = classes
        weights = self._sample_weights(X, y_index, sample_weight)
        self._pending = None  # (rows a partial_fit call held back)
        self._fit(X, y_index, weights, warm=warm, partial=False)
        return self

    def _check_warm_start(self, classes, n_features):
        """Refuse a warm start whose previous solution does not fit the data.

        As MLPClassifier (classes) and LogisticRegression (features) do: a
        silent fresh start would hide a mistake in the data.
        """
        previous = self.coef_.shape[1]
        if n_features != previous:
            raise ValueError(
                f"X has {n_features} features, but warm_start=True starts from "
                f"the previous fit, which had {previous}. Set warm_start=False "
                "to fit afresh."
            )
        if not np.array_equal(classes, self.classes_):
            shown = functools.partial(np.array2string, threshold=12, separator=", ")
            raise ValueError(
                "warm_start=True starts from the previous fit, whose classes "
                f"were {shown(self.classes_)}, but y has the classes "
                f"{shown(classes)}. Set warm_start=False to fit afresh."
            )

    def _check_stochastic_solver(self):
        if self.solver == "lbfgs":
            raise AttributeError(
                "partial_fit is only available for the stochastic solvers 'sgd' "
                "and 'adam', not solver='lbfgs'."
            )
        return True

    @available_if(_check_stochastic_solver)
    @_fit_context(prefer_skip_nested_validation=True)
    @_unchanged_on_error
    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """Run one epoch over (X, y), keeping the optimizer state between calls.

        Until 10 rows of positive weight have come, the calls that start an
        optimizer hold their rows back and train nothing (``coef_`` stays
        as it was, 0 at first, ``n_iter_`` does not grow and ``n_passes_``
        is 0): a chunk of a few rows
        says too little of the data's center and spreads, which size the
        steps.  The call that completes 10 rows trains on all of them.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            One chunk of training data (a dask array is read into memory:
            :class:`dask_ml.wrappers.Incremental` calls ``partial_fit`` on
            its chunks in turn instead).
        y : array-like of shape (n_samples,)
            Labels of the chunk; all must be in ``classes``.
        classes : array-like of shape (n_classes,), default=None
            Every class of the problem; required on the first call.  Later
            calls may pass it again, the same.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights; None means all ones.

        Returns
        -------
        self : SoftmaxRegression
            The updated estimator.

        Raises
        ------
        ValueError
            Without ``classes`` on the first call, with other ``classes``
            on a later call, for labels outside them, and with
            ``class_weight="balanced"``, which would balance each chunk by
            its own class totals (pass a dict computed over the whole data
            instead), and with ``early_stopping=True``, as in
            ``MLPClassifier`` and ``SGDClassifier``: a chunk holds out no
            validation set.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn.datasets import load_iris
        >>> from sk_softmax import SoftmaxRegression
        >>> X, y = load_iris(return_X_y=True)
        >>> order = np.random.RandomState(0).permutation(len(y))
        >>> clf = SoftmaxRegression(random_state=0)
        >>> for epoch in range(20):
        ...     for chunk in np.array_split(order, 3):
        ...         clf = clf.partial_fit(X[chunk], y[chunk], classes=[0, 1, 2])
        >>> clf.n_iter_, bool(clf.score(X, y) > 0.9)
        (60, True)
        """
        if self.class_weight == "balanced":
            # Each call sees one chunk: its class totals are not the data's.
            raise ValueError(
                "class_weight='balanced' is not supported by partial_fit, which "
                "sees one chunk at a time. Compute the weights over the whole "
                "training set, e.g. with sklearn.utils.class_weight."
                "compute_class_weight('balanced', classes=classes, y=y) (a large "
                "enough sample of y will do), and pass them as a dict "
                "class_weight={label: weight}."
            )
        if self.early_stopping:
            # (Ignored, it let a user believe each call stopped on held-out
            # rows; scikit-learn's stochastic estimators refuse it too.)
            raise ValueError(
                "partial_fit does not support early_stopping=True: a chunk "
                "holds out no validation set. Set early_stopping=False, or "
                "score a held-out set between calls."
            )
        # A dask array is read into memory here (Incremental hands over its
        # chunks instead): under array_api_dispatch, scikit-learn's
        # validation would keep it lazy, as an array namespace.
        X, y, classes, sample_weight = (
            value.compute() if is_dask_array(value) else value
            for value in (X, y, classes, sample_weight)
        )
        (y, classes, sample_weight), _ = to_numpy_namespace(y, classes, sample_weight)
        if classes is not None and not hasattr(classes, "shape"):
            # scikit-learn's check of a list, before numpy turns [0, "a"]
            # into strings (it refuses the mix, and a set).  (Under array
            # API dispatch, it refused range(3), and took the mix.)
            with config_context(array_api_dispatch=False):
                unique_labels(classes)
            classes = np.asarray(classes)
        first_call = not hasattr(self, "classes_")
        self._classes_on_host()
        if first_call and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit.")
        X, y = self._validate_X_y(
            X, y, reset=first_call, rows=self._reads_rows(X, partial=True), chunk=True
        )
        if first_call:
            self.classes_ = None
        # Sets classes_ on the first call; later, classes given must be the
        # same (scikit-learn's check and message).
        check_partial_fit_first_call(self, classes)
        if first_call and self.classes_.size < 2:
            raise ValueError("partial_fit needs at least 2 classes in `classes`.")
        unknown = np.setdiff1d(y, self.classes_)
        if unknown.size:
            raise ValueError(
                f"y contains labels {unknown.tolist()} that are not in classes "
                f"{self.classes_.tolist()}, the model's (from the first call to "
                "partial_fit, or from fit)."
            )
        y_index = np.searchsorted(self.classes_, y)
        weights = self._sample_weights(X, y_index, sample_weight, chunk=True)
        positive = weights > 0
        if not positive.all():
            # Rows of zero weight are rows removed: a chunk's weights sum to
            # one, and it steps as far as its rows are many, so that 3
            # weighted rows among 500 moved the model as far as 500 rows
            # (from 0.63 to 0.45 test accuracy in five calls).  A chunk of
            # one class that class_weight weighs 0 holds no row.  (Their
            # values must be finite all the same, as in fit.)
            dropped = _safe_indexing(X, np.flatnonzero(~positive))
            if array_namespace(dropped) is not None:
                dropped = host_array(dropped)
            assert_all_finite(dropped, estimator_name=type(self).__name__)
            kept = np.flatnonzero(positive)
            X, y_index, weights = _safe_indexing(X, kept), y_index[kept], weights[kept]
        # A call that starts a new optimizer (the first, or one after a
        # full-batch or L-BFGS fit, or after set_params) sizes it on its rows.
        starts = first_call or not self._resumes_optimizer(self._update_rule(False))
        if not starts and getattr(self, "_pending", None) is None and not X.shape[0]:
            # (No row of positive weight: nothing to learn from, no pass.)
            self.n_passes_ = 0
            return self
        if starts or getattr(self, "_pending", None) is not None:
            n_features, dtype = X.shape[1], _host_dtype(X)
            X, y_index, weights = self._with_pending_rows(X, y_index, weights)
            if X is None:
                if first_call:
                    self._set_starting_model(n_features, dtype)
                self.n_passes_ = 0
                # The model waits where the rows it holds are.
                held = self._pending[0]
                if array_namespace(held) is None:
                    self._move_arrays(host_array)
                else:
                    self._move_arrays(_array_api.converter_to(held))
                return self
        self._fit(X, y_index, weights, warm=not first_call, partial=True)
        return self

    def _check_dask_fit(self, X, y, sample_weight):
        """``fit``'s checks for a dask array X (see :mod:`sk_softmax._dask`)."""
        name = type(self).__name__
        # The settings refused first: checking the input reads every chunk.
        if self._holds_out_validation():
            raise ValueError(
                f"{name} cannot hold out an early_stopping validation set of a "
                "dask array; fit with early_stopping=False."
            )
        # Weights that may be 0 (rows removed, which batch_size="auto" does
        # not count) are known only once computed: then fit refuses later.
        n_samples = X.shape[0] if X.ndim == 2 else math.nan
        if (
            not math.isnan(n_samples)
            and sample_weight is None
            and self.class_weight in (None, "balanced")
        ):
            self._refuse_dask_mini_batches(n_samples, X.shape[1])
        if not is_dask_array(y):
            _reject_pd_na(y)
        X, y, sample_weight = _dask.check_fit_input(
            X, y, sample_weight, estimator_name=name
        )
        # What validate_data(reset=True) records, without reading X.
        self.n_features_in_ = X.shape[1]
        if hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        return X, y, sample_weight

    def _refuse_dask_mini_batches(self, n_samples, n_features):
        """Refuse the settings that would step a dask array on mini-batches
        of its ``n_samples`` rows of positive weight."""
        # (Where fit chooses by the data's curvature, a dask array takes
        # the full batch.)
        if self._mini_batches(
            n_samples, n_features, partial=False
        ) and not self._batch_follows_curvature(False, partial=False):
            raise ValueError(
                f"{type(self).__name__} fits a dask array on the full batch "
                "only: use solver='lbfgs', or batch_size=None with "
                f"solver='sgd' or 'adam' (got solver={self.solver!r}, "
                f"batch_size={self.batch_size!r} for {n_samples} samples of "
                "positive weight). For mini-batches, call partial_fit on the "
                "chunks in turn, as dask_ml.wrappers.Incremental does."
            )

    def _reads_rows(self, X, *, partial):
        """Whether fitting X (not yet validated) gathers mini-batches of rows."""
        shape = getattr(X, "shape", None)
        try:
            n_samples = shape[0] if shape else len(X)
        except TypeError:
            return False  # validation will say what is wrong with X
        # (Nested lists become C-ordered arrays anyway.)
        n_features = shape[1] if shape is not None and len(shape) > 1 else 0
        density = _density(X)
        return self._mini_batches(
            n_samples, n_features, partial=partial, density=density
        )

    def _validate_X_y(self, X, y, reset, rows=False, chunk=False):
        """X and y for fitting, X in a layout the solver reads fast.

        With ``rows`` (mini-batches gather rows of X), a dense X comes out
        C-ordered and a sparse one CSR: numpy's ``take`` copies all of a
        dense X that is not C-contiguous (the Fortran-ordered values of a
        pandas DataFrame, say) before it gathers a single row, and scipy's
        row indexing of CSC is several times slower than of CSR.
        Full-batch products read a Fortran-ordered X (or CSC) as fast as a
        C-ordered one (or CSR): only a strided view, which BLAS would copy
        block by block at every evaluation, is copied.  Either way X is
        copied at most once, and not at all when it is already C-ordered
        float32 or float64 (or CSR).  ``chunk`` (partial_fit): y may hold
        few samples of many classes without a warning.
        """
        _reject_pd_na(y)
        # X's finiteness is checked in the first pass of fitting.
        X, y = self._validate(X, y, reset=reset, finite=False, rows=rows)
        if (
            isinstance(X, np.ndarray)
            and not X.flags.c_contiguous
            and not X.flags.f_contiguous
        ):
            X = np.ascontiguousarray(X)  # a strided view: validation kept it
        if y.dtype == object:
            check_label_types(y)
        # Integer labels are always "binary" or "multiclass": scikit-learn's
        # check (two sorts of y) can then only warn that more than half of
        # the samples have a class of their own, which takes labels spread
        # over a range that wide.
        if y.dtype.kind not in "iu" or (
            y.size > 20 and int(y.max()) - int(y.min()) >= 0.5 * y.size
        ):
            if chunk and type_of_target(y, input_name="y") in ("binary", "multiclass"):
                # A chunk may hold few samples of each of many classes, which
                # partial_fit's ``classes`` declare: no warning that y "could
                # represent a regression problem" at every call
                # (SGDClassifier's partial_fit gives none either).
                return X, y
            check_classification_targets(y)
        return X, y

    def _validate(self, X, y="no_validation", *, reset, finite=True, rows=False):
        """``validate_data`` with the estimator's accepted formats and dtypes.

        ``rows``: C-ordered dense X, CSR sparse X (see :meth:`_validate_X_y`).
        """
        X, y = detached(X), detached(y)
        _array_api.reject_unsupported(X)
        try:
            return validate_data(
                self,
                X,
                y,
                accept_sparse="csr" if rows else ["csr", "csc"],
                order="C" if rows else None,
                dtype=_array_api.float_dtypes(X),
                reset=reset,
                ensure_all_finite=finite,
            )
        except TypeError as exc:
            # pandas' missing-value marker pd.NA fails inside numpy's casts.
            if "NAType" in str(exc) or "value of NA" in str(exc):
                raise ValueError(_PD_NA_MESSAGE) from exc
            raise

    def _sample_weights(self, X, y_index, sample_weight, chunk=False):
        """``sample_weight * class_weight[y]``, validated.

        float64 in memory whatever X's dtype: only their ratios matter, and
        float32 would refuse weights of 1e300 as infinite and sum weights
        of 1e-50 to 0.  A ``chunk`` of partial_fit may hold only classes
        that class_weight weighs 0 (a stream goes on).
        """
        dask_X = is_dask_array(X)
        dtype = _host_dtype(X)
        sample_weight = detached(sample_weight)
        if dask_X:
            weights = _dask.sample_weights(sample_weight, X)
        else:
            # On the CPU, also for X on another device: X gives their number.
            reference = X
            if array_namespace(X) is not None:
                reference = np.empty((X.shape[0], 0), dtype=dtype)
            weights = check_sample_weight(sample_weight, reference, dtype=np.float64)
            weights = _summable_weights(weights)
        if self.class_weight is not None:
            n_classes = self.classes_.size
            if self.class_weight == "balanced":
                if dask_X:
                    per_class = _dask.class_totals(y_index, weights, n_classes)
                else:
                    per_class = np.bincount(
                        y_index, weights=weights, minlength=n_classes
                    )
                present = per_class > 0
                factors = np.ones(n_classes)
                factors[present] = weights.sum() / (present.sum() * per_class[present])
            else:
                factors = np.ones(n_classes)
                weighted = np.zeros(n_classes, dtype=bool)
                unknown = []
                # Keys are looked up as labels, by hash and equality (1, 1.0
                # and np.int64(1) alike): a tuple key is one unknown label,
                # not a comparison with each class.
                position = {c: k for k, c in enumerate(self.classes_)}
                for label, value in self.class_weight.items():
                    if (
                        isinstance(value, bool)
                        or not isinstance(value, numbers.Real)
                        or not 0 <= value < math.inf
                    ):
                        raise ValueError(
                            "class_weight must map labels to finite "
                            f"non-negative numbers, got {value!r} for label "
                            f"{label!r}."
                        )
                    k = position.get(label)
                    if k is None:
                        unknown.append(label)
                    else:
                        factors[k] = value
                        weighted[k] = True
                # Labels absent from the data (a cross-validation fold without
                # a rare class) are ignored, as in scikit-learn, unless some
                # class has no weight: then they are likely misspelt.
                if unknown and not weighted.all():
                    raise ValueError(
                        f"class_weight has labels {unknown!r}, which are not in "
                        f"classes {self.classes_.tolist()}, and no weight for "
                        f"classes {self.classes_[~weighted].tolist()}."
                    )
            # Relative to the largest: a common factor changes no weighted
            # mean, and a weight of 1e39 would be inf in float32 (1e307 times
            # the samples, an infinite sum that left every weight 0).
            if factors.max() > 0:
                factors = factors / factors.max()
            factors = factors.astype(dtype)
            weights = weights * (
                _dask.take(factors, y_index) if dask_X else factors[y_index]
            )
            if not np.any(factors > 0) or (not chunk and not np.any(weights > 0)):
                raise ValueError(
                    "All sample weights are zero after applying class_weight."
                )
        return weights

    def _fit(self, X, y_index, weights, *, warm, partial):
        # The solvers run on the CPU: a model kept on a device comes back
        # first, and goes to X's namespace and device after, as scikit-learn
        # keeps the fitted arrays of array API inputs.
        self._move_arrays(host_array)
        # Extreme feature scales can overflow intermediate values (a stiff
        # penalty, Adam's squared gradients); the solvers check every epoch
        # for non-finite losses and parameters and raise a clear error, so
        # numpy's floating-point warnings would only be noise here.
        with single_threaded_blas() as n_threads, np.errstate(all="ignore"):
            self._fit_single_threaded_blas(
                X, y_index, weights, warm=warm, partial=partial, n_threads=n_threads
            )
        if array_namespace(X) is not None:
            self._move_arrays(_array_api.converter_to(X))

    def _move_arrays(self, convert):
        """Pass every fitted array through ``convert``, in place.

        ``classes_`` stays numpy where ``convert`` would change it (labels
        that are strings, float64 labels on a device without float64), and
        so does the solver's state, which only the CPU reads.  Rows that
        ``partial_fit`` holds back go along with the model.
        """
        for name, value in list(vars(self).items()):
            if name == "_pending" and value is not None and is_array(value[0]):
                setattr(self, name, (convert(value[0]), *value[1:]))
            if not is_array(value):
                continue
            if name == "classes_":
                labels = host_array(value)
                moved = convert(labels) if labels.dtype.kind in "biuf" else labels
                same = np.array_equal(host_array(moved), labels)
                setattr(self, name, moved if same else labels)
            else:
                setattr(self, name, convert(value))

    def _classes_on_host(self):
        """``classes_`` as numpy, where fit and partial_fit read it.

        (On a device after a fit there; the other fitted arrays come back
        in ``_fit``.  A call that fails restores the device array.)
        """
        if getattr(self, "classes_", None) is not None:
            self.classes_ = host_array(self.classes_)

    def _divergence_message(self, what, resumed):
        """The error for a fit that diverged, with what to change.

        ``what`` says what happened (see ``DivergenceError.what``); what helps
        depends on where the step came from: set by hand, the automatic one,
        or one kept from an earlier call.  (The solver's own
        rate is per parameter, in its coordinates: not the user's number.)
        """
        rescale = "rescale the features, e.g. with StandardScaler."
        if self.learning_rate_init != "auto":
            return (
                f"{what} with learning_rate_init={self.learning_rate_init:g}. "
                "Lower it (or use learning_rate_init='auto'), or " + rescale
            )
        if resumed:
            # partial_fit resumed a step sized for the data of an earlier
            # call: a chunk of larger values outgrows it.
            return (
                f"{what} with the automatic step sized for the data of an "
                "earlier call (the first partial_fit, or fit). Scale every "
                "chunk alike (e.g. with a StandardScaler fitted once), or set "
                "a smaller learning_rate_init."
            )
        return (
            f"{what} with the automatic step. Set a smaller "
            "learning_rate_init, or " + rescale
        )

    def __sklearn_array_api_convert__(self, converter):
        """A copy of the model whose fitted arrays went through ``converter``.

        What ``sklearn.utils._array_api.move_estimator_to(model, xp,
        device)`` calls (scikit-learn >= 1.9): ``classes_`` of strings and
        the solver's state stay numpy, as after a fit on arrays of that
        namespace.
        """
        moved = clone(self)
        for name, value in vars(self).items():
            setattr(moved, name, value if is_array(value) else copy.deepcopy(value))
        moved._move_arrays(converter)
        return moved

    def _fit_single_threaded_blas(
        self, X, y_index, weights, *, warm, partial, n_threads, defer_check=True
    ):
        n_samples, n_features = X.shape
        n_classes = self.classes_.size
        dtype = _host_dtype(X)
        device_X = array_namespace(X) is not None
        # The shuffles' generator: random_state's, or a resumed optimizer's
        # (below); made where first needed (seeding one costs 0.1 ms, 6% of
        # a partial_fit call on 1000 rows of 100 features).
        rng = None

        validation_data = None
        if self._holds_out_validation() and not partial:
            rng = check_random_state(self.random_state)
            X, X_val, y_index, y_val, weights, w_val = self._split_validation(
                X, y_index, weights, rng
            )
            n_samples = X.shape[0]
            if device_X:
                X_val = to_numpy(X_val)  # the held-out rows, scored on the CPU
            validation_data = (X_val, y_val, w_val)

        weight_sum = float(weights.sum())
        if weight_sum <= 0:
            raise ValueError(
                "The training sample weights sum to zero (after the validation "
                "split); use a different random_state or more data."
            )
        weights_normalized = weights / weight_sum
        if is_dask_array(weights_normalized):
            # Computed once: the passes below are separate graphs, in which
            # dask would optimize (and on a cluster, submit) the same lazy
            # weights differently each time.
            weights_normalized = weights_normalized.persist()
        # Batches are drawn from the rows of positive weight: rows of zero
        # weight are rows removed, for the batch size and the batches too.
        # (Drawn among all rows, a fit on 3,000 rows of which a third weighed 0
        # took 47 steps an epoch of 64-row batches holding about 43 rows
        # that counted, where the fit without those rows took 32; its
        # coefficients differed by 0.06 after 5 epochs.  partial_fit drops
        # them from its chunk.)
        drawn = None
        if isinstance(weights_normalized, np.ndarray):
            positive = np.flatnonzero(weights_normalized)
            if positive.size < n_samples:
                drawn, n_samples = positive, positive.size
        elif is_dask_array(weights_normalized) and not partial:
            # (A dask array is fitted on the full batch: no rows to draw.)
            n_samples = int(np.count_nonzero(weights_normalized).compute())
            self._refuse_dask_mini_batches(n_samples, X.shape[1])

        density = _density(X)
        batch_size = self._batch_size(n_samples, X.shape[1], partial, density)
        full_batch = not self._mini_batches(
            n_samples, X.shape[1], partial=partial, density=density
        )

        # The solvers work in centered and scaled coordinates without
        # touching X:
        #     z = (W diag(scale)) ((x - mean) / scale) + b'
        # The intercept absorbs the mean, so its curvature separates from W's.
        # The first-order solvers work on standardized features (see
        # feature_scales), except Adam on sparse X, whose features are
        # scaled by their size where stored (see below).  L-BFGS,
        # which learns the curvature, works on the plain features (scaled
        # only for data of extreme magnitude), not centered for sparse X
        # (but for its features far from 0, see _sparse_far_means): a
        # sparse feature's mean is small next to its spread (about
        # sqrt(density) of it), so centering changes little for a
        # quasi-Newton method, and the plain coordinates give exactly
        # LogisticRegression's iterates (and so its optimum at a loose tol).
        # partial_fit keeps the first chunk's mean and scale.  One pass over
        # X gives its mean and its range, and with the range the finiteness
        # check that validation left out; the standard deviations take one
        # more.
        first_order = self.solver != "lbfgs"
        rule = self._update_rule(full_batch and not partial) if first_order else None
        # A later partial_fit call resumes the previous call's optimizer:
        # coordinates, steps and state.  After a fit by another rule (the
        # accelerated full-batch one, whose step 1/L would be far too long
        # for momentum on a chunk's mini-batches, or L-BFGS), or by
        # momentum on the full batch, it starts a new one from the fitted
        # coefficients.  So does a change of the settings the optimizer was
        # made for (see _optimizer_settings): fit_intercept changes the
        # coordinates, the others the step or the objective.
        keep = partial and warm and rule is not None and self._resumes_optimizer(rule)
        center = self.fit_intercept and (first_order or not sp.issparse(X))
        # L-BFGS on sparse X centers only its features far from 0 (see
        # _sparse_far_means).
        center_far = self.fit_intercept and not first_order and sp.issparse(X)
        dask_X = is_dask_array(X)
        # Dense X in memory, centered, and for the first-order solvers on
        # the full batch: whether one row dominates a feature (see
        # dominant_rows), ruled out for most features by their ranges.
        check_dominance = (
            center
            and not keep
            and isinstance(X, np.ndarray)
            and (not first_order or (full_batch and not partial))
        )
        if dask_X or device_X:
            mean, low, high = (_dask if dask_X else _array_api).mean_and_range(
                X,
                weights_normalized,
                # (A resumed optimizer measures the chunk's drift with it.)
                mean=center or keep,
                per_feature=not first_order or keep,
                estimator_name=type(self).__name__,
            )
        else:
            mean, low, high = _mean_and_range(
                X,
                weights_normalized,
                n_threads=n_threads,
                mean=center or center_far or keep,
                # (L-BFGS's common factor comes from the centered range; a
                # resumed optimizer leaves each feature's farthest row out
                # of its spread.)
                per_feature=not first_order or check_dominance or keep,
            )
            ranges = (low, high)
            if first_order and check_dominance:
                # (The first-order solvers take the range of all features,
                # 0 included, as they would be given it.)
                low = float(np.minimum(np.min(low, initial=0.0), 0.0))
                high = float(np.maximum(np.max(high, initial=0.0), 0.0))
            finite = bool(np.all(np.isfinite(low)) and np.all(np.isfinite(high)))
            if not finite or not np.all(weights):
                # (The range skips rows of zero weight: check those too.)
                assert_all_finite(X, estimator_name=type(self).__name__)
        if validation_data is not None:
            assert_all_finite(validation_data[0], estimator_name=type(self).__name__)
        # L-BFGS on data centered already, of ordinary magnitude
        # (StandardScaler's output), takes the features as given, as
        # LogisticRegression does, unless one row dominates a feature: every
        # evaluation saves the offset's two small products.  Taken as given,
        # the other rows of a dominated feature that was centered on the mean
        # its far row pulls lie far from 0, tied to the intercept (300 rows
        # centered after one was multiplied by 1e4: L-BFGS ran to max_iter
        # 0.2% above the optimal loss).  Such a fit is slow: the check for
        # such rows waits until L-BFGS has not converged within
        # _DEFERRED_CHECK_ITERATIONS (the benchmark's float32 digits take
        # 32, and save 0.6 ms of a 6.5 ms fit), and where it finds one, the
        # fit starts again, centered.
        as_given = center and not first_order and _centered_already(mean, low, high)
        deferred = None
        if as_given and check_dominance and defer_check:
            deferred = (X, weights_normalized, mean, ranges)
            check_dominance = False
        dominated = None  # (the features L-BFGS centers on their other rows)
        dominance = None  # (first-order: checked once fitted)
        if check_dominance:
            found = dominant_rows(
                X, weights_normalized, mean, ranges, n_threads=n_threads
            )
            if found[0].any() and first_order:
                dominance = found
            elif found[0].any():
                # L-BFGS centers them on their other rows: centered on the
                # mean that row pulls, those lie far from 0, tied to the
                # intercept (one row 1e6 times the others among 300: 200
                # iterations to max_iter, 22% above the optimal loss, where
                # LogisticRegression, uncentered, took 15).  Centered on
                # the others, it takes LogisticRegression's iterations.
                # Their range, not that row's, sets the common factor (see
                # feature_scales): from that row's, 1e10 times the others',
                # the other rows shrank to 1e-10, and L-BFGS stopped at the
                # model of the intercepts alone, 1.09 against the optimal
                # 0.58.  (From here on, the ranges of those features are
                # their other rows': for the common factor and the
                # centering.)
                dominated, _, bulk_mean, (low, high) = found
                mean = np.where(dominated, bulk_mean, mean)
                as_given = False
        if as_given:
            center = False
        sparse_constant = None  # (constant features of a sparse X, centered)
        if center_far:
            mean, sparse_constant, (low, high) = _sparse_far_means(
                X, weights_normalized, mean, (low, high)
            )
            center = mean is not None
        if keep:
            # partial_fit resuming an optimizer keeps its coordinates and
            # step sizes (its state refers to them), and draws its shuffles
            # from the same generator (as MLPClassifier does): reseeded at
            # each call, every chunk of a given size would be shuffled alike.
            # (Copies, which the solver updates in place: a call that fails
            # leaves the estimator's own as they were.  The generator is
            # copied once, at the first resumed call: the earlier calls'
            # may be the user's, or numpy's global one.  From then on it is
            # the estimator's own, updated in place, and a failing call
            # puts its state back: a copy took 0.25 ms, its state 0.03.)
            rng = self._shuffle_rng
            if getattr(self, "_owns_shuffle_rng", False):
                state = rng.get_state()
                self._undo_on_error = functools.partial(rng.set_state, state)
            else:
                rng = copy.deepcopy(rng)
            chunk_mean = mean
            mean, scale = self._mean, self._scale
            feature_major = getattr(self, "_feature_major", False)
            folded = getattr(self, "_folded_scale", None)
            constant = None  # (the kept steps already account for them)
            # The kept scales' growth, and this call's alone (see below).
            widened = passing = None
            unit_scales = folded is None and self._folds_scales(rule, scale)
            if unit_scales:
                # Scales of 1 stay out of the steps (a scalar step is
                # cheaper); folded they can grow as any other.
                folded = scale
            # The scales the kept steps are sized for: folded into them, or
            # in the coordinates (some scale beyond _FOLD_RANGE: a price in
            # dollars), where a scale grows through the steps alone and is
            # kept apart.  (Those never grew: a count feature 0/1 at first,
            # 10 to 30 later, took the loss from 1.1 to 40 to 100,
            # silently.)
            grown_scale = getattr(self, "_grown_scale", None)
            kept_scale = folded
            if kept_scale is None:
                kept_scale = scale if grown_scale is None else grown_scale
            sized_for = folded
            if sized_for is None and isinstance(rule, (Momentum, Adam)):
                sized_for = kept_scale
            # (A chunk of a few rows says little about the spreads: one
            # row's distance from the mean is no spread.)
            if (
                sized_for is not None
                and np.count_nonzero(weights_normalized) >= _MIN_SIZING_ROWS
            ):
                # In units of the largest scale (a power of two): squares of
                # data of 1e150 stay finite.
                unit = float(np.max(sized_for, initial=1.0))
                if self.solver == "adam" and sp.issparse(X):
                    size = stored_magnitudes(X, weights_normalized, mean, unit=unit)
                    kept_size = size
                else:
                    # The chunk's spread about its own mean, and for
                    # momentum, whose steps grow with the gradient, that
                    # mean's drift from the kept center too.  (Dense spreads
                    # within 2**-12 of a center far from 0 are computed about
                    # the rows' own mean: a column at 1e6 drifting by 20 a
                    # chunk kept its scale and diverged.)  Adam's steps do
                    # not grow with the drift, and shortened for it they
                    # could no longer undo a coefficient the drift makes
                    # ever larger in the logits: on a timestamp column
                    # drifting a day a chunk, its loss rose from 1.1 to 2 to
                    # 8, silently.
                    where = _dask if dask_X else _array_api if device_X else None
                    std = where.weighted_std if where else weighted_std
                    size = std(X, weights_normalized, chunk_mean, unit=unit)
                    kept_size, drifted = size, chunk_mean
                    if np.ndim(low):
                        # The scales kept grow with each feature's spread
                        # without its farthest row: one value far out is no
                        # spread, and a scale never shrinks (a 60 among
                        # N(0, 1) values, once, cut that feature's steps
                        # 64-fold for the rest of the stream; Adam's test
                        # accuracy fell from 0.696 to 0.558).  That row
                        # still shortens the steps of its own chunk (below).
                        drifted, kept_size = _without_farthest_row(
                            chunk_mean,
                            size,
                            (low, high),
                            _farthest_row_weight(
                                X,
                                weights_normalized,
                                chunk_mean,
                                (low, high),
                                size * unit,
                            ),
                            unit,
                        )
                    if not isinstance(rule, Adam):
                        # (Nothing left out, a sparse X's: one spread.)
                        same = kept_size is size and drifted is chunk_mean
                        size = _hypot(size, (chunk_mean - mean) / unit)
                        kept_size = (
                            size if same else _hypot(kept_size, (drifted - mean) / unit)
                        )
                one = kept_size is size
                size = size * unit
                kept_size = size if one else kept_size * unit
                ceiling = np.inf if folded is None else _GROWN_FOLD_CEILING
                grown, widened = _widened_scales(kept_size, sized_for, ceiling)
                if folded is not None:
                    folded = grown
                else:
                    grown_scale = grown
                # This chunk's steps are shortened for its farthest rows too
                # (a wide value in one row of every chunk, a count 0/1 at
                # first and 1000 later, is curvature: with the kept steps
                # the loss rose from 1.4 to 41, silently).
                passing = _widened_scales(size, grown, ceiling)[1]
            if unit_scales and widened is None:
                folded = None
        else:
            if not center:
                mean = np.zeros(n_features)
            # Data elsewhere (dask, another device): the standard deviations
            # are computed where X lives.
            spread = None
            if dask_X or device_X:
                where = _dask if dask_X else _array_api

                def spread(unit):
                    return where.weighted_std(X, weights_normalized, mean, unit)

            elif self.solver == "adam" and sp.issparse(X):
                # Adam moves every coordinate by about learning_rate_init a
                # step: on sparse X, whose standardized entries are about
                # 1 / sqrt(density) where stored, that was far too long
                # (the loss of the benchmark's sparse problem rose to 5);
                # in the plain units of small entries (TF-IDF, 0.1 to 0.3)
                # far too short, and for a column far from 0 (years) far
                # too long.  Scaled by its centered size where stored, each
                # stored entry is about 1, as a standardized dense one.
                def spread(unit):
                    return stored_magnitudes(X, weights_normalized, mean, unit=unit)

            scale, constant = feature_scales(
                X,
                weights_normalized,
                mean,
                value_range=(low, high),
                standardize=first_order,
                alpha=self.alpha,
                spread=spread,
                n_threads=n_threads,
                plain_range=_PLAIN_RANGE if first_order else _LBFGS_PLAIN_RANGE,
                return_constant=True,
            )
            # The layout of the solvers' parameters (see _coef_view): W^T for
            # X in memory, whose products take and give W^T; W for data
            # elsewhere, whose gradient comes back as W.
            feature_major = not (dask_X or device_X)
            far = None
            if center:
                spread = _centering_spread(self.solver, low, high, scale, constant)
                far = _far_from_zero(X, mean, spread)
            if far is not None and dominated is not None:
                far = far[~dominated[far]]  # (centered so on purpose)
            if far is not None and far.size:
                # A sum of values far from 0 rounds at their size: their
                # mean, once more from the deviations.
                where = _dask if dask_X else _array_api if device_X else None
                shift = where.mean_shift if where else mean_shift
                mean = mean.copy()
                mean[far] += shift(X, weights_normalized, mean[far], far)
        if rng is None:
            rng = check_random_state(self.random_state)
        gram_penalty = gram_sample = None
        # Data elsewhere (dask, another device): the curvature sample of at
        # most 8192 evenly spaced rows comes to memory.
        sample = offsets = None
        eligible = False  # (for the Gram preconditioner, see below)
        if dask_X:
            sample_of = _dask.curvature_sample
        elif device_X:
            sample_of = _array_api.curvature_sample
        else:
            sample_of = _curvature_sample
        if first_order and not center and not keep:
            # (How far the features lie from 0, which no intercept takes.)
            sample = sample_of(X, weights_normalized)
            offsets = _Offsets(sample, scale, constant)
        # Only the automatic step of sgd (and of custom rules) needs the
        # curvature bound: L-BFGS finds its own steps, Adam's automatic step
        # is a constant, and a resumed optimizer keeps its step.
        if (
            self.learning_rate_init == "auto"
            and self.solver not in ("lbfgs", "adam")
            and not keep
        ):
            # On mini-batches the rows' norms are computed where the rows are.
            row_norms_sq = largest = sample_gram = None
            if sample is None and (dask_X or device_X):
                sample = sample_of(X, weights_normalized)
            threshold = self._precondition_threshold(
                X, weights_normalized, full_batch, partial, offsets=offsets
            )
            eligible = threshold is not None
            if eligible:
                gram_penalty, gram_sample, sample_gram = _gram_decision(
                    X,
                    weights_normalized,
                    mean,
                    scale,
                    constant,
                    self.alpha,
                    sample=sample,
                    offsets=offsets,
                    threshold=threshold,
                )
                if gram_penalty is not None:
                    # Correlated features cost the preconditioned full batch
                    # nothing (see gram_preconditioner): no batches.
                    full_batch, batch_size = True, n_samples
                    rule = self._update_rule(True)
            if device_X and not full_batch:
                row_norms_sq = _array_api.row_norms_sq(X, mean, scale)
            if gram_penalty is None and self._batch_follows_curvature(
                full_batch, partial
            ):
                # (A dask array takes the full batch: fit refuses its
                # mini-batches.)
                batches = False
                if not dask_X and (
                    largest_eigenvalue(
                        X,
                        weights_normalized,
                        mean=mean,
                        scale=scale,
                        sample=sample,
                        correlation=True,
                        gram=sample_gram,
                    )
                    > _CORRELATED_EIGENVALUE
                ):
                    # Strongly correlated: batches, unless their curvature
                    # bound is twice the full batch's, in the solver's
                    # coordinates.
                    largest = largest_eigenvalue(
                        X,
                        weights_normalized,
                        mean=mean,
                        scale=scale,
                        sample=sample,
                        gram=sample_gram,
                    )
                    if row_norms_sq is None:
                        row_norms_sq = _centered_row_norms_sq(X, mean, scale)
                    batch_term = mini_batch_curvature(
                        0.5 * largest,
                        row_norms_sq,
                        weights_normalized,
                        batch_size=batch_size,
                        fit_intercept=self.fit_intercept,
                    )
                    batches = batch_term < _SHORTER_BATCH_STEPS * 0.5 * largest
                if not batches:
                    full_batch, batch_size = True, n_samples
                    rule = self._update_rule(True)
            if largest is None and sample_gram is not None:
                # (The bound's eigenvalue, of the sample's Gram matrix formed
                # above.)
                largest = largest_eigenvalue(
                    X, weights_normalized, mean=mean, scale=scale, gram=sample_gram
                )
            self._lipschitz = lipschitz_constants(
                X,
                weights_normalized,
                alpha=self.alpha,
                fit_intercept=self.fit_intercept,
                batch_size=None if full_batch else batch_size,
                mean=mean,
                scale=scale,
                # partial_fit's later chunks have other means.
                joint=partial,
                sample=sample,
                row_norms_sq=row_norms_sq,
                largest=largest,
            )[:2]
        if not keep:
            # Momentum's update is linear in its step: the standardized
            # coordinates become per-parameter steps, learning_rate / scale**2
            # on each feature's coefficients, and the solver works on the
            # plain coefficients.  The iterates are the same, bit for bit
            # (powers of two), and a mini-batch no longer pays two passes over
            # the coefficients to change coordinates (a third more per epoch
            # on the sparse benchmark problem).  Adam folds them too (below);
            # the accelerated rule sees the coordinates: its restart test
            # measures them.  Scales far from
            # 1 (data of extreme magnitude) stay in the coordinates too: as
            # steps, 1 / scale**2 would leave the floating-point range.
            # Adam takes them too: in coordinates W diag(s) its step is
            # (learning_rate / s) m / (sqrt(v) + epsilon s) on the plain
            # coefficients, with m and v of the plain gradient (powers of
            # two again): per-parameter steps and epsilons.
            folded = None
            if not np.all(scale == 1) and self._folds_scales(rule, scale):
                folded, scale = scale, np.ones(n_features)
        self._mean, self._scale, self._folded_scale = mean, scale, folded
        self._grown_scale = grown_scale if keep else None
        self._feature_major = feature_major
        offset = mean if center else None
        spread = _centering_spread(
            self.solver, low, high, scale if folded is None else folded, constant
        )
        make_loss = _array_api.device_loss if device_X else _in_memory_loss
        far = _far_from_zero(X, mean, spread) if center else None
        if far is not None:
            make_loss = functools.partial(make_loss, center_rows=far)
        validation = None
        if validation_data is not None:
            validation = _validation_scorer(
                *validation_data,
                n_classes=n_classes,
                scale=scale,
                mean=mean,
                feature_major=feature_major,
                far=far,
            )

        n_coef = n_classes * n_features
        param_dtype = np.float64 if self.solver == "lbfgs" else dtype
        params = np.zeros(n_coef + n_classes, dtype=param_dtype)
        if warm:
            coef = _coef_view(params, n_classes, n_features, feature_major)
            _scaled_copy(coef, self.coef_, _unit(scale), np.multiply)
            if self.fit_intercept:
                params[n_coef:] = self.intercept_ + _times_mean(self.coef_, mean)

        # Equal weights travel as a scalar: cheaper on every batch.  Others
        # in X's dtype, as the losses.
        if np.all(weights_normalized == weights_normalized[0]):
            objective_weights = None
        else:
            objective_weights = weights_normalized.astype(dtype, copy=False)
        make_objective = _dask.make_objective if dask_X else _make_objective
        objective = make_objective(
            X,
            y_index,
            objective_weights,
            n_classes=n_classes,
            alpha=float(self.alpha),
            label_smoothing=float(self.label_smoothing),
            offset=offset,
            scale=scale,
            fit_intercept=self.fit_intercept,
            feature_major=feature_major,
            n_threads=n_threads,
            make_loss=make_loss,
            rows=drawn,
        )
        final_loss = None  # (the loss after the last step, where measured)
        if self.solver == "lbfgs":
            constant_held = sparse_constant
            if constant_held is None and center and np.ndim(low):
                constant_held = low == high
            if constant_held is not None:
                objective = _hold_constant_features(
                    objective, params, constant_held, n_classes, feature_major
                )
            # Data beyond the ordinary magnitudes are divided by a power of
            # two (see feature_scales), which divides the coefficients'
            # gradient by it too: tol applies to the gradient of the
            # coefficients as given (a column of incomes near 60,000 made it
            # 65,536 times looser, and L-BFGS stopped at the start), and so
            # does the warning below (which a gradient in the scaled units
            # kept silent).
            gradient_scale = np.ones_like(params)
            _coef_view(gradient_scale, n_classes, n_features, feature_major)[...] = (
                scale
            )
            pair = None
            if n_classes == 2:
                # Two classes: in the parameters of the logits' difference.
                pair = _LogitDifference(n_features, feature_major)
                objective = pair.wrap(objective)
                params, gradient_scale = pair.half(params), pair.second(gradient_scale)
            check = None
            if deferred is not None:

                def check():
                    found = dominant_rows(*deferred, n_threads=n_threads)
                    return bool(found[0].any())

            try:
                result = lbfgs(
                    objective,
                    params,
                    max_iter=self.max_iter,
                    tol=self.tol,
                    verbose=bool(self.verbose),
                    gradient_scale=gradient_scale,
                    check=check,
                    check_at=_DEFERRED_CHECK_ITERATIONS,
                )
            except Restart:
                if self.verbose:
                    print("One row dominates a feature: starting again, centered.")
                return self._fit_single_threaded_blas(
                    X,
                    y_index,
                    weights,
                    warm=warm,
                    partial=partial,
                    n_threads=n_threads,
                    defer_check=False,
                )
            if pair is not None:
                result.params = pair.full(result.params)
            # No first-order optimizer for a later partial_fit to resume.
            self._rule_name = self._state = self._learning_rate = None
            self._step_batch = None
            self._optimizer_for = None
        else:
            # (A partial_fit chunk is not the data: a feature constant in it,
            # a word absent from the first documents, say, keeps its step.)
            learning_rate = self._learning_rate_of(
                rule, params, keep, feature_major, None if partial else constant
            )
            power = 1.0 if isinstance(rule, Adam) else 2.0
            if keep and widened is not None:
                # The kept steps, learning_rate / scale**2 (Adam: / scale),
                # for the features whose scale grew (a copy: a call that
                # fails keeps the previous steps).
                learning_rate = _shortened(
                    learning_rate, widened**power, n_classes, feature_major
                )
            preconditioner = None
            adam = isinstance(rule, Adam)
            # The loop reads the factors only in the full-batch gradient
            # test (not partial_fit's) and at the adaptive schedule's floor.
            tested = (batch_size >= n_samples and not partial) or (
                self.learning_rate == "adaptive"
            )
            # Otherwise they fold into new steps and Adam's epsilons: a
            # resumed momentum needs none of them (a partial_fit call on 20
            # x 2**18 coefficients spent 5 of 60 ms on them).
            if folded is not None and (adam or not keep or tested):
                per_feature = (folded ** (-1.0 if adam else -2.0)).astype(params.dtype)
                # One per parameter only where needed: on 20 x 2**18
                # coefficients each such array costs a pass, and its first
                # touch of fresh memory more.
                factors = None
                if adam or tested:
                    factors = np.ones_like(params)
                    _coef_view(factors, n_classes, n_features, feature_major)[...] = (
                        per_feature
                    )
                if adam:  # (a new rule at every call: resumed ones too)
                    rule.epsilon = rule.epsilon / factors
                # (Later partial_fit calls keep the folded steps.)
                if not keep:
                    if not isinstance(learning_rate, np.ndarray):
                        learning_rate = np.full_like(params, learning_rate)
                    rates = _coef_view(
                        learning_rate, n_classes, n_features, feature_major
                    )
                    rates *= per_feature
                if tested:  # (otherwise they need not stay in memory)
                    preconditioner = factors
                del factors
            whitening = None
            if gram_penalty is not None:
                labels = y_index[_curvature_rows(weights_normalized, X.shape[0])]
                if dask_X:
                    labels = labels.compute()
                whitening = _Whitening(
                    _gram_of(X, weights_normalized, y_index, mean, scale, n_threads),
                    (*gram_sample, np.asarray(labels)),
                    sample_gram,
                    mean=mean,
                    scale=scale,
                    penalty=gram_penalty,
                    constant=constant,
                    n_classes=n_classes,
                    feature_major=feature_major,
                    all_rows=gram_sample[0].shape[0] in (n_samples, X.shape[0]),
                    ridge_fraction=1.0 if offsets is None else offsets.share,
                )
                if not whitening.start(params):
                    whitening = None
            if (
                whitening is None
                and offsets is not None
                and offsets.far
                and offsets.squared > _FAR_OFFSETS
            ):
                advice = "Center X and set fit_intercept=True"
                if eligible or offsets.share < _LEAST_SPREAD_SHARE:  # (too far)
                    advice += (
                        ": the Gram preconditioner that the default solver "
                        "takes for such data cannot resolve a spread this "
                        "small in float64"
                    )
                else:
                    advice += (
                        ", or fit with the default solver='sgd', "
                        "batch_size='auto' and learning_rate_init='auto' "
                        f"(up to {_GRAM_FEATURES} features), which "
                        "preconditions for it"
                    )
                warnings.warn(
                    f"The features lie far from 0 against their spread "
                    f"(their variance is {offsets.share:.2g} of their mean "
                    f"square) and fit_intercept=False: these gradient steps "
                    f"converge slowly or stall on such data. {advice}.",
                    UserWarning,
                    stacklevel=6,
                )
            to_plain = tested_gradient = recondition = loss_resolution = None
            if whitening is not None:
                # Whitened coordinates: steps of 1 on the coefficients (0 on
                # those of constant features), the intercept's as it was.
                learning_rate = np.array(np.broadcast_to(learning_rate, params.shape))
                coef_rate = _coef_view(
                    learning_rate, n_classes, n_features, feature_major
                )
                coef_rate[...] = 1.0
                coef_rate[:, constant] = 0.0
                objective = whitening.wrap(objective)
                to_plain = whitening.to_plain
                tested_gradient = whitening.plain_gradient
                if offsets is not None and offsets.far:
                    # tol bounds the whitened gradient: in the plain one,
                    # scaled by the features' size about 0, the directions
                    # that tell the classes apart are 1e-4 as steep at X +
                    # 1e4, and with balanced classes (no offset part at 0)
                    # the fit stopped before its first step, at
                    # coefficients of 0 and chance accuracy.  float32's
                    # rounding, amplified as much, can keep it above tol
                    # (200 passes and a ConvergenceWarning where 13 did):
                    # there the fit also stops where the loss no longer
                    # falls measurably.  (The plain gradient after the first
                    # test stopped some after 4 passes at 3 times the
                    # optimal loss.)
                    tested_gradient = _whitened_gradient
                    if dtype == np.float32:
                        loss_resolution = _FLOAT32_LOSS_RESOLUTION
                recondition = whitening.recondition
                if validation is not None:
                    validation = functools.partial(_plain_call, validation, to_plain)
            state = None
            if keep and type(rule) in (Momentum, Adam):
                # The kept arrays, lent: the rule's first step writes their
                # update into new ones (see _scaled_state), so that the
                # estimator's stay as they were if the call fails.
                state = dict(self._state)
                state["borrowed"] = {
                    key for key, value in state.items() if isinstance(value, np.ndarray)
                }
            elif keep:
                state = copy.deepcopy(self._state)
            # The batch size the step is sized for: a resumed step keeps that
            # of the call that sized it (a later chunk of one row moves the
            # model 1/256 as far as a batch of 256 would).
            step_batch = getattr(self, "_step_batch", None) if keep else None
            if step_batch is None:
                step_batch = batch_size
            # This call's steps: the kept ones, shortened where a row lies
            # far out (see the scales' growth above).
            call_rate = learning_rate
            if keep and passing is not None:
                call_rate = _shortened(
                    learning_rate, passing**power, n_classes, feature_major
                )
            try:
                result = gradient_descent(
                    objective,
                    params,
                    rule=rule,
                    n_samples=n_samples,
                    batch_size=batch_size,
                    learning_rate=call_rate,
                    schedule=self.learning_rate,
                    max_iter=1 if partial else self.max_iter,
                    tol=self.tol,
                    n_iter_no_change=self.n_iter_no_change,
                    rng=rng if self.shuffle else None,
                    validation=validation,
                    verbose=bool(self.verbose),
                    state=state,
                    average=not partial,
                    reference_loss=getattr(self, "_reference_loss", None)
                    if keep
                    else None,
                    first_epoch=self.n_iter_ + 1 if partial and warm else 1,
                    preconditioner=preconditioner,
                    step_batch=step_batch,
                    test_gradient=not partial,
                    tested_gradient=tested_gradient,
                    loss_resolution=loss_resolution,
                    recondition=recondition,
                    # (A penalty gives the objective a minimum.)
                    settled_change=self.tol if self.alpha > 0 else None,
                    # A resumed call's loss beyond the limit may be the
                    # chunk's, not the steps': one row with a value 1000
                    # times the others in a chunk of 10 raised "diverged"
                    # before the call's first step.
                    loss_limit_raises=not keep,
                )
                if result.loss_exceeded:
                    # The chunk's rows but the worst, at the model the call
                    # was given (new data for it) and at the one it leaves:
                    # still far above the start, the steps diverged.
                    models = [
                        (self.coef_, self.intercept_),
                        _original_parameters(
                            result.params, n_classes, scale, mean, feature_major
                        ),
                    ]
                    limit = _DIVERGENCE_FACTOR * max(result.reference_loss, 1.0)
                    # Only rows far out in the kept units may be left out:
                    # a ruined model's worst row on ordinary data can hold
                    # most of a small chunk's loss (Adam at a step of 100 on
                    # 50-row chunks of N(0, 1) data ran on, accuracy 0.68).
                    # Without such rows, the epoch's loss says it.
                    # In the units kept before this chunk: a data-entry
                    # error grows a sparse or weighted chunk's scales (its
                    # farthest row stays in), and then no longer looked far.
                    # (A dask or device chunk's rows come to memory once.)
                    in_memory = X
                    if not (isinstance(X, np.ndarray) or sp.issparse(X)):
                        in_memory = to_numpy(X)
                    far = _far_rows(in_memory, mean, kept_scale)
                    if not far.any():
                        raise DivergenceError(self.n_iter_ + 1, learning_rate)
                    judged = in_memory
                    weighing = np.broadcast_to(weights_normalized, far.shape) > 0
                    if isinstance(rule, Adam) and np.count_nonzero(weighing) == 1:
                        # One row weighs (a chunk of one row), far out:
                        # nothing else to judge on.  Brought into the kept
                        # range, it still loses much at a ruined model, not
                        # at one that has learned (Adam's one-row chunks
                        # raised at a count of 1000 among Poisson(0.8)).
                        # Adam's step moves each coefficient by about its
                        # learning rate whatever the row; momentum's grows
                        # with the row, and its step on that row alone can
                        # ruin the model for the other data, unseen here
                        # (test accuracy 0.73 to 0.43): its call is refused.
                        # A chunk of many rows far out is judged as it is.
                        judged, far = (
                            _clipped_to_kept_range(in_memory, mean, kept_scale),
                            None,
                        )
                    for coef, intercept in models:
                        trimmed = _trimmed_row_loss(
                            judged,
                            y_index,
                            weights_normalized,
                            host_array(coef),
                            host_array(intercept),
                            float(self.label_smoothing),
                            far,
                        )
                        if trimmed > limit:
                            raise DivergenceError(self.n_iter_ + 1, learning_rate)
            except DivergenceError as exc:
                raise ValueError(self._divergence_message(exc.what, keep)) from None
            if (
                full_batch
                and not partial
                and self.learning_rate_init != "auto"
                and not result.converged
            ):
                # The loss curve holds the loss before each step: a step
                # set by hand that ruins the model at the last pass (at
                # max_iter=1, 1e6 times the starting loss) is measured here.
                final_loss = float(objective(result.params, None)[0])
            if to_plain is not None:
                result.params[...] = to_plain(result.params)
            # Momentum steps sized for a full-batch fit's curvature are too
            # long for a chunk's mini-batches: partial_fit resumes them only
            # after mini-batches (earlier partial_fit calls, a mini-batch
            # fit).  Adam's step does not depend on the batch.  An optimizer
            # that will not be resumed is not kept (its state is several
            # times the size of coef_).
            resumable = partial or not full_batch or isinstance(rule, Adam)
            self._rule_name = type(rule).__name__ if resumable else None
            self._optimizer_for = self._optimizer_settings()
            self._shuffle_rng = rng
            self._owns_shuffle_rng = keep
            self._reference_loss = result.reference_loss if resumable else None
            if result.state is not None:
                result.state.pop("borrowed", None)
            self._state = result.state if resumable else None
            self._learning_rate = learning_rate if resumable else None
            self._step_batch = step_batch if resumable else None

        # (Rows per step: the benchmark reports a full batch's memory over
        # two iterations, a mini-batch's over one epoch.)
        self._batch_size_used = n_samples if self.solver == "lbfgs" else batch_size
        # The fit's parameters are its own (made for it, or L-BFGS's result):
        # coef_ keeps their memory, no copy (42 MB a partial_fit call on 20 x
        # 2**18 coefficients), unless an optimizer state kept for a later
        # call shares it.
        kept = result.state or {}
        shared = any(
            isinstance(value, np.ndarray) and np.shares_memory(value, result.params)
            for value in kept.values()
        )
        coef, intercept = _original_parameters(
            result.params, n_classes, scale, mean, feature_major, copy=shared
        )
        if isinstance(rule, Adam):
            _center_over_classes(coef, intercept)
        self.coef_ = coef.astype(dtype, copy=False)
        self.intercept_ = intercept.astype(dtype, copy=False)
        if dominance is not None:
            self._warn_unresolved_rows(
                X,
                y_index,
                objective_weights,
                mean,
                dominance,
                n_threads,
                # (Rows of the training split are not the caller's.)
                name_rows=validation_data is None,
            )
        if partial and warm:
            # After an early-stopping fit, best_loss_ is a validation loss:
            # partial_fit holds out nothing, so it reverts to the training
            # objective, the lowest of the whole curve.
            previous = self.best_loss_
            if getattr(self, "validation_loss_", None) is not None:
                previous = min(self.loss_curve_, default=math.inf)
            self.n_iter_ += result.n_iter
            self.loss_curve_ = self.loss_curve_ + result.loss_curve
            self.best_loss_ = min(previous, result.best_loss)
        else:
            self.n_iter_ = result.n_iter
            self.loss_curve_ = result.loss_curve
            self.best_loss_ = result.best_loss
        self.validation_scores_ = result.validation_scores
        self.validation_loss_ = result.validation_losses
        self.best_validation_score_ = (
            max(result.validation_scores) if result.validation_scores else None
        )
        self.n_passes_ = result.n_passes
        message = None
        last_loss, when = None, "its last epoch's mean, over batches, before each step"
        if result.loss_curve:
            last_loss = result.loss_curve[-1]
        if final_loss is not None:
            last_loss, when = final_loss, "after its last step"
        # The zero coefficients a fit starts from have the objective log(K),
        # whatever the weights: a last epoch well above it means that a step
        # set by hand made things worse, short of the divergence the loop
        # reports (100 times the first batch's loss).  (The automatic step
        # is safe; on data with little to learn its noise alone can leave an
        # epoch's mean loss a little above log(K).)
        start = math.log(n_classes)
        if (
            self.solver != "lbfgs"
            and self.learning_rate_init != "auto"
            and not warm
            and last_loss is not None
            and not last_loss <= (1.0 + _WORSE_THAN_START) * start
        ):
            message = (
                f"ended with a training loss of {last_loss:.4g} ({when}), "
                f"above the {start:.4g} of its starting point: "
                f"learning_rate_init={self.learning_rate_init:g} is too large; "
                "lower it, or use learning_rate_init='auto'."
            )
        elif not result.converged:
            # What helps depends on the solver: L-BFGS works on the features
            # as given, the others on standardized ones, and Adam's steps
            # are about learning_rate_init long whatever the gradient.
            advice = {
                "lbfgs": "increase max_iter or tol, or scale the features "
                "(e.g. with StandardScaler)",
                "adam": "increase max_iter, tol or learning_rate_init (each "
                "step moves a coefficient by about learning_rate_init), or "
                "use solver='sgd'",
            }.get(self.solver if isinstance(self.solver, str) else None)
            if self.solver == "sgd" and full_batch and not partial:
                # Where the full batch runs out of passes, the curvature is
                # what slows it (nearly separable or badly conditioned
                # data, in its standardized coordinates): L-BFGS learns it
                # (6,000 x 200 separable low-rank features, condition
                # number 7e8: 647 passes, 3.3 s; L-BFGS 74 iterations,
                # 0.4 s).
                advice = (
                    "increase max_iter or tol, or use solver='lbfgs', which "
                    "learns the curvature of badly conditioned or nearly "
                    "separable data"
                )
            advice = advice or "increase max_iter or tol"
            message = f"reached max_iter={self.max_iter} without converging; {advice}."
        elif result.stop_reason is not None and dtype == np.float32:
            message = (
                f"{result.stop_reason}: float32 resolves the loss to about 1e-7 "
                "only; fit on float64 X, or increase tol."
            )
        elif result.stop_reason is not None and result.largest_gradient > max(
            self.tol, _FLOAT64_STOP_GRADIENT
        ):
            message = (
                f"{result.stop_reason}: the problem may be badly conditioned, "
                "or tol below what float64 resolves for this objective (a "
                "large alpha raises that floor); scale the features (e.g. "
                "with StandardScaler), or increase tol."
            )
        if message is not None and not partial:
            warn_at_caller(
                f"SoftmaxRegression (solver={self.solver!r}) {message}",
                ConvergenceWarning,
            )

    def _batch_follows_curvature(self, full_batch, partial):
        """Whether fit takes the full batch or 256-row batches by the data's
        curvature (see _CORRELATED_EIGENVALUE), where _batch_size chose
        mini-batches: ``"sgd"`` with ``batch_size="auto"``, Nesterov's
        momentum (heavy-ball momentum takes no accelerated full-batch steps)
        and the automatic step (a step set by hand is one for the batches)."""
        return (
            not full_batch
            and not partial
            and self.batch_size == "auto"
            and self.solver == "sgd"
            and self.nesterovs_momentum
            and self.learning_rate_init == "auto"
        )

    def _warn_unresolved_rows(
        self, X, y_index, weights, mean, dominance, n_threads, *, name_rows
    ):
        """Warn where one row dominates features whose fit it left unresolved.

        Where one row holds nearly all of a feature's spread (see
        dominant_rows), the first-order solvers' steps, sized by that
        spread, barely move the feature's coefficients: the fit may stop
        far from the optimum (one row 1e6 times the others: 17 passes at
        0.39 accuracy, where LogisticRegression reaches 0.79).  Measured on
        the other rows' scale, the gradient of those coefficients tells (a
        quarter of their range: about their spread): above ``tol``, they
        are unresolved, and fit warns, naming the features and the row.
        Resolved, they are not: the outer B-splines of a SplineTransformer
        hold such rows, and the fit had warned at its optimum.  One more
        pass over X, only where such a row exists.
        """
        dominated, rows, _, (bulk_low, bulk_high) = dominance
        # (In the centered coordinates of the fit, which has an intercept:
        # the check needs one.)
        grad = _loss_and_gradient(
            self.coef_.astype(X.dtype),
            (self.intercept_ + self.coef_ @ mean).astype(X.dtype),
            X,
            y_index,
            1.0 / X.shape[0] if weights is None else weights,
            float(self.alpha),
            float(self.label_smoothing),
            mean.astype(X.dtype),
            n_threads,
        )[1]
        columns = np.flatnonzero(dominated)
        bulk = 0.25 * (bulk_high[columns] - bulk_low[columns])
        unresolved = np.max(np.abs(grad[:, columns]), axis=0) * bulk > self.tol
        columns = columns[unresolved]
        if not columns.size:
            return
        names = getattr(self, "feature_names_in_", None)
        listed = [str(names[j]) if names is not None else str(j) for j in columns]
        shown = ", ".join(listed[:5]) + (", ..." if len(listed) > 5 else "")
        held = np.unique(rows[columns])
        who = f"{held.size} rows hold" if held.size > 1 else "One row holds"
        if held.size == 1 and name_rows:
            who = f"Row {held[0]} holds"
        warn_at_caller(
            f"{who} nearly all the spread of feature(s) {shown}: the other "
            f"rows vary less than a tenth as much. Standardized by that "
            f"spread, their coefficients barely moved in the gradient steps "
            f"of solver={self.solver!r}, and the fit stopped short of the "
            f"optimum. solver='lbfgs' fits such features (centered on their "
            f"other rows where it centers X); or clip or remove such rows.",
            UserWarning,
        )

    def _precondition_threshold(self, X, weights, full_batch, partial, *, offsets=None):
        """The condition number above which fit's full batch takes the Gram
        preconditioner (see gram_preconditioner), or None where it may not.

        Only the accelerated rule of ``"sgd"`` with Nesterov's momentum (and
        the automatic step), on the full batch or on the batches that
        _batch_follows_curvature may turn into it, up to _GRAM_FEATURES
        features.  Samples are counted by positive weight (zero weights
        equal removed rows):

        - 0 for features far from 0 without an intercept (``offsets.far``,
          see _Offsets), on any number of samples: the diagonal steps crawl
          there;
        - _ILL_CONDITIONED above 4096 samples;
        - _SMALL_ILL_CONDITIONED on fewer, where they are at least
          _SMALL_ROWS_PER_FEATURE times the features.  Breast cancer's radius,
          perimeter and area (a condition number of 1e5) took the diagonal
          steps a median of 118 to 200 passes (6 splits, standardized or not,
          balanced or not), 3e-3 to 2e-2 above the optimal loss, 13 of 24 fits
          to max_iter with a ConvergenceWarning: now 50 to 58, 3e-5 to 1.4e-4
          above it.  Of 60 random problems of 200 to 4000 rows with nearly
          collinear features and 8 rows per feature or more, the 52 that
          took it went from a median of 38 passes to 15 (one took more: 72
          against 58), from a median gap of 4e-4 to 4e-6, from 6
          ConvergenceWarnings to none, and to the optimum's test accuracy.
          Of 50 of 1 to 12 rows per feature, the median went from 56
          passes to 28 and from a gap of 7e-4 to 1e-5, the warnings from 6
          to 1 (9 took 20% more passes or more).  Polynomial features of
          degree 5 and 8 of 200 moons or circles, which ran to max_iter,
          took 65 to 93.  Moderate condition numbers keep the diagonal
          steps, about as fast there (digits: 146);
        - None on fewer rows per feature, data often separable (wine's
          quadratic features, 133 rows of 104: 48 to 75 passes to a gap
          of 6e-3 against 23 to 42 passes to 2e-4), where the curvature
          falls far below the Gram bound.
        """
        accelerated = (
            full_batch
            and not partial
            and isinstance(self.solver, str)
            and self.solver == "sgd"
            and self.nesterovs_momentum
        )
        if not (
            (accelerated or self._batch_follows_curvature(full_batch, partial))
            and 0 < X.shape[1] <= _GRAM_FEATURES
        ):
            return None
        if offsets is not None and offsets.far:
            return 0.0
        rows = int(np.count_nonzero(weights))
        if X.shape[0] > _AUTO_FULL_BATCH_MAX and rows > _AUTO_FULL_BATCH_MAX:
            return _ILL_CONDITIONED
        if rows >= _SMALL_ROWS_PER_FEATURE * X.shape[1]:
            return _SMALL_ILL_CONDITIONED
        return None

    def _mini_batches(self, n_samples, n_features, *, partial, density=None):
        """Whether the solver may step on mini-batches of ``n_samples`` rows
        (fit may still take the full batch, see _batch_follows_curvature)."""
        if self.solver == "lbfgs":
            return False
        return self._batch_size(n_samples, n_features, partial, density) < n_samples

    def _folds_scales(self, rule, scale):
        """Whether ``rule`` takes the feature scales ``scale`` as its steps.

        Momentum and Adam do (see ``_fit_single_threaded_blas``), for
        scales within ``_FOLD_RANGE``; custom rules see the coordinates.
        """
        return (
            isinstance(rule, (Momentum, Adam))
            and not isinstance(self.solver, UpdateRule)
            and bool(np.all((scale >= _FOLD_RANGE[0]) & (scale <= _FOLD_RANGE[1])))
        )

    def _resumes_optimizer(self, rule):
        """Whether ``partial_fit`` continues the previous call's optimizer.

        It does after a call (or a mini-batch fit) by the same kind of rule
        with the same settings (see ``_fit_single_threaded_blas``).
        """
        return (
            getattr(self, "_rule_name", None) == type(rule).__name__
            and getattr(self, "_optimizer_for", None) == self._optimizer_settings()
        )

    def _with_pending_rows(self, X, y_index, weights):
        """The chunk, after the rows earlier ``partial_fit`` calls held back.

        A call that starts a new optimizer (the first, one after a fit that
        left none to resume, or one after ``set_params`` changed its
        settings) takes the centering, scales and step from its chunk:
        of a few rows (online learning, one sample a call) those say next
        to nothing about the data (one row, centered on itself, has no
        curvature at all, and the step was huge).  The first chunks are held
        back, ``(None, None, None)`` returned, until ``_MIN_SIZING_ROWS``
        rows of positive weight have come; then all of them train.  (Arrays
        of other namespaces are held on their device.)
        """
        pending = getattr(self, "_pending", None)
        if pending is not None:
            X = _stack_rows(pending[0], X)
            y_index = np.concatenate([pending[1], y_index])
            weights = np.concatenate([pending[2], weights])
        if np.count_nonzero(weights) < _MIN_SIZING_ROWS:
            # (Checked now, as the rows a call drops: held unchecked, NaN in
            # them failed every later call, which the user could not undo.)
            rows = host_array(X) if array_namespace(X) is not None else X
            assert_all_finite(rows, estimator_name=type(self).__name__)
            if pending is None:
                # The caller's own arrays (validation copies none that it
                # can take as they are): a buffer reused for the next rows
                # would change the rows held.
                X, y_index, weights = _own_copy(X), np.array(y_index), np.array(weights)
            self._pending = (X, y_index, weights)
            return None, None, None
        self._pending = None
        return X, y_index, weights

    def _set_starting_model(self, n_features, dtype):
        """The zero model of a first ``partial_fit`` call that held its rows."""
        n_classes = self.classes_.size
        self.coef_ = np.zeros((n_classes, n_features), dtype=dtype)
        self.intercept_ = np.zeros(n_classes, dtype=dtype)
        self.n_iter_ = self.n_passes_ = 0
        self.loss_curve_, self.best_loss_ = [], math.inf
        self.validation_scores_ = self.validation_loss_ = None
        self.best_validation_score_ = None

    def _optimizer_settings(self):
        """The parameters a first-order optimizer's steps and state depend on.

        A ``partial_fit`` after ``set_params`` changed one of them starts a
        new optimizer from the fitted coefficients: the automatic step is
        ``(1 - momentum) / L(batch_size)`` with ``alpha`` in ``L``, a step
        set by hand is ``learning_rate_init``, the loss at the start (the
        reference of the divergence check) depends on ``alpha``, the
        curvature bound on ``class_weight``, and ``fit_intercept`` changes
        the coordinates.
        """
        return (
            self.fit_intercept,
            copy.deepcopy(self.class_weight),
            float(self.alpha),
            float(self.momentum),
            bool(self.nesterovs_momentum),
            self.learning_rate_init,
            self.batch_size,
        )

    def _batch_size(self, n_samples, n_features, partial, density=None):
        """Rows per step; ``density``: the fraction of X's entries stored
        (sparse X), or None."""
        if self.batch_size is None:
            return n_samples
        if self.batch_size == "auto":
            # partial_fit sees one chunk of a stream, and Adam is a method
            # for noisy gradients (its normalized steps of learning_rate_init
            # are too short to make 200 full-batch steps a fit): batches of
            # at most 256 rows even when the data are small or wide (below
            # 256 rows, one batch of all of them, as MLPClassifier's 200).
            if self.solver == "adam":
                return min(_AUTO_BATCH_SIZE, n_samples)
            if not partial:
                wide_sparse = density is not None and n_features > _AUTO_BATCH_SIZE
                # (Heavy-ball momentum on the full batch takes no accelerated
                # steps: mini-batches, as for dense data.)
                if n_samples <= _AUTO_FULL_BATCH_MAX or (
                    wide_sparse and self.nesterovs_momentum
                ):
                    return n_samples
                return min(_AUTO_BATCH_SIZE, n_samples)
            # A step of a sparse chunk updates every coefficient: batches of
            # at least 1 / density rows hold about as many entries as there
            # are features, so that update costs no more than the rows.  On
            # such wide data the batch's step grows with its rows (see
            # _AUTO_BATCH_SIZE): each row moves the model about as far.
            rows = _AUTO_BATCH_SIZE
            # (A step set by hand does not grow with the batch.)
            if density is not None and self.learning_rate_init == "auto":
                rows = max(rows, math.ceil(1.0 / density) if density > 0 else n_samples)
            return min(rows, n_samples)
        return min(self.batch_size, n_samples)

    def _update_rule(self, full_batch):
        """The update rule of a first-order solver.

        The accelerated rule needs a fixed objective: partial_fit, whose
        chunks change, passes ``full_batch=False``.
        """
        solver = self.solver
        if isinstance(solver, UpdateRule):
            return solver  # a custom rule (hidden from users, for tests)
        if solver == "adam":
            return Adam()
        if full_batch and self.nesterovs_momentum:
            return AcceleratedGradient()
        return Momentum(self.momentum, self.nesterovs_momentum)

    def _learning_rate_of(self, rule, params, keep, feature_major, constant):
        """The (per-parameter) learning rate of ``rule``.

        In the standardized coordinates (see :func:`feature_scales`); fit
        folds the scales in where momentum takes them as steps.  The
        automatic step of the coefficients of the features ``constant``
        marks (None: none, as for a partial_fit chunk, which is not the
        data) is 0: centered, such a feature is rounding noise, or a
        constant the size of that noise (the mean's own rounding), whose
        curvature bound is as tiny; a step of its inverse would fit the
        labels to the noise with coefficients of 1e10 (every feature
        constant, alpha=0), and Adam's steps, of constant length, would
        move them anyway.
        """
        if keep:
            return self._learning_rate
        if self.learning_rate_init != "auto":
            return float(self.learning_rate_init)
        n_classes = self.classes_.size
        n_features = params.size // n_classes - 1
        if self.solver == "adam":
            if not np.any(constant):
                return _ADAM_AUTO_LEARNING_RATE
            rate = np.full_like(params, _ADAM_AUTO_LEARNING_RATE)
        else:
            lipschitz_coef, lipschitz_intercept = self._lipschitz
            # One step per parameter: 1 / (curvature bound) for each
            # feature's coefficients (the penalty differs per scaled feature)
            # and for the intercept.
            with np.errstate(divide="ignore"):
                feature_rate = np.where(lipschitz_coef > 0, 1.0 / lipschitz_coef, 1.0)
            intercept_rate = 1.0 / lipschitz_intercept if lipschitz_intercept else 0.0
            if isinstance(rule, Momentum):
                # Heavy ball and Nesterov amplify the step by 1 / (1 - momentum).
                # (Applied per feature before the rates are spread over the
                # classes: one pass over n_classes x n_features the less.)
                feature_rate *= 1.0 - self.momentum
                intercept_rate *= 1.0 - self.momentum
            rate = np.empty_like(params)
            _coef_view(rate, n_classes, n_features, feature_major)[...] = feature_rate
            rate[-n_classes:] = intercept_rate
        if constant is not None:
            _coef_view(rate, n_classes, n_features, feature_major)[:, constant] = 0.0
        return rate

    def _holds_out_validation(self):
        """Whether fit holds out a validation set (first-order solvers only)."""
        return self.early_stopping and self.solver != "lbfgs"

    def _split_validation(self, X, y_index, weights, rng):
        # Only rows of positive weight are held out: a row of zero weight
        # counts for nothing in the validation score, and a validation part
        # made of such rows would have none.  They train (for nothing), so
        # the split is that of the data without them.  Stratified where it
        # can be: every class in both parts (train_test_split holds out
        # ceil(validation_fraction * n) samples) and twice at least.
        weighted = np.flatnonzero(weights > 0)
        n_samples = weighted.size
        n_val = math.ceil(self.validation_fraction * n_samples)
        counts = np.bincount(y_index[weighted])
        counts = counts[counts > 0]
        if min(n_val, n_samples - n_val) >= counts.size and counts.min() >= 2:
            try:
                train, val = train_test_split(
                    weighted,
                    test_size=self.validation_fraction,
                    random_state=rng,
                    stratify=y_index[weighted],
                )
            except ValueError as exc:
                raise ValueError(
                    "early_stopping could not split off a validation set of "
                    f"validation_fraction={self.validation_fraction}: {exc}"
                ) from exc
        elif n_samples > counts.size:
            # Unstratified, but one row of each class (drawn at random)
            # always trains: a class of one sample held out would be one
            # the model never saw, and predicted nowhere.
            order = rng.permutation(n_samples)
            first = np.unique(y_index[weighted][order], return_index=True)[1]
            is_kept = np.zeros(n_samples, dtype=bool)
            is_kept[order[first]] = True
            candidates = rng.permutation(weighted[~is_kept])
            n_val = min(n_val, candidates.size)
            val = candidates[:n_val]
            train = np.concatenate([weighted[is_kept], candidates[n_val:]])
        else:
            raise ValueError(
                f"early_stopping needs more training rows of positive weight "
                f"({n_samples}) than classes ({counts.size}): one row of each "
                "class trains, and at least one more is held out."
            )
        train = np.concatenate([train, np.flatnonzero(~(weights > 0))])
        return (
            _safe_indexing(X, train),
            _safe_indexing(X, val),
            y_index[train],
            y_index[val],
            weights[train],
            weights[val],
        )

    # -------------------------------------------------------------- predict

    def decision_function(self, X):
        """Raw scores ``z = X W^T + b``.

        Parameters
        ----------
        X : {array-like, sparse matrix, dask array} of shape (n_samples, n_features)
            Samples.  For a dask array the result is a dask array, computed
            chunk by chunk.

        Returns
        -------
        scores : ndarray of shape (n_samples, n_classes) or (n_samples,)
            ``z``; with two classes the single column ``z_1 - z_0``
            (positive means ``classes_[1]``).
        """
        result = self._predict_elsewhere("decision_function", X)
        if result is not None:
            return result
        (X,), restore = to_numpy_namespace(X)
        # z_1 - z_0 from shifted logits: no inf - inf where both overflow.
        two_classes = self.classes_.shape[0] == 2
        raw = self._raw_prediction(X, shift=two_classes)
        if two_classes:
            with np.errstate(over="ignore"):  # +-inf: the difference, rounded
                raw = raw[:, 1] - raw[:, 0]
        return restore(raw)

    def _predict_elsewhere(self, method, X):
        """``method``'s result where X lives, or None for the numpy path.

        Checks first that the model is fitted (for every predict method).
        A dask array gives a dask array, computed chunk by chunk; an array
        of another namespace (array API dispatch) gives the result computed
        on its device, unless its logits overflow: the numpy path then takes
        over on a CPU copy of X.  None for numpy, lists, sparse matrices.
        """
        check_is_fitted(self)
        if is_dask_array(X):
            return self._map_dask(method, X)
        check_same_namespace(X, self, method=method)
        if array_namespace(X) is None:
            return None
        X = self._validate(X, reset=False)
        raw = _array_api.logits(X, self.coef_, self.intercept_)
        if raw is None:
            return None
        return _array_api.predictions(method, raw, host_array(self.classes_))

    def _map_dask(self, method, X):
        """``method`` on each chunk of rows of a dask array X: a dask array."""
        classes = host_array(self.classes_)
        n_classes = classes.size
        one_column = method == "predict" or (
            method == "decision_function" and n_classes == 2
        )
        if method == "predict":
            dtype = classes.dtype
        else:
            dtype = X.dtype if X.dtype in (np.float32, np.float64) else np.float64
        return _dask.map_rows(
            getattr(self, method),
            X,
            self.n_features_in_,
            n_columns=None if one_column else n_classes,
            dtype=dtype,
        )

    def _raw_prediction(self, X, shift=True):
        """``z = X W^T + b``, with no NaN where it overflows the dtype.

        Rows whose logits overflow are recomputed from scaled data (see
        :func:`~sk_softmax._loss._scaled_logits`): their entries are then
        the logits rounded to the dtype (``+-inf`` beyond its range), or,
        with ``shift``, ``z - max(z)``, which leaves softmax and argmax as
        they are and is ``-inf`` only where the probability underflows to 0.
        The caller has checked that the model is fitted.
        """
        X = self._validate(X, reset=False)
        # (A model fitted on a device predicts numpy X from a CPU copy.)
        coef, intercept = host_array(self.coef_), host_array(self.intercept_)
        with np.errstate(over="ignore"):
            coef_x = coef.astype(X.dtype, copy=False)
            intercept_x = intercept.astype(X.dtype, copy=False)
        if np.isfinite(coef_x).all() and np.isfinite(intercept_x).all():
            return _logits(X, coef_x, intercept_x, shift)
        # A float64 model beyond X's dtype (fitted with alpha=0 on features
        # of 1e-40, say) would be inf there, its logits NaN: in float64, then
        # rounded to X's dtype, shifted by each row's largest first if the
        # caller allows.
        raw = _logits(X.astype(np.float64), coef, intercept, shift)
        if shift:
            raw -= raw.max(axis=1, keepdims=True)
        with np.errstate(over="ignore"):
            return raw.astype(X.dtype)

    def predict(self, X):
        """Most probable class per sample.

        Parameters
        ----------
        X : {array-like, sparse matrix, dask array} of shape (n_samples, n_features)
            Samples.  For a dask array the result is a dask array, computed
            chunk by chunk.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
            Labels from ``classes_``.
        """
        result = self._predict_elsewhere("predict", X)
        if result is not None:
            return result
        (X,), restore = to_numpy_namespace(X)
        raw = self._raw_prediction(X)
        if raw.shape[1] == 2:  # argmax, without numpy's slow short-axis loop
            best = (raw[:, 1] > raw[:, 0]).view(np.int8)
        else:
            best = np.argmax(raw, axis=1)
        return restore(host_array(self.classes_)[best])

    def predict_log_proba(self, X):
        """Log-probabilities ``z - logsumexp(z)``.

        Exact and finite where ``log(predict_proba(X))`` would underflow to
        ``-inf``; ``-inf`` only where a logit lies below the largest by more
        than the dtype's range.

        Parameters
        ----------
        X : {array-like, sparse matrix, dask array} of shape (n_samples, n_features)
            Samples.  For a dask array the result is a dask array, computed
            chunk by chunk.

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
            Columns ordered as ``classes_``.
        """
        result = self._predict_elsewhere("predict_log_proba", X)
        if result is not None:
            return result
        (X,), restore = to_numpy_namespace(X)
        return restore(log_softmax(self._raw_prediction(X)))

    def predict_proba(self, X):
        """Class probabilities ``softmax(z)``.

        Parameters
        ----------
        X : {array-like, sparse matrix, dask array} of shape (n_samples, n_features)
            Samples.  For a dask array the result is a dask array, computed
            chunk by chunk.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Rows sum to one; columns ordered as ``classes_``.  float32 for
            float32 X (whatever the model was fitted on), float64 otherwise.
        """
        result = self._predict_elsewhere("predict_proba", X)
        if result is not None:
            return result
        (X,), restore = to_numpy_namespace(X)
        return restore(softmax(self._raw_prediction(X), copy=False))

    # ---------------------------------------------------------------- state

    @classmethod
    def _get_param_names(cls):
        # Read from the signature of __init__ once per class: scikit-learn
        # reads it at every call (about 35 us, in get_params, and so in the
        # parameter validation at every fit, and in clone).
        return list(_parameter_names(cls))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.array_api_support = True
        return tags

    def __getstate__(self):
        # A copy: object.__getstate__ may return the live __dict__.
        state = dict(super().__getstate__())
        state["_sk_softmax_version"] = __version__
        return state

    def __setstate__(self, state):
        version = state.pop("_sk_softmax_version", None)
        if version is not None and version != __version__:
            warnings.warn(
                f"Trying to unpickle SoftmaxRegression from sk_softmax version "
                f"{version} when using version {__version__}. This might lead to "
                "breaking code or invalid results. Use at your own risk.",
                UserWarning,
                stacklevel=2,
            )
        super().__setstate__(state)


def _density(X):
    """The fraction of a sparse X's entries that are stored; None if dense."""
    if not sp.issparse(X):
        return None
    return X.nnz / max(X.shape[0] * X.shape[1], 1)


def _host_dtype(X):
    """The numpy dtype of X's values (X may live on another device)."""
    if array_namespace(X) is not None:
        return _array_api.numpy_dtype(X)
    return X.dtype


def _encode_labels(y):
    """``(classes, y_index)``: the sorted distinct labels, each sample's index.

    Integer labels in a range not much larger than the number of samples are
    counted rather than sorted.
    """
    if y.dtype.kind in "iu" and y.size:
        low, high = int(y.min()), int(y.max())
        limits = np.iinfo(np.intp)
        if high - low <= 4 * y.size and limits.min <= low and high <= limits.max:
            offsets = y.astype(np.intp) - low
            present = np.bincount(offsets) > 0
            classes = (np.flatnonzero(present) + low).astype(y.dtype)
            return classes, (np.cumsum(present) - 1)[offsets]
    classes = np.unique(y)
    return classes, np.searchsorted(classes, y)


# Coefficients from which the core writes their gradient into the solver's
# own (512 KiB of float64): on 20 x 2**18, a copy and a fresh array of 42 MB
# cost about 9 ms an evaluation; on 10 x 100 the path costs more than the
# copy it saves.
_IN_PLACE_GRADIENT = 1 << 16


def _make_objective(
    X,
    y_index,
    weights,
    *,
    n_classes,
    alpha,
    label_smoothing,
    offset,
    fit_intercept,
    scale,
    feature_major=False,
    n_threads=1,
    make_loss=None,
    rows=None,
):
    """``objective(params, batch) -> (loss, grad)`` over flat ``[W, b']``.

    ``weights`` sum to one over all samples (None: all equal, which travels
    as the scalar ``1/n``; a scalar: the equal weight of each row when X is
    one chunk of a larger sample).  A batch of ``B`` of the ``n`` rows
    weighs its rows ``n / B`` times their weights: its loss and gradient
    are unbiased estimates of the full ones, whose optimum the steps then
    approach (a batch that renormalized its own weights would count a row
    of weight 10 like any other in a batch of one, and less than 10 of them
    in small batches).
    ``n_threads`` threads share the row blocks of each evaluation.  The
    coefficients in ``params`` are ``W diag(scale)``, stored row by row as
    ``W`` or, with ``feature_major``, as ``W^T`` (see :func:`_coef_view`).
    ``make_loss`` builds the data term where X lives (see
    :func:`_in_memory_loss`, the default, for its signature).  ``rows``
    (None: all) are the rows the batches are drawn from, ``n`` of them: a
    batch holds positions in ``rows``.
    """
    n_features = X.shape[1]
    n_coef = n_classes * n_features
    dtype = _host_dtype(X)
    uniform = weights is None or np.ndim(weights) == 0
    if weights is None:
        weights = 1.0 / X.shape[0]
    n_drawn = y_index.shape[0] if rows is None else rows.size
    loss_of = (make_loss or _in_memory_loss)(
        X,
        y_index,
        weights,
        alpha=alpha,
        label_smoothing=label_smoothing,
        offset=None if offset is None else offset.astype(dtype, copy=False),
        n_threads=n_threads,
    )

    scale = scale.astype(dtype, copy=False)  # (read only, as the offset)
    unscaled = bool(np.all(scale == 1))  # ordinary magnitudes: skip two passes
    # W = W' / scale, in X's dtype and the parameters' layout, into the same
    # buffer at every call: the per-batch path allocates nothing it can
    # reuse.
    coef_buffer = None
    if not unscaled:
        coef_buffer = _coef_view(
            np.empty(n_coef, dtype=dtype), n_classes, n_features, feature_major
        )

    # X in memory (feature-major), no scales to divide by, and the gradient
    # in the parameters' dtype: the core writes it where the solver reads it,
    # for coefficients of the size where a copy costs more than passing the
    # array down (a few microseconds a mini-batch on 10 x 100).
    in_place = feature_major and unscaled and n_coef >= _IN_PLACE_GRADIENT

    def objective(params, batch):
        in_place_here = in_place and params.dtype == dtype
        coef = _coef_view(params, n_classes, n_features, feature_major)
        if unscaled:
            coef = coef.astype(dtype, copy=False)
        else:
            coef = np.divide(coef, scale, out=coef_buffer)
        intercept = None
        if fit_intercept:
            intercept = params[n_coef:].astype(dtype, copy=False)
        if batch is None:
            y_b, w_b = y_index, weights
        else:
            if rows is not None:
                batch = rows[batch]
            y_b = y_index[batch]
            if uniform:
                w_b = 1.0 / batch.size
            else:
                w_b = weights[batch] * (n_drawn / batch.size)
        # In the parameters' dtype: float64 for L-BFGS, whatever X's.
        if in_place_here:
            # The core computes the gradient of the coefficients in grad's
            # own memory (see _loss_and_gradient's out): no copy.
            grad = np.zeros(params.size, dtype=params.dtype)
            grad_view = _coef_view(grad, n_classes, n_features, feature_major)
            loss, _, grad_intercept = loss_of(
                coef, intercept, y_b, w_b, batch, out=grad_view.T
            )
        else:
            loss, grad_coef, grad_intercept = loss_of(coef, intercept, y_b, w_b, batch)
            grad = np.empty(params.size, dtype=params.dtype)
            grad_view = _coef_view(grad, n_classes, n_features, feature_major)
            if unscaled:
                np.copyto(grad_view, grad_coef)
            else:
                np.divide(grad_coef, scale, out=grad_view)
        if fit_intercept:
            grad[n_coef:] = grad_intercept
        else:
            grad[n_coef:] = 0.0
        return loss, grad

    return objective


# X is centered row block by row block (see _far_from_zero) where a
# feature's mean exceeds this many times its spread: for float32 X (its
# products then keep 2**-16 of their precision), for float64 X (2**-24).
_OFFSET_RATIO = {np.dtype(np.float32): 2.0**8, np.dtype(np.float64): 2.0**29}


def _centering_spread(solver, low, high, scale, constant):
    """Each feature's spread for :func:`_far_from_zero`: its range for
    L-BFGS (None unless per feature), its scale otherwise (0 where the
    feature is constant, whose mean does not matter)."""
    if solver == "lbfgs":
        return high - low if np.ndim(low) else None
    if constant is None:
        return scale
    return np.where(constant, 0.0, scale)


def _far_from_zero(X, mean, spread):
    """The features for which the loss centers X's row blocks itself (see
    ``center_rows`` in :func:`sk_softmax._loss._loss_and_gradient`), or None.

    For X (dense or sparse in memory, a dask array of numpy chunks, or on a
    device) with a feature whose mean is more than ``ratio`` times its
    spread, the implicit centering would cost its products about ``ratio *
    2**-24`` of their precision in float32 (timestamps, a column of 1000 +-
    0.1), ``ratio * 2**-53`` in float64 (X + 1e14: the default fit ran to
    max_iter with the gradient above ``tol``; X + 1e11, L-BFGS stopped short
    of it).  Beyond
    ``_OFFSET_RATIO``, a pass over each block (a copy for slices of X;
    mini-batches are copies already) keeps it.  Sparse float32 X (a column
    at 1e5 +- 3) made full-batch sgd's loss wobble by 5e-5, to max_iter.
    ``spread`` is None, or 0 for the features that do not count.
    """
    # (A dask array's chunks are such blocks, one objective each.)
    if spread is None:
        return None
    ratio = _OFFSET_RATIO.get(np.dtype(_host_dtype(X)))
    if ratio is None:
        return None
    spread = np.asarray(spread, dtype=np.float64)
    far = np.flatnonzero((spread > 0) & (np.abs(mean) > ratio * spread))
    return far if far.size else None


def _in_memory_loss(
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
    """``loss(coef, intercept, y, weights, batch) -> (loss, grad_coef, grad_b)``.

    The data term and its gradient for X in memory: the numpy core, which
    gathers a batch's rows of X itself, block by block.  ``y`` and
    ``weights`` are the batch's own (all of them for ``batch=None``);
    ``y_index`` and ``weights`` here are those of all samples (unused: the
    objective selects them).  ``center_rows``: the features far from 0, for
    which the core centers each row block itself (see
    :func:`_far_from_zero`), or None.
    """
    if center_rows is not None and sp.issparse(X) and X.format != "csr":
        # Centered blocks of CSC X would each be the whole of it, converted
        # to CSR at every evaluation: converted once, in blocks of rows.
        X = X.tocsr()

    def loss(coef, intercept, y, weights, batch, out=None):
        return _loss_and_gradient(
            coef,
            intercept,
            X,
            y,
            weights,
            alpha,
            label_smoothing,
            offset,
            n_threads,
            rows=batch,
            center_rows=center_rows,
            out=out,
        )

    return loss


def _logits(X, coef, intercept, shift):
    """``X W^T + b`` in X's dtype, rows that overflow recomputed scaled.

    See :meth:`SoftmaxRegression._raw_prediction`.  Two classes, where the
    caller allows a shift, give ``[0, z_1 - z_0]``: one matrix-vector
    product (see :func:`~sk_softmax._loss._binary_forward`), and exact
    where ``z_1`` and ``z_0`` are large; rows whose difference overflows
    come from both logits.
    """
    binary = None
    if shift and coef.shape[0] == 2:
        binary = _binary_difference(coef, intercept)
    if binary is None:
        return _both_logits(X, coef, intercept, shift)
    with np.errstate(over="ignore", invalid="ignore"):
        raw = np.ascontiguousarray(_binary_forward(X, *binary).T)
    rows = np.flatnonzero(~np.isfinite(raw[:, 1]))
    if rows.size:
        raw[rows] = _both_logits(X[rows], coef, intercept, shift)
    return raw


def _both_logits(X, coef, intercept, shift):
    """:func:`_logits` from every class's row of W."""
    with np.errstate(over="ignore", invalid="ignore"):
        raw = np.asarray(X @ coef.T)
        raw += intercept
        if np.isfinite(raw.sum()):
            return raw
        rows = np.flatnonzero(~np.isfinite(raw).all(axis=1))
        if rows.size:
            raw[rows] = _from_scaled(*_scaled_logits(X[rows], coef, intercept), shift)
    return raw


def _own_copy(X):
    """A copy of X in its own format, namespace and device (a dask array,
    which cannot change, as it is)."""
    if sp.issparse(X):
        return X.copy()
    if is_dask_array(X):
        return X
    namespace = array_namespace(X)
    if namespace is None:
        return np.array(X, copy=True)
    xp, device = namespace
    return xp.asarray(X, copy=True, device=device)


def _stack_rows(top, bottom):
    """The rows of ``top`` then ``bottom``, where ``bottom`` lives.

    CSR when either is sparse (on the CPU); otherwise in ``bottom``'s
    namespace, on its device, in its dtype there (held rows of an earlier
    call may come from elsewhere).
    """
    if sp.issparse(top) or sp.issparse(bottom):
        top, bottom = (v if sp.issparse(v) else host_array(v) for v in (top, bottom))
        return sp.vstack([top, bottom], format="csr")
    namespace = array_namespace(bottom)
    if namespace is None:
        return np.concatenate([host_array(top), bottom])
    xp, device = namespace
    top = xp.asarray(host_array(top), dtype=bottom.dtype, device=device)
    return xp.concat([top, bottom])


def _far_rows(X, mean, scale):
    """Whether each row of X lies beyond ``_FAR_ROW`` times ``scale`` from
    ``mean`` in some feature (sparse X: in a stored entry).

    Examples
    --------
    >>> import numpy as np
    >>> from sk_softmax._softmax import _far_rows
    >>> X = np.array([[0.5, 1.0], [60.0, 1.0], [0.0, 400.0]])
    >>> _far_rows(X, np.zeros(2), np.array([1.0, 32.0]))
    array([False,  True, False])
    """
    limit = _FAR_ROW * np.asarray(scale, dtype=np.float64)
    if sp.issparse(X):
        X = sp.csr_matrix(X)
        columns = X.indices
        beyond = np.abs(X.data - mean[columns]) > limit[columns]
        rows = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
        return np.bincount(rows[beyond], minlength=X.shape[0]) > 0
    far = np.empty(X.shape[0], dtype=bool)
    step = max(1, (1 << 20) // max(X.shape[1], 1))
    for start in range(0, X.shape[0], step):
        block = np.abs(X[start : start + step] - mean) > limit
        far[start : start + step] = block.any(axis=1)
    return far


def _clipped_to_kept_range(X, mean, scale):
    """A copy of X with each value brought within ``_FAR_ROW`` times
    ``scale`` of ``mean`` (sparse X: its stored entries).

    Examples
    --------
    >>> import numpy as np
    >>> from sk_softmax._softmax import _clipped_to_kept_range
    >>> _clipped_to_kept_range(np.array([[1000.0, -3.0]]), np.zeros(2), np.ones(2))
    array([[16., -3.]])
    """
    limit = _FAR_ROW * np.asarray(scale, dtype=np.float64)
    low, high = np.asarray(mean - limit), np.asarray(mean + limit)
    if sp.issparse(X):
        X = sp.csr_matrix(X, copy=True)
        columns = X.indices
        np.clip(X.data, low[columns], high[columns], out=X.data)
        return X
    return np.clip(X, low.astype(X.dtype), high.astype(X.dtype))


def _trimmed_row_loss(X, y_index, weights, coef, intercept, label_smoothing, far=None):
    """The weighted mean (smoothed) log loss of the rows of X but the worst.

    For ``partial_fit``'s divergence test: a model the steps ruined loses on
    many rows; a chunk with a few rows far out, on those alone.  The rows of
    largest loss are left out until their weight reaches ``_TRIMMED_SHARE``
    of the chunk's (one row at least), unless they hold all of it; with
    ``far`` (a boolean per row), only those of them that are far.
    """
    coef, intercept = coef.astype(X.dtype), intercept.astype(X.dtype)
    with np.errstate(over="ignore"):
        log_proba = log_softmax(_logits(X, coef, intercept, shift=True))
    losses = (
        -(1.0 - label_smoothing)
        * np.take_along_axis(log_proba, np.asarray(y_index)[:, None], axis=1)[:, 0]
    )
    if label_smoothing:
        losses -= label_smoothing * log_proba.mean(axis=1)
    order = np.argsort(losses)[::-1]
    weights = np.broadcast_to(np.asarray(weights, dtype=np.float64), losses.shape)
    weights = weights[order] / weights.sum()
    left_out = np.searchsorted(np.cumsum(weights), _TRIMMED_SHARE) + 1
    kept = np.ones(losses.shape, dtype=bool)
    kept[:left_out] = False
    if far is not None:
        kept[:left_out] = ~np.asarray(far)[order[:left_out]]
    if not weights[kept].sum() > 0:
        # One row holds all the weight (a chunk of one row, the others
        # weighing 0): nothing to leave out.  (Left out, the test could
        # never fire, and a model ruined by a step of 1e8 ran on.)
        return float(losses[order] @ weights)
    return float(losses[order[kept]] @ weights[kept] / weights[kept].sum())


def _shortened(learning_rate, factor, n_classes, feature_major):
    """A copy of the steps ``learning_rate`` (a scalar or one per parameter)
    with the coefficients' steps of each feature multiplied by ``factor``
    (n_features,) where it is not 1."""
    learning_rate = np.array(
        np.broadcast_to(learning_rate, (n_classes * (factor.size + 1),))
    )
    features = np.flatnonzero(factor != 1)
    coef_rate = _coef_view(learning_rate, n_classes, factor.size, feature_major)
    coef_rate[:, features] *= factor[features]
    return learning_rate


def _least_weight(weights):
    """The smallest positive weight (numpy or dask)."""
    return float(np.min(np.where(weights > 0, weights, np.inf)))


def _farthest_values(mean, value_range):
    """Each feature's value farthest from ``mean``: its least or largest."""
    low, high = value_range
    return np.where(high - mean >= mean - low, high, low)


def _farthest_row_weight(X, weights, mean, value_range, std):
    """The weight with which :func:`_without_farthest_row` takes a
    feature's farthest row out, one per feature: for dense X in memory,
    that row's own (the largest of the rows holding that value) where it
    lies beyond ``_OWN_WEIGHT_DEVIATIONS`` times the spread ``std`` from
    ``mean`` (any positive multiple of its units); the least weight of a
    row otherwise (closer rows change the spread little), and where the
    weights are equal.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_softmax._softmax import _farthest_row_weight
    >>> X = np.r_[np.tile([[-1.0, 1.0], [1.0, -1.0]], (50, 1)), [[60.0, 2.0]]]
    >>> w = np.r_[np.full(100, 0.5), 1.0]
    >>> w /= w.sum()
    >>> mean = w @ X
    >>> std = np.sqrt(w @ (X - mean) ** 2)
    >>> bounds = X.min(axis=0), X.max(axis=0)
    >>> (_farthest_row_weight(X, w, mean, bounds, std) * 51).round(6)
    array([1. , 0.5])
    """
    least = _least_weight(weights)
    if not isinstance(X, np.ndarray) or np.all(weights == weights[0]):
        return least
    far = _farthest_values(mean, value_range)
    weight = np.full(X.shape[1], least)
    with np.errstate(divide="ignore", invalid="ignore"):
        columns = np.flatnonzero(np.abs(far - mean) > _OWN_WEIGHT_DEVIATIONS * std)
    if columns.size:
        held = X[:, columns] == far[columns].astype(X.dtype)
        own = (held * weights[:, None]).max(axis=0)
        # (At least the least weight: where the value's rows all weigh 0.)
        weight[columns] = np.maximum(own, least)
    return weight


def _without_farthest_row(mean, std, value_range, weight, unit):
    """A chunk's mean and spread per feature without its farthest row.

    Parameters
    ----------
    mean : ndarray of shape (n_features,)
        The chunk's weighted mean (its weights sum to one).
    std : ndarray of shape (n_features,)
        Its spread about ``mean``, in units of ``unit``.
    value_range : tuple of two ndarrays of shape (n_features,)
        Each feature's least and largest value over the chunk's rows.
    weight : float or ndarray of shape (n_features,)
        The weight of each feature's farthest row (see
        :func:`_farthest_row_weight`), in (0, 1).
    unit : float
        The unit of ``std``.

    Returns
    -------
    mean, std : ndarrays of shape (n_features,)
        The weighted mean and spread (in units of ``unit``) of the other
        rows, the row farthest from ``mean`` taken out with ``weight``:
        exactly where that is its weight, and only in part where it weighs
        more (a spread too large, never too small).  Up to rounding: where
        that row holds nearly all of the spread (a deviation 1e8 times the
        others' and more), what is left is rounding error, anywhere from 0
        to far above the other rows' spread.

    Examples
    --------
    One row of 60 among values of +-1:

    >>> import numpy as np
    >>> from sk_softmax._softmax import _without_farthest_row
    >>> x = np.r_[np.tile([-1.0, 1.0], 50), 60.0]
    >>> mean, std = _without_farthest_row(
    ...     x.mean(keepdims=True), x.std(keepdims=True),
    ...     (x.min(keepdims=True), x.max(keepdims=True)), 1 / x.size, 1.0)
    >>> round(float(x.std()), 2), mean.round(12) + 0.0, std.round(12)
    (6.02, array([0.]), array([1.]))
    """
    rest = 1.0 - weight
    # In units of the spread (squares of data of 1e200 stay finite):
    # Var' = (Var - w d**2) / (1 - w) - (w d / (1 - w))**2.
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        far = _farthest_values(mean, value_range) - mean
        ratio = np.where(std > 0, (far / unit) / std, 0.0)
        share = (1.0 - weight * ratio**2) / rest - (weight * ratio / rest) ** 2
        kept_mean = mean - (weight / rest) * far
    return kept_mean, std * np.sqrt(np.maximum(share, 0.0))


# Magnitudes whose squares, and sums of two, stay normal and finite.
_SQUARE_SAFE = (2.0**-500, 2.0**500)


def _hypot(a, b):
    """``np.hypot(a, b)`` of two float64 vectors, a few times faster.

    As ``sqrt(a**2 + b**2)`` where that is exact to rounding (results within
    ``_SQUARE_SAFE``; beyond, the squares would overflow or lose their
    digits to underflow), by ``np.hypot`` elsewhere: ``np.hypot`` takes
    about 17 ns an element here, 4.5 ms for the 2**18 spreads of each
    ``partial_fit`` call on hashed features.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_softmax._softmax import _hypot
    >>> _hypot(np.array([3.0, 3e200, 3e-200, 0.0]), np.array([4.0, 4e200, 4e-200, 0.0]))
    array([5.e+000, 5.e+200, 5.e-200, 0.e+000])
    """
    with np.errstate(over="ignore", under="ignore"):
        out = np.multiply(a, a)
        out += np.square(b)
    np.sqrt(out, out=out)
    low, high = _SQUARE_SAFE
    if out.min(initial=high) >= low and out.max(initial=low) <= high:
        return out
    # Results outside the range (NaN too), but not those of a = b = 0, exact
    # either way and most of a sparse chunk's: masks, not a gather of all
    # those zeros.
    again = out < low
    again &= (a != 0) | (b != 0)
    again |= ~(out <= high)
    again = np.flatnonzero(again)
    if again.size:
        out[again] = np.hypot(a[again], b[again])
    return out


def _widened_scales(size, scale, ceiling=_FOLD_RANGE[1]):
    """``(scale, widened)``: scales grown to a chunk that spreads far wider.

    ``partial_fit`` keeps the first chunk's scales, and with them its steps,
    ``learning_rate / scale**2`` on a feature's coefficients.  A feature
    rare there (a word seen once in 100 documents: scale 1/8) or absent
    (scale 1) may later spread far wider (counts of 20 to 40): in its own
    units its steps are then far too long, and the loss climbed, silently,
    to 20 times its start.  A feature whose spread about the kept mean in
    this chunk is at least 4 times its scale gets that spread as its scale
    (to the nearest power of two); scales never shrink, so the kept steps
    only get shorter.  ``widened`` is ``old / new`` per feature (1 where
    unchanged), or None when no scale grew.  ``size``: each feature's
    spread about the kept mean in the chunk (sparse Adam's: its size where
    stored, see :func:`stored_magnitudes`).  No scale grows past
    ``ceiling``: the largest that steps take folded in (scales kept in the
    coordinates take ``inf``).
    """
    # Rounded to a power of two, a size below 2 * scale stays below 4 *
    # scale (it grows by sqrt(2) at most): only the others are rounded (the
    # logarithms of 2**18 features took 3 ms a partial_fit call).
    candidates = np.flatnonzero(size >= 2.0 * scale)
    with np.errstate(divide="ignore"):
        rounded = np.exp2(np.round(np.log2(size[candidates])))
    wider = rounded >= 4.0 * scale[candidates]
    if not wider.any():
        return scale, None
    grown = scale.copy()
    grown[candidates[wider]] = np.minimum(rounded[wider], ceiling)
    return grown, scale / grown


@functools.cache
def _parameter_names(cls):
    """``BaseEstimator._get_param_names`` of ``cls``, as a tuple."""
    return tuple(super(SoftmaxRegression, cls)._get_param_names())


def _centered_already(mean, low, high):
    """Whether L-BFGS takes dense X as given: every value of ordinary
    magnitude (within ``_LBFGS_PLAIN_RANGE``, where no common factor
    divides the features, see feature_scales), and each feature's mean
    within ``_CENTERED_SHARE`` of its range from 0 (the mean, low and high
    values of the rows of positive weight, per feature).

    Centering changes L-BFGS's iterates through each coefficient's coupling
    with the intercept, about ``mean / std`` of its feature: here at most
    ``_CENTERED_SHARE * range / std``, below 0.04 for features whose range
    spans 10 standard deviations.  A constant feature other than 0 is
    centered.
    """
    top = max(
        float(np.max(np.abs(low), initial=0.0)),
        float(np.max(np.abs(high), initial=0.0)),
    )
    if not _LBFGS_PLAIN_RANGE[0] <= top <= _LBFGS_PLAIN_RANGE[1]:
        return False
    return bool(np.all(np.abs(mean) <= _CENTERED_SHARE * (high - low)))


def _sparse_far_means(X, weights, mean, value_range):
    """L-BFGS's center for sparse X: ``(center, constant, value_range)``,
    or ``(None, None, value_range)`` where no feature lies far from 0.

    A sparse feature's mean is small next to its spread (about ``sqrt(p)``
    of it for a feature stored in a fraction ``p`` of the rows): left as
    given, L-BFGS follows LogisticRegression's iterates.  But a column
    stored in most rows, far from 0 (ages, years next to one-hot columns
    in a ColumnTransformer's sparse output), is a second intercept for it,
    which only the penalty tells apart from the first: with a column of
    years, L-BFGS ran to max_iter at 0.519 training accuracy where the
    same data dense converged in 118 iterations at 0.562.

    The center is the mean of the features whose mean exceeds their
    spread, 0 elsewhere.  ``constant`` marks those whose spread is their
    mean's rounding (see :func:`~sk_softmax._loss.constant_noise`; in
    float32, below ``2**-20`` of the mean, as for the first-order solvers,
    since the mean's weights are rounded to float32), whose coefficients
    L-BFGS then holds at 0 (see :func:`_hold_constant_features`).  The
    returned range is per feature: each row of weight ``w`` lies within
    ``std / sqrt(w)`` of the mean (its share of the variance), which
    bounds the centered values from which :func:`feature_scales` takes
    L-BFGS's common factor without the far features' offsets (with the
    global range, a column of 1e10 + N(0, 1) divided every feature by
    2**34, and L-BFGS stopped after 6 iterations at the majority class).
    ``weights`` sum to one.
    """
    low, high = value_range
    top = max(abs(float(np.min(low))), abs(float(np.max(high))))
    if not 0.0 < top < np.inf:
        return None, None, value_range
    # Only a feature stored in rows of more than half the weight can be
    # far: with ``p`` that share, ``mean**2 <= p E[x**2]`` (Cauchy-Schwarz),
    # so ``var >= mean**2 (1 - p) / p``.  Text and one-hot columns never
    # are, and cost one cheap pass instead of the spreads' (45 ms of the
    # benchmark's 2.6 s sparse fit).
    if not np.any(stored_share(X, weights) > 0.5):
        return None, None, value_range
    # (Spreads in the units of a power of two near the data's size, whose
    # squares stay finite.)
    unit = float(np.exp2(np.floor(np.log2(top))))
    std = weighted_std(X, weights, mean, unit=unit)
    size = np.abs(mean) / unit
    far = size > std
    if not np.any(far):
        return None, None, value_range
    constant = far & (std <= constant_noise(X) * size)
    reach = std * (unit / math.sqrt(float(np.min(weights[weights > 0]))))
    with np.errstate(over="ignore", invalid="ignore"):
        low = np.maximum(mean - reach, low)
        high = np.minimum(mean + reach, high)
    return np.where(far, mean, 0.0), constant, (low, high)


def _hold_constant_features(objective, params, constant, n_classes, feature_major):
    """The objective with the coefficients of constant features held at 0.

    In centered coordinates a feature constant over the rows of positive
    weight has no effect on the loss: the data term's gradient in its
    coefficients is 0, the optimum puts 0 there, and the intercept takes
    the feature's part.  Computed, that gradient is ``G^T x_j - (1^T G)
    mean_j``, a difference of two sums of size ``|mean_j|``: rounding noise
    far above ``tol`` in float32 (a column of 1e8 left L-BFGS at its
    starting point).  Those coefficients start at 0 (exact: the feature's
    centered values are 0) and their gradient is 0, so L-BFGS never moves
    them.  ``params`` (the starting point) is updated in place.
    """
    if not np.any(constant):
        return objective
    n_features = constant.shape[0]
    # Their positions in the flat parameters (a boolean mask of the view's
    # columns took 2 us an evaluation, a take of these 0.2).
    positions = np.arange(params.size)
    positions = _coef_view(positions, n_classes, n_features, feature_major)
    positions = positions[:, constant].ravel()
    params[positions] = 0.0

    def held(params, batch):
        loss, grad = objective(params, batch)
        grad[positions] = 0.0
        return loss, grad

    return held


def _gram_decision(
    X, weights, mean, scale, constant, alpha, *, sample, offsets=None, threshold
):
    """``(penalty, sample, sample_gram)`` of fit's choice of the Gram
    preconditioner (see gram_preconditioner).

    Decided on the curvature sample of at most 8192 rows (``sample``, in
    memory, or None to take it from X in memory): the condition number of
    the features' correlation there.  ``penalty`` (the penalty's curvature
    per coefficient) is None where the diagonal steps stay; ``sample_gram``
    is the sample's Gram matrix (or None), which the batch-size rule
    reuses.  ``threshold``: the condition number above which a factor is
    taken (see SoftmaxRegression._precondition_threshold).  ``offsets``
    (see _Offsets), for features not centered: the ridge's share.
    """
    with np.errstate(over="ignore"):
        penalty = alpha / scale / scale
    if not np.all(np.isfinite(penalty)):
        return None, None, None  # (scales of extreme data: diagonal steps)
    if offsets is not None and offsets.share < _LEAST_SPREAD_SHARE:
        return None, None, None  # (beyond float64's resolution: see below)
    if sample is None:
        sample = _curvature_sample(X, weights)
    sample_gram = weighted_gram(*sample, mean=mean, scale=scale)
    if not np.all(np.isfinite(sample_gram)):
        return None, None, None
    decided = gram_preconditioner(
        sample_gram,
        penalty,
        constant=constant,
        threshold=threshold,
        ridge_fraction=1.0 if offsets is None else offsets.share,
    )
    if decided is None:
        return None, sample, sample_gram
    return penalty, sample, sample_gram


# Without an intercept, the features' second moments about 0 are their
# spread plus their offset: where the spread is less than this share of
# them (a mean 1.5 times the spread), their one common direction makes the
# diagonal steps crawl along all the others, and the default solver takes
# the Gram preconditioner on any number of samples (see _Offsets).  With
# fit_intercept=False, iris, wine and breast cancer (5 folds) ran to
# max_iter in every fold but one or two; they now take 44 to 104 passes, at
# the test accuracy of the diagonal steps' stop or of LogisticRegression.
# (0.1 left iris and breast cancer out; X + 30 takes 19 passes, not 200.)
_SPREAD_SHARE = 0.3
# The relative fall of the loss below which float32 resolves no progress
# (see gradient_descent's loss_resolution).
_FLOAT32_LOSS_RESOLUTION = 2.0**-20
# Below this share, float64's Gram matrix about 0 holds the spread to
# fewer than 3 digits (a mean 3e6 spreads from 0): its factor failed or,
# on 3 features, came out and left the fit at chance accuracy.  Such fits
# keep the diagonal steps, and warn.
_LEAST_SPREAD_SHARE = 1e-13
# Where the squared offsets, in spreads and summed over the features, pass
# this (a mean 15 spreads from 0 in each of 5 features), and the share of
# spread is below _SPREAD_SHARE, the first-order solvers without that
# preconditioner converge slowly or stall: fit warns.  (The sum alone grows
# with the number of features, and with a column of ones of 1e-9 noise:
# it warned on TF-IDF documents, whose spread is 0.95 of their mean square.)
_FAR_OFFSETS = 1e3


class _Offsets:
    """How far from 0 the features lie against their spread, for a fit
    without intercept, measured on the curvature sample (rows in memory
    and their weights summing to one), constant features left out.

    ``share`` is the share of their summed second moments (in the solvers'
    coordinates ``x / scale``) that is spread; ``squared`` the sum over
    features of their squared mean in spreads, which the curvature's
    condition number grows with.
    """

    def __init__(self, sample, scale, constant):
        rows, weights = sample
        unit = float(np.max(scale, initial=1.0))
        mean = np.asarray(_mean_and_range(rows, weights)[0], dtype=np.float64)
        # (About the sample's own mean: a column of ones has no spread.)
        spread = weighted_std(rows, weights, mean, unit=unit) * unit
        spread[~(spread > constant_noise(rows) * np.abs(mean))] = 0.0
        kept = ~constant if constant is not None else slice(None)
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            mean, spread = (mean / scale)[kept], (spread / scale)[kept]
            variance = spread * spread
            total = float(np.sum(variance + mean * mean))
            self.share = float(np.sum(variance)) / total if total > 0 else 1.0
            positive = variance > 0
            self.squared = float(np.sum(mean[positive] ** 2 / variance[positive]))
        if not (math.isfinite(self.share) and math.isfinite(self.squared)):
            self.share, self.squared = 1.0, 0.0
        self.share = min(max(self.share, 1e-300), 1.0)
        self.far = self.share < _SPREAD_SHARE


# The whitening's curvature is measured on the curvature sample every this
# many steps, and its factor formed again at the current point where that
# curvature has moved by more than this factor since the factor was formed.
# Separable data (6,000 and 20,000 rows of 200 low-rank features) took 200
# passes, to max_iter, with a bound formed once; outlying rows, 140 to 160
# where 20 to 65 do.  Each new factor costs a pass of n_features**2 a row,
# and it takes more passes where the curvature keeps moving afterwards
# (noisy labels): a factor of 4 took 10 classes of quadratic features at
# the default tol from 71 passes (formed once) to 92, where 6 keeps 71
# (measured before softmax_curvature's slack).
_RECONDITION_EVERY = 5
_CURVATURE_MOVED = 6.0
# The factor formed again keeps at least this fraction of the global bound
# in every direction, its steps at most 100 times as long.  It bounds the
# curvature where it was formed, not along the steps: rows that lose their
# confidence curve the loss more (warm-started fits on noisier labels
# diverged without a floor).  And where the loss goes to exactly 0
# (separable data, no penalty) the curvature does too: factors shrinking
# without end took steps 1e19 times the first one on rounding noise, until
# the loss overflowed.  A floor of 1e-3 took 1.4 to 2.3 times the passes
# on data of one or a few rows of a class (70 and 86 against 49 and 37),
# 0.85 to 0.9 times on separable and outlying rows.
_CURVATURE_FLOOR = 1e-2
# The curvature is measured on at most this many rows of the sample, the
# _MEASURED_TOP of largest norms among them (see _Whitening).  On all the
# 8192 rows, the measure took 10 to 17% of fits that never formed the
# factor again (one product with the sample every 5 steps).
_MEASURED_ROWS = 2048
_MEASURED_TOP = 64


class _Whitening:
    """The coordinates ``V = W L`` of the factor of the curvature bound
    ``P = L L^T`` at the current point (see gram_preconditioner).

    A gradient step of 1 on ``V`` is the step ``grad_W P^{-1}`` on the
    coefficients: their gradient is ``grad_V = grad_W L^{-T}``, and ``W = V
    L^{-1}``.  The intercept keeps its coordinate.  The first factor is the
    global bound, the Gram matrix ``G`` over 2 (every row's curvature at
    most 1/2, wherever the steps go).  It overestimates the curvature of the
    rows that grow confident: the data's directions end up flat in these
    coordinates, and the penalty's curvature ``alpha P^{-1}`` as badly
    conditioned as the features (separable data), or the direction of one
    confident outlying row keeps steps too short for the other rows.  So
    :meth:`recondition` measures the curvature of the sample every
    ``_RECONDITION_EVERY`` steps, and where it has moved by more than
    ``_CURVATURE_MOVED`` since the factor was formed, forms it again at the
    current point (one pass over X): the Gram matrix of the rows weighted
    by their curvature (see softmax_curvature, with their labels), plus
    ``_CURVATURE_FLOOR`` times ``G / 2``.

    Parameters
    ----------
    gram_of : callable
        ``gram_of(coef=coef_t, intercept=intercept)``: the Gram matrix of
        all rows, each weighted by its curvature (see weighted_gram),
        computed where X lives; with ``coef=None`` the plain one.
    sample : tuple
        The curvature sample: rows in memory, weights summing to one, and
        labels.
    sample_gram : ndarray of shape (n_features, n_features)
        The sample's plain Gram matrix, which gives the first factor where
        the sample is all the rows (``all_rows``).
    ridge_fraction : float, default=1.0
        See gram_preconditioner (features far from 0 without intercept).
    """

    def __init__(
        self,
        gram_of,
        sample,
        sample_gram,
        *,
        mean,
        scale,
        penalty,
        constant,
        n_classes,
        feature_major,
        all_rows,
        ridge_fraction=1.0,
    ):
        self._gram_of = gram_of
        self._ridge_fraction = ridge_fraction
        rows, weights, labels = sample
        positive = weights > 0
        if not np.all(positive):
            # (Rows of zero weight may lie far out, their norms infinite.)
            rows, weights, labels = rows[positive], weights[positive], labels[positive]
        # (Fixed: the rows' weighted squared norms, which weigh their
        # curvature.)
        norms = weights * _centered_row_norms_sq(rows, mean, scale)
        if norms.size > _MEASURED_ROWS:
            # The trace is measured on the rows of largest norms (an outlying
            # row can carry most of it) and evenly spaced others, which stand
            # for the rows between them: a product with at most
            # _MEASURED_ROWS rows every few steps.
            top = np.argpartition(norms, -_MEASURED_TOP)[-_MEASURED_TOP:]
            others = np.ones(norms.size, dtype=bool)
            others[top] = False
            others = np.flatnonzero(others)
            step = -(-others.size // (_MEASURED_ROWS - _MEASURED_TOP))
            others = others[::step]
            kept = np.concatenate([top, others])
            rows, labels = rows[kept], labels[kept]
            norms = norms[kept] * np.repeat([1.0, step], [top.size, others.size])
        self._sample = rows, labels
        self._sample_norms = norms
        self._floor_trace = 0.5 * _CURVATURE_FLOOR * float(np.sum(norms))
        self._sample_gram = sample_gram if all_rows else None
        self._mean, self._scale = mean, scale
        self._penalty, self._constant = penalty, constant
        self._n_classes, self._n_features = n_classes, mean.size
        self._feature_major = feature_major
        self.factor = None
        self.n_formed = 0
        self._floor = None
        self._steps = 0
        self._trace = None

    def _coef_t(self, flat):  # (n_features, n_classes)
        return _coef_view(
            flat, self._n_classes, self._n_features, self._feature_major
        ).T

    def _measure(self, plain):
        """The trace of the sample's matrix that a factor formed at
        ``plain`` would bound: its rows' curvature, weighted by their
        squared norms (one product), plus the floor's."""
        X, labels = self._sample
        coef, intercept = _original_parameters(
            plain, self._n_classes, self._scale, self._mean, self._feature_major
        )
        logits = np.asarray(X @ coef.T.astype(X.dtype, copy=False)) + intercept
        curvature = softmax_curvature(logits, labels)
        return float(curvature @ self._sample_norms) + self._floor_trace

    def _set_factor(self, gram, trace):
        """The factor of ``gram`` (of the sample's curvature ``trace``);
        False where it cannot be formed (the current one stays)."""
        if not np.all(np.isfinite(gram)):
            return False
        factor = gram_preconditioner(
            gram,
            self._penalty,
            constant=self._constant,
            threshold=0,
            ridge_fraction=self._ridge_fraction,
        )
        if factor is None:
            return False
        self.factor, self._trace = factor, trace
        self.n_formed += 1
        return True

    def start(self, params):
        """Form the first factor, converting ``params`` in place.

        Returns False (``params`` unchanged) where no factor can be formed.
        """
        gram = self._sample_gram
        if gram is None:
            gram = self._gram_of(coef=None, intercept=None)
        bound = 0.5 * gram
        if not self._set_factor(bound, float(np.sum(self._sample_norms)) / 2):
            return False
        self._floor = _CURVATURE_FLOOR * bound
        self._coef_t(params)[...] = self.factor.T @ self._coef_t(params)
        return True

    def to_plain(self, flat, factor=None):
        """The plain parameters of whitened ``flat`` (of ``factor``'s
        coordinates, the current ones by default)."""
        plain = flat.copy()
        self._coef_t(plain)[...] = _solve_lower(
            self.factor if factor is None else factor,
            self._coef_t(flat),
            transpose=True,
        )
        return plain

    def plain_gradient(self, grad):
        plain = grad.copy()
        self._coef_t(plain)[...] = self.factor @ self._coef_t(grad)
        return plain

    def wrap(self, objective):
        """The objective of the whitened parameters."""

        def whitened(flat, batch):
            loss, grad = objective(self.to_plain(flat), batch)
            self._coef_t(grad)[...] = _solve_lower(self.factor, self._coef_t(grad))
            return loss, grad

        return whitened

    def recondition(self, params):
        """Form the factor again where the curvature has moved (see the
        class docstring); then the map from the old coordinates to the new
        (see gradient_descent), otherwise None."""
        self._steps += 1
        if self._steps % _RECONDITION_EVERY:
            return None
        old = self.factor
        plain = self.to_plain(params)
        trace = self._measure(plain)
        moved = max(trace, 1e-300) / max(self._trace, 1e-300)
        if 1.0 / _CURVATURE_MOVED <= moved <= _CURVATURE_MOVED:
            return None
        if not math.isfinite(trace):
            return None
        coef_t = np.asarray(self._coef_t(plain), dtype=np.float64)
        gram = self._gram_of(coef=coef_t, intercept=plain[coef_t.size :])
        gram += self._floor
        if not self._set_factor(gram, trace):
            return None
        return functools.partial(self._convert, old)

    def _convert(self, old, flat):
        """Whitened ``flat`` of the factor ``old`` in the current coordinates."""
        converted = self.to_plain(flat, old)
        self._coef_t(converted)[...] = self.factor.T @ self._coef_t(converted)
        return converted


class _LogitDifference:
    """L-BFGS on two classes in the parameters of their logits' difference.

    With two classes the loss depends on ``z_1 - z_0 = (w_1 - w_0) x + b_1
    - b_0`` only, and for a given difference the penalty ``alpha / 2
    (|w_0|^2 + |w_1|^2)`` is least at ``w_0 = -w_1``: the optimum is
    ``W = [-w / 2, w / 2]``, ``b = [-c / 2, c / 2]``, for the ``(w, c)``
    that minimizes the loss plus ``alpha / 4 |w|^2``.  L-BFGS runs on
    ``(w, c)``: half the variables (L-BFGS-B's own work and memory grow
    with them), and the parameters of ``LogisticRegression``'s binomial
    loss, whose iterates it then follows in the same coordinates.  (On
    10,000 rows of hashed text, ``2**18`` features, scipy's L-BFGS-B took 58
    iterations to ``tol=1e-4`` on the two classes' parameters and 20 on the
    difference, as ``LogisticRegression``: its first step is of unit length,
    and its path depends on the scale of its variables.)
    The gradient of ``(w, c)`` is half the difference of the classes'
    gradients, the class 1 gradient at ``w_0 = -w_1``: ``tol`` means what
    it means for the two classes' parameters.

    The flat parameters hold the coefficients (in the layout of
    ``feature_major``, see :func:`_coef_view`), then one intercept per
    class; ``(w, c)`` are flat too, ``w`` then ``c``.
    """

    def __init__(self, n_features, feature_major):
        self._n_features = n_features
        self._feature_major = feature_major

    def _parts(self, flat):  # (the (2, n_features) coefficients, intercepts)
        coef = _coef_view(flat, 2, self._n_features, self._feature_major)
        return coef, flat[2 * self._n_features :]

    def half(self, flat):
        """``(w_1 - w_0, b_1 - b_0)``: the ``(w, c)`` of the two classes'
        parameters (of their gradients, twice the gradient of ``(w, c)``,
        see :meth:`wrap`)."""
        coef, intercept = self._parts(flat)
        out = np.empty(self._n_features + 1, dtype=flat.dtype)
        np.subtract(coef[1], coef[0], out=out[:-1])
        out[-1] = intercept[1] - intercept[0]
        return out

    def second(self, flat):
        """Class 1's coefficients and intercept, flat (factors of the
        gradient that are the same for both classes)."""
        coef, intercept = self._parts(flat)
        return np.append(coef[1], intercept[1])

    def full(self, half):
        """The two classes' parameters of ``(w, c)``."""
        flat = np.empty(2 * self._n_features + 2, dtype=half.dtype)
        coef, intercept = self._parts(flat)
        np.multiply(half[:-1], 0.5, out=coef[1])
        np.multiply(half[:-1], -0.5, out=coef[0])
        intercept[1], intercept[0] = 0.5 * half[-1], -0.5 * half[-1]
        return flat

    def wrap(self, objective):
        """The objective of ``(w, c)``."""

        def difference(half, batch):
            loss, grad = objective(self.full(half), batch)
            grad = self.half(grad)
            grad *= 0.5
            return loss, grad

        return difference


def _whitened_gradient(grad):
    """The gradient the whitened steps take, as it is (see _Whitening)."""
    return grad


def _gram_of(X, weights, y_index, mean, scale, n_threads):
    """``gram_of(coef=, intercept=)`` for _Whitening: weighted_gram where X
    lives, the rows weighted by their curvature (and labels) at ``coef``,
    plain where ``coef`` is None."""
    if is_dask_array(X):
        weighted = _dask.weighted_gram
    elif array_namespace(X) is not None:
        weighted = _array_api.weighted_gram
    else:
        weighted = functools.partial(weighted_gram, n_threads=n_threads)
    return functools.partial(weighted, X, weights, mean=mean, scale=scale, y=y_index)


def _plain_call(function, to_plain, flat):
    """``function(to_plain(flat))``."""
    return function(to_plain(flat))


def _coef_view(params, n_classes, n_features, feature_major=False):
    """The (n_classes, n_features) coefficients in the solvers' flat parameters.

    The flat vector holds the coefficients, then the intercept.  Class-major
    (the default) stores ``W`` row by row: the view is C-ordered, the layout
    of the gradient that data elsewhere (dask, a device) give back.
    Feature-major stores ``W^T`` row by row: the view is ``W``,
    Fortran-ordered, and its transpose is the C-ordered ``W^T`` that the
    forward product of X in memory takes and its backward product gives
    (``X^T G``), so neither copies a transposed ``W`` (two passes over
    n_classes x n_features a mini-batch).
    """
    coef = params[: n_classes * n_features]
    if feature_major:
        return coef.reshape(n_features, n_classes).T
    return coef.reshape(n_classes, n_features)


# Features per block where coefficients change memory order (W to W^T):
# the block's source stays in cache while its transpose is written.  numpy
# alone reads the whole strided source once for each class: on 20 x 2**18
# coefficients, 1.4 to 2 times slower than by blocks.
_TRANSPOSE_FEATURES = 2048


def _scaled_copy(out, coef, scale, operation):
    """``out[...] = operation(coef, scale)`` by blocks of features.

    ``out`` and ``coef`` are (n_classes, n_features), in either memory
    order; ``scale`` (n_features,) or None (a plain copy).
    """
    for start in range(0, coef.shape[1], _TRANSPOSE_FEATURES):
        block = slice(start, start + _TRANSPOSE_FEATURES)
        if scale is None:
            np.copyto(out[:, block], coef[:, block], casting="same_kind")
        else:
            operation(coef[:, block], scale[block], out=out[:, block])


def _unit(scale):
    """None where every scale is 1 (copies need no arithmetic), else ``scale``."""
    return None if np.all(scale == 1) else scale


def _original_parameters(
    params, n_classes, scale, mean, feature_major=False, *, copy=True
):
    """``(coef, intercept)`` of the model from the solver's flat parameters.

    The solvers work on ``[W diag(scale), b']`` with ``b' = b + W mean``
    (``mean`` is zeros without intercept, where ``b'`` stays 0), in the
    layout ``feature_major`` names (see :func:`_coef_view`).  ``coef`` is a
    new array in the layout's order: feature-major gives ``W`` Fortran-ordered,
    so that ``coef_`` and the solver's ``W^T`` copy into each other without
    a transposition (on 20 x 2**18 coefficients, 8 ms where a transposing
    copy took 19 at each ``partial_fit`` call), and ``coef_.T`` is the
    C-ordered matrix that a sparse X's product takes.  Without ``copy``,
    where every scale is 1, ``coef`` is the view of ``params`` itself
    (which the caller then hands over).
    """
    view = _coef_view(params, n_classes, scale.size, feature_major)
    unit = _unit(scale)
    if not copy and unit is None:
        coef = view
    else:
        coef = np.empty_like(view)
        _scaled_copy(coef, view, unit, np.divide)
    return coef, params[coef.size :] - _times_mean(coef, mean)


def _center_over_classes(coef, intercept):
    """Subtract from ``coef`` (n_classes, n_features) and ``intercept``
    (n_classes,), in place, their means over the classes.

    Adding one vector to every class's row of ``W`` (one number to every
    entry of ``b``) leaves the probabilities as they are; the penalty is
    least where the rows sum to 0, as they do at the optimum, and as the
    gradient steps of ``"sgd"`` keep them from a zero start (the loss's
    gradient sums to 0 over the classes).  Adam's per-coordinate steps do
    not: on standardized wine, rows of ``decision_function`` summed to up
    to 3.8, and the objective fell from 0.13998 to 0.13849 once centered.

    The mean is a matrix-vector product and its subtraction a rank-one
    update (see :func:`~sk_softmax._loss._subtract_outer`): on the solvers'
    feature-major coefficients numpy's mean over the classes and its
    broadcast subtraction run loops of ``n_classes`` entries (2 x 2**18:
    4.6 ms against 0.2).
    """
    n_classes = coef.shape[0]
    mean = coef.T @ np.full(n_classes, 1.0 / n_classes, dtype=coef.dtype)
    _subtract_outer(coef, np.ones(n_classes, dtype=coef.dtype), mean)
    intercept -= intercept.mean()


def _times_mean(coef, mean):
    """``coef @ mean``, or 0.0 without a pass over ``coef`` where ``mean`` is
    all zeros (no intercept, or X not centered, as sparse X for L-BFGS)."""
    return coef @ mean if mean.any() else 0.0


def _validation_scorer(
    X_val, y_val, w_val, *, n_classes, scale, mean, feature_major, far=None
):
    """``validation(params) -> (loss, accuracy)`` on the held-out samples.

    The loss is the weighted cross-entropy without smoothing or penalty.
    ``far``: the features far from 0 (see :func:`_far_from_zero`), whose
    held-out columns (the fit's own copy, in memory) are centered once, as
    the loss centers them: in X's units, float32 logits of three columns at
    5.5e4 rounded by about 0.01, and the best epoch came out 8 instead of
    15, at a log-loss of 0.626 instead of 0.503.
    """
    weight_sum = float(w_val.sum())
    if weight_sum <= 0:
        raise ValueError(
            "The validation sample weights are all zero; use a different "
            "random_state or validation_fraction."
        )
    if far is not None and (sp.issparse(X_val) or isinstance(X_val, np.ndarray)):
        # (In place: the held-out rows are the fit's own copy, taken by
        # index.  Rows of zero weight, whose deviations may overflow, at 0
        # there.)
        if sp.issparse(X_val):
            X_val = _SparseCenter(far, mean, mean.size).block(X_val, w_val)
        else:
            deviations = X_val[:, far] - mean[far]
            deviations[w_val == 0] = 0.0
            X_val[:, far] = deviations
        # The intercept that goes with them: b' less the others' offsets.
        mean = mean.copy()
        mean[far] = 0.0
    raw_weights, w_val = w_val, w_val / weight_sum
    rows = np.arange(y_val.size)

    def validation(params):
        coef, intercept = _original_parameters(
            params, n_classes, scale, mean, feature_major
        )
        log_proba = log_softmax(np.asarray(X_val @ coef.T) + intercept)
        loss = -float(log_proba[rows, y_val] @ w_val)
        # The weight of the correct rows over the total, divided last: all
        # correct is exactly 1 (normalized weights summed to 1 +- 2e-16).
        correct = log_proba.argmax(axis=1) == y_val
        score = min(float(raw_weights[correct].sum()) / weight_sum, 1.0)
        return loss, score

    return validation
