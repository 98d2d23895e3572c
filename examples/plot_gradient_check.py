"""
Checking the analytic gradient
==============================

:func:`sk_softmax.loss_and_gradient` returns the objective

.. math::

   J(W, b) = \\frac{1}{S}\\sum_i s_i\\, \\ell(W x_i + b,\\, t_i)
   + \\frac{\\alpha}{2}\\lVert W\\rVert_F^2

and its gradient :math:`(G^\\top X + \\alpha W,\\ \\mathbf{1}^\\top G)`, derived
in :doc:`/mathematics`. A derivation is only as good as its check: here the
gradient is compared with finite differences of the loss itself and, when
PyTorch is installed, with automatic differentiation.
"""

# %%
# A small random problem with every option switched on
# ----------------------------------------------------
# Sample weights, label smoothing and an L2 penalty all enter the gradient, so
# the check uses all three.
import matplotlib.pyplot as plt
import numpy as np

from sk_softmax import loss_and_gradient

rng = np.random.RandomState(0)
n_samples, n_features, n_classes = 60, 5, 4
X = rng.normal(size=(n_samples, n_features))
y = rng.randint(n_classes, size=n_samples)
W = rng.normal(scale=0.5, size=(n_classes, n_features))
b = rng.normal(scale=0.5, size=n_classes)
weights = rng.uniform(0.5, 2.0, size=n_samples)
options = dict(alpha=0.1, label_smoothing=0.1, sample_weight=weights)

loss, grad_W, grad_b = loss_and_gradient(W, b, X, y, **options)
print(f"J = {loss:.6f}")

# %%
# Central finite differences
# --------------------------
# For each parameter :math:`\theta_j`,
# :math:`\partial J/\partial\theta_j \approx
# (J(\theta + h e_j) - J(\theta - h e_j)) / (2h)`. The error of this formula is
# :math:`O(h^2)`, plus the rounding error of the two loss values divided by
# :math:`2h`.
params = np.concatenate([W.ravel(), b])


def objective(theta):
    coef = theta[: W.size].reshape(W.shape)
    return loss_and_gradient(coef, theta[W.size :], X, y, **options)[0]


def finite_differences(theta, h, central=True):
    grad = np.empty_like(theta)
    for j in range(theta.size):
        step = np.zeros_like(theta)
        step[j] = h
        if central:
            grad[j] = (objective(theta + step) - objective(theta - step)) / (2 * h)
        else:
            grad[j] = (objective(theta + step) - objective(theta)) / h
    return grad


analytic = np.concatenate([grad_W.ravel(), grad_b])
numeric = finite_differences(params, h=1e-6)
relative_error = np.abs(analytic - numeric).max() / np.abs(analytic).max()
print(f"largest relative difference: {relative_error:.2e}")

fig, ax = plt.subplots(figsize=(5.5, 5))
ax.scatter(numeric[: W.size], analytic[: W.size], label=r"$\partial J/\partial W$")
ax.scatter(
    numeric[W.size :], analytic[W.size :], marker="s", label=r"$\partial J/\partial b$"
)
limits = [analytic.min() * 1.1, analytic.max() * 1.1]
ax.plot(limits, limits, color="k", linewidth=0.8, label="equality")
ax.set(
    xlabel="finite differences (h = 1e-6)",
    ylabel="loss_and_gradient",
    title="Analytic vs numerical gradient\n"
    f"largest relative difference {relative_error:.1e}",
)
ax.legend()
fig.tight_layout()

# %%
# The error as a function of the step
# -----------------------------------
# Too large a step and the finite difference measures the curvature as well as
# the slope (truncation error: slope 1 for the one-sided formula, 2 for the
# central one on this log-log plot); too small a step and rounding errors of
# order :math:`10^{-16} / h` take over. The analytic gradient agrees with
# both formulas to the best precision they can reach, which is the evidence
# that it is right.
steps = np.logspace(-12, -1, 23)
errors = {"one-sided": [], "central": []}
for h in steps:
    for name, central in [("one-sided", False), ("central", True)]:
        approx = finite_differences(params, h, central=central)
        errors[name].append(np.abs(approx - analytic).max())

fig, ax = plt.subplots(figsize=(6.5, 4.5))
for name, marker in [("one-sided", "o"), ("central", "s")]:
    ax.loglog(steps, errors[name], marker=marker, label=f"{name} difference")
ax.set(
    xlabel="step h",
    ylabel="max |finite difference - analytic|",
    title="Finite-difference error against the analytic gradient",
)
ax.grid(True, which="major", alpha=0.3)
ax.legend()
fig.tight_layout()
best = steps[int(np.argmin(errors["central"]))]
print(f"central differences are most accurate near h = {best:.0e}")

# %%
# Automatic differentiation with PyTorch
# --------------------------------------
# ``torch.nn.functional.cross_entropy`` implements the same loss, label
# smoothing included; weighting the per-sample losses and adding the penalty
# by hand gives :math:`J`, and ``backward()`` its gradient. PyTorch is optional:
# without it this step is skipped.
try:
    import torch
except ImportError:
    torch = None
    print("PyTorch is not installed: skipping the autograd comparison.")

if torch is not None:
    W_t = torch.tensor(W, requires_grad=True)
    b_t = torch.tensor(b, requires_grad=True)
    X_t, y_t, s_t = torch.tensor(X), torch.tensor(y), torch.tensor(weights)
    per_sample = torch.nn.functional.cross_entropy(
        X_t @ W_t.T + b_t, y_t, reduction="none", label_smoothing=0.1
    )
    penalty = options["alpha"] / 2 * (W_t**2).sum()
    J_t = (s_t * per_sample).sum() / s_t.sum() + penalty
    J_t.backward()
    autograd = np.concatenate([W_t.grad.numpy().ravel(), b_t.grad.numpy()])
    print(f"loss: torch {J_t.item():.12f}, sk_softmax {loss:.12f}")
    print(f"largest gradient difference: {np.abs(autograd - analytic).max():.1e}")

    fig, ax = plt.subplots(figsize=(6.5, 3.5))
    differences = {
        "finite differences": np.abs(numeric - analytic).max(),
        "PyTorch autograd": np.abs(autograd - analytic).max(),
    }
    ax.barh(list(differences), list(differences.values()), color=["C0", "C1"])
    ax.set_xscale("log")
    ax.set(
        xlabel="max |gradient - loss_and_gradient|",
        title="Agreement with the analytic gradient",
    )
    fig.tight_layout()

plt.show()
