"""A Together-compatible Batch and Files API server for tests, demos and CI (see README.md next to this file).

Written from the OpenAPI spec and the official SDK, independently of the provider's client: nothing here
imports from the rest of ``together_provider``, so a misreading of the API in one cannot hide in the other.

Producing each outcome on purpose, by ``body.model`` in the input lines:

- ``emulator/batch-fail``: the batch ends FAILED with error "emulator: batch failed on purpose"; lines
  before the first such line get answered (partial output file).
- ``emulator/batch-expire``: the batch ends EXPIRED with an error text; the first half of the lines are
  answered (partial output file).
- ``emulator/never-finish``: the batch stays IN_PROGRESS forever, progress stuck at 50.
- ``emulator/request-error``: that line goes to the error file; the batch still COMPLETES.
- ``emulator/request-missing``: that line comes back in neither file; the batch still COMPLETES.
- a malformed input file (bad JSON, missing custom_id or body.model, duplicate custom_id) ends FAILED during
  VALIDATING, the error naming the first bad line number.
- CANCELLED: ``POST /v1/batches/{id}/cancel`` while VALIDATING or IN_PROGRESS.
- any status at any time: ``POST /_emulator/batches/{id}/status {"status": ..., "error": ...}``.

Control routes (no auth): ``POST /_emulator/reset``, ``GET|DELETE /_emulator/requests``,
``GET|POST|DELETE /_emulator/faults``, ``POST /_emulator/batches/{id}/status``, ``GET|POST /_emulator/clock``,
``POST /_emulator/files`` (synthetic file of N bytes), ``GET /_emulator/health``.
"""

from __future__ import annotations

from .app import create_app
from .faults import FaultPlan, FaultRule
from .processing import (
    MODEL_BATCH_EXPIRE,
    MODEL_BATCH_FAIL,
    MODEL_NEVER_FINISH,
    MODEL_REQUEST_ERROR,
    MODEL_REQUEST_MISSING,
)
from .server import EmulatorServer, start_site
from .state import EmulatorState

__all__ = [
    "MODEL_BATCH_EXPIRE",
    "MODEL_BATCH_FAIL",
    "MODEL_NEVER_FINISH",
    "MODEL_REQUEST_ERROR",
    "MODEL_REQUEST_MISSING",
    "EmulatorServer",
    "EmulatorState",
    "FaultPlan",
    "FaultRule",
    "create_app",
    "start_site",
]
