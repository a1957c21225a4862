"""Patches ``moto.dynamodbstreams.models``: shard iterators that keep nothing.

moto's DynamoDB Streams backend keeps every shard iterator it hands out (``shard_iterators``,
~1.7 KB each) and never drops one, and GetRecords hands out a new one on every call. The stream
poller calls it 5 times a second when idle, so an idle ``dagcast up`` would grow by ~0.5 MB a
minute (~30 MB an hour) without end. An iterator is only a position in the shard: the patch
writes the position into the iterator's string and rebuilds the iterator from it on GetRecords,
so nothing is kept. Iterators still never expire, as in moto (AWS expires them after 15
minutes): this patch does not emulate expiry.
"""

from __future__ import annotations

import functools
from typing import Any

from moto.dynamodbstreams import models as streams_models


class _StatelessIterators(dict[str, Any]):
    """A streams backend's ``shard_iterators`` that keeps nothing: an iterator's string is
    ``<stream ARN>|1|<sequence number>``, and a lookup rebuilds the iterator from it."""

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
