"""The e2e deployment's Airflow local settings, copied to ``$AIRFLOW_HOME/config/`` (on every Airflow
process's ``sys.path``), so the example DAG itself carries nothing test-only.

- A cluster policy routes the example DAG's results task and its downstream to two queues that only
  one worker each consumes, so the downstream provably runs on the other worker, every run.
- The hostname a worker's tasks record is the worker's own name: the workers share one machine, so the
  real hostname would not say which one ran a task.
"""

from __future__ import annotations

import os
import socket
from typing import Any

# (dag_id, task_id) -> queue; tests/e2e/stack.py starts worker-1 on the first, worker-2 on the second.
RESULTS_QUEUE = "e2e-results"
SUMMARIZE_QUEUE = "e2e-summarize"
ROUTES = {
    ("example_together_batch", "batch_results"): RESULTS_QUEUE,
    ("example_together_batch", "summarize"): SUMMARIZE_QUEUE,
}
WORKER_NAME_ENV = "E2E_WORKER_NAME"


def task_policy(task: Any) -> None:
    queue = ROUTES.get((task.dag_id, task.task_id))
    if queue:
        task.queue = queue


def e2e_hostname() -> str:
    return os.environ.get(WORKER_NAME_ENV) or socket.getfqdn()
