"""What the CLI shows: the trace model an execution's events build, and the views of it.

``model`` (events → state, pure), ``live`` (the rich live view of ``dagcast trace``), ``lines``
(one plain or JSON line per event), ``tables`` (``dagcast ls`` and ``dagcast show``), ``text``
(durations and shortened values, shared by the views) and ``palette`` (the one status → style map
every view colours with).
"""
