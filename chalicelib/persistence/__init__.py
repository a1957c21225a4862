"""Persistence: the adapters that keep dagcast's state in DynamoDB.

``keys`` (where each item lives, and the table's schema), ``table`` (marshalling and the generic
table helpers), ``executions`` (``DynamoStore``: executions, tasks, results) and ``eventlog`` (the
per-execution event log and its append protocol). Botocore ``ClientError`` codes become the
domain errors of ``chalicelib.domain.errors`` in these modules and nowhere above them.
"""
