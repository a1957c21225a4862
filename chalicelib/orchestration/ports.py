"""What orchestration needs from the outside world, as Protocols: the execution store and Step
Functions.

The engine, the attempt runner and the releaser are written against these. The DynamoDB store and
the Step Functions adapter (chalicelib/persistence/sfn.py) satisfy them structurally, without
importing this module; mypy checks that where the factory hands them over. A Protocol names calls
and what they promise, not how the state is laid out: keys, items and ClientError codes stay in the
adapters. Deliberately no implementation here, in-memory or otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol

from ..domain import events as ev
from ..persistence.listing import Labels
from ..persistence.table import Item
from ..persistence.taskwrites import TaskDone
from ..redact import Redactor


class ExecutionRecords(Protocol):
    """The execution as a whole (its META): creation, status, counters, the stopping flag."""

    def create_execution(
        self,
        execution_id: str,
        *,
        created_at: int,
        original_request: str,
        tasks: list[Item],
        sink_ids: list[int],
        seed: list[tuple[str, ev.Event]] | None = None,
        labels: Labels = ...,
        **fields: Any,
    ) -> None: ...

    def get_meta(self, execution_id: str) -> Item: ...

    def get_execution(self, execution_id: str) -> Item:
        """META with its ``originalRequest`` (what views show)."""
        ...

    def set_execution_fields(self, execution_id: str, **fields: Any) -> None: ...

    def finish_execution(self, execution_id: str, status: str, finished_at: int, **fields: Any) -> bool:
        """running → ``status``; False if the execution had already finished."""
        ...

    def record_task_running(self, execution_id: str, task_id: int) -> None: ...

    def record_task_done(
        self, execution_id: str, task_id: int, status: str, error: str | None = None, stop: bool = False
    ) -> None:
        """Count a finished task (idempotently); ``stop``: no task starts from now on."""
        ...

    def set_stopping(self, execution_id: str, reason: str) -> None: ...


class ConcurrencySlots(Protocol):
    """maxConcurrency: tasks holding a slot, and ready tasks queued for one."""

    def acquire_slot(self, execution_id: str, task_id: int, limit: int, from_queue: bool = False) -> bool: ...

    def queue_for_slot(self, execution_id: str, task_id: int) -> None: ...

    def release_slot(self, execution_id: str, task_id: int) -> None: ...


class TaskRecords(Protocol):
    """One task: its callback token, its dependencies done, its attempt's transitions.

    The transitions (``start_task``, ``retry_task``, ``finish_task``) are conditional: None means
    the task had finished or was at another attempt, and nothing was written. The ``_logged``
    ones make the transition, its META counter and the event announcing it in one write: their
    seq, or None when nothing was written and the caller makes them one by one."""

    def get_task(self, execution_id: str, task_id: int) -> Item: ...

    def get_task_and_meta(self, execution_id: str, task_id: int) -> tuple[Item, Item]:
        """The task and its execution's META, in one read."""
        ...

    def get_tasks(self, execution_id: str) -> list[Item]: ...

    def set_token(self, execution_id: str, task_id: int, token: str) -> Item: ...

    def mark_dependency_done(
        self, execution_id: str, task_id: int, dependency: int, failed: bool
    ) -> Item: ...

    def start_task(
        self, execution_id: str, task_id: int, attempt: int, started_at: int, token: str | None = None
    ) -> Item | None: ...

    def retry_task(self, execution_id: str, task_id: int, attempt: int, error: str) -> Item | None: ...

    def record_partial_text(
        self, execution_id: str, task_id: int, attempt: int, run: str, tail: str, length: int
    ) -> bool:
        """The running attempt's text so far (its tail), if this run may write the attempt's
        progress (the first run to write does, while the task runs at this attempt); else False."""
        ...

    def finish_task(
        self,
        execution_id: str,
        task_id: int,
        status: str,
        attempt: int | None = None,
        awaiting: bool = False,
        **fields: Any,
    ) -> Item | None: ...

    def await_decision(
        self, execution_id: str, task_id: int, token: str, deadline: int, prompt: str
    ) -> Item | None: ...

    def start_task_logged(
        self,
        execution_id: str,
        task_id: int,
        attempt: int,
        started_at: int,
        token: str | None,
        key: str,
        event: ev.Event,
    ) -> int | None: ...

    def finish_task_logged(
        self, execution_id: str, task_id: int, done: TaskDone, key: str, event: ev.Event
    ) -> int | None: ...


class ResultRecords(Protocol):
    """Task results: read by dependents and the final result, large ones stored in chunks."""

    @property
    def redactor(self) -> Redactor: ...

    def get_results(self, execution_id: str, task_ids: Iterable[int]) -> dict[int, Any]: ...

    def put_result_chunks(self, execution_id: str, task_id: int, text: str, run: str) -> int: ...

    def delete_result_chunks(self, execution_id: str, task_id: int, run: str, chunks: int) -> None: ...

    def copy_result_chunks(self, source_id: str, target_id: str, task: Item, expiry: int | None) -> None: ...


class ResultSlices(Protocol):
    """Stored results read in pieces (a result page, a preview) without reading them whole."""

    def result_tasks(self, execution_id: str, task_ids: Iterable[int]) -> list[Item]: ...

    def result_chars(self, execution_id: str, task: Item) -> int | None: ...

    def result_slice(self, execution_id: str, task: Item, start: int, stop: int) -> str: ...


class EventLog(Protocol):
    """The execution's gapless event log; appends are idempotent per key."""

    def append_event(
        self,
        execution_id: str,
        key: str,
        payload: ev.Event | Callable[[], ev.Event] | str,
        timestamp: int | None = None,
        wait: bool = True,
    ) -> int | None: ...

    def last_seq(self, execution_id: str) -> int: ...

    def last_event(self, execution_id: str) -> Item | None:
        """The newest event item (``seq``, ``type``), or None before the first."""
        ...


class OrchestrationStore(
    ExecutionRecords, ConcurrencySlots, TaskRecords, ResultRecords, ResultSlices, EventLog, Protocol
):
    """Everything orchestration reads and writes: one table behind it, so one object."""


class TenantTaskSlots(Protocol):
    """A tenant's maxRunningTasks across its executions (persistence/quotas.py): slots and a queue
    of ``<executionId>/<taskId>`` entries; the releases answer (slots held, queued entries)."""

    def acquire_task(self, tenant: str, entry: str, limit: int, from_queue: bool = False) -> bool: ...

    def queue_task(self, tenant: str, entry: str) -> None: ...

    def release_task(self, tenant: str, entry: str) -> tuple[int, list[str]]: ...

    def release_execution_tasks(self, tenant: str, execution_id: str) -> tuple[int, list[str]]: ...

    def task_usage(self, tenant: str) -> tuple[int, list[str]]: ...


class TenantExecutions(Protocol):
    """A tenant's submits per second and maxRunningExecutions (persistence/quotas.py)."""

    def take_submit(self, tenant: str, per_second: int, now_s: int) -> bool: ...

    def acquire_execution(self, tenant: str, execution_id: str, limit: int) -> bool: ...

    def release_execution(self, tenant: str, execution_id: str) -> None: ...


class StateMachine(Protocol):
    """The calls orchestration makes to Step Functions, with its failures as domain outcomes."""

    def start_execution(self, state_machine_arn: str, name: str, input: str) -> str:
        """Start an execution; its ARN. Raises StartFailed when Step Functions refuses."""
        ...

    def send_task_success(self, token: str, output: str) -> bool:
        """Hand ``output`` to the state waiting on ``token``; False if the token is gone."""
        ...

    def stop_execution(self, execution_arn: str, error: str, cause: str) -> None:
        """Stop an execution. Raises StopFailed when Step Functions did not."""
        ...
