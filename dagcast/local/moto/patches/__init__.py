"""dagcast's patches to moto internals, one module per internal touched.

moto is pinned exactly in pyproject.toml; each module here has a pin test in
tests/functional/moto_patches/ named after it, which fails with a message saying what changed
when a moto upgrade breaks the internal it relies on. The in-process Lambda invoker is a patch
too, but one with state (the handlers): it lives in moto/invoker.py.

``apply_all`` applies the lasting patches (each is idempotent). ``dispatch_in_process`` is a
switch the stack turns on at start and off at stop, so it is not among them.
"""

from __future__ import annotations

from .action_lookup import list_actions_once
from .backend_lookup import lock_free_backend_lookup
from .interpreter_caches import cache_interpreter_lookups
from .item_locking import serialize_dynamodb
from .item_responses import direct_item_responses
from .map_run_history import keep_map_run_history
from .model_tracking import untracked_models
from .partition_queries import scope_queries_to_partition
from .shard_iterators import stateless_shard_iterators
from .state_machine_copy import fix_state_machine_copy
from .stream_wakeups import wake_on_stream_writes
from .transactions import check_before_writing
from .unsigned_requests import sign_nothing_in_process
from .value_copies import copy_values_once


def apply_all() -> None:
    """Apply every lasting patch to moto's classes (for every backend in this process)."""
    fix_state_machine_copy()
    scope_queries_to_partition()
    # before serialize_dynamodb: it wraps the transact_write_items it finds in the backend's lock
    check_before_writing()
    serialize_dynamodb()
    lock_free_backend_lookup()
    stateless_shard_iterators()
    untracked_models()
    keep_map_run_history()
    wake_on_stream_writes()
    direct_item_responses()
    cache_interpreter_lookups()
    list_actions_once()
    copy_values_once()
    sign_nothing_in_process()
