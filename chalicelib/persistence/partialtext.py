"""A running attempt's partial text on its task item: the claim that makes one run the attempt's
only progress writer, and the text's tail that the snapshot shows.

One conditional UpdateItem per progress write does both: it succeeds only while the task is
``running`` at this ``attempt`` and the attempt's progress belongs to this ``run`` (the first run to
write claims it). A duplicate invocation of the attempt, or any run once the attempt has been
retried or finished, is refused, and its event is never appended. The abandoned thread of a timed-out
attempt is refused earlier, in its process (chalicelib/progress.py), then by this condition.

It does not append the event (the event log does) nor decide what text is written.
"""

from __future__ import annotations

from typing import Final

from ..domain.model import TaskStatus
from .keys import pk, task_sk
from .table import Table, to_item

# The most of a running attempt's text kept on its task item (its end): what a viewer who joins
# mid-answer sees at once. Every progress write rewrites it, so it is small (about 1 WCU).
SNAPSHOT_TEXT_CHARS: Final = 1_000


class PartialText(Table):
    def record(self, execution_id: str, task_id: int, attempt: int, run: str, tail: str, length: int) -> bool:
        """Keep ``tail`` (the last SNAPSHOT_TEXT_CHARS of the attempt's text, ``length`` long in
        all) if this run may write the attempt's progress; False (nothing written) if not."""
        out = self._update_if(
            Key=to_item({"PK": pk(execution_id), "SK": task_sk(task_id)}),
            UpdateExpression=(
                "SET partialRun = :run, partialAttempt = :n, partialText = :t, partialLength = :len"
            ),
            ConditionExpression=(
                "#s = :running AND #a = :n AND "
                "(attribute_not_exists(partialRun) OR partialRun = :run OR partialAttempt <> :n)"
            ),
            ExpressionAttributeNames={"#s": "status", "#a": "attempt"},
            ExpressionAttributeValues=to_item(
                {
                    ":running": TaskStatus.RUNNING,
                    ":n": attempt,
                    ":run": run,
                    ":t": tail[-SNAPSHOT_TEXT_CHARS:],
                    ":len": length,
                }
            ),
        )
        return out is not None
