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
export function initialState(executionId) {
  return {
    executionId,
    status: 'unknown', // running | completed | failed | cancelled once an event says
    lastSeq: null, // the seq of the last event applied (the snapshot's seq after a snapshot)
    events: 0, // events applied (the snapshot counts one)
    tasks: {}, // by taskId
    done: false, // a terminal event, or a snapshot of a finished execution
  };
}

export function fold(state, event) {
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
export function placeText(task, delta, offset) {
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
