"""What `dagcast destroy` leaves behind, and how to delete it by hand.

template.yaml keeps (``DeletionPolicy: Retain``) what holds the stage's data: the events table, and
the KMS key its webhook secrets are encrypted under (without the key they could not be decrypted
again). `sam delete` leaves both. Destroy reads their names from the stack's outputs before it
deletes the stack, then says what was kept with the commands that delete each — or, with
``--delete-data``, runs them.

Not kept, on purpose: the stream secret (it signs stream tokens that live minutes; nothing stored
depends on it), the key's alias (the ciphertext names the key itself, and a kept alias would block
the next deploy's alias of the same name), the logs, the alarms and their topic.
"""

from __future__ import annotations

from dataclasses import dataclass

# template.yaml output → what it names
KEPT_OUTPUTS = {"TableName": "table", "WebhookKeyArn": "KMS key"}
# KMS deletes a key only after a waiting period (7-30 days); until then `aws kms
# cancel-key-deletion` brings it back. The longest: a key deleted too early loses the data for good.
KEY_PENDING_DAYS = 30


@dataclass(frozen=True)
class Kept:
    what: str  # "table", "KMS key"
    name: str  # the table's name, the key's ARN
    why: str
    delete: tuple[str, ...]  # the command that deletes it


def kept(outputs: dict[str, str], stage: str, region: str) -> list[Kept]:
    """What the stack keeps when deleted, from its outputs (the table by its name alone when the
    stack is gone or older than its outputs)."""
    table = outputs.get("TableName") or f"dagcast-{stage}"
    found = [
        Kept(
            "table", table, "its events, executions and webhooks",
            ("aws", "dynamodb", "delete-table", "--table-name", table, "--region", region),
        )
    ]  # fmt: skip
    key = outputs.get("WebhookKeyArn")
    if key:
        found.append(
            Kept(
                "KMS key", key, f"the webhook secrets in {table} are encrypted under it",
                ("aws", "kms", "schedule-key-deletion", "--key-id", key,
                 "--pending-window-in-days", str(KEY_PENDING_DAYS), "--region", region),
            )
        )  # fmt: skip
    return found


def report(items: list[Kept], stage: str) -> str:
    """What destroy says it kept: each thing by name, why, and the command that deletes it."""
    lines = [f"kept (DeletionPolicy: Retain), the stage's data outlives the stack dagcast-{stage}:"]
    for item in items:
        lines.append(f"  {item.what} {item.name} — {item.why}")
        lines.append(f"    delete it: {' '.join(item.delete)}")
    lines.append(
        f"delete the table before the key (the key is what makes its secrets readable); a new "
        f"`dagcast deploy --stage {stage}` stops until the table is deleted; --delete-data deletes both"
    )
    return "\n".join(lines)
