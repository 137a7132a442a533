"""End-to-end run on real Airflow processes: ``make e2e`` (``python -m tests.e2e.run_e2e``), not pytest."""
