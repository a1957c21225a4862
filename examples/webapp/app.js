// dagcast example web app: submit a job, then watch it live over Server-Sent Events.
// Plain browser JavaScript: no framework, no build step, no dependencies. Guide: docs/webapp.md.
//
// The page never holds the dagcast API key and never calls the dagcast REST API: its backend
// (backend.py, which serves this page) does, with the key, and hands the page only what the
// stream needs.
//
//   1. POST /jobs (the backend) → 202 {executionId, eventsUrl (carries ?token=),
//      streamTokenExpiresAt}; for an existing execution, POST /jobs/{id}/stream-token gives the same.
//   2. DagcastWatch.watch (watch.js, loaded before this file: the monitor's monitor/watch.js, which
//      backend.py serves as /watch.js) follows the stream: new EventSource(eventsUrl) straight at
//      dagcast's stream, each seq applied once, EventSource's own reconnects after a drop, and
//      after a refusal (the token expired → 401, …) a fresh eventsUrl from the backend
//      (getToken: POST /jobs/{id}/stream-token) and a resume with ?lastEventId=<last seq applied>;
//      it stops at the terminal event (execution.completed / execution.failed).
//   3. This file is the page around it: the forms, and what each event changes in the view.
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

// lastSeq: the seq of the last event applied; null = none (connect for a snapshot first).
function watch(executionId, access, { lastSeq, tasks }) {
  if (current) current.stop();
  resetView(executionId);
  for (const t of tasks) setTask(t.id, { description: t.description, action: t.action, status: 'waiting' });
  showTokenExpiry(access);
  current = DagcastWatch.watch({
    executionId,
    access,
    lastSeq,
    getToken: newStreamToken, // a refused stream (the token expired, …): a fresh one from the backend
    onEvent,
    onHeartbeat: (data) => { $('heartbeat').textContent = new Date(data.timestamp).toLocaleTimeString(); },
    onState: setStream,
    onConnect: () => count('connections'),
    onToken: (fresh) => {
      count('refreshes');
      showTokenExpiry(fresh);
    },
    onNote: note,
    onGiveUp: showError,
  });
}

// Once per seq, in order (DagcastWatch skips the ones applied already).
function onEvent(type, data) {
  $('last-seq').textContent = `#${data.seq}`;
  if (data.snapshot) { // the first message of a connect without a resume point
    for (const t of data.tasks) setTask(t.taskId, t);
    showExecution(data);
    note(`snapshot as of #${data.seq}: ${data.status}, ${data.completedTasks}/${data.totalTasks} tasks done`);
    return; // a finished execution's snapshot: DagcastWatch stops there (no terminal event follows)
  }
  logEvent(type, data);
  apply(type, data);
}

function apply(type, e) {
  switch (type) {
    case 'substep.started':
      return setTask(e.taskId, { description: e.description, status: 'running', attempt: e.attempt });
    case 'substep.completed':
      return setTask(e.taskId, { status: 'completed', attempt: e.attempt, result: e.result });
    case 'substep.failed': // willRetry: another attempt follows; else the task is done for good
      return setTask(e.taskId, {
        status: e.willRetry ? 'retrying' : ({ skipped: 'skipped', cancelled: 'cancelled' }[e.reason] || 'failed'),
        error: e.willRetry ? `${e.error} (retry in ${e.retryInSeconds}s)` : e.error,
      });
    case 'execution.created':
      return setStatus('running', `running, ${e.totalTasks} tasks`);
    default: // execution.updated (counters), execution.completed, execution.failed
      return showExecution(e);
  }
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

function showExecution(e) {
  const counts = `${e.completedTasks}/${e.totalTasks} tasks completed` +
    (e.failedTasks ? `, ${e.failedTasks} failed` : '') + (e.skippedTasks ? `, ${e.skippedTasks} skipped` : '');
  setStatus(e.status, `${e.status} — ${counts}`);
  if (e.finalResult !== undefined) {
    $('result').textContent = typeof e.finalResult === 'string' ? e.finalResult : JSON.stringify(e.finalResult, null, 2);
  } else if (e.error) {
    $('result').textContent = `${e.status}: ${e.error}`;
  }
}

function setTask(taskId, t) {
  const body = $('tasks').tBodies[0];
  let row = body.querySelector(`tr[data-task-id="${taskId}"]`);
  if (!row) {
    row = body.insertRow();
    row.dataset.taskId = String(taskId);
    row.insertCell().textContent = String(taskId);
    for (let i = 0; i < 4; i++) row.insertCell();
  }
  const description = t.description || t.action; // no description: show the kind (sleep, echo, …)
  if (description) row.cells[1].textContent = description;
  if (t.status) {
    row.dataset.status = t.status;
    row.cells[2].textContent = t.status;
  }
  if (t.attempt !== undefined) row.cells[3].textContent = String(t.attempt);
  if (t.result !== undefined) row.cells[4].textContent = short(t.result);
  if (t.error !== undefined) row.cells[4].textContent = t.error;
}

function logEvent(type, e) {
  const li = document.createElement('li');
  li.dataset.seq = String(e.seq);
  li.dataset.type = type;
  const detail = e.taskId !== undefined ? ` task ${e.taskId}` : e.status ? ` ${e.status}` : '';
  li.textContent = `#${e.seq} ${new Date(e.timestamp).toLocaleTimeString()} ${type}${detail}`;
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
