// Generated from clients/js/src by clients/js/scripts/build-global.mjs (`make client`): do not edit.
// @dagcast/client as a classic script: window.Dagcast = {watchExecution, fold, …} (clients/js/README.md).
(function () {
'use strict';
// ---- src/events.js
// Event names and the parsing of one event: what the stream sends, as the client reads it.
//
// Open by design (docs/compatibility.md): a type this file does not know is parsed like any other
// (it keeps every field) and folded into nothing; a field it does not know is kept. Only what
// cannot be an event at all (not JSON, not an object, a stored event without a seq) is an error.

/** The types this client knows. The stream sends only named events, so a watcher listens for these
 * and for the ones its caller names (`types`); anything newer is ignored unless asked for. */
const EVENT_TYPES = Object.freeze([
  'execution.created', 'execution.updated', 'execution.completed', 'execution.failed',
  'substep.started', 'substep.progress', 'substep.completed', 'substep.failed', 'substep.waiting',
]);

/** The events that end an execution's stream (and nothing else does). */
const TERMINAL_TYPES = Object.freeze(['execution.completed', 'execution.failed']);

const HEARTBEAT = 'heartbeat';

class EventParseError extends Error {}

/** One event from an SSE message's data (a JSON text) or an object already parsed. `type` is the
 * SSE event name, used when the data says none. Heartbeats carry no seq; every other event must. */
function parseEvent(data, type) {
  let event = data;
  if (typeof data === 'string') {
    try {
      event = JSON.parse(data);
    } catch (err) {
      throw new EventParseError(`not JSON: ${err.message}`);
    }
  }
  if (event === null || typeof event !== 'object' || Array.isArray(event)) {
    throw new EventParseError('an event is a JSON object');
  }
  if (typeof event.type !== 'string') {
    if (typeof type !== 'string') throw new EventParseError('an event without a type');
    event = { ...event, type };
  }
  if (event.type !== HEARTBEAT && !Number.isInteger(event.seq)) {
    throw new EventParseError(`a ${event.type} event without a seq`);
  }
  return event;
}

const isTerminal = (event) => TERMINAL_TYPES.includes(event.type);

/** A snapshot of an execution that has finished: the stream ends after it, no terminal event follows. */
const isFinalSnapshot = (event) => event.snapshot === true && event.status !== 'running';
// ---- src/fold.js
// fold(state, event) → the execution's state after the event: pure, no I/O, never mutates its
// arguments (a new object wherever something changed, the rest shared), so it is a React reducer
// as it is and its result can be compared by reference.
//
// - Each seq counts once: an event at or below the last seq applied changes nothing, so events
//   may be folded twice (a replay after a reconnect) without harm.
// - The snapshot (execution.updated with snapshot: true) replaces the state as of its seq.
// - substep.progress: `delta` is placed at `offset` in the attempt's text, never appended: the text
//   a snapshot already holds may include deltas sent after it, and placing the same characters at
//   the same place again changes nothing. A delta of an older attempt is ignored; a newer attempt
//   starts its text again. `progress` ({done, total, message}) replaces the last one.
// - Types this file does not know change nothing but lastSeq (docs/compatibility.md), and fields
//   it does not know are kept on the task or ignored.

const FINISHED = new Set(['completed', 'failed', 'cancelled']);
const COUNTERS = ['totalTasks', 'completedTasks', 'failedTasks', 'skippedTasks', 'runningTasks', 'waitingTasks'];

/** The state before any event. `executionId` is optional (the first event carries it). */
function initialState(executionId) {
  return {
    executionId,
    status: 'unknown', // running | completed | failed | cancelled once an event says
    lastSeq: null, // the seq of the last event applied (the snapshot's seq after a snapshot)
    events: 0, // events applied (the snapshot counts one)
    tasks: {}, // by taskId
    done: false, // a terminal event, or a snapshot of a finished execution
  };
}

function fold(state, event) {
  if (!event || typeof event.type !== 'string' || event.type === 'heartbeat') return state;
  if (event.snapshot === true) return fromSnapshot(state, event);
  if (!Number.isInteger(event.seq)) return state;
  if (state.lastSeq !== null && event.seq <= state.lastSeq) return state; // applied already
  const next = { ...state, lastSeq: event.seq, events: state.events + 1 };
  if (next.executionId === undefined && event.executionId) next.executionId = event.executionId;
  const apply = APPLY[event.type];
  return apply ? apply(next, event) : next;
}

const APPLY = {
  'execution.created': (s, e) => ({ ...s, status: 'running', totalTasks: e.totalTasks, originalRequest: e.originalRequest,
    createdAt: e.timestamp }),
  'execution.updated': (s, e) => ({ ...s, status: e.status, ...counters(e) }),
  'execution.completed': (s, e) => ({ ...s, ...counters(e), ...pick(e, ['status', 'durationMs', 'finalResult',
    'finalResultTruncated', 'finalResultBytes', 'finalResultUrl']), done: true }),
  'execution.failed': (s, e) => ({ ...s, ...counters(e), ...pick(e, ['status', 'reason', 'error', 'durationMs']),
    done: true }),
  'substep.started': (s, e) => withTask(s, e.taskId, (t) => {
    const fresh = e.attempt !== t.attempt ? { text: '', textOffset: 0, progress: undefined } : {};
    return { ...t, ...fresh, status: 'running', description: e.description, attempt: e.attempt, startedAt: e.timestamp,
      error: undefined, reason: undefined };
  }),
  'substep.progress': (s, e) => withTask(s, e.taskId, (t) => progress(t, e)),
  'substep.completed': (s, e) => withTask(s, e.taskId, (t) => ({
    ...t, status: 'completed', error: undefined, reason: undefined, finishedAt: e.timestamp,
    ...pick(e, ['attempt', 'durationMs', 'result', 'resultTruncated', 'resultBytes', 'resultUrl']),
  })),
  'substep.waiting': (s, e) => withTask(s, e.taskId, (t) => ({ // an approval task: Approve / Reject
    ...t, status: 'awaiting_decision', ...pick(e, ['description', 'prompt', 'timeoutSeconds', 'decisionDeadline']),
  })),
  'substep.failed': (s, e) => withTask(s, e.taskId, (t) => ({
    ...t, status: failedStatus(e, t), error: e.error, reason: e.reason, finishedAt: e.willRetry ? undefined : e.timestamp,
    ...pick(e, ['attempt', 'durationMs', 'willRetry', 'retryInSeconds', 'upstreamTaskIds']),
  })),
};

function fromSnapshot(state, e) {
  const tasks = {};
  for (const t of e.tasks || []) tasks[t.taskId] = { text: '', textOffset: 0, ...t };
  const { tasks: _, snapshot: __, type: ___, seq, timestamp: ____, ...execution } = e;
  const lastSeq = state.lastSeq === null ? seq : Math.max(state.lastSeq, seq);
  return { ...initialState(e.executionId), ...execution, lastSeq, events: state.events + 1, tasks,
    done: FINISHED.has(e.status) };
}

function progress(task, e) {
  if (task.attempt !== undefined && e.attempt !== undefined && e.attempt < task.attempt) return task; // a late one
  let t = task;
  if (e.attempt !== undefined && e.attempt !== t.attempt) { // its substep.started was not seen
    t = { ...t, attempt: e.attempt, status: 'running', text: '', textOffset: 0, progress: undefined };
  }
  if (typeof e.delta === 'string') t = placeText(t, e.delta, Number.isInteger(e.offset) ? e.offset : undefined);
  if (e.progress && typeof e.progress === 'object') t = { ...t, progress: e.progress };
  return t;
}

/** The delta written at `offset` (characters of the attempt's text before it). `textOffset` is
 * where the task's `text` starts: 0 unless a snapshot held only the text's end, or a delta came
 * after a gap (then the text starts again there rather than mixing the two). */
function placeText(task, delta, offset) {
  const text = task.text || '';
  const start = task.textOffset || 0;
  const at = offset === undefined ? start + text.length : offset; // no offset: after what is there
  if (at + delta.length <= start) return task; // wholly before the text we hold
  if (at > start + text.length) return { ...task, text: delta, textOffset: at }; // a gap
  const from = Math.max(at, start);
  const piece = delta.slice(from - at);
  const local = from - start;
  const placed = text.slice(0, local) + piece + text.slice(local + piece.length);
  return placed === text ? task : { ...task, text: placed };
}

function failedStatus(e, task) {
  if (e.willRetry) return 'retrying';
  if (e.reason === 'cancelled') return 'cancelled';
  if (e.reason === 'skipped' || (e.reason === 'timeout' && e.attempt === undefined && task.attempt === undefined)) {
    return 'skipped';
  }
  return 'failed';
}

function withTask(state, taskId, change) {
  if (taskId === undefined) return state;
  const before = state.tasks[taskId] || { taskId, status: 'waiting', text: '', textOffset: 0 };
  const after = change(before);
  return after === before ? state : { ...state, tasks: { ...state.tasks, [taskId]: after } };
}

function counters(e) {
  return pick(e, COUNTERS);
}

function pick(e, keys) {
  const out = {};
  for (const k of keys) if (e[k] !== undefined) out[k] = e[k];
  return out;
}
// ---- src/sse.js
// The text/event-stream format read from text: for recorded streams, tests, and runtimes without
// EventSource (read a fetch body, feed the text here). The browser path uses EventSource, which
// does this itself. Follows the HTML standard's parsing rules (a leading BOM, CRLF/CR/LF, comments,
// `field` with no colon, one optional space after the colon, `data` lines joined by "\n", an id
// with NUL ignored, a message without data not dispatched).

/** Every message of an event-stream text, in order: {event, data, id, retry?}. `id` is the last
 * event id in effect (as EventSource's lastEventId), `event` defaults to "message". */
function parseSse(text) {
  const messages = [];
  let data = [];
  let event = '';
  let lastId = '';
  let retry;
  const lines = text.replace(/^\uFEFF/, '').split(/\r\n|\r|\n/);
  for (const line of lines) {
    if (line === '') {
      if (data.length > 0) {
        const message = { event: event || 'message', data: data.join('\n'), id: lastId };
        if (retry !== undefined) message.retry = retry;
        messages.push(message);
      }
      data = [];
      event = '';
      retry = undefined;
      continue;
    }
    if (line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') data.push(value);
    else if (field === 'event') event = value;
    else if (field === 'id' && !value.includes('\0')) lastId = value;
    else if (field === 'retry' && /^\d+$/.test(value)) retry = Number(value);
  }
  return messages;
}
// ---- src/watch.js
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


const MAX_REFUSALS = 5;

class WatchError extends Error {
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
function watchExecution(options) {
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
window.Dagcast = Object.freeze({ EVENT_TYPES, TERMINAL_TYPES, HEARTBEAT, EventParseError, parseEvent, isTerminal, isFinalSnapshot, initialState, fold, placeText, parseSse, WatchError, watchExecution });
})();
