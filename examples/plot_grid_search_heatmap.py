"""
Tuning alpha and label smoothing together
=========================================

``alpha`` (the L2 strength) and ``label_smoothing`` both keep the model from
becoming overconfident, in different ways: the penalty shrinks the weights,
smoothing moves the target away from certainty. Their effects overlap, so they
are best tuned together. This example runs
:class:`~sklearn.model_selection.GridSearchCV` over both, on a pipeline with
:class:`~sklearn.preprocessing.StandardScaler`, and shows the cross-validated
log loss of every combination as a heatmap.
"""

# %%
# The search
# ----------
# The log loss (``scoring="neg_log_loss"``) judges the predicted probabilities
# against the true, unsmoothed labels, so it rewards calibration as well as
# accuracy. L-BFGS is the fastest solver for a small full-batch problem.
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sk_softmax import SoftmaxRegression

X, y = load_digits(return_X_y=True)
pipe = make_pipeline(StandardScaler(), SoftmaxRegression(solver="lbfgs", max_iter=300))
alphas = np.logspace(-5, -1, 5)
smoothings = np.array([0.0, 0.05, 0.1, 0.2])
search = GridSearchCV(
    pipe,
    {
        "softmaxregression__alpha": alphas,
        "softmaxregression__label_smoothing": smoothings,
    },
    scoring=["neg_log_loss", "accuracy"],
    refit="neg_log_loss",
    cv=StratifiedKFold(n_splits=3, shuffle=True, random_state=0),
)
search.fit(X, y)
best = search.best_params_
print(
    f"best: alpha={best['softmaxregression__alpha']:g}, "
    f"label_smoothing={best['softmaxregression__label_smoothing']:g}, "
    f"log loss {-search.best_score_:.4f}"
)

# %%
# The heatmap
# -----------
# ``cv_results_`` lists the combinations with ``alpha`` varying slowest, so
# the scores reshape directly into a (alpha, label_smoothing) grid.
log_loss = -search.cv_results_["mean_test_neg_log_loss"].reshape(
    alphas.size, smoothings.size
)
accuracy = search.cv_results_["mean_test_accuracy"].reshape(
    alphas.size, smoothings.size
)

fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
for ax, values, title, cmap, fmt in [
    (axes[0], log_loss, "validation log loss (lower is better)", "viridis_r", "{:.3f}"),
    (axes[1], accuracy, "validation accuracy (higher is better)", "viridis", "{:.3f}"),
]:
    image = ax.imshow(values, cmap=cmap, aspect="auto")
    for i in range(alphas.size):
        for j in range(smoothings.size):
            ax.text(
                j,
                i,
                fmt.format(values[i, j]),
                ha="center",
                va="center",
                color="w" if image.norm(values[i, j]) < 0.5 else "k",
                fontsize=9,
            )
    ax.set_xticks(range(smoothings.size), [f"{eps:g}" for eps in smoothings])
    ax.set_yticks(range(alphas.size), [f"{alpha:.0e}" for alpha in alphas])
    ax.set(xlabel="label_smoothing", ylabel="alpha", title=title)
    fig.colorbar(image, ax=ax)
best_index = np.unravel_index(np.argmin(log_loss), log_loss.shape)
axes[0].add_patch(
    plt.Rectangle(
        (best_index[1] - 0.5, best_index[0] - 0.5), 1, 1, fill=False, color="r", lw=2
    )
)
fig.tight_layout()

# %%
# Reading the heatmap
# -------------------
# ``alpha`` draws the familiar U along each column: too little penalty and the
# model is overconfident on the samples it gets wrong, too much and it is
# underconfident everywhere. On this problem, smoothing never lowers the log
# loss once ``alpha`` is tuned: the smoothed probabilities are biased towards
# uniform, and the log loss, measured against hard labels, charges for that
# bias. The accuracy is much flatter than the log loss, because both
# parameters act mostly on the confidence of the predictions, not on which
# class wins.
#
# Smoothing is worth its place in the grid all the same. Whether it helps
# depends on the data and on the other regularization in play (see
# :ref:`sphx_glr_auto_examples_plot_label_smoothing.py` for an overfitted
# model where it does); a search like this one settles the question for the
# data at hand.
plt.show()
