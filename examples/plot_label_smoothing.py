"""
Label smoothing and calibration on digits
=========================================

A classifier is *calibrated* when its confidence can be taken at face value:
among the predictions made with 80% confidence, about 80% are right. Models
that are barely regularized and fitted on few samples tend to be
*overconfident*: they reach near-certainty on the training set and carry that
certainty over to test samples they get wrong.

Label smoothing (``label_smoothing=eps``) trains on the target
:math:`(1 - \\varepsilon)\\,\\text{one-hot} + \\varepsilon/K`, so a sample's
loss is lowest at a confidence of :math:`1 - \\varepsilon + \\varepsilon/K`
rather than 1. This example fits the same model on 300 handwritten digits
with three amounts of smoothing and compares the predicted confidences with
the observed accuracy on the remaining 1497 digits.
"""

# %%
# Three models, one split
# -----------------------
# A very weak penalty (``alpha=1e-6``) leaves the unsmoothed model free to
# become overconfident.

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.metrics import accuracy_score, log_loss
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sk_softmax import SoftmaxRegression

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(
    X, y, train_size=300, stratify=y, random_state=0
)

smoothings = [0.0, 0.05, 0.2]
probas = {}
for eps in smoothings:
    model = make_pipeline(
        StandardScaler(),
        SoftmaxRegression(
            alpha=1e-6, label_smoothing=eps, solver="lbfgs", max_iter=500
        ),
    )
    # Without smoothing the training set is almost separable, and the tiny
    # penalty lets the weights grow large: that is the overconfidence this
    # example shows.  (L-BFGS still reaches its tol, without a warning.)
    model.fit(X_train, y_train)
    probas[eps] = model.predict_proba(X_test)


def expected_calibration_error(proba, y_true, n_bins=10):
    """Gap between confidence and accuracy, averaged over confidence bins."""
    confidence = proba.max(axis=1)
    correct = proba.argmax(axis=1) == y_true
    bins = np.minimum((confidence * n_bins).astype(int), n_bins - 1)
    gap = 0.0
    for k in range(n_bins):
        in_bin = bins == k
        if in_bin.any():
            gap += in_bin.mean() * abs(
                correct[in_bin].mean() - confidence[in_bin].mean()
            )
    return gap


print(f"{'eps':>5} {'accuracy':>9} {'mean conf.':>11} {'log loss':>9} {'ECE':>7}")
for eps, proba in probas.items():
    print(
        f"{eps:>5.2f} {accuracy_score(y_test, proba.argmax(axis=1)):>9.3f} "
        f"{proba.max(axis=1).mean():>11.3f} {log_loss(y_test, proba):>9.3f} "
        f"{expected_calibration_error(proba, y_test):>7.3f}"
    )

# %%
# Confidence histograms
# ---------------------
# The confidence of a prediction is its largest class probability. Without
# smoothing almost every test digit gets a confidence near 1, although about
# 8 percent of them are misclassified. With smoothing the confidences move down,
# and the mistakes (red) separate from the correct predictions: low
# confidence now flags a likely error.
fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), sharey=True)
bins = np.linspace(0, 1, 26)
for ax, (eps, proba) in zip(axes, probas.items(), strict=True):
    confidence = proba.max(axis=1)
    correct = proba.argmax(axis=1) == y_test
    ax.hist(
        [confidence[correct], confidence[~correct]],
        bins=bins,
        stacked=True,
        color=["tab:blue", "tab:red"],
        label=["correct", "wrong"],
    )
    ax.axvline(
        1 - eps + eps / 10,
        color="k",
        linestyle="--",
        linewidth=1,
        label="1 - eps + eps/K",
    )
    ax.set(title=f"label_smoothing={eps}", xlabel="confidence")
axes[0].set_ylabel("test samples")
axes[0].legend(loc="upper left")
fig.tight_layout()

# %%
# Reliability diagram
# -------------------
# Each point groups the test predictions by confidence (ten bins, those with
# at least 20 predictions) and plots the accuracy inside the bin against the
# mean confidence. A calibrated model lies on the diagonal; below it is
# overconfidence, above it underconfidence.
fig, ax = plt.subplots(figsize=(5.5, 5.5))
ax.plot([0, 1], [0, 1], color="k", linewidth=0.8, label="perfect calibration")
for eps, proba in probas.items():
    confidence = proba.max(axis=1)
    correct = proba.argmax(axis=1) == y_test
    index = np.minimum((confidence * 10).astype(int), 9)
    filled = [k for k in range(10) if np.sum(index == k) >= 20]
    mean_confidence = [confidence[index == k].mean() for k in filled]
    accuracy = [correct[index == k].mean() for k in filled]
    ax.plot(mean_confidence, accuracy, marker="o", label=f"label_smoothing={eps}")
ax.set(
    xlabel="mean confidence in bin",
    ylabel="accuracy in bin",
    xlim=(0, 1.02),
    ylim=(0, 1.02),
    title="Reliability diagram (test set)",
)
ax.legend(loc="lower right")
fig.tight_layout()

# %%
# What to take away
# -----------------
# Smoothing trades overconfidence for underconfidence: a little
# (``eps=0.05``) lowers the log loss of this overfitted model, while
# ``eps=0.2`` overshoots and every prediction claims less than it delivers.
# The right amount depends on how overconfident the unsmoothed model is, and
# therefore on ``alpha``: tune both together, with the log loss as the
# criterion (see :ref:`sphx_glr_auto_examples_plot_grid_search_heatmap.py`).
plt.show()
