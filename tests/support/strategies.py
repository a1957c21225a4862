"""Hypothesis strategies shared by the hostile-input tests."""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

# any text a client can send: every Unicode character UTF-8 can carry (control characters included)
TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=40)
# what an HTTP header value can hold (printable ASCII)
HEADER = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)
# request handling is slow-ish (real routes, real store): fewer examples, no deadline
HOSTILE = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
