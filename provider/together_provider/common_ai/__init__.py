"""Together as a backend of Airflow's common.ai provider (``@task.llm_batch`` / ``LLMBatchOperator``).

Nothing else in this package imports it: common.ai finds :class:`~.adapter.TogetherBatchAdapter` through
the ``airflow.providers.common.ai.batch_adapters`` entry point when a task's ``model_id`` starts with
``together:``, so without common.ai installed this package is never loaded.
"""
