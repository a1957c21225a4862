"""The live event stream (SSE): the endpoint, where its events come from, the per-process hub,
stream tokens and the ASGI app the SSE function runs. Importing the package builds nothing."""
