"""How anything dagcast sends is written on the wire: a model's JSON dict, the one JSON
serialisation, and Server-Sent Events framing.

``WireModel`` is the base of the event models (``events``): its ``wire()`` is the dict that is
stored and sent, fields in declaration order, and a field an event does not carry is left out,
never sent as null. Its JSON Schema says the same to clients (docs/events.schema.json).

Pure: no I/O here. The SSE encoder is tested byte for byte; it knows nothing of event types.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, NamedTuple, TypeVar

from pydantic import BaseModel, ConfigDict

T = TypeVar("T")


@dataclass(frozen=True)
class _LeftOutWhenNone:
    """Field metadata: None stands for "not in this event"; the field is never sent as null.
    ``set_by_store``: every stored event carries it, though a builder's payload does not yet."""

    set_by_store: bool = False


# A field only some events of the type carry (``attempt`` on ``substep.failed``, …).
Sometimes = Annotated[T | None, _LeftOutWhenNone()]
# ``executionId``, ``timestamp``, ``seq``: added by the store when it appends the event.
SetByStore = Annotated[T | None, _LeftOutWhenNone(set_by_store=True)]


def _wire_schema(schema: dict[str, Any], model: type[BaseModel]) -> None:
    """JSON Schema as a client sees the event: a field is required unless it is only sometimes
    there (the store's fields are always there), a sometimes-field is never null, no defaults."""
    required = []
    for name, field in model.model_fields.items():
        prop = schema["properties"][name]
        prop.pop("default", None)
        prop.pop("title", None)
        marks = [m for m in field.metadata if isinstance(m, _LeftOutWhenNone)]
        if marks and "anyOf" in prop:
            (kept,) = [s for s in prop.pop("anyOf") if s != {"type": "null"}]
            prop.update(kept)
        if field.is_required() or field.default is not None or (marks and marks[0].set_by_store):
            required.append(name)
    schema["required"] = required
    if "description" in schema:  # the docstring, in Markdown's quotes
        schema["description"] = schema["description"].replace("``", "`")


class WireModel(BaseModel):
    """Something sent as JSON: ``wire()`` is its dict, fields in declaration order, absent ones left out.

    Fields are not validated strictly (a status read from the table is a plain ``str``); the tests
    check that what producers send validates and dumps back unchanged."""

    model_config = ConfigDict(frozen=True, json_schema_extra=_wire_schema)
    _left_out_when_none: ClassVar[frozenset[str]] = frozenset()
    _sent_defaults: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        cls._left_out_when_none = frozenset(
            name
            for name, field in cls.model_fields.items()
            if any(isinstance(m, _LeftOutWhenNone) for m in field.metadata)
        )
        # A constant such as ``type`` is sent although it came from its default.
        cls._sent_defaults = frozenset(
            name
            for name, field in cls.model_fields.items()
            if field.default is not None and not field.is_required()
        )

    def model_post_init(self, context: Any) -> None:
        self.__pydantic_fields_set__.update(self._sent_defaults)

    def wire(self) -> dict[str, Any]:
        dumped = self.model_dump(exclude_unset=True)
        return {k: v for k, v in dumped.items() if v is not None or k not in self._left_out_when_none}


class Encoded(NamedTuple):
    """A stored event ready for the wire: encoded once, written to any number of streams."""

    seq: int
    type: str
    frame: bytes


def encode_event(event: Mapping[str, Any]) -> Encoded:
    seq, kind = int(event["seq"]), str(event["type"])
    return Encoded(seq, kind, encode_sse(dumps(event), event=kind, id=seq))


def dumps(payload: Mapping[str, Any]) -> str:
    """Compact JSON, UTF-8 kept as is; the one serialisation used for storage and the wire."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


def encode_sse(
    data: str, *, event: str | None = None, id: int | str | None = None, retry_ms: int | None = None
) -> bytes:
    """One SSE message, as the WHATWG HTML spec parses it.

    ``data`` may contain newlines; each line becomes its own ``data:`` field so the client joins
    them back with ``\\n``. CR and CRLF are normalised first because a bare CR would end a line
    on the client and corrupt the payload. ``event`` and ``id`` must be single-line.
    """
    lines: list[str] = []
    if event is not None:
        _single_line("event", event)
        lines.append(f"event: {event}")
    if id is not None:
        _single_line("id", str(id))
        lines.append(f"id: {id}")
    if retry_ms is not None:
        lines.append(f"retry: {int(retry_ms)}")
    for line in data.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        lines.append(f"data: {line}")
    return ("\n".join(lines) + "\n\n").encode("utf-8")


def encode_retry(retry_ms: int) -> bytes:
    """A message with only ``retry:``: sets the client's reconnection delay, dispatches nothing."""
    return f"retry: {int(retry_ms)}\n\n".encode()


def _single_line(field: str, value: str) -> None:
    if "\n" in value or "\r" in value or "\0" in value:
        raise ValueError(f"SSE {field} must be a single line without NUL: {value!r}")
