"""Sphinx configuration for the manual: ``make docs`` builds it into docs/_build/html.

The build is offline (no intersphinx: nothing is fetched) and runs with ``-W --keep-going``, so a
docstring, an included example or a link that no longer resolves fails it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
# The tree being documented, ahead of whatever copy of the package the venv has installed.
sys.path.insert(0, str(ROOT / "provider"))
# autodoc imports the package and so Airflow, which writes an airflow.cfg under AIRFLOW_HOME on import:
# keep that in the build folder rather than in ~/airflow or a real deployment's home.
os.environ["AIRFLOW_HOME"] = str(DOCS / "_build" / "airflow_home")
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

from together_provider import __version__  # noqa: E402

project = "airflow-provider-together"
author = "The airflow-provider-together authors"
copyright = "the airflow-provider-together authors; Apache-2.0"
release = __version__
version = __version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

# MyST: pages are GitHub-readable markdown; headings get the anchors GitHub gives them, so a link
# such as connection.md#testing-the-connection works on both.
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

# The API reference: the public classes with their docstrings, in source order. common.ai is an optional
# extra that the build's venv does not install: its module is mocked so the adapter's page still builds.
autodoc_mock_imports = ["airflow.providers.common.ai"]
autodoc_member_order = "bysource"
autodoc_typehints = "description"
# An inherited docstring (Airflow's execute(), say) is about Airflow's class, not ours.
autodoc_inherit_docstrings = False
autodoc_default_options = {"members": True, "show-inheritance": True}

html_theme = "alabaster"
html_title = f"{project} {release}"
html_theme_options = {
    "description": "Apache Airflow provider for Together AI's Batch API",
    "fixed_sidebar": True,
    "page_width": "1100px",
    "sidebar_width": "240px",
}
html_static_path: list[str] = []
html_show_sourcelink = False
