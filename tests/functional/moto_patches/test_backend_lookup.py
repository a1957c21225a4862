"""Pins the patch of dagcast/local/moto/patches/backend_lookup.py
(``moto.core.base_backend.BackendDict.__getitem__``)."""

from __future__ import annotations

import inspect

import pytest


def test_an_existing_backend_is_found_without_moto_s_locked_creation_path(stack, monkeypatch):
    """lock_free_backend_lookup: the first lookup of an account creates its backend through moto's
    own (locked) path; every later one reads the dict without it."""
    from moto.core.base_backend import BackendDict
    from moto.dynamodb.models import DynamoDBBackend

    assert getattr(BackendDict, "_dagcast_lock_free", False), "lock_free_backend_lookup was not applied"
    wrapped = getattr(BackendDict.__getitem__, "__wrapped__", None)
    assert wrapped is not None, "BackendDict.__getitem__ is not the lock-free wrapper"
    params = list(inspect.signature(wrapped).parameters)
    assert params == ["self", "account_id"], f"BackendDict.__getitem__ now takes {params}"
    assert hasattr(BackendDict, "_create_account_specific_backend"), (
        "moto no longer creates account backends in BackendDict._create_account_specific_backend"
    )
    backends = BackendDict(DynamoDBBackend, "dynamodb")
    created = backends["000000000042"]
    assert dict.__getitem__(backends, "000000000042") is created

    def locked_path(self: BackendDict, account_id: str) -> None:  # type: ignore[type-arg]
        raise AssertionError("an existing backend was looked up through moto's locked path")

    monkeypatch.setattr(BackendDict, "_create_account_specific_backend", locked_path)
    assert backends["000000000042"] is created
    with pytest.raises(AssertionError, match="locked path"):
        backends["000000000043"]  # a new account still goes through moto's own creation
