"""Sphinx configuration for the sk-softmax documentation."""

import os
import socket
import sys

sys.path.insert(0, os.path.abspath(".."))

import sk_softmax  # noqa: E402

project = "sk-softmax"
author = "sk-softmax developers"
copyright = "sk-softmax developers"
release = sk_softmax.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
]

templates_path = ["_templates"] if os.path.isdir("_templates") else []
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

autosummary_generate = True
autodoc_default_options = {"members": True, "inherited-members": True}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False

# Cross-references to the libraries we build on. The inventories are fetched over
# the network; with no web access a failed fetch is a warning, which breaks a -W
# build, so intersphinx is switched off when the web cannot be reached, or when
# SK_SOFTMAX_DOCS_OFFLINE=1 is set.
intersphinx_mapping = {
    "python": ("https://docs.python.org/3", None),
    "numpy": ("https://numpy.org/doc/stable", None),
    "scipy": ("https://docs.scipy.org/doc/scipy", None),
    "sklearn": ("https://scikit-learn.org/stable", None),
}


def _web_reachable(host="scikit-learn.org", port=443, timeout=3.0):
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError:
        return False
    return True


if os.environ.get("SK_SOFTMAX_DOCS_OFFLINE") or not _web_reachable():
    print("sk-softmax docs: building without intersphinx (offline)")
    intersphinx_mapping = {}
intersphinx_timeout = 10

html_theme = "pydata_sphinx_theme"
html_title = f"sk-softmax {release}"
html_static_path = ["_static"] if os.path.isdir("_static") else []
