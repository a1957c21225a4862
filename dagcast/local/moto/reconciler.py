"""The local stand-in for the EventBridge rule on "Step Functions Execution Status Change": moto
emits no such events, so this thread asks Step Functions which of the stack's executions ended
without Finalize (timed out, aborted, failed) and hands each to the reconcile handler, once, with
the event EventBridge would send.

It decides nothing itself: the handler (``Orchestrator.reconcile``) checks the table and is
idempotent, so an execution handed over twice — after a restart, or by a test — changes nothing
the second time. Not here: what reconciling writes (chalicelib/orchestration/engine.py).
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any, cast

from chalicelib.domain.model import SFN_ENDED_WITHOUT_FINALIZE

from ..lambdas import status_change_event
from .invoker import Handler

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions.client import SFNClient
    from mypy_boto3_stepfunctions.literals import ExecutionStatusType
else:
    SFNClient = ExecutionStatusType = Any

log = logging.getLogger(__name__)


class Reconciler:
    """Every ``interval`` seconds: the state machine's ended executions not handed over yet."""

    def __init__(self, sfn: SFNClient, state_machine_arn: str, handler: Handler, interval: float) -> None:
        self._sfn = sfn
        self._arn = state_machine_arn
        self._handler = handler
        self._interval = interval
        self._handed: set[str] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="dagcast-reconciler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.check()
            except Exception:
                log.exception("reconciling ended executions failed; next pass in %ss", self._interval)

    def check(self) -> int:
        """Hand every newly ended execution to the handler; how many were handed over."""
        handed = 0
        for status in SFN_ENDED_WITHOUT_FINALIZE:
            pages = self._sfn.get_paginator("list_executions").paginate(
                stateMachineArn=self._arn, statusFilter=cast("ExecutionStatusType", str(status))
            )
            for page in pages:
                for execution in page["executions"]:
                    arn = execution["executionArn"]
                    if arn in self._handed:
                        continue
                    described = self._sfn.describe_execution(executionArn=arn)
                    self._handler(status_change_event(dict(described)), None)
                    self._handed.add(arn)  # after the handler: one that raised is tried again
                    handed += 1
        return handed
