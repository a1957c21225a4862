// dagcast example web app: submit a job, then watch it live over Server-Sent Events.
// Plain browser JavaScript: no framework, no build step. Guide: docs/webapp.md.
//
// The page never holds the dagcast API key and never calls the dagcast REST API: its backend
// (backend.py, which serves this page) does, with the key, and hands the page only what the
// stream needs.
//
//   1. POST /jobs (the backend) → 202 {executionId, eventsUrl (carries ?token=),
//      streamTokenExpiresAt}; for an existing execution, POST /jobs/{id}/stream-token gives the same.
//   2. Dagcast.watchExecution (the client package, clients/js, loaded as dagcast-client.js: the
//      monitor's build of it, which backend.py serves) follows the stream: new EventSource(eventsUrl)
//      straight at dagcast's stream, each seq once, EventSource's own reconnects after a drop, and
//      after a refusal (the token expired → 401) a fresh eventsUrl from the backend (refresh:
//      POST /jobs/{id}/stream-token) and a resume with ?lastEventId=; it stops at the end.
//   3. Dagcast.fold turns each event into the execution's state (tasks, statuses, partial text,
//      counters, result); this file draws that state, and the forms.
'use strict';

const EXAMPLE_JOB = {
  originalRequest: 'A small example: two waits, then one step that uses both results',
  tasks: [
    { id: 1, description: 'Wait one second', action: 'sleep', params: { seconds: 1 } },
    { id: 2, description: 'Wait two seconds', action: 'sleep', params: { seconds: 2 } },
    { id: 3, description: 'Combine', action: 'echo', params: { text: 'first: {{1}}, second: {{2}}' },
      dependencies: [1, 2] },
  ],
};
const $ = (id) => document.getElementById(id);
$('job').value = JSON.stringify(EXAMPLE_JOB, null, 2);

let current = null; // the watch in progress, so a new one can stop it

// ------------------------------------------------------------------------------ the backend

// The backend is this page's own origin (no CORS), and it adds the API key on its side.
async function callBackend(path, body) {
  let response;
  try {
    response = await fetch(path, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body),
    });
  } catch (err) { // network error
    throw new Error(`${err.message}: is the backend (examples/webapp/backend.py) up?`);
  }
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) {
    const problems = (answer.problems || []).map((p) => `\n  ${p.path}: ${p.message}`).join('');
    throw new Error(`${response.status}: ${answer.error || response.statusText}${problems}`);
  }
  return answer;
}

// {executionId, eventsUrl, streamTokenExpiresAt} for an execution (404: unknown id, or auth is off).
function newStreamToken(executionId) {
  return callBackend(`/jobs/${encodeURIComponent(executionId)}/stream-token`, {});
}

$('submit-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  showError(null);
  let job;
  try {
    job = JSON.parse($('job').value);
  } catch (err) {
    return showError(`The job is not valid JSON: ${err.message}`);
  }
  try {
    const accepted = await callBackend('/jobs', job);
    // A job we just submitted: resume "after event 0" = replay every event from the first, so
    // the log is complete. The task table starts from the job itself.
    watch(accepted.executionId, accepted, { lastSeq: 0, tasks: job.tasks || [] });
  } catch (err) {
    showError(err.message);
  }
});

$('watch-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  showError(null);
  const executionId = $('execution-id').value.trim();
  try {
    // No resume point: the server starts with a snapshot of the whole state, then goes live.
    watch(executionId, await newStreamToken(executionId), { lastSeq: null, tasks: [] });
  } catch (err) {
    showError(err.message);
  }
});

// ------------------------------------------------------------------------------ the stream

// lastSeq: null = start from a snapshot; 0 = every event from the first.
function watch(executionId, access, { lastSeq, tasks }) {
  if (current) current.stop();
  resetView(executionId);
  let state = Dagcast.initialState(executionId);
  for (const t of tasks) {
    state.tasks[t.id] = { taskId: t.id, description: t.description, action: t.action, status: 'waiting', text: '', textOffset: 0 };
  }
  render(state);
  showTokenExpiry(access);
  current = Dagcast.watchExecution({
    executionId,
    eventsUrl: access.eventsUrl,
    lastEventId: lastSeq,
    refresh: newStreamToken, // a refused stream (the token expired): a fresh one from the backend
    onEvent: (event) => { // once per seq, in order
      state = Dagcast.fold(state, event);
      logEvent(event);
      render(state);
    },
    onHeartbeat: (data) => { $('heartbeat').textContent = new Date(data.timestamp).toLocaleTimeString(); },
    onState: setStream,
    onConnect: () => count('connections'),
    onRefresh: (fresh) => {
      count('refreshes');
      note('stream refused (token expired?): a fresh token from the backend, resuming');
      showTokenExpiry(fresh);
    },
    onError: (err) => showError(err.message),
  });
}

// ------------------------------------------------------------------------------ the view

function resetView(executionId) {
  showError(null);
  $('execution-id-shown').textContent = executionId;
  $('tasks').tBodies[0].replaceChildren();
  $('log').replaceChildren();
  $('result').textContent = '—';
  for (const id of ['token-expiry', 'last-seq', 'heartbeat']) $(id).textContent = '—';
  for (const id of ['connections', 'refreshes']) {
    $(id).dataset.count = '0';
    $(id).textContent = '0';
  }
  setStatus('submitted', 'submitted');
}

function showTokenExpiry({ streamTokenExpiresAt }) {
  $('token-expiry').textContent = streamTokenExpiresAt
    ? new Date(streamTokenExpiresAt * 1000).toLocaleTimeString() // unix seconds
    : 'no token (auth is off)';
}

function render(state) {
  $('last-seq').textContent = state.lastSeq === null ? '—' : `#${state.lastSeq}`;
  for (const t of Object.values(state.tasks)) setTask(t);
  if (state.status === 'unknown') return;
  const counts = state.totalTasks === undefined ? '' : ` — ${state.completedTasks ?? 0}/${state.totalTasks} tasks completed` +
    (state.failedTasks ? `, ${state.failedTasks} failed` : '') + (state.skippedTasks ? `, ${state.skippedTasks} skipped` : '');
  setStatus(state.status, `${state.status}${counts}`);
  if (state.status === 'completed') {
    $('result').textContent = typeof state.finalResult === 'string' ? state.finalResult : JSON.stringify(state.finalResult, null, 2);
  } else if (state.error) {
    $('result').textContent = `${state.status}: ${state.error}`;
  }
}

function setTask(t) {
  const body = $('tasks').tBodies[0];
  let row = body.querySelector(`tr[data-task-id="${t.taskId}"]`);
  if (!row) {
    row = body.insertRow();
    row.dataset.taskId = String(t.taskId);
    row.insertCell().textContent = String(t.taskId);
    for (let i = 0; i < 4; i++) row.insertCell();
  }
  const description = t.description || t.action; // no description: show the kind (sleep, echo, …)
  if (description) row.cells[1].textContent = description;
  row.dataset.status = t.status;
  row.cells[2].textContent = t.status;
  row.cells[3].textContent = t.attempt === undefined ? '' : String(t.attempt);
  let shown = '';
  if (t.status === 'completed') shown = short(t.result);
  else if (t.error !== undefined) shown = t.status === 'retrying' ? `${t.error} (retry in ${t.retryInSeconds}s)` : t.error;
  else if (t.text) shown = (t.textOffset ? '…' : '') + short(t.text.slice(-119)); // the live partial text
  row.cells[4].textContent = shown;
}

function logEvent(e) {
  if (e.snapshot) return note(`snapshot as of #${e.seq}: ${e.status}, ${e.completedTasks}/${e.totalTasks} tasks done`);
  const li = document.createElement('li');
  li.dataset.seq = String(e.seq);
  li.dataset.type = e.type;
  const detail = e.taskId !== undefined ? ` task ${e.taskId}` : e.status ? ` ${e.status}` : '';
  li.textContent = `#${e.seq} ${new Date(e.timestamp).toLocaleTimeString()} ${e.type}${detail}`;
  $('log').append(li);
}

function note(text) { // what the page did (not an event): snapshots, token refreshes
  const li = document.createElement('li');
  li.className = 'note';
  li.textContent = text;
  $('log').append(li);
}

function setStatus(status, text) {
  $('status').dataset.status = status;
  $('status').textContent = text;
}

function setStream(state) {
  $('stream').dataset.state = state;
  $('stream').textContent = state;
}

function count(id) {
  const n = Number($(id).dataset.count) + 1;
  $(id).dataset.count = String(n);
  $(id).textContent = String(n);
}

function showError(message) {
  $('error').hidden = !message;
  $('error').textContent = message || '';
}

function short(value) {
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  return text.length > 120 ? `${text.slice(0, 119)}…` : text;
}
