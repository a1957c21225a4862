// watchExecution: follow one execution's event stream to its end, as callbacks and as an async
// iterator, over EventSource (docs/webapp.md). What it does, and why:
//
// - One listener per event type (every message is a named event): the types this client knows,
//   and any exact name the caller lists in `types` (a type newer than this client is ignored
//   unless asked for by name: docs/compatibility.md).
// - Each seq once: anything at or below the last seq delivered is skipped (a new EventSource after
//   a refresh, or a snapshot whose seq was delivered already).
// - A drop (readyState CONNECTING): EventSource reconnects by itself with Last-Event-ID.
// - A refusal (readyState CLOSED): EventSource does not say why, so one HEAD request to the same
//   URL asks (the stream answers HEAD as GET, CORS included): 204 → the execution is over (the
//   resume point is its terminal event), the end; 401 → the token expired: a fresh URL from
//   `refresh(executionId)`, then resume with ?lastEventId=; 429/5xx/200 → the same URL again after a
//   wait; 400/403/404 → give up, saying the status. When HEAD cannot say (a network error, CORS),
//   refresh as for 401. Waits 0, 1, 2, 4, 8 s between refusals in a row; gives up after
//   `maxRefusals` of them.
// - The end: a terminal event, a snapshot of a finished execution (no terminal event follows), the
//   204, stop(), or giving up. With `types`, the terminal types are always asked for too, so the
//   end is always seen.

import { EVENT_TYPES, HEARTBEAT, TERMINAL_TYPES, isFinalSnapshot, isTerminal, parseEvent } from './events.js';

const MAX_REFUSALS = 5;

export class WatchError extends Error {
  constructor(message, status) {
    super(message);
    this.name = 'WatchError';
    this.status = status; // the HTTP status that ended it, when one did
  }
}

/**
 * options: {eventsUrl, executionId?, refresh?, lastEventId?, types?, onEvent?, onHeartbeat?,
 *           onState?, onConnect?, onRefresh?, onEnd?, onError?, maxRefusals?, EventSource?, fetch?}
 * Returns a Watch: {stop(), lastEventId, state, done (a promise of how it ended),
 * [Symbol.asyncIterator]} — iterate it, or pass callbacks, or both.
 */
export function watchExecution(options) {
  return new Watch(options);
}

class Watch {
  constructor({ eventsUrl, executionId, refresh, lastEventId = null, types, onEvent, onHeartbeat, onState,
    onConnect, onRefresh, onEnd, onError, maxRefusals = MAX_REFUSALS, EventSource: ES, fetch: fetchImpl } = {}) {
    if (!eventsUrl) throw new TypeError('watchExecution needs eventsUrl (the stream URL the API answered)');
    this.executionId = executionId;
    this.refresh = refresh;
    this.lastEventId = lastEventId;
    this.callbacks = { onEvent, onHeartbeat, onState, onConnect, onRefresh, onEnd, onError };
    this.maxRefusals = maxRefusals;
    this.ES = ES || globalThis.EventSource;
    this.fetch = fetchImpl || (globalThis.fetch && globalThis.fetch.bind(globalThis));
    if (!this.ES) throw new TypeError('no EventSource here: pass one (options.EventSource)');
    this.types = types && types.length ? [...new Set([...types, ...TERMINAL_TYPES])] : null;
    this.listen = this.types ? listenedTypes(this.types) : [...EVENT_TYPES];
    this.state = 'idle';
    this.refusals = 0;
    this.finished = false;
    // Events for the iterator: kept from the start when there is no onEvent (the caller iterates,
    // maybe after an await), else only once an iterator is asked for (nothing kept for nobody).
    this.queue = onEvent ? null : [];
    this.waiting = null;
    this.done = new Promise((resolve, reject) => { this.settle = { resolve, reject }; });
    this.done.catch(() => {}); // a give-up is reported through onError or the iterator too
    this.url = eventsUrl;
    this.connect();
  }

  stop() {
    this.finish('closed');
  }

  connect() {
    const source = new this.ES(this.streamUrl(this.url).toString());
    this.source = source;
    this.setState('connecting');
    source.onopen = () => {
      if (source !== this.source || this.finished) return;
      this.refusals = 0;
      this.setState('open');
      this.call('onConnect');
    };
    source.onerror = () => {
      if (source !== this.source || this.finished) return;
      if (source.readyState === this.ES.CONNECTING) return this.setState('reconnecting'); // a drop
      source.close();
      this.refused();
    };
    for (const type of this.listen) {
      source.addEventListener(type, (message) => {
        if (source === this.source && !this.finished) this.receive(message.data, type);
      });
    }
    source.addEventListener(HEARTBEAT, (message) => {
      if (source === this.source && !this.finished) this.call('onHeartbeat', parseEvent(message.data, HEARTBEAT));
    });
  }

  streamUrl(url) {
    const base = globalThis.location && globalThis.location.href;
    const u = base ? new URL(url, base) : new URL(url);
    // A new EventSource has no Last-Event-ID yet: the resume point goes in the URL. (The browser's
    // own reconnects send the header, which the server prefers.)
    if (this.lastEventId !== null) u.searchParams.set('lastEventId', String(this.lastEventId));
    if (this.types) u.searchParams.set('types', this.types.join(','));
    return u;
  }

  receive(data, type) {
    let event;
    try {
      event = parseEvent(data, type);
    } catch (err) {
      return this.finish('failed', new WatchError(`the stream sent something that is not an event: ${err.message}`));
    }
    if (event.snapshot === true) {
      this.lastEventId = Math.max(this.lastEventId ?? 0, event.seq);
    } else {
      if (this.lastEventId !== null && event.seq <= this.lastEventId) return; // delivered already
      this.lastEventId = event.seq;
    }
    this.deliver(event);
    if (isTerminal(event) || isFinalSnapshot(event)) this.finish('closed');
  }

  async refused() {
    this.refusals += 1;
    if (this.refusals > this.maxRefusals) {
      return this.finish('failed', new WatchError(`the stream was refused ${this.refusals} times in a row; ` +
        'is the token good, does the stream allow this origin (DAGCAST_CORS_ORIGINS), ' +
        'is the execution there, are there too many streams?'));
    }
    const wait = this.refusals === 1 ? 0 : Math.min(1000 * 2 ** (this.refusals - 2), 15000);
    this.setState('refreshing');
    await new Promise((resolve) => { this.timer = setTimeout(resolve, wait); });
    if (this.finished) return;
    const status = await this.probe();
    if (this.finished) return;
    if (status === 204) return this.finish('closed'); // resumed at the terminal event: the end
    if (status === 400 || status === 403 || status === 404) {
      return this.finish('failed', new WatchError(`the stream answered ${status}`, status));
    }
    if (status === 401 || status === undefined) {
      if (!this.refresh) {
        return this.finish('failed', new WatchError('the stream token was refused and there is no refresh()', 401));
      }
      try {
        const fresh = await this.refresh(this.executionId);
        if (this.finished) return;
        this.url = typeof fresh === 'string' ? fresh : fresh.eventsUrl;
        this.call('onRefresh', fresh);
      } catch (err) {
        return this.finish('failed', new WatchError(`could not get a fresh stream URL: ${err.message}`));
      }
    }
    this.connect(); // 429, 5xx, 200 (it would work now): the same URL again
  }

  // Why the stream was refused: its status from a HEAD to the same URL; undefined when it cannot be
  // read (a network error, CORS, no fetch). The answer is not read: headers are enough.
  async probe() {
    if (!this.fetch) return undefined;
    const abort = typeof AbortController === 'function' ? new AbortController() : null;
    try {
      const response = await this.fetch(this.streamUrl(this.url).toString(),
        { method: 'HEAD', cache: 'no-store', signal: abort && abort.signal });
      return response.status;
    } catch (_) {
      return undefined;
    } finally {
      if (abort) abort.abort();
    }
  }

  deliver(event) {
    this.call('onEvent', event);
    if (!this.queue) return;
    if (this.waiting) {
      this.waiting.resolve({ value: event, done: false });
      this.waiting = null;
    } else {
      this.queue.push(event);
    }
  }

  finish(state, error) {
    if (this.finished) return;
    this.finished = true;
    clearTimeout(this.timer);
    if (this.source) this.source.close();
    this.setState(state);
    if (error) {
      this.call('onError', error);
      this.settle.reject(error);
    } else {
      this.call('onEnd', this.lastEventId);
      this.settle.resolve(this.lastEventId);
    }
    if (this.waiting) {
      if (error) this.waiting.reject(error);
      else this.waiting.resolve({ value: undefined, done: true });
      this.waiting = null;
    }
  }

  setState(state) {
    this.state = state;
    this.call('onState', state);
  }

  call(name, ...args) {
    const fn = this.callbacks[name];
    if (fn) fn(...args);
  }

  [Symbol.asyncIterator]() {
    if (!this.queue) this.queue = [];
    return {
      next: () => {
        if (this.queue.length) return Promise.resolve({ value: this.queue.shift(), done: false });
        if (this.finished) {
          return this.done.then(() => ({ value: undefined, done: true }));
        }
        return new Promise((resolve, reject) => { this.waiting = { resolve, reject }; });
      },
      return: () => {
        this.stop();
        return Promise.resolve({ value: undefined, done: true });
      },
      [Symbol.asyncIterator]() { return this; },
    };
  }
}

// The types to listen for: exact names, and every known type a `prefix.*` pattern matches.
function listenedTypes(types) {
  const out = new Set();
  for (const t of types) {
    if (t.endsWith('.*')) for (const k of EVENT_TYPES) { if (k.startsWith(t.slice(0, -1))) out.add(k); }
    else out.add(t);
  }
  return [...out];
}
