"""The ``dagcast`` command: run the local stack, submit jobs, watch executions live.

dagcast up [--port 8000]            the embedded local stack (REST + SSE on 127.0.0.1)
dagcast run JOB.json [--trace]      submit a job and print every event until the end (or watch it
                                    live with --trace); starts a local stack when none answers
dagcast trace [ID]                  watch an execution live in the terminal (the newest without ID)
dagcast ls [--limit 20]             recent executions
dagcast show ID [--since N]         one execution: its tasks and its event history
dagcast deploy / destroy            a stage in AWS (docs/deploy.md)
dagcast api-key                     a REST API key and its digest

Every command and flag, where the URLs come from and the exit codes: docs/cli.md.

``main`` is the console script's entry point (``dagcast = "dagcast.cli:main"``); it lives in
``entry.py`` so that ``dagcast.cli.main`` stays the function and no submodule shadows it.
"""

from .entry import main

__all__ = ["main"]
