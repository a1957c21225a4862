"""The domain: what a job, a task, an execution and an event are, and the errors they raise.

No I/O here and no AWS client: persistence, orchestration, the HTTP surfaces and the CLI all speak
these types. ``dag.py`` asks the kind registry (``chalicelib.kinds``) which task kinds exist and
how their parameters validate; it runs none of them.
"""
