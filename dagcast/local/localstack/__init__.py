"""dagcast deployed into a LocalStack you run: ``dagcast up --backend localstack``.

The moto backend (dagcast/local/moto/) emulates Lambda in-process; this one deploys the real
thing into LocalStack (the endpoint in ``$LOCALSTACK_ENDPOINT``, default http://localhost:4566)
through ``localstack_client`` sessions: connection.py finds LocalStack and checks it can run
dagcast, package.py builds the Lambda zip, provision.py creates or updates each resource,
backend.py runs it all for ``up`` and __main__.py removes it (``python -m
dagcast.local.localstack destroy``). This package does not start LocalStack (Docker does, see
docs/local-mode.md#localstack) and keeps no state of its own: LocalStack holds it all.
"""
