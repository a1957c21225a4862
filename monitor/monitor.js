// dagcast monitor: a live view of one execution (graph, timeline, event log, counters, result)
// and the list of recent ones. Plain browser JavaScript, no build step, no dependencies; the REST
// calls are stream.js, the stream loop and the state fold dagcast-client.js (@dagcast/client, built
// from clients/js), the graph layout layout.js. Guide: docs/monitor.md.
//
// Live text (substep.progress): the client's fold places each delta at its offset (a replayed or
// duplicated one changes nothing, a retry starts the text again), so the page keeps the folded
// state beside its own model and reads a running task's text from it: under the node, in the task
// panel, and in the event log.
//
// Opening an execution: GET …/{id} for its tasks and dependencies (the graph's shape), then the
// event stream from the first event (?lastEventId=0), so the log and the timeline are complete
// whenever the page is opened. Every seq is applied once; at the end the snapshot is read once
// more (a cancelled execution's tasks change after its last event).
//
// Query parameters: ?id=<execution id>, ?api=<REST API base> (default: this page's origin),
// ?events=<stream base> (only used when the API gives no stream tokens, i.e. auth is off).
'use strict';

(function () {
  const { callApi, executionPath, streamToken, watchExecution } = window.DagcastStream;
  const { watchRuns } = window.DagcastRuns;
  const { EVENT_TYPES, fold, initialState } = window.Dagcast;
  const { layout } = window.DagcastLayout;

  const EXAMPLE_JOB = {
    originalRequest: 'A diamond: fetch, two branches in parallel, then combine',
    tasks: [
      { id: 1, description: 'Fetch the input', action: 'sleep', params: { seconds: 1 } },
      { id: 2, description: 'Slow branch', action: 'sleep', params: { seconds: 3 }, dependencies: [1] },
      { id: 3, description: 'Fast branch', action: 'sleep', params: { seconds: 1 }, dependencies: [1] },
      { id: 4, description: 'Combine', action: 'echo', params: { text: 'slow: {{2}}, fast: {{3}}' }, dependencies: [2, 3] },
    ],
  };
  const GLYPH = { waiting: '○', running: '▶', retrying: '↻', awaiting_decision: '?', completed: '✓', failed: '✗', skipped: '–',
    cancelled: '⊘' };
  const RESULT_SHOWN = 4000; // characters of the final result shown in the page
  const LIVE_SHOWN = 2000; // characters of a running task's live text shown in the task panel (its end)
  const LIVE_IN_NODE = 27; // characters of the live text's last line shown under a running node
  const MAX_EDGES_DRAWN = 4000;
  const MIN_GRAPH_SCALE = 0.6;
  const NODE_W = 176, NODE_H = 58, COL_GAP = 60, ROW_GAP = 12, PAD = 10;
  const SVG_NS = 'http://www.w3.org/2000/svg';

  const $ = (id) => document.getElementById(id);
  const params = new URLSearchParams(location.search);
  const trim = (url) => (url || '').trim().replace(/\/+$/, '');
  const API = trim(params.get('api')) || (location.protocol.startsWith('http') ? location.origin : 'http://127.0.0.1:8000');
  const EVENTS = trim(params.get('events')) || API;

  // ---------------------------------------------------------------------------- state

  let generation = 0;   // bumped by every open(): late answers for an older execution are dropped
  let watch = null;     // the stream of the execution shown
  let view = null;      // the execution shown (see newView)
  let ticker = null;
  let skew = null;      // browser clock − server clock, as low as observed (ms)
  const filters = new Set(EVENT_TYPES);

  function newView(snapshot) {
    const tasks = new Map();
    for (const t of snapshot.tasks || []) {
      tasks.set(t.taskId, {
        id: t.taskId, description: t.description || '', action: t.action || '',
        dependencies: t.dependencies || [], status: 'waiting', attempt: 0, attempts: [],
        result: undefined, error: undefined, reason: undefined, durationMs: undefined,
      });
    }
    return {
      id: snapshot.executionId, createdAt: snapshot.createdAt, status: 'running',
      originalRequest: snapshot.originalRequest || '', total: snapshot.totalTasks ?? tasks.size,
      finishedAt: null, durationMs: null, finalResult: undefined, finalResultUrl: null, error: null, reason: null,
      live: initialState(snapshot.executionId), // the client's fold of the events: the live text
      tasks, graph: null, dirty: new Set(), pendingLog: [], counts: {}, seq: 0, selected: null, focus: null,
    };
  }

  const serverNow = () => Date.now() - (skew ?? 0);
  function observeClock(timestamp, live) {
    if (!timestamp) return;
    const gap = Date.now() - timestamp; // replayed events are old: the lowest gap is the live one
    if (live && (skew === null || gap < skew)) skew = gap;
  }

  // ---------------------------------------------------------------------------- opening

  async function open(executionId, accepted) {
    const gen = ++generation;
    if (watch) watch.stop();
    watch = null;
    stopTicker();
    view = null;
    showError(null);
    $('open-id').value = executionId;
    $('placeholder').hidden = true;
    $('execution').hidden = true;
    markCurrent(executionId);
    let snapshot;
    try {
      snapshot = await callApi(API, executionPath(executionId));
    } catch (err) {
      if (gen === generation) showError(`Could not open ${executionId}: ${err.message}`);
      return;
    }
    if (gen !== generation) return;
    view = newView(snapshot);
    renderExecution();
    let access = accepted;
    if (!access) {
      try {
        access = await streamToken(API, executionId);
      } catch (err) {
        if (gen !== generation) return;
        if (err.status !== 404) return showError(`Could not get a stream token: ${err.message}`);
        access = { eventsUrl: `${EVENTS}${executionPath(executionId)}/events` }; // auth is off: no token
      }
      if (gen !== generation) return;
    }
    showTokenExpiry(access);
    resetCount('connections');
    resetCount('refreshes');
    const shown = view;
    watch = watchExecution(API, {
      executionId,
      access,
      lastSeq: 0, // the whole history, then live
      onToken: (fresh) => { // a fresh token from POST …/stream-token, after a refusal
        count('refreshes');
        showTokenExpiry(fresh);
      },
      onEvent: (type, e) => { if (view === shown) onEvent(type, e); },
      onState: (state) => { if (view === shown) setStream(state); },
      onConnect: () => count('connections'),
      onHeartbeat: (e) => {
        observeClock(e.timestamp, true);
        $('heartbeat').textContent = new Date(e.timestamp).toLocaleTimeString();
      },
      onNote: (text) => { if (view === shown) queueLog({ note: text }); },
      onGiveUp: (message) => { if (view === shown) showError(message); },
    });
    startTicker();
  }

  // ---------------------------------------------------------------------------- events → model

  function onEvent(type, e) {
    const v = view;
    v.live = fold(v.live, e);
    if (e.snapshot) { // not asked for (the stream starts at seq 0), but harmless: take its state
      for (const t of e.tasks || []) reconcileTask(t);
      applyExecution(e);
      return;
    }
    observeClock(e.timestamp, true);
    v.seq = e.seq;
    queueLog({ type, e });
    const task = e.taskId !== undefined ? v.tasks.get(e.taskId) : undefined;
    switch (type) {
      case 'execution.created':
        v.status = 'running';
        break;
      case 'substep.started':
        if (!task) break;
        closeAttempt(task, e.timestamp, 'retried');
        task.status = 'running';
        task.attempt = e.attempt ?? task.attempt + 1;
        task.attempts.push({ attempt: task.attempt, start: e.timestamp, end: null, status: 'running' });
        if (e.description) task.description = e.description;
        break;
      case 'substep.completed':
        if (!task) break;
        ensureAttempt(task, e);
        closeAttempt(task, e.timestamp, 'completed');
        Object.assign(task, { status: 'completed', result: e.result, durationMs: e.durationMs, error: undefined });
        task.resultUrl = e.resultUrl;
        break;
      case 'substep.progress': // its text is in v.live (placed by offset); drawn by updateNode / showTask
        break;
      case 'substep.waiting': // an approval task: the task detail shows Approve / Reject
        if (!task) break;
        Object.assign(task, { status: 'awaiting_decision', prompt: e.prompt, decisionDeadline: e.decisionDeadline });
        if (v.selected === null || v.selected === undefined) v.selectWhenDrawn = task.id;
        break;
      case 'substep.failed':
        if (!task) break;
        if (e.willRetry) {
          closeAttempt(task, e.timestamp, 'retried');
          Object.assign(task, { status: 'retrying', error: `${e.error} (retry in ${e.retryInSeconds}s)` });
        } else {
          const ran = task.attempts.some((a) => a.end === null);
          closeAttempt(task, e.timestamp, 'failed');
          let status = 'failed';
          if (e.reason === 'skipped' || (e.reason === 'timeout' && !ran)) status = 'skipped';
          if (e.reason === 'cancelled') status = 'cancelled';
          Object.assign(task, { status, error: e.error, reason: e.reason, durationMs: e.durationMs });
        }
        break;
      case 'execution.updated':
      case 'execution.completed':
      case 'execution.failed':
        applyExecution(e);
        break;
      default:
        // A type this page does not know yet (docs/compatibility.md: clients ignore them); it is
        // still listed in the event log above.
        break;
    }
    if (task) v.dirty.add(task.id);
    if (type === 'execution.completed' || type === 'execution.failed') finish(v);
    schedule();
  }

  function ensureAttempt(task, e) { // a completion without a start we saw: draw it from durationMs
    if (task.attempts.some((a) => a.end === null)) return;
    const start = e.durationMs !== undefined ? e.timestamp - e.durationMs : e.timestamp;
    task.attempts.push({ attempt: e.attempt ?? 1, start, end: null, status: 'running' });
  }

  function closeAttempt(task, at, status) {
    for (const a of task.attempts) {
      if (a.end === null) {
        a.end = Math.max(at, a.start);
        a.status = status;
      }
    }
  }

  function applyExecution(e) {
    const v = view;
    if (e.status) v.status = e.status;
    if (e.totalTasks !== undefined) v.total = e.totalTasks;
    if (e.durationMs !== undefined && e.status && e.status !== 'running') {
      v.durationMs = e.durationMs;
      v.finishedAt = e.finishedAt ?? v.createdAt + e.durationMs;
    }
    if (e.finalResult !== undefined) {
      v.finalResult = e.finalResult;
      v.finalResultUrl = e.finalResultUrl || null;
      v.finalResultTruncated = Boolean(e.finalResultTruncated);
    }
    if (e.error) {
      v.error = e.error;
      v.reason = e.reason || null;
    }
    schedule();
  }

  // The snapshot's word on a task, once the log has ended: it may know more (a cancelled
  // execution's running task finishes after the last event).
  function reconcileTask(t) {
    const task = view.tasks.get(t.taskId);
    if (!task) return;
    if (t.status !== task.status && t.status !== 'waiting') {
      task.status = t.status;
      if (t.error !== undefined) task.error = t.error;
      if (t.result !== undefined) task.result = t.result;
    }
    if (!task.attempts.length && t.startedAt) {
      task.attempts.push({ attempt: t.attempt || 1, start: t.startedAt, end: t.finishedAt ?? null,
        status: t.finishedAt ? (t.status === 'completed' ? 'completed' : 'failed') : 'running' });
    }
    const open = task.attempts.find((a) => a.end === null);
    if (open && t.finishedAt) {
      open.end = t.finishedAt;
      open.status = t.status === 'completed' ? 'completed' : t.status === 'cancelled' ? 'cancelled' : 'failed';
    }
    if (t.durationMs !== undefined) task.durationMs = t.durationMs;
    if (t.prompt !== undefined) Object.assign(task, { prompt: t.prompt, decisionDeadline: t.decisionDeadline });
    view.dirty.add(task.id);
  }

  async function finish(v) {
    stopTicker();
    const end = v.finishedAt ?? serverNow();
    for (const task of v.tasks.values()) {
      if (task.attempts.some((a) => a.end === null) && ['completed', 'failed', 'skipped', 'cancelled'].includes(task.status)) {
        closeAttempt(task, end, task.status);
      }
    }
    announce(`Execution ${v.status}.`);
    loadRecent();
    try {
      const final = await callApi(API, executionPath(v.id));
      if (view !== v) return;
      for (const t of final.tasks || []) reconcileTask(t);
      if (final.finishedAt) v.finishedAt = final.finishedAt;
      for (const task of v.tasks.values()) {
        if (task.attempts.some((a) => a.end === null) && task.status !== 'running' && task.status !== 'retrying') {
          closeAttempt(task, v.finishedAt ?? end, task.status);
        }
      }
      v.settled = true;
      schedule();
    } catch (err) {
      // the live view is complete without it
    }
  }

  // ---------------------------------------------------------------------------- rendering

  let scheduled = false;
  function schedule() {
    if (scheduled) return;
    scheduled = true;
    requestAnimationFrame(flush);
    setTimeout(flush, 200); // a hidden tab gets no animation frames
  }

  function flush() {
    if (!scheduled) return;
    scheduled = false;
    const v = view;
    if (!v) return;
    flushLog();
    for (const id of v.dirty) {
      updateNode(id);
      updateRow(id);
    }
    if (v.selectWhenDrawn !== undefined) { // the first task waiting for a decision: show its buttons
      const id = v.selectWhenDrawn;
      v.selectWhenDrawn = undefined;
      if (v.selected === null || v.selected === undefined) select(id, false);
    }
    if (v.selected !== null && v.dirty.has(v.selected)) showTask(v.selected);
    v.dirty.clear();
    updateSummary();
    updateTimeline();
  }

  function renderExecution() {
    const v = view;
    $('execution').hidden = false;
    $('exec-title').textContent = v.originalRequest || v.id;
    $('exec-title').title = v.originalRequest || '';
    $('exec-id').textContent = v.id;
    $('exec-created').textContent = new Date(v.createdAt).toLocaleString();
    $('exec-created').dateTime = new Date(v.createdAt).toISOString();
    $('log').replaceChildren();
    $('last-seq').textContent = '—';
    $('result').textContent = '—';
    $('result').dataset.state = 'none';
    $('result-link').hidden = true;
    $('task-detail').replaceChildren(paragraph('Select a task in the graph or the timeline.', 'muted'));
    for (const box of $('log-filters').querySelectorAll('.n')) box.textContent = '0';
    renderGraph();
    renderRows();
    for (const id of v.tasks.keys()) v.dirty.add(id);
    schedule();
  }

  // -- the graph: nodes in columns by level, left to right

  function renderGraph() {
    const v = view;
    const tasks = [...v.tasks.values()];
    const g = layout(tasks.map((t) => ({ id: t.id, dependencies: t.dependencies })), tasks.length > 1500 ? 0 : 4);
    v.graph = g;
    const rows = Math.max(1, ...g.columns.map((c) => c.length));
    const width = PAD * 2 + g.columns.length * NODE_W + Math.max(0, g.columns.length - 1) * COL_GAP;
    const height = PAD * 2 + rows * NODE_H + (rows - 1) * ROW_GAP;
    const pos = new Map();
    g.columns.forEach((col, l) => {
      const offset = (rows - col.length) / 2;
      col.forEach((id, r) => pos.set(id, { x: PAD + l * (NODE_W + COL_GAP), y: PAD + (offset + r) * (NODE_H + ROW_GAP) }));
    });
    const svg = el(SVG_NS, 'svg', {
      id: 'graph', viewBox: `0 0 ${width} ${height}`, width, height, role: 'group',
      'aria-label': `Task graph: ${tasks.length} tasks in ${g.columns.length} levels, dependencies left to right`,
      'data-levels': g.columns.length,
    });
    const defs = el(SVG_NS, 'defs');
    const marker = el(SVG_NS, 'marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 6, markerHeight: 6, orient: 'auto-start-reverse' });
    marker.append(el(SVG_NS, 'path', { d: 'M0,0 L10,5 L0,10 z' }));
    defs.append(marker);
    svg.append(defs);
    const edges = el(SVG_NS, 'g', { class: 'edges', 'aria-hidden': 'true' });
    if (g.edges.length <= MAX_EDGES_DRAWN) {
      for (const { from, to } of g.edges) {
        const a = pos.get(from);
        const b = pos.get(to);
        const x1 = a.x + NODE_W, y1 = a.y + NODE_H / 2, x2 = b.x - 2, y2 = b.y + NODE_H / 2;
        const dx = Math.max(24, (x2 - x1) / 2);
        edges.append(el(SVG_NS, 'path', {
          class: 'edge', 'data-from': from, 'data-to': to, 'data-status': 'waiting', 'marker-end': 'url(#arrow)',
          d: `M${x1},${y1} C${x1 + dx},${y1} ${x2 - dx},${y2} ${x2},${y2}`,
        }));
      }
    }
    svg.append(edges);
    const nodes = el(SVG_NS, 'g', { class: 'nodes' });
    let first = null;
    for (const col of g.columns) {
      for (const id of col) {
        const t = v.tasks.get(id);
        const { x, y } = pos.get(id);
        const node = el(SVG_NS, 'g', {
          class: 'node', 'data-task-id': id, 'data-status': t.status, 'data-level': g.level.get(id),
          transform: `translate(${x},${y})`, tabindex: -1, role: 'button',
        });
        node.append(
          el(SVG_NS, 'title'),
          el(SVG_NS, 'rect', { class: 'box', width: NODE_W, height: NODE_H, rx: 8 }),
          headline(id, t.action),
          text(el(SVG_NS, 'text', { class: 'glyph', x: NODE_W - 10, y: 18, 'text-anchor': 'end' }), GLYPH.waiting),
          text(el(SVG_NS, 'text', { class: 'desc', x: 10, y: 34 }), clip(t.description || t.action, 25)),
          el(SVG_NS, 'text', { class: 'live', x: 10, y: 50 }), // a running task's live text (its end)
        );
        nodes.append(node);
        if (first === null) first = node;
      }
    }
    if (first) first.setAttribute('tabindex', '0');
    v.focus = first ? Number(first.dataset.taskId) : null;
    svg.append(nodes);
    svg.addEventListener('click', (event) => {
      const node = event.target.closest('.node');
      if (node) select(Number(node.dataset.taskId), true);
    });
    svg.addEventListener('keydown', graphKeys);
    $('graph-wrap').replaceChildren(svg);
    // Fit the panel's width, but never below 60 %: a big DAG scrolls rather than turning to dust.
    const fit = $('graph-wrap').clientWidth / width;
    if (fit < MIN_GRAPH_SCALE) {
      svg.classList.add('scrolls');
      svg.setAttribute('width', String(Math.round(width * MIN_GRAPH_SCALE)));
      svg.setAttribute('height', String(Math.round(height * MIN_GRAPH_SCALE)));
    }
    if (g.edges.length > MAX_EDGES_DRAWN) {
      $('graph-wrap').append(paragraph(`${g.edges.length} dependencies: too many to draw.`, 'muted'));
    }
  }

  function updateNode(id) {
    const t = view.tasks.get(id);
    const node = document.querySelector(`#graph .node[data-task-id="${cssId(id)}"]`);
    if (!t || !node) return;
    node.dataset.status = t.status;
    const glyph = t.status === 'retrying' || (t.status === 'running' && t.attempt > 1) ? `${GLYPH[t.status]}${t.attempt}` : GLYPH[t.status] || '?';
    node.querySelector('.glyph').textContent = glyph;
    const label = `Task ${id}: ${t.description || t.action}, ${t.status}` + (t.attempt > 1 ? `, attempt ${t.attempt}` : '');
    node.setAttribute('aria-label', label);
    node.querySelector('title').textContent = label + (t.error ? ` — ${t.error}` : '');
    const live = liveOf(id);
    const line = node.querySelector('.live');
    line.textContent = !live.shown ? '' : live.text ? lastLine(live.text, LIVE_IN_NODE) : clip(describeProgress(live.progress), LIVE_IN_NODE);
    line.dataset.chars = String(live.shown ? live.length : 0);
    for (const edge of document.querySelectorAll(`#graph .edge[data-from="${cssId(id)}"]`)) edge.dataset.status = t.status;
  }

  // A task's live text, from the folded state: shown while an attempt runs (then its result, or its
  // error, says the rest). `length` counts the text before what is held (a snapshot may hold its end).
  function liveOf(id) {
    const t = view.tasks.get(id);
    const folded = view.live.tasks[id] || {};
    const text = folded.text || '';
    const start = folded.textOffset || 0;
    const shown = Boolean(t && t.status === 'running' && (text || folded.progress));
    return { text, start, length: start + text.length, progress: folded.progress, shown };
  }

  function lastLine(value, n) { // the end of the text's last non-blank line, n characters at most
    const last = value.split('\n').map((l) => l.trim()).filter(Boolean).at(-1) || '';
    return last.length > n ? `…${last.slice(-(n - 1))}` : last;
  }

  function describeProgress(p) { // {done, total, message} → "3/10 reading"
    const count = p.done !== undefined ? `${p.done}${p.total !== undefined ? `/${p.total}` : ''}` : '';
    return [count, p.message || ''].filter(Boolean).join(' ');
  }

  function graphKeys(event) {
    const v = view;
    if (!v || !v.graph || v.focus === null) return;
    const g = v.graph;
    const level = g.level.get(v.focus);
    const col = g.columns[level];
    const r = col.indexOf(v.focus);
    const nearest = (l) => g.columns[l][Math.min(r, g.columns[l].length - 1)];
    const byRow = (ids) => [...ids].sort((a, b) => g.row.get(a) - g.row.get(b))[0];
    let next = null;
    switch (event.key) {
      case 'ArrowDown': next = col[r + 1] ?? null; break;
      case 'ArrowUp': next = col[r - 1] ?? null; break;
      case 'ArrowRight': next = g.children.get(v.focus).length ? byRow(g.children.get(v.focus)) : level + 1 < g.columns.length ? nearest(level + 1) : null; break;
      case 'ArrowLeft': next = g.parents.get(v.focus).length ? byRow(g.parents.get(v.focus)) : level > 0 ? nearest(level - 1) : null; break;
      case 'Home': next = g.columns[0][0]; break;
      case 'End': next = g.columns[g.columns.length - 1].at(-1); break;
      case 'Enter': case ' ': select(v.focus, false); event.preventDefault(); return;
      case 'Escape': select(null, false); return;
      default: return;
    }
    event.preventDefault();
    if (next !== null && next !== undefined) focusNode(next);
  }

  function focusNode(id) {
    const old = document.querySelector('#graph .node[tabindex="0"]');
    if (old) old.setAttribute('tabindex', '-1');
    const node = document.querySelector(`#graph .node[data-task-id="${cssId(id)}"]`);
    if (!node) return;
    node.setAttribute('tabindex', '0');
    node.focus();
    view.focus = id;
  }

  // -- the timeline: one row per task (in the graph's order), one bar per attempt

  function renderRows() {
    const v = view;
    const list = $('gantt-rows');
    list.replaceChildren();
    const longest = Math.max(0, ...[...v.tasks.values()].map((t) => (t.description || t.action).length + String(t.id).length));
    $('gantt').style.setProperty('--label-w', `${Math.min(16, Math.max(8, longest * 0.5 + 3))}rem`);
    for (const col of v.graph.columns) {
      for (const id of col) {
        const t = v.tasks.get(id);
        const row = document.createElement('li');
        row.className = 'gantt-row';
        row.dataset.taskId = String(id);
        row.dataset.status = t.status;
        const label = document.createElement('span');
        label.className = 'gantt-label';
        label.append(span('glyph', GLYPH.waiting), span('', `#${id} ${t.description || t.action}`));
        label.title = `#${id} ${t.description || t.action}`;
        const track = document.createElement('span');
        track.className = 'gantt-track';
        row.append(label, track);
        row.addEventListener('click', () => select(id, false));
        list.append(row);
      }
    }
  }

  function updateRow(id) {
    const t = view.tasks.get(id);
    const row = $('gantt-rows').querySelector(`.gantt-row[data-task-id="${cssId(id)}"]`);
    if (!t || !row) return;
    row.dataset.status = t.status;
    row.querySelector('.glyph').textContent = GLYPH[t.status] || '?';
    row.setAttribute('aria-label', `Task ${id} ${t.description || t.action}: ${t.status}, ` +
      (t.attempts.length ? t.attempts.map(describeAttempt).join('; ') : 'did not run'));
    const track = row.querySelector('.gantt-track');
    const bars = track.querySelectorAll('.gantt-bar');
    t.attempts.forEach((a, i) => {
      let bar = bars[i];
      if (!bar) {
        bar = document.createElement('span');
        bar.className = 'gantt-bar';
        bar.dataset.taskId = String(id);
        track.append(bar);
      }
      bar.dataset.attempt = String(a.attempt);
      bar.dataset.status = a.status;
      bar.title = `#${id} ${describeAttempt(a)}`;
    });
  }

  function describeAttempt(a) {
    const end = a.end ?? serverNow();
    return `attempt ${a.attempt}: ${a.status}, ${seconds(end - a.start)}`;
  }

  function updateTimeline() {
    const v = view;
    if (!v) return;
    const t0 = v.createdAt;
    let t1 = v.finishedAt ?? serverNow();
    for (const t of v.tasks.values()) for (const a of t.attempts) t1 = Math.max(t1, a.end ?? a.start);
    const span = Math.max(t1 - t0, 1000);
    const pct = (ms) => `${(Math.min(Math.max(ms, 0), span) / span) * 100}%`;
    for (const row of $('gantt-rows').children) {
      const t = v.tasks.get(Number(row.dataset.taskId));
      const bars = row.querySelectorAll('.gantt-bar');
      t.attempts.forEach((a, i) => {
        const bar = bars[i];
        if (!bar) return;
        const start = a.start - t0;
        const end = (a.end ?? serverNow()) - t0;
        bar.style.left = pct(start);
        bar.style.width = pct(Math.max(end - start, 0));
        bar.dataset.ms = String(Math.max(end - start, 0));
      });
    }
    // the axis: about six ticks at a round step
    const steps = [0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 43200, 86400];
    const step = (steps.find((s) => span / 1000 / s <= 6) ?? 86400) * 1000;
    const scale = $('gantt-scale');
    const grid = $('gantt-grid');
    const labels = [];
    const lines = [];
    for (let at = 0; at <= span; at += step) {
      const s = document.createElement('span');
      s.style.left = pct(at);
      s.textContent = at === 0 ? '0' : tick(at, step);
      labels.push(s);
      const line = document.createElement('i');
      line.style.left = pct(at);
      lines.push(line);
    }
    scale.replaceChildren(...labels);
    grid.replaceChildren(...lines);
  }

  // -- counters, status, elapsed, result

  function updateSummary() {
    const v = view;
    const counts = { waiting: 0, running: 0, completed: 0, failed: 0, skipped: 0 };
    for (const t of v.tasks.values()) {
      const key = { retrying: 'running', cancelled: 'skipped' }[t.status] || t.status;
      if (key in counts) counts[key] += 1;
    }
    for (const [key, n] of Object.entries(counts)) {
      const li = document.querySelector(`#counters [data-counter="${key}"]`);
      li.dataset.value = String(n);
      li.querySelector('b').textContent = String(n);
    }
    v.counts = counts;
    const status = $('exec-status');
    if (status.dataset.status !== v.status) {
      status.dataset.status = v.status;
      if (v.status === 'running') announce('Execution running.');
    }
    const done = counts.completed + counts.failed + counts.skipped;
    status.textContent = v.status === 'running' ? `running · ${done}/${v.total}` : v.status;
    $('progress').max = Math.max(v.total, 1);
    $('progress').value = done;
    updateElapsed();
    $('last-seq').textContent = v.seq ? `#${v.seq}` : '—';
    showResult();
  }

  function updateElapsed() {
    const v = view;
    const ms = v.durationMs ?? Math.max(0, (v.finishedAt ?? serverNow()) - v.createdAt);
    $('elapsed').dataset.ms = String(ms);
    $('elapsed').textContent = seconds(ms, 1);
  }

  function showResult() {
    const v = view;
    const box = $('result');
    const link = $('result-link');
    if (v.status === 'completed' && v.finalResult !== undefined) {
      const full = typeof v.finalResult === 'string' ? v.finalResult : JSON.stringify(v.finalResult, null, 2);
      const cut = v.finalResultTruncated || full.length > RESULT_SHOWN;
      box.textContent = full.length > RESULT_SHOWN ? `${full.slice(0, RESULT_SHOWN)}…` : full;
      box.dataset.state = cut ? 'truncated' : 'complete';
      link.hidden = !cut;
      link.href = API + (v.finalResultUrl || `${executionPath(v.id)}/result`);
    } else if (v.error) {
      box.textContent = `${v.status}${v.reason ? ` (${v.reason})` : ''}: ${v.error}`;
      box.dataset.state = 'error';
      link.hidden = true;
    } else if (v.status === 'running') {
      box.textContent = 'not finished yet';
      box.dataset.state = 'none';
    }
  }

  // -- the selected task

  function select(id, fromPointer) {
    const v = view;
    if (!v) return;
    v.selected = id;
    for (const n of document.querySelectorAll('#graph .node.selected, #gantt-rows .selected')) n.classList.remove('selected');
    if (id === null) {
      $('task-detail').replaceChildren(paragraph('Select a task in the graph or the timeline.', 'muted'));
      return;
    }
    document.querySelector(`#graph .node[data-task-id="${cssId(id)}"]`)?.classList.add('selected');
    document.querySelector(`#gantt-rows .gantt-row[data-task-id="${cssId(id)}"]`)?.classList.add('selected');
    if (fromPointer) focusNode(id);
    showTask(id);
  }

  function showTask(id) {
    const t = view.tasks.get(id);
    if (!t) return;
    const dl = document.createElement('dl');
    dl.dataset.taskId = String(id);
    const row = (name, value) => {
      if (value === undefined || value === null || value === '') return;
      const dt = document.createElement('dt');
      dt.textContent = name;
      const dd = document.createElement('dd');
      if (value instanceof Node) dd.append(value); else dd.textContent = String(value);
      dl.append(dt, dd);
    };
    row('task', `#${id} ${t.description}`);
    row('kind', t.action);
    row('status', t.status + (t.reason ? ` (${t.reason})` : ''));
    row('depends on', t.dependencies.length ? t.dependencies.map((d) => `#${d}`).join(', ') : 'nothing (a root)');
    row('attempts', t.attempts.length ? t.attempts.map(describeAttempt).join('\n') : 'none');
    if (t.durationMs !== undefined) row('duration', seconds(t.durationMs, 2));
    if (t.error) row('error', t.error);
    const live = liveOf(id);
    if (live.shown && live.progress) row('progress', describeProgress(live.progress));
    if (live.shown && live.text) { // the attempt's text so far, its end when long; follows as it grows
      const pre = document.createElement('pre');
      Object.assign(pre, { id: 'live-text', className: 'live-text' });
      pre.dataset.chars = String(live.length);
      const cut = live.start > 0 || live.text.length > LIVE_SHOWN;
      pre.textContent = (cut ? '…' : '') + live.text.slice(-LIVE_SHOWN);
      row(`live text, ${live.length} characters so far`, pre);
    }
    if (t.prompt !== undefined) row('asks', t.prompt || '(no prompt)');
    if (t.status === 'awaiting_decision') row('decide', decisionForm(id, t));
    if (t.result !== undefined) {
      const pre = document.createElement('pre');
      pre.textContent = clip(typeof t.result === 'string' ? t.result : JSON.stringify(t.result, null, 2), 2000);
      row('result', pre);
      if (t.resultUrl) {
        const a = document.createElement('a');
        a.href = API + t.resultUrl;
        a.target = '_blank';
        a.rel = 'noopener';
        a.textContent = 'the whole result';
        row('', a);
      }
    }
    $('task-detail').replaceChildren(dl);
    const pre = $('live-text');
    if (pre) pre.scrollTop = pre.scrollHeight;
  }

  // An approval task's decision: POST …/tasks/{id}/decision with the REST API's key; the stream
  // then says how the task ended (substep.completed / substep.failed), so nothing is drawn here.
  function decisionForm(id, t) {
    const form = document.createElement('form');
    form.id = 'decision';
    form.dataset.taskId = String(id);
    const comment = document.createElement('input');
    Object.assign(comment, { id: 'decision-comment', type: 'text', placeholder: 'comment (optional)' });
    comment.setAttribute('aria-label', `Comment on the decision for task ${id}`);
    const button = (approve) => {
      const b = document.createElement('button');
      Object.assign(b, { type: 'button', id: approve ? 'decision-approve' : 'decision-reject',
        textContent: approve ? 'Approve' : 'Reject' });
      b.addEventListener('click', () => decide(id, approve, comment.value, form));
      return b;
    };
    const said = document.createElement('output');
    said.id = 'decision-status';
    if (t.decisionDeadline) said.textContent = `waits until ${new Date(t.decisionDeadline).toLocaleString()}`;
    form.addEventListener('submit', (event) => event.preventDefault());
    form.append(comment, button(true), button(false), said);
    return form;
  }

  async function decide(id, approve, comment, form) {
    const said = form.querySelector('#decision-status');
    for (const b of form.querySelectorAll('button')) b.disabled = true;
    try {
      await callApi(API, `${executionPath(view.id)}/tasks/${encodeURIComponent(id)}/decision`, {
        method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ approve, comment }) });
      said.textContent = approve ? 'approved' : 'rejected';
      form.dataset.state = 'sent';
    } catch (err) {
      said.textContent = err.message;
      form.dataset.state = 'refused';
      for (const b of form.querySelectorAll('button')) b.disabled = false;
    }
  }

  // -- the event log

  function queueLog(entry) {
    if (!view) return;
    view.pendingLog.push(entry);
    schedule();
  }

  function flushLog() {
    const v = view;
    if (!v.pendingLog.length) return;
    const wrap = $('log-wrap');
    const atBottom = wrap.scrollTop + wrap.clientHeight >= wrap.scrollHeight - 4;
    const fragment = document.createDocumentFragment();
    for (const { type, e, note } of v.pendingLog) {
      const li = document.createElement('li');
      if (note) {
        li.className = 'note';
        li.textContent = note;
      } else {
        li.dataset.seq = String(e.seq);
        li.dataset.type = type;
        if (e.taskId !== undefined) li.dataset.taskId = String(e.taskId);
        li.hidden = !filters.has(type);
        const at = e.timestamp && v.createdAt ? `+${((e.timestamp - v.createdAt) / 1000).toFixed(2)}s` : '';
        const what = span('what', '');
        what.append(Object.assign(document.createElement('b'), { textContent: type }), ` ${describeEvent(type, e)}`);
        li.append(span('seq', `#${e.seq}`), span('at', at), what);
        li.title = new Date(e.timestamp).toLocaleTimeString();
        const n = $('log-filters').querySelector(`[data-type="${type}"] .n`);
        if (n) n.textContent = String(Number(n.textContent) + 1);
      }
      fragment.append(li);
    }
    v.pendingLog = [];
    $('log').append(fragment);
    if (atBottom) wrap.scrollTop = wrap.scrollHeight;
  }

  function describeEvent(type, e) {
    const task = e.taskId !== undefined ? `task ${e.taskId}` : '';
    switch (type) {
      case 'execution.created': return `${e.totalTasks} tasks`;
      case 'substep.started': return `${task} "${clip(e.description || '', 40)}"` + (e.attempt > 1 ? ` attempt ${e.attempt}` : '');
      case 'substep.progress': return `${task}` +
        (typeof e.delta === 'string' ? ` @${e.offset ?? 0} +${e.delta.length}: "${clip(short(e.delta), 60)}"` : '') +
        (e.progress ? ` [${describeProgress(e.progress)}]` : '');
      case 'substep.completed': return `${task} in ${e.durationMs} ms → ${clip(short(e.result), 60)}`;
      case 'substep.failed': return `${task} ${e.reason}${e.willRetry ? `, retry in ${e.retryInSeconds}s` : ''}: ${clip(e.error || '', 80)}`;
      case 'execution.updated': return `${e.completedTasks}/${e.totalTasks} done` + (e.failedTasks ? `, ${e.failedTasks} failed` : '') + (e.skippedTasks ? `, ${e.skippedTasks} skipped` : '');
      case 'execution.completed': return `in ${e.durationMs} ms`;
      case 'execution.failed': return `${e.status} (${e.reason}) in ${e.durationMs} ms: ${clip(e.error || '', 80)}`;
      default: return '';
    }
  }

  function renderFilters() {
    const box = $('log-filters');
    for (const type of EVENT_TYPES) {
      const label = document.createElement('label');
      label.dataset.type = type;
      const input = Object.assign(document.createElement('input'), { type: 'checkbox', checked: true, value: type });
      input.addEventListener('change', () => {
        if (input.checked) filters.add(type); else filters.delete(type);
        for (const li of $('log').querySelectorAll(`li[data-type="${type}"]`)) li.hidden = !input.checked;
      });
      label.append(input, ` ${type.replace('execution.', 'exec.').replace('substep.', '')} `, span('n', '0'));
      box.append(label);
    }
  }

  // ---------------------------------------------------------------------------- recent executions

  // The list's filters are GET /api/v1/dag-executions's: status, tag (repeated: all of them) and
  // since; "Older…" follows nextCursor. The list is read when its filters change (and on ↻ or a
  // submit), and kept live by the many-run stream (watchRuns), opened first so that nothing created
  // between the two is missed: each event updates its row, and a new execution is added at the top
  // while no filter is set (a filtered list cannot tell whether it matches).
  const RECENT_SHOWN = 25;
  let recent = new Map(); // executionId → the row's fields, for the rows shown
  let recentPages = 0; // pages shown: the first, and each "Older…"
  const recentSeq = new Map(); // executionId → the last seq applied (a repeat or an older one is dropped)
  let recentGeneration = 0;
  let recentCursor = null;
  let recentTyping = null; // the tag box reloads the list once typing pauses
  function recentQuery(cursor) {
    const q = new URLSearchParams({ limit: '25' });
    if ($('recent-status').value) q.set('status', $('recent-status').value);
    for (const tag of $('recent-tag').value.split(/[\s,]+/).filter(Boolean)) q.append('tag', tag);
    if ($('recent-since').value) q.set('since', String(Date.now() - Number($('recent-since').value)));
    if (cursor) q.set('cursor', cursor);
    return q;
  }

  async function loadRecent(older) {
    const gen = ++recentGeneration;
    const list = $('recent');
    const more = older === true && recentCursor;
    list.setAttribute('aria-busy', 'true');
    try {
      const page = await callApi(API, `/api/v1/dag-executions?${recentQuery(more ? recentCursor : null)}`);
      const { executions } = page;
      if (gen !== recentGeneration) return;
      if (!more) { recent = new Map(); recentPages = 0; }
      for (const x of executions) recent.set(x.executionId, x);
      recentPages += 1;
      if (more) list.append(...executions.map(recentItem)); else list.replaceChildren(...executions.map(recentItem));
      recentCursor = page.nextCursor || null;
      $('recent-more').hidden = !recentCursor;
      $('recent-empty').textContent = recentFiltered() ? 'No executions match these filters.' : 'No executions yet. Submit one below.';
      $('recent-empty').hidden = list.children.length > 0;
      list.dataset.loaded = 'true';
      markCurrent(view ? view.id : params.get('id'));
    } catch (err) {
      if (gen === recentGeneration) {
        list.replaceChildren();
        showError(`Could not list the executions at ${API}: ${err.message}` +
          (params.get('api') ? '' : '\nOpened from a static host? Add ?api=<the REST API URL> to this page\'s URL.'));
      }
    } finally {
      if (gen === recentGeneration) list.setAttribute('aria-busy', 'false');
    }
  }

  function recentFiltered() {
    return [...recentQuery(null).keys()].some((k) => k !== 'limit');
  }

  function onRun(type, e) {
    if ((recentSeq.get(e.executionId) || 0) >= e.seq) return;
    recentSeq.set(e.executionId, e.seq);
    const known = recent.get(e.executionId);
    // not on the list: older than what is shown, or a new one a filtered list cannot place
    if (!known && (type !== 'execution.created' || recentFiltered())) return;
    const x = known || { executionId: e.executionId, createdAt: e.timestamp, completedTasks: 0, failedTasks: 0, skippedTasks: 0 };
    for (const k of ['status', 'originalRequest', 'totalTasks', 'completedTasks', 'failedTasks', 'skippedTasks', 'tags']) {
      if (e[k] !== undefined) x[k] = e[k];
    }
    if (type === 'execution.created') x.status = 'running';
    recent.set(x.executionId, x);
    const list = $('recent');
    const row = recentItem(x);
    const old = list.querySelector(`li[data-execution-id="${CSS.escape(x.executionId)}"]`);
    if (old) old.replaceWith(row); else list.prepend(row);
    if (recentPages <= 1) { // the first page only: it keeps its length (older pages stay as loaded)
      while (list.children.length > RECENT_SHOWN) {
        recent.delete(list.lastElementChild.dataset.executionId);
        list.lastElementChild.remove();
      }
    }
    $('recent-empty').hidden = true;
    markCurrent(view ? view.id : params.get('id'));
  }

  function recentItem(x) {
    const li = document.createElement('li');
    li.dataset.executionId = x.executionId;
    li.dataset.status = x.status;
    const a = document.createElement('a');
    a.href = linkTo(x.executionId);
    a.dataset.executionId = x.executionId;
    const done = x.completedTasks + (x.failedTasks || 0) + (x.skippedTasks || 0);
    a.append(
      span('dot', ''),
      span('what', x.originalRequest || x.executionId),
      span('count', `${x.status === 'running' ? `${done}/${x.totalTasks}` : x.status}`),
      span('meta', `${timeAgo(x.createdAt)} · ${x.executionId}` + (x.tags || []).map((t) => ` #${t}`).join('')),
    );
    li.dataset.tags = (x.tags || []).join(' ');
    a.title = `${x.executionId}: ${x.status}, ${x.completedTasks}/${x.totalTasks} completed`;
    a.setAttribute('aria-label', `${x.originalRequest || x.executionId}, ${x.status}, ` +
      `${x.completedTasks} of ${x.totalTasks} tasks completed, created ${timeAgo(x.createdAt)}`);
    li.append(a);
    return li;
  }

  function markCurrent(id) {
    for (const a of $('recent').querySelectorAll('a')) {
      if (a.dataset.executionId === id) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
    }
  }

  function linkTo(id) {
    const url = new URL(location.href);
    url.search = '';
    for (const [k, v] of params) if (k !== 'id') url.searchParams.set(k, v);
    url.searchParams.set('id', id);
    url.hash = '';
    return url.href;
  }

  function navigate(id, accepted) {
    history.pushState({ id }, '', linkTo(id));
    open(id, accepted);
  }

  // ---------------------------------------------------------------------------- small things

  function startTicker() {
    stopTicker();
    ticker = setInterval(() => {
      if (!view || view.status !== 'running') return;
      updateElapsed();
      updateTimeline();
    }, 250);
  }

  function stopTicker() {
    clearInterval(ticker);
    ticker = null;
  }

  function setStream(state) {
    $('stream').dataset.state = state;
    $('stream').textContent = state;
  }

  function showTokenExpiry({ streamTokenExpiresAt }) {
    $('token-expiry').textContent = streamTokenExpiresAt
      ? new Date(streamTokenExpiresAt * 1000).toLocaleTimeString() : 'no token (auth is off)';
  }

  function count(id) {
    const n = Number($(id).dataset.count) + 1;
    $(id).dataset.count = String(n);
    $(id).textContent = String(n);
  }

  function resetCount(id) {
    $(id).dataset.count = '0';
    $(id).textContent = '0';
  }

  function showError(message) {
    $('error').hidden = !message;
    $('error').textContent = message || '';
  }

  function announce(text) {
    $('announcer').textContent = text;
  }

  function el(ns, tag, attrs = {}) {
    const node = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    return node;
  }

  function headline(id, action) { // "#3 · sleep": the id in bold, the kind muted
    const line = el(SVG_NS, 'text', { x: 10, y: 17 });
    line.append(text(el(SVG_NS, 'tspan', { class: 'tid' }), `#${id}`),
      text(el(SVG_NS, 'tspan', { class: 'kind', dx: 5 }), `· ${action}`));
    return line;
  }

  function text(node, value) {
    node.textContent = value;
    return node;
  }

  function span(className, value) {
    const s = document.createElement('span');
    if (className) s.className = className;
    s.textContent = value;
    return s;
  }

  function paragraph(value, className) {
    const p = document.createElement('p');
    p.textContent = value;
    if (className) p.className = className;
    return p;
  }

  function clip(value, n) {
    const s = String(value ?? '');
    return s.length > n ? `${s.slice(0, n - 1)}…` : s;
  }

  function short(value) {
    return typeof value === 'string' ? value.replace(/\s+/g, ' ') : JSON.stringify(value);
  }

  function seconds(ms, digits = 2) {
    const s = ms / 1000;
    if (s >= 3600) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
    if (s >= 120) return `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, '0')}s`;
    return `${s.toFixed(digits)} s`;
  }

  function tick(ms, step) { // an axis label: ticks are whole multiples of the step
    if (step < 1000) return `${(ms / 1000).toFixed(1)}s`;
    if (step < 60000) return `${Math.round(ms / 1000)}s`;
    if (step < 3600000) return `${Math.round(ms / 60000)}m`;
    return `${Math.round(ms / 3600000)}h`;
  }

  function timeAgo(ms) {
    const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
    if (s < 60) return `${s}s ago`;
    if (s < 3600) return `${Math.floor(s / 60)} min ago`;
    if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
    return new Date(ms).toLocaleDateString();
  }

  const cssId = (id) => CSS.escape(String(id));

  // ---------------------------------------------------------------------------- wiring

  renderFilters();
  $('job').value = JSON.stringify(EXAMPLE_JOB, null, 2);
  $('api-base').value = API;
  $('events-base').value = params.get('events') || '';

  $('open-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const id = $('open-id').value.trim();
    if (id) navigate(id);
  });

  $('recent').addEventListener('click', (event) => {
    const a = event.target.closest('a[data-execution-id]');
    if (!a || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    event.preventDefault();
    navigate(a.dataset.executionId);
  });

  $('recent-refresh').addEventListener('click', () => loadRecent());
  $('recent-more').addEventListener('click', () => loadRecent(true));
  for (const id of ['recent-status', 'recent-since']) $(id).addEventListener('change', () => loadRecent());
  $('recent-tag').addEventListener('input', () => { clearTimeout(recentTyping); recentTyping = setTimeout(() => loadRecent(), 300); });
  $('recent-filters').addEventListener('submit', (event) => { event.preventDefault(); loadRecent(); });

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
      const accepted = await callApi(API, '/api/v1/execute-dag', {
        method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(job),
      });
      navigate(accepted.executionId, accepted);
      loadRecent();
    } catch (err) {
      showError(`The job was not accepted: ${err.message}`);
    }
  });

  $('connection-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const url = new URL(location.href);
    const api = trim($('api-base').value);
    const events = trim($('events-base').value);
    if (api && api !== location.origin) url.searchParams.set('api', api); else url.searchParams.delete('api');
    if (events) url.searchParams.set('events', events); else url.searchParams.delete('events');
    location.assign(url.href);
  });

  window.addEventListener('popstate', () => { // Back / Forward between executions
    const id = new URLSearchParams(location.search).get('id');
    if (id) return open(id);
    generation += 1;
    if (watch) watch.stop();
    watch = null;
    view = null;
    stopTicker();
    setStream('idle');
    $('execution').hidden = true;
    $('placeholder').hidden = false;
    markCurrent(null);
  });

  document.addEventListener('keydown', (event) => { // "/" jumps to the id field, as in many dashboards
    if (event.key === '/' && !['INPUT', 'TEXTAREA'].includes(document.activeElement.tagName)) {
      event.preventDefault();
      $('open-id').focus();
    }
  });

  watchRuns(API, {
    eventsBase: EVENTS,
    onEvent: onRun,
    onState: (state) => { $('recent').dataset.live = state; },
  });
  loadRecent();
  if (params.get('id')) open(params.get('id'));

  window.DagcastMonitor = { open, view: () => view }; // for the console and the tests
})();
