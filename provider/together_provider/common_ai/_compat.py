"""The one place the common.ai provider's names are imported (only on import of the adapter).

Its batch surface is marked experimental upstream: a rename lands here, once.
"""

from __future__ import annotations

from airflow.providers.common.ai.batch.base import (
    BatchAdapter,
    BatchRequest,
    BatchState,
    BatchStatus,
    ExtractedOutput,
    RawResultItem,
    SubmitResult,
)
from airflow.providers.common.ai.batch.output_schema import OutputSpec
from airflow.providers.common.ai.exceptions import LLMBatchInputError, LLMBatchLimitExceededError

__all__ = [
    "BatchAdapter",
    "BatchRequest",
    "BatchState",
    "BatchStatus",
    "ExtractedOutput",
    "LLMBatchInputError",
    "LLMBatchLimitExceededError",
    "OutputSpec",
    "RawResultItem",
    "SubmitResult",
]
