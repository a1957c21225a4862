"""dagcast on one machine: ``dagcast up`` and what it runs.

Two backends provide the AWS side: moto/ (the embedded stack, the default; no Docker, no
account) and localstack/ (dagcast deployed into a LocalStack you run). Shared by both: server.py
(the HTTP front, REST API + SSE on one port), lambdas.py (the functions' names and the scheduled
event) and launch.py (``dagcast up`` as a child process, for tests and benchmarks).
"""
