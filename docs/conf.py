"""Sphinx configuration of the mxarray documentation.

Builds offline: intersphinx links to NumPy and Python only when the environment sets
``MXARRAY_DOCS_INTERSPHINX=1`` (it downloads their inventories).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")  # figures are drawn without a display

_DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(_DOCS / "_ext"))

import mxarray  # noqa: E402 - after the path set-up, like every Sphinx conf

project = "mxarray"
author = "mxarray developers"
copyright = "mxarray developers"
version = release = mxarray.__version__

extensions = [
    "myst_parser",
    "numpydoc",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.doctest",
    "matplotlib.sphinxext.plot_directive",
    "mx_formats",
    "mx_cli_help",
    "mx_api",
    "mx_block_figures",
]
if os.environ.get("MXARRAY_DOCS_INTERSPHINX") == "1":
    extensions.append("sphinx.ext.intersphinx")
    intersphinx_mapping = {
        "python": ("https://docs.python.org/3", None),
        "numpy": ("https://numpy.org/doc/stable", None),
    }

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
templates_path = ["_templates"]  # autosummary: classes without the generated __init__ entry

# MyST: ```{directive} fences plus $...$ for the odd formula; headings get anchors
# so that pages can link to each other's sections (array_api.md#devices).
myst_enable_extensions = ["dollarmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

# API reference: one page per public name; numpydoc renders the docstrings.
autosummary_generate = True
autosummary_imported_members = True
autodoc_default_options = {"members": True, "show-inheritance": False}
autodoc_typehints = "none"  # numpydoc's Parameters sections carry the types
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
numpydoc_validation_checks: set[str] = set()  # style checks are not build errors

# Doctest blocks run against the installed package, seeded where they draw numbers.
doctest_global_setup = "import numpy as np\nimport mxarray as mx"
doctest_test_doctest_blocks = ""  # only explicit doctest directives run

# Figures: drawn by matplotlib at build time into the build directory.
plot_include_source = False
plot_html_show_source_link = False
plot_html_show_formats = False
plot_formats = [("png", 110)]
plot_rcparams = {"figure.autolayout": True, "font.size": 10}

html_theme = "pydata_sphinx_theme"
html_title = f"mxarray {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "header_links_before_dropdown": 3,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": [],
}
html_static_path = ["_static"]
html_css_files = ["mxarray.css"]
html_show_sourcelink = False
# Pages without sub-pages get the full width instead of an empty section navigation.
html_sidebars = {page: [] for page in ("index", "formats", "block_formats", "figures", "comparison")}
