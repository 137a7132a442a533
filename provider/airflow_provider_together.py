"""The import name Airflow derives from this distribution's name, ``airflow-provider-together``.

With example DAGs enabled, Airflow 3 looks for each provider's ``example_dags`` folder by importing the
distribution name with dashes turned into underscores (``airflow.dag_processing.bundles.manager``), and
logs an error with a traceback for a provider where that import fails. The provider's code lives in
:mod:`together_provider`; this module makes the derived name importable. Being a module, not a package, it
has no folder, so Airflow adds no example DAGs from it: the examples live in the repository's ``dags/``.
"""

from together_provider import __version__, get_provider_info

__all__ = ["__version__", "get_provider_info"]
