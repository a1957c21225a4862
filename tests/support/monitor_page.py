"""The monitor page's state as a test reads it from the DOM (its ids and data attributes are its test
interface; monitor/monitor.js keeps them): the whole page as one object, and whether the execution
has finished and the stream has closed."""

from __future__ import annotations

# What the page shows, read from the DOM (its ids and data attributes are its test interface).
READ_PAGE = """() => ({
  status: document.getElementById('exec-status').dataset.status,
  stream: document.getElementById('stream').dataset.state,
  executionId: document.getElementById('exec-id').textContent,
  error: document.getElementById('error').hidden ? null : document.getElementById('error').textContent,
  nodes: Object.fromEntries([...document.querySelectorAll('#graph .node[data-task-id]')].map(
    (n) => [n.dataset.taskId, {status: n.dataset.status, level: Number(n.dataset.level),
      stroke: getComputedStyle(n.querySelector('.box')).stroke, x: n.getBoundingClientRect().left}])),
  edges: [...document.querySelectorAll('#graph .edge')].map((e) => [Number(e.dataset.from), Number(e.dataset.to)]),
  bars: [...document.querySelectorAll('.gantt-bar[data-task-id]')].map((b) => ({
    task: Number(b.dataset.taskId), attempt: Number(b.dataset.attempt), status: b.dataset.status,
    width: b.getBoundingClientRect().width, left: b.getBoundingClientRect().left})),
  log: [...document.querySelectorAll('#log li[data-seq]')].map((li) => ({seq: Number(li.dataset.seq), type: li.dataset.type})),
  counters: Object.fromEntries([...document.querySelectorAll('#counters [data-counter]')].map(
    (li) => [li.dataset.counter, Number(li.dataset.value)])),
  elapsedMs: Number(document.getElementById('elapsed').dataset.ms),
  result: document.getElementById('result').textContent,
  resultState: document.getElementById('result').dataset.state,
  connections: Number(document.getElementById('connections').dataset.count),
  colors: Object.fromEntries(['completed', 'failed', 'skipped', 'running', 'waiting'].map(
    (s) => [s, getComputedStyle(document.documentElement).getPropertyValue('--' + s).trim()])),
})"""
FINISHED = (
    "['completed', 'failed', 'cancelled'].includes(document.getElementById('exec-status').dataset.status)"
)
CLOSED = "document.getElementById('stream').dataset.state === 'closed'"
