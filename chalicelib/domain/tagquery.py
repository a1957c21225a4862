"""A tag query (``?tag=`` of the many-run stream, ``{"tag": …}`` of a stream token): the tags an
execution must all carry, checked and in one canonical form (sorted, unique), so that a token and
a stream compare them as equal whatever order they were written in.

It does not say which tags a job may carry (that is the job's validation) nor where they are read
(``persistence.keys.META_TAGS``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

from .errors import BadRequest

MAX_TAGS: Final = 20
_TAG = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


def tag_query(values: Iterable[object]) -> tuple[str, ...]:
    tags = []
    for value in values:
        if not isinstance(value, str) or not _TAG.fullmatch(value):
            raise BadRequest(f"a tag is 1-64 characters of [A-Za-z0-9_.:-], got {str(value)[:80]!r}")
        tags.append(value)
    query = tuple(sorted(set(tags)))
    if len(query) > MAX_TAGS:
        raise BadRequest(f"at most {MAX_TAGS} tags, got {len(query)}")
    return query
