import { test, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { WatchError, watchExecution } from '../src/index.js';
import { FakeEventSource, probeAnswering, until } from './fake-eventsource.js';
import { recorded } from './helpers.js';

const URL0 = 'https://sse.example/api/v1/dag-executions/x/events?token=t0';
beforeEach(() => FakeEventSource.reset());

test('as an async iterator: every event once, in order, to the terminal event', async () => {
  const events = recorded('completed', 'history');
  const watch = watchExecution({ eventsUrl: URL0, lastEventId: 0, EventSource: FakeEventSource });
  const es = FakeEventSource.last();
  assert.equal(es.url.searchParams.get('lastEventId'), '0');
  assert.equal(es.url.searchParams.get('token'), 't0');
  es.open();
  for (const e of events) { es.send(e); es.send(e); } // each twice: delivered once
  const seen = [];
  for await (const e of watch) seen.push(e.seq);
  assert.deepEqual(seen, events.map((e) => e.seq));
  assert.equal(watch.state, 'closed');
  assert.ok(es.closed);
  assert.equal(await watch.done, events.at(-1).seq);
});

test('as callbacks: a drop is left to EventSource, which resumes by itself', async () => {
  const events = recorded('completed', 'live');
  const got = [];
  const states = [];
  watchExecution({ eventsUrl: URL0, EventSource: FakeEventSource, onEvent: (e) => got.push(e.seq), onState: (s) => states.push(s) });
  const es = FakeEventSource.last();
  assert.equal(es.url.searchParams.has('lastEventId'), false); // a snapshot first
  es.open();
  es.send(events[0]);
  es.drop();
  es.open();
  for (const e of events.slice(1)) es.send(e);
  assert.equal(FakeEventSource.made.length, 1); // no new EventSource for a drop
  assert.deepEqual(got, events.map((e) => e.seq));
  assert.deepEqual(states, ['connecting', 'open', 'reconnecting', 'open', 'closed']);
});

test('a refused token (401): a fresh URL from refresh(), then a resume after the last seq', async () => {
  const events = recorded('completed', 'history');
  const { fetch, calls } = probeAnswering([401]);
  const refreshed = [];
  const got = [];
  const watch = watchExecution({
    eventsUrl: URL0, executionId: 'x', lastEventId: 0, EventSource: FakeEventSource, fetch,
    refresh: async (id) => { refreshed.push(id); return { eventsUrl: URL0.replace('t0', 't1'), streamTokenExpiresAt: 9 }; },
    onEvent: (e) => got.push(e.seq),
  });
  const first = FakeEventSource.last();
  first.open();
  for (const e of events.slice(0, 4)) first.send(e);
  first.refuse(); // the browser's reconnect after a cut, with an expired token
  await until(() => FakeEventSource.made.length === 2, 'a new EventSource');
  assert.deepEqual(refreshed, ['x']);
  assert.equal(calls[0].method, 'HEAD');
  assert.equal(calls[0].url.searchParams.get('lastEventId'), '4');
  const second = FakeEventSource.last();
  assert.equal(second.url.searchParams.get('token'), 't1');
  assert.equal(second.url.searchParams.get('lastEventId'), '4');
  second.open();
  for (const e of events.slice(2)) second.send(e); // an overlap: skipped
  assert.deepEqual(got, events.map((e) => e.seq));
  assert.equal(await watch.done, events.at(-1).seq);
});

test('the 204 end: resuming at the terminal event ends the watch, with no refresh and no error', async () => {
  const { fetch } = probeAnswering([204]);
  let refreshes = 0;
  const watch = watchExecution({ eventsUrl: URL0, lastEventId: 15, EventSource: FakeEventSource, fetch,
    refresh: () => { refreshes += 1; return URL0; } });
  FakeEventSource.last().refuse();
  assert.equal(await watch.done, 15);
  assert.equal(watch.state, 'closed');
  assert.equal(refreshes, 0);
  assert.equal(FakeEventSource.made.length, 1);
});

test('a refusal the probe cannot explain (CORS, network): refreshed as an expired token', async () => {
  const { fetch } = probeAnswering([0]);
  let refreshes = 0;
  watchExecution({ eventsUrl: URL0, EventSource: FakeEventSource, fetch, refresh: () => { refreshes += 1; return URL0; } });
  FakeEventSource.last().refuse();
  await until(() => FakeEventSource.made.length === 2, 'a new EventSource');
  assert.equal(refreshes, 1);
});

test('404 gives up at once, saying the status; the iterator throws it', async () => {
  const { fetch } = probeAnswering([404]);
  const errors = [];
  const watch = watchExecution({ eventsUrl: URL0, EventSource: FakeEventSource, fetch, refresh: () => URL0, onError: (e) => errors.push(e) });
  FakeEventSource.last().refuse();
  await assert.rejects(async () => { for await (const _ of watch); }, (err) => err instanceof WatchError && err.status === 404);
  assert.equal(errors.length, 1);
  assert.equal(watch.state, 'failed');
});

test('refusals in a row: gives up after maxRefusals', async () => {
  const { fetch } = probeAnswering([429, 429, 429]);
  const watch = watchExecution({ eventsUrl: URL0, EventSource: FakeEventSource, fetch, maxRefusals: 1 });
  FakeEventSource.last().refuse();
  await until(() => FakeEventSource.made.length === 2, 'a retry');
  FakeEventSource.last().refuse(); // the second in a row: over the limit
  await assert.rejects(watch.done, /refused 2 times in a row/);
});

test('types: the filter goes in the URL with the terminal types, and a type named there is listened for', async () => {
  const got = [];
  watchExecution({ eventsUrl: URL0, EventSource: FakeEventSource, types: ['substep.*', 'substep.waiting'], onEvent: (e) => got.push(e.type) });
  const es = FakeEventSource.last();
  assert.deepEqual(es.url.searchParams.get('types').split(','),
    ['substep.*', 'substep.waiting', 'execution.completed', 'execution.failed']);
  assert.ok(!('execution.created' in es.listeners));
  es.open();
  es.send({ type: 'substep.waiting', seq: 3, taskId: 1 }); // newer than this client, asked for by name
  es.send({ type: 'substep.progress', seq: 4, taskId: 1, delta: 'a', offset: 0 });
  es.send({ type: 'execution.completed', seq: 9, status: 'completed' });
  assert.deepEqual(got, ['substep.waiting', 'substep.progress', 'execution.completed']);
  assert.equal(es.closed, true);
});

test('a snapshot of a finished execution is the end (no terminal event follows it)', async () => {
  const [snapshot] = recorded('failed', 'final');
  const watch = watchExecution({ eventsUrl: URL0, EventSource: FakeEventSource });
  FakeEventSource.last().open();
  FakeEventSource.last().send(snapshot);
  assert.equal(await watch.done, snapshot.seq);
});

test('stop() closes the stream and ends the iterator', async () => {
  const watch = watchExecution({ eventsUrl: URL0, EventSource: FakeEventSource });
  const iterator = watch[Symbol.asyncIterator]();
  const pending = iterator.next();
  watch.stop();
  assert.deepEqual(await pending, { value: undefined, done: true });
  assert.ok(FakeEventSource.last().closed);
});
