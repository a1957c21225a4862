// dagcast monitor: the REST calls, with the API key when the API wants one, and the event stream of
// one execution through them (window.DagcastStream). The stream loop itself — each seq once, the
// browser's own reconnects after a drop, a fresh token and ?lastEventId= after a refusal, the end —
// is watch.js (window.DagcastWatch), shared with examples/webapp and loaded before this file.
// A classic script (not an ES module) so that the page also works opened from a file:// URL.
'use strict';

(function () {
  if (!window.DagcastWatch) throw new Error('stream.js needs watch.js, loaded before it');

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

  // Follows one execution through the API at `base`: the shared loop (watch.js, DagcastWatch.watch),
  // with fresh tokens from the REST API (with the key). The options are DagcastWatch.watch's but
  // getToken. Returns {stop(), lastSeq()}.
  function watchExecution(base, options) {
    return window.DagcastWatch.watch({ ...options, getToken: (id) => streamToken(base, id) });
  }

  window.DagcastStream = { ApiError, callApi, executionPath, streamToken, watchExecution };
})();
