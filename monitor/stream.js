// dagcast monitor: the REST calls and the event stream of one execution (window.DagcastStream).
// The same loop as examples/webapp/app.js and docs/webapp.md ("Plain JavaScript"): apply each seq
// once, let EventSource reconnect by itself after a drop (it sends Last-Event-ID), get a fresh
// token and resume with ?lastEventId= after a refusal (401: the token expired), stop at the end.
// A classic script (not an ES module) so that the page also works opened from a file:// URL.
'use strict';

(function () {
  const EVENT_TYPES = ['execution.created', 'execution.updated', 'execution.completed', 'execution.failed',
    'substep.started', 'substep.completed', 'substep.failed'];
  const TERMINAL = new Set(['execution.completed', 'execution.failed']);
  const MAX_REFUSALS = 5; // refused (re)connects in a row before giving up

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

  // Follows one execution. lastSeq: null = start from a snapshot, 0 = the whole history, N = after N.
  //   access:     {eventsUrl, streamTokenExpiresAt?} (the 202's or POST …/stream-token's answer)
  //   onEvent(type, payload): once per seq, in order; the snapshot too (payload.snapshot)
  //   onState(state):         connecting | open | reconnecting | refreshing token | closed | failed
  //   onHeartbeat(payload), onNote(text), onGiveUp(message), onConnect()
  //   refresh():              a promise of a fresh access (POST …/stream-token)
  // Returns {stop()}.
  function watchExecution({ access, lastSeq = null, refresh, onEvent, onState, onHeartbeat, onNote, onGiveUp, onConnect }) {
    let es = null;
    let finished = false;
    let refusals = 0;
    let timer = null;
    const state = (s) => onState && onState(s);
    const note = (text) => onNote && onNote(text);

    function connect({ eventsUrl }) {
      const url = new URL(eventsUrl, location.href);
      // Resume after the last event applied. (The browser's own reconnects send a Last-Event-ID
      // header instead; the server prefers it to this parameter.)
      if (lastSeq !== null) url.searchParams.set('lastEventId', String(lastSeq));
      const source = new EventSource(url);
      es = source;
      state('connecting');
      source.onopen = () => {
        if (source !== es) return;
        refusals = 0;
        state('open');
        if (onConnect) onConnect();
      };
      source.onerror = () => {
        if (finished || source !== es) return;
        if (source.readyState === EventSource.CONNECTING) {
          state('reconnecting'); // a drop: the browser retries after `retry:` ms, with Last-Event-ID
          return;
        }
        // CLOSED: refused (401 token expired or bad, 403, 404, 429) or blocked by CORS.
        source.close();
        refusals += 1;
        reconnectWithFreshToken();
      };
      for (const type of EVENT_TYPES) {
        source.addEventListener(type, (message) => {
          if (source === es && !finished) receive(type, JSON.parse(message.data));
        });
      }
      source.addEventListener('heartbeat', (message) => {
        if (source === es && !finished && onHeartbeat) onHeartbeat(JSON.parse(message.data));
      });
    }

    function reconnectWithFreshToken() {
      if (refusals > MAX_REFUSALS) {
        return stop('failed', `The stream was refused ${refusals} times in a row; giving up. Check the ` +
          'token, the CORS origins of the stream (DAGCAST_CORS_ORIGINS / CorsOrigins) and the stream limits (429).');
      }
      state('refreshing token');
      note(`stream refused — getting a fresh token, then ` +
        (lastSeq === null ? 'starting from a snapshot' : `resuming after #${lastSeq}`));
      const wait = refusals === 1 ? 0 : Math.min(1000 * 2 ** (refusals - 2), 15000); // 0, 1, 2, 4, 8 s
      timer = setTimeout(async () => {
        if (finished) return;
        try {
          const fresh = await refresh();
          if (!finished) connect(fresh);
        } catch (err) {
          if (!finished) stop('failed', `Could not get a new stream token: ${err.message}`);
        }
      }, wait);
    }

    function receive(type, data) {
      if (data.snapshot) { // a connect without a resume point: the state as of event #seq
        lastSeq = Math.max(lastSeq ?? 0, data.seq);
        onEvent(type, data);
        if (data.status !== 'running') stop('closed'); // finished already: no terminal event follows
        return;
      }
      if (lastSeq !== null && data.seq <= lastSeq) return; // applied already: each seq once
      lastSeq = data.seq;
      onEvent(type, data);
      if (TERMINAL.has(type)) stop('closed');
    }

    function stop(final, error) {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      if (es) es.close();
      state(final);
      if (error && onGiveUp) onGiveUp(error);
    }

    connect(access);
    return { stop: () => stop('closed'), lastSeq: () => lastSeq };
  }

  window.DagcastStream = { EVENT_TYPES, TERMINAL, ApiError, callApi, executionPath, watchExecution };
})();
