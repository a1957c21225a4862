"""Which event types a consumer asked for: the stream's ``?types=`` and a webhook's ``types``."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from .errors import InvalidTypeFilter
from .events import ALL_TYPES, HEARTBEAT, SUBSTEP_PROGRESS

# Types a client can filter on (SSE ?types=, webhooks' "types"): every stored type.
FILTERABLE: Final = tuple(t for t in ALL_TYPES if t != HEARTBEAT)
# Types no pattern includes (``substep.*``, a webhook without ``types``): only their exact name.
# Progress is many small events: a consumer asks for it by name or never sees it.
EXPLICIT_ONLY: Final = frozenset({SUBSTEP_PROGRESS})


@dataclass(frozen=True)
class TypeFilter:
    """``substep.completed,execution.*``: exact names and ``prefix.*`` patterns."""

    patterns: tuple[str, ...]

    @classmethod
    def parse(cls, raw: str | None) -> TypeFilter | None:
        """From a comma-separated query string value; None when absent."""
        if raw is None:
            return None
        return cls.of(p.strip() for p in raw.split(",") if p.strip())

    @classmethod
    def of(cls, patterns: Iterable[str]) -> TypeFilter:
        found = tuple(dict.fromkeys(patterns))
        if not found:
            raise InvalidTypeFilter("types must list event types, e.g. types=substep.completed,execution.*")
        for p in found:
            if not any(fnmatch.fnmatchcase(t, p) for t in FILTERABLE) or ("*" in p and not p.endswith(".*")):
                raise InvalidTypeFilter(
                    f"types: {p[:60]!r} matches no event type; use exact names or prefix.* "
                    f"from: {', '.join(FILTERABLE)}"
                )
        return cls(found)

    def matches(self, event_type: str) -> bool:
        if event_type in EXPLICIT_ONLY:
            return event_type in self.patterns
        return any(fnmatch.fnmatchcase(event_type, p) for p in self.patterns)
