import { test, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { register } from 'node:module';
import { FakeEventSource, probeAnswering, until } from './fake-eventsource.js';
import { recorded } from './helpers.js';

register('./react-loader.mjs', import.meta.url);
const { useExecution } = await import('../src/react.js');
const { render } = await import('./fake-react.js');

const URL0 = 'https://sse.example/api/v1/dag-executions/x/events?token=t0';
beforeEach(() => FakeEventSource.reset());
// watchExecution finds EventSource on globalThis, as in a browser.
globalThis.EventSource = FakeEventSource;

test('useExecution: the state folded from the stream, and the stream closed on unmount', () => {
  const events = recorded('completed', 'live');
  const view = render((props) => useExecution(props), { executionId: 'x', eventsUrl: URL0 });
  assert.equal(FakeEventSource.made.length, 1);
  const es = FakeEventSource.last();
  es.open();
  assert.equal(view.output.connection, 'open');
  for (const e of events.slice(0, -1)) es.send(e);
  assert.equal(view.output.status, 'running');
  es.send(events.at(-1));
  assert.equal(view.output.status, 'completed');
  assert.equal(view.output.finalResult, 'slow: slept 0.8s, fast: fast');
  assert.equal(view.output.connection, 'closed');

  const other = render((props) => useExecution(props), { executionId: 'y', eventsUrl: URL0 });
  other.unmount();
  assert.ok(FakeEventSource.last().closed);
});

test('useExecution: a new execution closes the old stream and starts from a fresh state', () => {
  const events = recorded('completed', 'history');
  const view = render((props) => useExecution(props), { executionId: 'x', eventsUrl: URL0, lastEventId: 0 });
  const first = FakeEventSource.last();
  first.open();
  first.send(events[0]);
  assert.equal(view.output.lastSeq, 1);
  view.rerender({ executionId: 'y', eventsUrl: URL0.replace('x', 'y'), lastEventId: 0 });
  assert.ok(first.closed);
  assert.equal(FakeEventSource.made.length, 2);
  assert.equal(view.output.executionId, 'y');
  assert.equal(view.output.lastSeq, null);
  view.rerender({ executionId: 'y', eventsUrl: URL0.replace('x', 'y'), lastEventId: 0, refresh: () => URL0 });
  assert.equal(FakeEventSource.made.length, 2); // a new refresh function is no reason to reconnect
});

test('useExecution: refresh is read when needed, so the latest function is the one called', async () => {
  const { fetch } = probeAnswering([401]);
  globalThis.fetch = fetch;
  const called = [];
  const view = render((props) => useExecution(props), { executionId: 'x', eventsUrl: URL0, refresh: () => { called.push('old'); return URL0; } });
  view.rerender({ executionId: 'x', eventsUrl: URL0, refresh: () => { called.push('new'); return URL0; } });
  FakeEventSource.last().refuse();
  await until(() => FakeEventSource.made.length === 2, 'a new EventSource');
  assert.deepEqual(called, ['new']);
  view.unmount();
});
