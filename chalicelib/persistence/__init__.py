"""Persistence: the adapters that keep dagcast's state in AWS.

``keys`` (where each item lives, and the table's schema), ``table`` (marshalling and the generic
table helpers), ``executions`` (``DynamoStore``: executions, tasks, results), ``eventlog`` (the
per-execution event log and its append protocol) and ``sfn`` (Step Functions: start, release a
task's token, stop). Botocore ``ClientError`` codes become the domain errors of
``chalicelib.domain.errors`` in these modules and nowhere above them.
"""
