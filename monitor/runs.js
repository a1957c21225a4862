// dagcast monitor: the many-run stream (GET /api/v1/dag-executions/events) that keeps the list of
// recent executions live (window.DagcastRuns.watchRuns). Its own small loop, not the client
// package's watchExecution: that one follows one execution by seq, this one a tenant's runs by
// opaque positions. A classic script, loaded after stream.js (whose callApi it uses).
'use strict';

(function () {
  const { callApi } = window.DagcastStream;

  // The many-run stream (GET /api/v1/dag-executions/events): the execution-level events of every
  // execution of the key's tenant (with all of `tags`), live. Its token comes from
  // POST /api/v1/stream-tokens; the browser's EventSource reconnects by itself with Last-Event-ID
  // (ids are opaque positions); a refusal (a token expired: EventSource closes for good) gets a
  // fresh token and reopens with ?lastEventId= the last id seen. With auth off (no tokens: 404) it
  // opens `${eventsBase}/api/v1/dag-executions/events`. Returns {stop()}.
  //   onEvent(type, event) per event; onState('live' | 'reconnecting' | 'failed', message?).
  const RUN_TYPES = ['execution.created', 'execution.updated', 'execution.completed', 'execution.failed'];
  function watchRuns(base, { tags = [], eventsBase = base, onEvent, onState = () => {} }) {
    let source = null;
    let lastId = null;
    let stopped = false;
    let delay = 1000;
    const later = () => {
      if (stopped) return;
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 30000);
    };
    async function connect() {
      let access;
      try {
        access = await callApi(base, '/api/v1/stream-tokens', {
          method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(tags.length ? { tag: tags } : {}),
        });
      } catch (err) {
        if (err.status !== 404) { onState('failed', err.message); return later(); }
        const query = tags.map((t) => `tag=${encodeURIComponent(t)}`).join('&');
        access = { eventsUrl: `${eventsBase}/api/v1/dag-executions/events${query ? `?${query}` : ''}` };
      }
      if (stopped) return;
      const url = new URL(access.eventsUrl);
      if (lastId) url.searchParams.set('lastEventId', lastId);
      source = new EventSource(url.href);
      source.onopen = () => { delay = 1000; onState('live'); };
      for (const type of RUN_TYPES) {
        source.addEventListener(type, (message) => {
          lastId = message.lastEventId || lastId;
          onEvent(type, JSON.parse(message.data));
        });
      }
      source.onerror = () => {
        onState('reconnecting');
        if (source.readyState === EventSource.CLOSED) { source = null; later(); }
      };
    }
    connect();
    return { stop() { stopped = true; if (source) source.close(); } };
  }

  window.DagcastRuns = { watchRuns };
})();
