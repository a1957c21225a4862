"""A task's result, or an execution's final result, as JSON text read in pieces.

The final result joins every sink's result (``{"1": …, "2": …}``), each up to 4,000,000 bytes, with
no cap on their number: nothing may hold it whole. ``ResultText`` is that text as pieces — literal
JSON and stored task results — with its length known up front and any range read on demand, so a
result page or a preview reads only the chunks it shows. The pieces join into exactly
``json.dumps(combine_sinks(...), ensure_ascii=False)``: results are stored as that same JSON, and
decoding and re-encoding it gives it back unchanged.
"""

from __future__ import annotations

import json
from typing import Any

from ..domain import previews
from ..domain.errors import StoreError
from ..persistence.table import Item
from .ports import ResultSlices

Piece = str | Item  # literal JSON text, or a task whose stored result goes there


class ResultText:
    """JSON text made of pieces; ``chars`` (code points) and ``bytes`` (UTF-8) of the whole."""

    def __init__(self, store: ResultSlices, execution_id: str, pieces: list[tuple[Piece, int]]) -> None:
        """``pieces``: each piece with its length in characters."""
        self._store, self._execution_id = store, execution_id
        self._spans: list[tuple[int, int, Piece]] = []  # (start, stop, piece)
        self.chars = self.bytes = 0
        for piece, length in pieces:
            if isinstance(piece, str):
                size = len(piece.encode())
            else:
                size = int(piece.get("resultBytes", 0)) or len(self._slice(piece, 0, length).encode())
            self._spans.append((self.chars, self.chars + length, piece))
            self.chars, self.bytes = self.chars + length, self.bytes + size

    def read(self, start: int, stop: int) -> str:
        """Characters [start, stop) of the text."""
        out = []
        for begin, end, piece in self._spans:
            if end <= start or begin >= stop or begin == end:
                continue
            out.append(self._slice(piece, max(start, begin) - begin, min(stop, end) - begin))
        return "".join(out)

    def whole(self) -> Any:
        return json.loads(self.read(0, self.chars))

    def preview(self, url: str) -> dict[str, Any]:
        """``events.preview`` of the text, from its first characters only."""
        if self.chars <= previews.RESULT_PREVIEW_CHARS:
            return {"result": self.whole()}
        return {
            "result": self.read(0, previews.RESULT_PREVIEW_CHARS),
            "resultTruncated": True,
            "resultBytes": self.bytes,
            "resultUrl": url,
        }

    def _slice(self, piece: Piece, start: int, stop: int) -> str:
        if isinstance(piece, str):
            return piece[start:stop]
        return self._store.result_slice(self._execution_id, piece, start, stop)


def task_text(store: ResultSlices, execution_id: str, task: Item) -> ResultText | None:
    """The task's result as text; None if it has none (yet, or ever)."""
    length = store.result_chars(execution_id, task)
    return None if length is None else ResultText(store, execution_id, [(task, length)])


def final_text(store: ResultSlices, execution_id: str, sinks: list[int]) -> ResultText:
    """The final result as text: the one sink's (or the result task's) result, else
    ``{"<taskId>": result, …}`` over the sinks that have one, by task id (``views.combine_sinks``)."""
    found: list[tuple[Item, int]] = []
    for task in store.result_tasks(execution_id, sinks):
        length = store.result_chars(execution_id, task)
        if length is not None:
            found.append((task, length))
    if len(sinks) == 1:
        if not found:
            raise StoreError(f"the result task {sinks[0]} of {execution_id} has no result")
        task, length = found[0]
        return ResultText(store, execution_id, [(task, length)])
    pieces: list[tuple[Piece, int]] = []
    for n, (task, length) in enumerate(found):
        key = json.dumps(str(task["taskId"]))
        pieces += [_literal(("{" if n == 0 else ", ") + key + ": "), (task, length)]
    pieces.append(_literal("}" if found else "{}"))
    return ResultText(store, execution_id, pieces)


def _literal(text: str) -> tuple[Piece, int]:
    return text, len(text)
