"""The REST API's HTTP surface: the route handlers (api), the front gate (gate) and the one map
from domain errors to HTTP answers (errors), which the SSE endpoint asks as well."""
