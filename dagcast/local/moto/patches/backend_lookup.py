"""Patches ``moto.core.base_backend.BackendDict.__getitem__``: no global lock to find a backend
that exists.

Every moto request looks its backend up several times, each under one global lock
(``BackendDict._create_account_specific_backend``); with dozens of task Lambdas running at once
that lock is the local stack's bottleneck. Once an account's backend exists it is never replaced,
so the patched lookup reads it without the lock and takes the lock only to create it (moto's own
path, unchanged).
"""

from __future__ import annotations

import functools
from typing import Any

from moto.core import base_backend


def lock_free_backend_lookup() -> None:
    backend_dict = base_backend.BackendDict
    if getattr(backend_dict, "_dagcast_lock_free", False):
        return
    original = backend_dict.__getitem__

    @functools.wraps(original)
    def getitem(self: Any, account_id: str) -> Any:
        try:
            return dict.__getitem__(self, account_id)
        except KeyError:
            return original(self, account_id)

    setattr(backend_dict, "__getitem__", getitem)  # noqa: B010
    setattr(backend_dict, "_dagcast_lock_free", True)  # noqa: B010
