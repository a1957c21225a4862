"""The only module that touches moto internals (moto is pinned exactly in pyproject.toml;
tests/functional/test_moto_adapter.py fails loudly if an upgrade breaks either patch).

1. ``InProcessInvoker`` runs moto's Lambda functions in-process with dagcast's real handlers.
   moto has no public hook for this: every invoke path (boto3 ``invoke``, a Step Functions task,
   an event source mapping) ends in ``moto.awslambda.models.LambdaFunction._invoke_lambda``,
   which would start a Docker container; we replace that one method.
2. ``fix_state_machine_copy`` — moto's StartExecution deep-copies the state machine *with every
   execution it ever ran*; a running execution holds locks, so the second StartExecution on a
   state machine fails with "cannot pickle '_thread.RLock' object" (and each copy grows with
   history). The copy is given no executions instead, which is all the new execution needs.
3. ``scope_queries_to_partition`` — moto's DynamoDB ``Query`` on a table (not an index) lists and
   sorts *every item of the table* (``Table.all_items``) before keeping one partition: O(table) per
   call. dagcast queries one execution's partition on every append and poll, so a 1,000-task
   execution (≈7,000 items) made each query cost ~150 ms and every execution slower than the
   last. The patch hands such a query only the items of its partition that match its sort-key
   condition (moto would sort the whole partition, then filter); results are identical.
4. ``serialize_dynamodb`` — moto's DynamoDB backend has no locking: two concurrent conditional
   writes to one item can both pass their condition (found by the random-DAG property test: two
   tasks ran under ``maxConcurrency: 1``), and a read can see a dict change under it. DynamoDB
   applies each item operation atomically; the patch runs moto's item operations one at a time.
5. ``dispatch_in_process`` — boto3 calls made *in the stack's own process* (the task Lambdas,
   moto's Step Functions interpreter calling Lambda, the stream poller) go straight to moto's
   backends through moto's own botocore stub (the ``mock_aws`` path) instead of a round trip
   through its HTTP server: no socket, no thread per request, about 2.5× faster per call. Other
   processes (``dagcast up``'s front, a CLI, a benchmark) still reach the same backends over HTTP.
6. ``lock_free_backend_lookup`` — every moto request looks its backend up several times, each under
   one global lock (``BackendDict._create_account_specific_backend``); with dozens of task Lambdas
   running at once that lock was the local stack's bottleneck. Once an account's backend exists
   it is never replaced, so the patched lookup takes the lock only to create it.
7. ``stateless_shard_iterators`` — moto's DynamoDB Streams backend keeps every shard iterator it
   ever hands out (``shard_iterators``, ~1.7 KB each) and never drops one; GetRecords hands out a
   new one on every call. The stream poller calls it 5 times a second when idle, so an idle
   `dagcast up` grew by ~0.5 MB a minute (~30 MB an hour) for ever (found by bench/soak.py). An
   iterator is only a position in the shard: the patch writes the position into the iterator's
   string and rebuilds the iterator from it on GetRecords, so nothing is kept. Iterators still
   never expire, as in moto (AWS expires them after 15 minutes).
8. ``untracked_models`` — moto's ``BaseModel.__new__`` appends every model object it ever creates
   to a list on its class (``instances_tracked``, for the moto server's dashboard,
   /moto-api/data.json), so nothing moto makes is ever freed: every superseded version of an
   updated DynamoDB item (each UpdateItem makes a new ``Item``), every shard iterator. After 30
   executions, 78% of the ``Item`` objects alive were such garbage (found by bench/soak.py). The
   patch creates model objects without tracking them; the dashboard, which dagcast does not use,
   then lists nothing.

The replacement keeps moto's contract: it returns ``(payload_json, errored, logs)``; a handler
exception becomes ``{"errorMessage", "errorType"}`` with ``errored=True``, which Step Functions
reports as an error named after ``errorType`` — as AWS does.
"""

from __future__ import annotations

import copy
import functools
import json
import logging
import threading
import traceback
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from moto.awslambda import models as lambda_models
from moto.core import base_backend, common_models, model_instances
from moto.core import models as core_models
from moto.dynamodb import models as ddb_models
from moto.dynamodb.models import table as ddb_table
from moto.dynamodbstreams import models as streams_models
from moto.stepfunctions import models as sfn_models

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any], Any], Any]


@dataclass
class LocalContext:
    """The parts of the Lambda context object that handlers and powertools read."""

    function_name: str
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = ""
    aws_request_id: str = ""
    function_version: str = "$LATEST"

    def get_remaining_time_in_millis(self) -> int:
        return 900_000


class InProcessInvoker:
    """Installs itself over moto's Docker invoker; ``handlers`` maps function name → handler."""

    def __init__(self, handlers: Mapping[str, Handler]) -> None:
        self._handlers = dict(handlers)
        self._original: Any = None

    @property
    def replaced(self) -> Any:
        """moto's own ``_invoke_lambda`` (None until installed)."""
        return self._original

    def set_handler(self, name: str, handler: Handler) -> None:
        self._handlers[name] = handler

    def install(self) -> None:
        if self._original is not None:
            return
        self._original = lambda_models.LambdaFunction._invoke_lambda
        invoker = self

        def _invoke_lambda(fn: Any, event: Any = None) -> tuple[str, bool, str]:
            return invoker.invoke(fn.function_name, fn.function_arn, event)

        setattr(lambda_models.LambdaFunction, "_invoke_lambda", _invoke_lambda)  # noqa: B010

    def uninstall(self) -> None:
        if self._original is not None:
            setattr(lambda_models.LambdaFunction, "_invoke_lambda", self._original)  # noqa: B010
            self._original = None

    def invoke(self, name: str, arn: str, event: Any) -> tuple[str, bool, str]:
        handler = self._handlers.get(name)
        if handler is None:
            missing = {
                "errorMessage": f"no in-process handler for function {name}",
                "errorType": "ResourceNotFound",
            }
            return json.dumps(missing), True, ""
        if isinstance(event, str | bytes):
            event = json.loads(event or "{}")
        context = LocalContext(name, invoked_function_arn=arn, aws_request_id=str(uuid.uuid4()))
        try:
            result = handler(event or {}, context)
            return json.dumps(result), False, ""
        except Exception as exc:
            log.warning("local Lambda %s failed: %s: %s", name, type(exc).__name__, exc)
            body: dict[str, Any] = {
                "errorMessage": str(exc),
                "errorType": type(exc).__name__,
                "stackTrace": traceback.format_exception(exc)[-5:],
            }
            return json.dumps(body), True, ""


def _copy_without_executions(self: Any, memo: dict[int, Any]) -> Any:
    clone = self.__class__.__new__(self.__class__)
    memo[id(self)] = clone
    for key, value in self.__dict__.items():
        setattr(clone, key, [] if key == "executions" else copy.deepcopy(value, memo))
    return clone


def fix_state_machine_copy() -> None:
    setattr(sfn_models.StateMachine, "__deepcopy__", _copy_without_executions)  # noqa: B010


_partition = threading.local()


def scope_queries_to_partition() -> None:
    table_cls = ddb_table.Table
    if getattr(table_cls, "_dagcast_scoped", False):
        return
    all_items = table_cls.all_items
    query = table_cls.query

    @functools.wraps(all_items)
    def scoped_all_items(self: Any) -> Any:
        key = getattr(_partition, "key", None)
        if key is not None and self.range_key_attr:
            items = self.items.get(key, {}).values()
            comparison = getattr(_partition, "comparison", None)
            if comparison is not None:  # moto sorts what it gets: hand it only the matches
                op, objs = comparison
                return [i for i in items if i.range_key is not None and i.range_key.compare(op, objs)]
            return list(items)
        return all_items(self)

    @functools.wraps(query)
    def scoped_query(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        index_name = args[6] if len(args) > 6 else kwargs.get("index_name")
        op = args[0] if args else kwargs.get("range_comparison")
        objs = args[1] if len(args) > 1 else kwargs.get("range_objs")
        if index_name is None and hash_key is not None:
            _partition.key = hash_key
            _partition.comparison = (op, objs) if op else None
        try:
            return query(self, hash_key, *args, **kwargs)
        finally:
            _partition.key = None
            _partition.comparison = None

    setattr(table_cls, "all_items", scoped_all_items)  # noqa: B010
    setattr(table_cls, "query", scoped_query)  # noqa: B010
    setattr(table_cls, "_dagcast_scoped", True)  # noqa: B010


_DYNAMODB_OPERATIONS = (
    "put_item",
    "get_item",
    "query",
    "scan",
    "update_item",
    "delete_item",
    "transact_write_items",
)
_dynamodb_lock = threading.RLock()


def serialize_dynamodb() -> None:
    backend = ddb_models.DynamoDBBackend
    if getattr(backend, "_dagcast_serialized", False):
        return
    for name in _DYNAMODB_OPERATIONS:
        original = getattr(backend, name)

        def locked(self: Any, *args: Any, __original: Any = original, **kwargs: Any) -> Any:
            with _dynamodb_lock:
                return __original(self, *args, **kwargs)

        setattr(backend, name, functools.wraps(original)(locked))
    setattr(backend, "_dagcast_serialized", True)  # noqa: B010


def dispatch_in_process(enabled: bool = True) -> None:
    """Serve this process's boto3 calls from moto's backends directly (see 5. above).

    moto's stub answers requests addressed to AWS's own endpoints, so the caller must not point
    boto3 at the server (no ``AWS_ENDPOINT_URL`` in this process). Sessions created from now on
    carry the stub (botocore's built-in handlers); boto3's default session is dropped so that
    ``boto3.client()`` builds a fresh one."""
    import boto3

    core_models.botocore_stubber.enabled = enabled
    boto3.DEFAULT_SESSION = None


def dispatching_in_process() -> bool:
    return bool(core_models.botocore_stubber.enabled)


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


class _StatelessIterators(dict[str, Any]):
    """A streams backend's ``shard_iterators`` that keeps nothing (see 7. above): an iterator's
    string is ``<stream ARN>|1|<sequence number>``, and a lookup rebuilds the iterator from it."""

    def __init__(self, backend: Any) -> None:
        super().__init__()
        self._backend = backend

    def __setitem__(self, key: str, value: Any) -> None:
        pass  # the key says where the iterator points: there is nothing to keep

    def __getitem__(self, key: str) -> Any:
        try:
            stream, position = key.rsplit("|1|", 1)
            table = self._backend.dynamodb.get_table(stream.split(":table/", 1)[1].split("/", 1)[0])
            sequence_number = int(position)
        except Exception:
            raise KeyError(key) from None  # what moto raises for an iterator it does not know
        if table.stream_shard is None or stream != f"{table.table_arn}/stream/{table.latest_stream_label}":
            raise KeyError(key)  # a stream that has been replaced since
        return streams_models.ShardIterator(
            self._backend, table.stream_shard, "AT_SEQUENCE_NUMBER", sequence_number
        )


def stateless_shard_iterators() -> None:
    backend_cls = streams_models.DynamoDBStreamsBackend
    if getattr(backend_cls, "_dagcast_stateless", False):
        return
    iterator_cls = streams_models.ShardIterator
    original_init = iterator_cls.__init__

    @functools.wraps(original_init)
    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        # The resolved position (TRIM_HORIZON, LATEST, AFTER_… are numbers by now) is the iterator.
        self.id = str(self.sequence_number)

    def iterators(self: Any) -> _StatelessIterators:
        self.__dict__.pop("shard_iterators", None)  # a backend made before the patch: free its dict
        return _StatelessIterators(self)

    setattr(iterator_cls, "__init__", init)  # noqa: B010
    # A data descriptor: it wins over the ``self.shard_iterators = {}`` of the backend's __init__.
    setattr(backend_cls, "shard_iterators", property(iterators, lambda self, value: None))  # noqa: B010
    setattr(backend_cls, "_dagcast_stateless", True)  # noqa: B010


def untracked_models() -> None:
    base = common_models.BaseModel
    if getattr(base, "_dagcast_untracked", False):
        return

    def new(cls: Any, *args: Any, **kwargs: Any) -> Any:
        return super(base, cls).__new__(cls)  # moto's __new__, without instances_tracked.append

    setattr(base, "__new__", staticmethod(new))  # noqa: B010
    for models in model_instances.model_data.values():  # and drop what was tracked so far
        for model in models.values():
            model.instances_tracked = []  # type: ignore[attr-defined]
    setattr(base, "_dagcast_untracked", True)  # noqa: B010
