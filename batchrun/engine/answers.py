"""What the API's answers make of a key's record, and the answers that end it failed.

The record as a run starts on it, a prediction applied to it; failed: an output of too many
files, one the API removed, a prediction the API forgot."""

from __future__ import annotations

from batchrun.api.objects import Prediction
from batchrun.errors import ApiError
from batchrun.manifest.records import API_STATUSES, Api, Record, Status, utcnow
from batchrun.planner.expand import PlannedPrediction

# The statuses of the API's predictions a record keeps as they are.
_BY_VALUE = {status.value: status for status in API_STATUSES}
# Files one prediction may ask batchrun to download. Image models return a handful, a video
# model's frames a few hundred; an output listing 200,000 URLs is a hostile or broken server.
MAX_FILES_PER_PREDICTION = 1000


def too_many_files(record: Record, urls: list[str]) -> Record | None:
    """The record failed, when its output lists more files than one prediction may fetch."""
    if len(urls) <= MAX_FILES_PER_PREDICTION:
        return None
    return record.replace(
        status=Status.FAILED,
        missing=(),
        error=f"the output lists {len(urls):,} files, more than the limit of "
        f"{MAX_FILES_PER_PREDICTION:,}; none were downloaded (the manifest keeps the output)",
    )


def record_for(planned: PlannedPrediction, previous: Record | None, api: Api | None) -> Record:
    """The key's record as this run starts on it: the plan's view, the manifest's history (a
    key without one is this run's, on `api`; one with history keeps the API it was made on)."""
    record = Record.planned(planned)
    if previous is None:
        return record.replace(api=api)
    return record.replace(
        status=previous.status,
        prediction_id=previous.prediction_id,
        version=previous.version,
        output=previous.output,
        files=previous.files,
        error=previous.error,
        metrics=previous.metrics,
        created_at=previous.created_at,
        started_at=previous.started_at,
        completed_at=previous.completed_at,
        attempts=previous.attempts,
        request_sha256=previous.request_sha256,
        possible_duplicate=previous.possible_duplicate,
        missing=previous.missing,
        files_template=previous.files_template,
        api=previous.api,
        cost=previous.cost,
        price=previous.price,
        cost_before=previous.cost_before,
    )


def apply(record: Record, prediction: Prediction) -> Record:
    # A status the API may add one day reads as still running: polling goes on until it ends.
    status = _BY_VALUE.get(prediction.status, Status.PROCESSING)
    return record.replace(
        status=status,
        prediction_id=prediction.id,
        version=prediction.version or record.version,
        output=prediction.output if prediction.terminal else None,  # as the API sent it
        error=prediction.error if status != Status.SUCCEEDED else None,
        metrics=prediction.metrics,
        created_at=prediction.created_at or record.created_at,
        started_at=prediction.started_at,
        completed_at=prediction.completed_at or (utcnow() if prediction.terminal else None),
    )


def data_removed(prediction: Prediction) -> bool:
    """A success whose output is gone (`data_removed`): nothing is left to download."""
    return (
        prediction.status == Status.SUCCEEDED
        and prediction.output is None
        and prediction.raw.get("data_removed") is True
    )


def vanished(prediction_id: str, error: ApiError) -> Prediction:
    # The API forgot a prediction we created (some proxies expire them): a record, not a crash.
    return Prediction(
        id=prediction_id,
        status=Status.FAILED,
        model="",
        version="",
        input={},
        output=None,
        error=f"the API no longer knows prediction {prediction_id}: {error}",
        logs="",
        metrics={},
        created_at=None,
        started_at=None,
        completed_at=None,
        urls={},
        raw={},
    )
