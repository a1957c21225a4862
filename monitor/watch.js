// dagcast: follow one execution's event stream in a browser (window.DagcastWatch). One copy of the
// loop that docs/webapp.md describes, shared by the monitor (stream.js, monitor.js) and the example
// web app (examples/webapp/app.js; its backend serves this file as /watch.js):
//
//   - one EventSource listener per event type in EVENT_TYPES (every message is a named event). A
//     type not listed here is never delivered, so the types this file does not know are ignored
//     (docs/compatibility.md);
//   - apply each seq once (skip any seq at or below the last one applied);
//   - a drop (readyState CONNECTING): EventSource reconnects by itself, with Last-Event-ID;
//   - a refusal (readyState CLOSED: 401 the token expired, 403, 404, 429, or CORS blocked it):
//     getToken(executionId) for a fresh eventsUrl, then a new EventSource with ?lastEventId=<last
//     seq applied>, after 0, 1, 2, 4, 8 s; give up after MAX_REFUSALS refusals in a row;
//   - stop at the terminal event, or at a snapshot of an execution that has finished already.
//
// How the page gets a fresh token is its own business (getToken): the monitor calls the REST API
// with its API key, the example page asks its backend. Plain browser JavaScript, no dependencies,
// and a classic script (not an ES module) so that a page opened from a file:// URL can load it.
'use strict';

(function () {
  const EVENT_TYPES = Object.freeze(['execution.created', 'execution.updated', 'execution.completed',
    'execution.failed', 'substep.started', 'substep.completed', 'substep.failed']);
  const TERMINAL = new Set(['execution.completed', 'execution.failed']);
  const MAX_REFUSALS = 5; // refused (re)connects in a row before giving up

  // Follows one execution until it ends, stop() is called, or the stream is refused for good.
  //   executionId:            passed to getToken
  //   access:                 {eventsUrl, streamTokenExpiresAt?} for the first connection (a 202's,
  //                           or POST …/stream-token's answer; no token when auth is off)
  //   lastSeq:                null = start from a snapshot, 0 = the whole history, N = after event N
  //   getToken(executionId):  a promise of a fresh {eventsUrl, streamTokenExpiresAt?}
  //   onEvent(type, payload): once per seq, in order; the snapshot too (payload.snapshot)
  //   onHeartbeat(payload):   a heartbeat (no seq): the connection is alive
  //   onState(state):         connecting | open | reconnecting | refreshing token | closed | failed
  //   onConnect():            each connection opened (the browser's own reconnects too)
  //   onToken(fresh):         each fresh access from getToken, just before it is used
  //   onNote(text):           what the loop did that is not an event (a token refresh)
  //   onGiveUp(message):      the stream was given up (state failed): why
  // Returns {stop(), lastSeq()}.
  function watch({ executionId, access, lastSeq = null, getToken, onEvent, onHeartbeat, onState, onConnect,
    onToken, onNote, onGiveUp }) {
    if (typeof getToken !== 'function') throw new TypeError('DagcastWatch.watch needs getToken(executionId)');
    let es = null;
    let finished = false;
    let refusals = 0;
    let timer = null;
    const state = (s) => onState && onState(s);
    const note = (text) => onNote && onNote(text);

    function connect({ eventsUrl }) {
      const url = new URL(eventsUrl, location.href); // absolute: the stream may be on another origin
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
        // CLOSED: the server refused the connection — 401 (token expired, or bad), 403, 404, 429 —
        // or CORS blocked it. EventSource does not say which, and does not retry.
        source.close();
        refusals += 1;
        reconnectWithFreshToken();
      };
      for (const type of EVENT_TYPES) {
        source.addEventListener(type, (message) => {
          if (source === es && !finished) receive(type, JSON.parse(message.data));
        });
      }
      source.addEventListener('heartbeat', (message) => { // no id, no seq
        if (source === es && !finished && onHeartbeat) onHeartbeat(JSON.parse(message.data));
      });
    }

    function reconnectWithFreshToken() {
      if (refusals > MAX_REFUSALS) {
        const origin = location.origin === 'null' ? 'null: a file:// page, which only * allows' : location.origin;
        return stop('failed', `The stream was refused ${refusals} times in a row; giving up. ` +
          `Does the stream allow this page's origin (DAGCAST_CORS_ORIGINS, CorsOrigins: ${origin})? ` +
          'Is the token good, is the execution there (404), or are there too many streams (429)?');
      }
      state('refreshing token');
      note(`stream refused — getting a fresh token, then ` +
        (lastSeq === null ? 'starting from a snapshot' : `resuming after #${lastSeq}`));
      const wait = refusals === 1 ? 0 : Math.min(1000 * 2 ** (refusals - 2), 15000); // 0, 1, 2, 4, 8 s
      timer = setTimeout(async () => {
        if (finished) return;
        try {
          const fresh = await getToken(executionId);
          if (finished) return; // stopped meanwhile (another execution opened)
          if (onToken) onToken(fresh);
          connect(fresh);
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

  window.DagcastWatch = Object.freeze({ EVENT_TYPES, TERMINAL, MAX_REFUSALS, watch });
})();
