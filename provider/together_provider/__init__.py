"""Apache Airflow provider for Together AI's Batch API."""

from __future__ import annotations

__version__ = "0.1.0"
# The Documentation project URL in setup.cfg, which is what Airflow shows (it reads the distribution's
# metadata); the provider info says the same for whoever reads it directly.
DOCUMENTATION_URL = "https://github.com/together-airflow/airflow-provider-together#readme"


def get_provider_info() -> dict:
    """What Airflow's provider manager reads through the ``apache_airflow_provider`` entry point."""
    from together_provider.connection_form import connection_type_entry

    return {
        "package-name": "airflow-provider-together",
        "name": "Together AI",
        "description": "Submit, wait for (deferrable) and download Together AI batch inference jobs.",
        "documentation-url": DOCUMENTATION_URL,
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "Together AI",
                "external-doc-url": "https://docs.together.ai/docs/batch-inference",
                "tags": ["ai"],
            }
        ],
        # Airflow 3.2+ builds the connection form from this entry alone, without importing the hook.
        "connection-types": [connection_type_entry("together_provider.hooks.together.TogetherHook")],
        "hooks": [
            {"integration-name": "Together AI", "python-modules": ["together_provider.hooks.together"]}
        ],
        "operators": [
            {
                "integration-name": "Together AI",
                "python-modules": [
                    "together_provider.operators.batch",
                    "together_provider.operators.results",
                ],
            }
        ],
        "sensors": [
            {"integration-name": "Together AI", "python-modules": ["together_provider.sensors.batch"]}
        ],
        "triggers": [
            {
                "integration-name": "Together AI",
                "python-modules": ["together_provider.triggers.batch", "together_provider.triggers.watch"],
            }
        ],
        "extra-links": ["together_provider.links.TogetherBatchLink"],
        "config": {
            "together": {
                "description": "The Together AI provider's settings.\n",
                "options": {
                    "freeze_triggerer_heap": {
                        "description": (
                            "In Airflow's triggerer, when the first Together wait starts, move every "
                            "object alive then out of the garbage collector's reach (gc.freeze()), so "
                            "later full collections walk only what came after and no longer stop all "
                            "triggers for longer than the triggerer's 0.2 s blocked warning.\n"
                        ),
                        "version_added": None,
                        "type": "boolean",
                        "example": "False",
                        "default": "True",
                    }
                },
            }
        },
    }
