import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fold, initialState } from '../src/index.js';
import { RECORDED, recorded } from './helpers.js';

const run = (events, state = initialState()) => events.reduce(fold, state);

// What a viewer sees: the execution's outcome and each task's.
function outcome(state) {
  const tasks = Object.fromEntries(Object.values(state.tasks).map((t) => [t.taskId,
    { status: t.status, result: t.result, error: t.error, reason: t.reason }]));
  const { status, done, totalTasks, completedTasks, failedTasks, skippedTasks, finalResult, error, reason } = state;
  return { status, done, totalTasks, completedTasks, failedTasks, skippedTasks, finalResult, error, reason, tasks };
}

test('the recorded history, the live stream (snapshot first) and the final snapshot fold to the same outcome', () => {
  for (const name of RECORDED) {
    const history = run(recorded(name, 'history'));
    const live = run(recorded(name, 'live'));
    const final = run(recorded(name, 'final'));
    assert.equal(history.done, true, name);
    assert.deepEqual(outcome(live), outcome(history), name);
    assert.deepEqual(outcome(final), outcome(history), name);
    assert.equal(history.lastSeq, recorded(name, 'history').at(-1).seq);
  }
});

test('the recorded runs fold to what they did', () => {
  const completed = run(recorded('completed', 'history'));
  assert.equal(completed.status, 'completed');
  assert.equal(completed.finalResult, 'slow: slept 0.8s, fast: fast');
  assert.deepEqual(Object.values(completed.tasks).map((t) => t.status), ['completed', 'completed', 'completed', 'completed']);
  const failed = run(recorded('failed', 'history'));
  assert.equal(failed.status, 'failed');
  assert.equal(failed.reason, 'taskFailed');
  assert.equal(failed.tasks[1].status, 'failed');
  assert.equal(failed.tasks[1].attempt, 2); // retried once
  assert.equal(failed.tasks[3].status, 'skipped');
});

test('each seq counts once: every event folded twice, or the history again after the end, changes nothing', () => {
  for (const name of RECORDED) {
    const events = recorded(name, 'history');
    const once = run(events);
    assert.deepEqual(run(events.flatMap((e) => [e, e])), once);
    assert.equal(run(events, once), once); // the very same object: nothing changed
  }
});

test('a type and fields this client does not know are folded into nothing (a newer server)', () => {
  const events = recorded('completed', 'history');
  const at = 3;
  const newer = [
    ...events.slice(0, at),
    { type: 'substep.waiting', seq: at + 1, taskId: 2, until: 'approval', executionId: events[0].executionId },
    ...events.slice(at).map((e) => ({ ...e, seq: e.seq + 1, someNewField: { nested: true } })),
  ];
  const state = run(newer);
  assert.deepEqual(outcome(state), outcome(run(events)));
  assert.equal(state.lastSeq, events.at(-1).seq + 1);
});

test('fold never changes the state it is given', () => {
  const events = recorded('failed', 'live');
  const states = [initialState()];
  for (const e of events) states.push(fold(states.at(-1), e));
  const frozen = JSON.stringify(states.slice(0, -1));
  events.reduce(fold, states[0]);
  assert.equal(JSON.stringify(states.slice(0, -1)), frozen);
});

// ---------------------------------------------------------------------- substep.progress, by hand
// (the backend's substep.progress, issue 21 item 1: delta = the text since the attempt's previous
// progress event, offset = the characters of the attempt's text before it)

const X = 'dag-exec_x';
const started = (seq, attempt = 1) => ({ type: 'substep.started', seq, taskId: 1, subStepId: '1', attempt, description: 'llm', executionId: X, timestamp: seq });
const delta = (seq, offset, text, attempt = 1) => ({ type: 'substep.progress', seq, taskId: 1, subStepId: '1', attempt, offset, delta: text, executionId: X, timestamp: seq });

test('deltas make the attempt\'s text, placed by offset', () => {
  const s = run([started(1), delta(2, 0, 'Hello'), delta(3, 5, ', '), delta(4, 7, 'world')]);
  assert.equal(s.tasks[1].text, 'Hello, world');
  assert.equal(s.tasks[1].status, 'running');
});

test('a snapshot that already holds text from later deltas: those deltas are placed, not appended twice', () => {
  const snapshot = { type: 'execution.updated', snapshot: true, seq: 2, executionId: X, status: 'running', totalTasks: 1,
    completedTasks: 0, failedTasks: 0, skippedTasks: 0, runningTasks: 1, waitingTasks: 0, timestamp: 2,
    tasks: [{ taskId: 1, subStepId: '1', status: 'running', attempt: 1, text: 'Hello, wor', textLength: 10 }] };
  // Deltas 3 and 4 were written before the snapshot was read: its text has them (in part).
  const s = run([snapshot, delta(3, 5, ', '), delta(4, 7, 'world'), delta(5, 12, '!')]);
  assert.equal(s.tasks[1].text, 'Hello, world!');
});

test('a delta seen twice (a replay after a reconnect, a second EventSource) is not appended twice', () => {
  const events = [started(1), delta(2, 0, 'abc'), delta(3, 3, 'def')];
  const s = run([...events, delta(3, 3, 'def')]);
  assert.equal(s.tasks[1].text, 'abcdef');
  // even under a new seq (nothing in the protocol does this; placing by offset makes it harmless)
  assert.equal(fold(s, delta(4, 3, 'def')).tasks[1].text, 'abcdef');
});

test('a retried attempt starts its text again, and a late delta of the old attempt is ignored', () => {
  const s = run([started(1), delta(2, 0, 'first try'),
    { type: 'substep.failed', seq: 3, taskId: 1, subStepId: '1', attempt: 1, willRetry: true, retryInSeconds: 1, error: 'provider: 502', reason: 'error', timestamp: 3 },
    started(4, 2), delta(5, 0, 'second', 2), delta(6, 9, ' LATE', 1)]);
  assert.equal(s.tasks[1].text, 'second');
  assert.equal(s.tasks[1].attempt, 2);
});

test('a delta of a newer attempt whose substep.started was not seen starts that attempt\'s text', () => {
  const s = run([started(1), delta(2, 0, 'old text'), delta(3, 0, 'new', 2)]);
  assert.equal(s.tasks[1].text, 'new');
  assert.equal(s.tasks[1].attempt, 2);
});

test('a delta after a gap starts the text there and says where (textOffset), mixing nothing', () => {
  const s = run([started(1), delta(2, 0, 'abc'), delta(3, 10, 'xyz')]);
  assert.equal(s.tasks[1].text, 'xyz');
  assert.equal(s.tasks[1].textOffset, 10);
  const on = fold(s, delta(4, 13, '!'));
  assert.equal(on.tasks[1].text, 'xyz!');
  assert.equal(fold(on, delta(5, 2, 'c-old')).tasks[1].text, 'xyz!'); // before what is held: ignored
});

test('progress {done, total, message} replaces the last one; the completed result stays beside the text', () => {
  const s = run([started(1),
    { type: 'substep.progress', seq: 2, taskId: 1, attempt: 1, progress: { done: 1, total: 4, message: 'page 1' } },
    { type: 'substep.progress', seq: 3, taskId: 1, attempt: 1, progress: { done: 2, total: 4 }, delta: 'ab', offset: 0 },
    { type: 'substep.completed', seq: 4, taskId: 1, subStepId: '1', attempt: 1, durationMs: 5, result: 'ab', timestamp: 4 }]);
  assert.deepEqual(s.tasks[1].progress, { done: 2, total: 4 });
  assert.equal(s.tasks[1].text, 'ab');
  assert.equal(s.tasks[1].status, 'completed');
  assert.equal(s.tasks[1].result, 'ab');
});

test('an approval task awaits its decision with its prompt, then ends as the decision says', () => {
  const waiting = { type: 'substep.waiting', seq: 2, taskId: 1, subStepId: '1', description: 'Approve',
    prompt: 'Deploy?', timeoutSeconds: 60, decisionDeadline: 60_002, timestamp: 2 };
  const s = run([waiting]);
  assert.equal(s.tasks[1].status, 'awaiting_decision');
  assert.equal(s.tasks[1].prompt, 'Deploy?');
  assert.equal(s.tasks[1].decisionDeadline, 60_002);
  const rejected = fold(s, { type: 'substep.failed', seq: 3, taskId: 1, subStepId: '1', error: 'rejected: no',
    reason: 'rejected', willRetry: false, timestamp: 3 });
  assert.equal(rejected.tasks[1].status, 'failed');
  assert.equal(rejected.tasks[1].reason, 'rejected');
});
