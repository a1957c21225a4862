"""Switches ``moto.core.models.botocore_stubber``: this process's boto3 calls go straight to moto's
backends.

boto3 calls made *in the stack's own process* (the task Lambdas, moto's Step Functions
interpreter calling Lambda, the stream poller) reach moto's backends through moto's own botocore
stub (the ``mock_aws`` path) instead of a round trip through its HTTP server: no socket, no
thread per request, about 2.5× faster per call. Other processes (``dagcast up``'s front, a CLI, a
benchmark) still reach the same backends over HTTP; this switch does nothing for them.
"""

from __future__ import annotations

import boto3
from moto.core import models as core_models


def dispatch_in_process(enabled: bool = True) -> None:
    """Serve this process's boto3 calls from moto's backends directly (``enabled=False``: stop).

    moto's stub answers requests addressed to AWS's own endpoints, so the caller must not point
    boto3 at the server (no ``AWS_ENDPOINT_URL`` in this process). Sessions created from now on
    carry the stub (botocore's built-in handlers); boto3's default session is dropped so that
    ``boto3.client()`` builds a fresh one."""
    core_models.botocore_stubber.enabled = enabled
    boto3.DEFAULT_SESSION = None
