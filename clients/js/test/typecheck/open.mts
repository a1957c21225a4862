// Compiled by tests/functional/test_js_client.py with tsc --strict (not run): the types accept what
// a newer server may send (docs/compatibility.md) — a reason and a field this version does not know,
// an event type it does not know — and the functions take and give what the README says.
import { fold, initialState, watchExecution, type AnyEvent, type DagcastEvent, type ExecutionState } from '../../src/index.js';
import { useExecution } from '../../src/react.js';

const newerFailure: DagcastEvent = {
  type: 'execution.failed', status: 'failed', reason: 'aReasonFromLater', completedTasks: 0, failedTasks: 1,
  skippedTasks: 0, totalTasks: 1, durationMs: 1, error: 'x', executionId: 'e', timestamp: 1, seq: 2, aFieldFromLater: true,
};
const newerType: AnyEvent = { type: 'substep.waiting', seq: 3, until: 'approval' };

const watch = watchExecution({
  eventsUrl: 'https://sse.example/events?token=t',
  refresh: async (id) => ({ eventsUrl: `https://sse.example/${id}` }),
  types: ['substep.*'],
  onEvent: (e) => { if (e.type === 'substep.completed') console.log(e.seq); },
});

async function follow(): Promise<ExecutionState> {
  let state = fold(fold(initialState('e'), newerFailure), newerType);
  for await (const event of watch) state = fold(state, event);
  const text: string | undefined = state.tasks[1]?.text;
  console.log(text, state.status, watch.lastEventId);
  return state;
}

const hook = useExecution({ executionId: 'e', eventsUrl: 'https://sse.example/events' });
console.log(follow, hook.connection, hook.streamError?.status);
