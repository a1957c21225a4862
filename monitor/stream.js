// dagcast monitor: the REST calls, with the API key when the API wants one, and the event stream of
// one execution through them (window.DagcastStream). The stream loop itself — each seq once, the
// browser's own reconnects after a drop, a fresh token and ?lastEventId= after a refusal, the end —
// is the client package's watchExecution (clients/js; dagcast-client.js, window.Dagcast, built
// from it by `make client` and loaded before this file), which examples/webapp uses too.
// A classic script (not an ES module) so that the page also works opened from a file:// URL.
'use strict';

(function () {
  if (!window.Dagcast) throw new Error('stream.js needs dagcast-client.js, loaded before it');

  class ApiError extends Error {
    constructor(message, status, body) {
      super(message);
      this.status = status;
      this.body = body;
    }
  }

  // The REST API's key, when the API wants one (DAGCAST_API_KEYS; docs/security.md): asked for once
  // and kept for this tab only (sessionStorage), sent as Authorization: Bearer. Stream tokens, not
  // the key, open the event streams.
  const KEY_ITEM = 'dagcast.apiKey';
  const storedKey = () => { try { return sessionStorage.getItem(KEY_ITEM) || ''; } catch (_) { return ''; } };
  function askForKey(message) {
    const key = (window.prompt(`${message}\n\nThe API key (kept for this tab only):`) || '').trim();
    try { if (key) sessionStorage.setItem(KEY_ITEM, key); else sessionStorage.removeItem(KEY_ITEM); } catch (_) { /* private mode */ }
    return key;
  }

  // JSON from the REST API at `base` (no trailing slash); throws ApiError with a readable message.
  async function callApi(base, path, init, asked = false) {
    let response;
    const key = storedKey();
    const headers = { ...((init && init.headers) || {}), ...(key ? { authorization: `Bearer ${key}` } : {}) };
    try {
      response = await fetch(base + path, { cache: 'no-store', ...init, headers });
    } catch (err) { // a network error or a CORS refusal: the browser does not say which
      throw new ApiError(`${err.message}: is the API up at ${base}, and does it allow this page's origin ` +
        `(${location.origin === 'null' ? 'a file:// page sends Origin: null' : location.origin})?`, 0, {});
    }
    const body = await response.json().catch(() => ({}));
    if (response.status === 401 && !asked && /API key/.test(body.error || '')) {
      // Another call may have asked already while this one was on its way.
      const current = storedKey();
      if ((current && current !== key) || askForKey(body.error)) return callApi(base, path, init, true);
    }
    if (!response.ok) {
      const problems = (body.problems || []).map((p) => `\n  ${p.path}: ${p.message}`).join('');
      throw new ApiError(`${response.status}: ${body.error || response.statusText}${problems}`, response.status, body);
    }
    return body;
  }

  const executionPath = (id) => `/api/v1/dag-executions/${encodeURIComponent(id)}`;

  // POST …/stream-token: a fresh {eventsUrl, streamTokenExpiresAt} for one execution (404: unknown
  // id, or auth is off).
  const streamToken = (base, id) => callApi(base, `${executionPath(id)}/stream-token`, { method: 'POST' });

  // Follows one execution through the API at `base` with the client package's watchExecution, and
  // fresh tokens from the REST API (with the key). Returns {stop(), lastSeq()}.
  //   access: {eventsUrl, streamTokenExpiresAt?} for the first connection; lastSeq: null = a
  //   snapshot first, 0 = the whole history; onEvent(type, event) once per seq; onToken(fresh) each
  //   fresh token; onNote(text) what the loop did; onGiveUp(message) why it stopped (state failed);
  //   onState, onConnect, onHeartbeat as watchExecution's.
  function watchExecution(base, { executionId, access, lastSeq = null, onEvent, onToken, onNote, onGiveUp, ...rest }) {
    const watch = window.Dagcast.watchExecution({
      ...rest,
      executionId,
      eventsUrl: access.eventsUrl,
      lastEventId: lastSeq,
      refresh: (id) => {
        if (onNote) {
          const from = watch.lastEventId === null ? 'starting from a snapshot' : `resuming after #${watch.lastEventId}`;
          onNote(`stream refused (token expired?) — getting a fresh token, then ${from}`);
        }
        return streamToken(base, id);
      },
      onRefresh: onToken,
      onEvent: (event) => onEvent(event.type, event),
      onError: (err) => onGiveUp && onGiveUp(err.status === undefined && /refused/.test(err.message)
        ? `${err.message} The page's origin: ${location.origin === 'null' ? 'null (a file:// page, which only * allows)' : location.origin}.`
        : err.message),
    });
    return { stop: () => watch.stop(), lastSeq: () => watch.lastEventId };
  }

  window.DagcastStream = { ApiError, callApi, executionPath, streamToken, watchExecution };
})();
