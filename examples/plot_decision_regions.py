"""
Decision regions on three Gaussian classes
==========================================

The smallest problem that shows what a softmax classifier does: three classes
in the plane, each drawn from a unit Gaussian, centred at (-2, -2), (2, 2) and
(-2, 2). This is the toy problem of ``python -m sk_softmax demo``.

A linear model scores each class with :math:`z_k = w_k^\\top x + b_k` and the
softmax turns the three scores into probabilities. The predicted class is the
largest score, so the boundary between two classes is where their scores are
equal, a straight line: the decision regions of a softmax classifier are
convex polygons.
"""

# %%
# The data
# --------
import matplotlib.pyplot as plt
import numpy as np

from sk_softmax import SoftmaxRegression

rng = np.random.RandomState(0)
centers = np.array([[-2.0, -2.0], [2.0, 2.0], [-2.0, 2.0]])
X = np.vstack([rng.normal(center, 1.0, size=(200, 2)) for center in centers])
y = np.repeat(np.arange(3), 200)

clf = SoftmaxRegression(alpha=1e-3, random_state=0).fit(X, y)
print(f"training accuracy: {clf.score(X, y):.3f} after {clf.n_iter_} epochs")
print("W =\n", clf.coef_.round(2))
print("b =", clf.intercept_.round(2))

# %%
# Decision regions and probability contours
# -----------------------------------------
# The background colour is the predicted class; the lines are the contours of
# the largest predicted probability. Along a boundary the two classes tie, so
# the probability there is at most 1/2; it rises towards 1 away from the
# boundaries, fastest where the weight vectors differ most.
xx, yy = np.meshgrid(np.linspace(-6, 6, 300), np.linspace(-6, 6, 300))
grid = np.column_stack([xx.ravel(), yy.ravel()])
proba = clf.predict_proba(grid)
predicted = proba.argmax(axis=1).reshape(xx.shape)
confidence = proba.max(axis=1).reshape(xx.shape)

colors = ["tab:blue", "tab:orange", "tab:green"]
fig, ax = plt.subplots(figsize=(6.5, 6))
ax.contourf(xx, yy, predicted, levels=[-0.5, 0.5, 1.5, 2.5], colors=colors, alpha=0.18)
lines = ax.contour(
    xx, yy, confidence, levels=[0.5, 0.7, 0.9, 0.99], colors="k", linewidths=0.8
)
ax.clabel(lines, fmt="%.2f", fontsize=8)
for k, color in enumerate(colors):
    ax.scatter(*X[y == k].T, s=10, color=color, label=f"class {k}")
ax.set(xlabel="$x_1$", ylabel="$x_2$", title="Predicted class and confidence")
ax.legend(loc="lower right")
ax.set_aspect("equal")
fig.tight_layout()

# %%
# One probability surface per class
# ---------------------------------
# Each panel shows :math:`p_k(x)`, the probability of one class. The softmax
# shares probability between the classes: wherever one surface rises, the
# others fall, and the three add up to one everywhere.
fig, axes = plt.subplots(1, 3, figsize=(12, 3.8), sharey=True, layout="constrained")
for k, ax in enumerate(axes):
    image = ax.contourf(
        xx, yy, proba[:, k].reshape(xx.shape), levels=np.linspace(0, 1, 11)
    )
    ax.scatter(*X[y == k].T, s=4, color="w", alpha=0.6)
    ax.set(title=f"$p_{k}(x)$", xlabel="$x_1$")
    ax.set_aspect("equal")
axes[0].set_ylabel("$x_2$")
fig.colorbar(image, ax=axes)
print("probabilities sum to one:", np.allclose(proba.sum(axis=1), 1.0))

# %%
# Label smoothing softens the surfaces
# ------------------------------------
# With ``label_smoothing=0.2`` each sample's target keeps
# :math:`0.2 / 3` on the other two classes, so the model has no reason to
# push probabilities all the way to 1. The white boundaries shift a little;
# the bands of intermediate confidence around them widen several times over.
smooth = SoftmaxRegression(alpha=1e-3, label_smoothing=0.2, random_state=0)
smooth.fit(X, y)
fig, axes = plt.subplots(1, 2, figsize=(10, 4.4), sharey=True, layout="constrained")
for ax, model, title in [
    (axes[0], clf, "label_smoothing=0"),
    (axes[1], smooth, "label_smoothing=0.2"),
]:
    grid_proba = model.predict_proba(grid)
    conf = grid_proba.max(axis=1).reshape(xx.shape)
    image = ax.contourf(xx, yy, conf, levels=np.arange(0.3, 1.01, 0.1), cmap="viridis")
    # The boundary of class k's region: where p_k equals the best other class.
    for k in range(3):
        others = np.delete(grid_proba, k, axis=1).max(axis=1)
        margin = (grid_proba[:, k] - others).reshape(xx.shape)
        ax.contour(xx, yy, margin, levels=[0.0], colors="w", linewidths=1.5)
    ax.set(title=title, xlabel="$x_1$")
    ax.set_aspect("equal")
axes[0].set_ylabel("$x_2$")
fig.colorbar(image, ax=axes, label="largest probability")
plt.show()
