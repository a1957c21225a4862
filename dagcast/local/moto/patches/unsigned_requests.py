"""Patches botocore's built-in handlers: requests served in-process are serialised, not signed.

moto checks no signature, and a request this process's boto3 hands to moto's backends in-process
(``in_process_dispatch.py``) never leaves it; signing each one (SigV4: a canonical request, the
body's SHA-256, four HMACs) cost the stack ~9% of its CPU per task in ``bench/dag_makespan``. Two
handlers, added to botocore's built-in ones (so every session created from now on has them):

- ``before-call``: while the in-process dispatch is on, a request addressed to AWS's own endpoint
  (``*.amazonaws.com``: what moto's stub serves; this process's boto3 is not pointed at the
  server) is marked in its context;
- ``choose-signer``, ahead of botocore's own: a marked request is sent ``UNSIGNED``.

The request is built and serialised exactly as for AWS (the wire format is what the local stack
exists to check) and goes without an ``Authorization`` header, so moto takes its default account,
as it did from the ``testing`` key. A client pointed at the server (an endpoint URL, another
process's way) still signs: moto's server reads the service from the signature's scope.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import botocore
from botocore import handlers as botocore_handlers
from moto.core.models import botocore_stubber

_IN_PROCESS = "dagcast_in_process"  # the request context's mark


def _mark_in_process(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    host = urlsplit(str(params.get("url", ""))).hostname or ""
    if botocore_stubber.enabled and host.endswith(".amazonaws.com"):
        context[_IN_PROCESS] = True


def _unsigned_in_process(context: dict[str, Any] | None = None, **_: Any) -> Any:
    return botocore.UNSIGNED if context and context.get(_IN_PROCESS) else None


_HANDLERS = (("before-call", _mark_in_process), ("choose-signer", _unsigned_in_process))


def sign_nothing_in_process() -> None:
    """Add the handlers to botocore's built-in ones; the signer's first, as the first answer wins."""
    builtin = botocore_handlers.BUILTIN_HANDLERS
    if _HANDLERS[0] not in builtin:
        builtin.append(_HANDLERS[0])
    if _HANDLERS[1] not in builtin:
        builtin.insert(0, _HANDLERS[1])
