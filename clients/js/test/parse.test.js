import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { EVENT_TYPES, EventParseError, parseEvent, parseSse } from '../src/index.js';
import { FIXTURES, RECORDED } from './helpers.js';

test('every recorded message is an event the client parses, its SSE id its seq', () => {
  for (const name of RECORDED) {
    for (const how of ['live', 'history', 'final']) {
      const messages = parseSse(readFileSync(new URL(`${name}.${how}.sse`, FIXTURES), 'utf8'));
      assert.ok(messages.length > 0, `${name}.${how}`);
      for (const m of messages) {
        const e = parseEvent(m.data, m.event);
        assert.equal(e.type, m.event);
        if (e.type === 'heartbeat') continue;
        assert.ok(EVENT_TYPES.includes(e.type), e.type);
        assert.equal(m.id, String(e.seq));
      }
    }
  }
});

test('a recorded history is seq 1, 2, 3… with no gap, from execution.created to the terminal event', () => {
  for (const name of RECORDED) {
    const messages = parseSse(readFileSync(new URL(`${name}.history.sse`, FIXTURES), 'utf8'));
    const events = messages.map((m) => parseEvent(m.data, m.event)).filter((e) => e.type !== 'heartbeat');
    assert.deepEqual(events.map((e) => e.seq), events.map((_, i) => i + 1));
    assert.equal(events[0].type, 'execution.created');
    assert.match(events.at(-1).type, /^execution\.(completed|failed)$/);
  }
});

test('parseSse follows the event-stream rules: CRLF, comments, multi-line data, BOM, retry, a message without data', () => {
  const text = '\uFEFF: a comment\r\nevent: a\r\nid: 7\r\nretry: 300\r\ndata: {"x":\r\ndata:1}\r\n\r\n' +
    'event: b\nid\n\nevent: c\ndata\n\ndata:  two spaces\n\n';
  assert.deepEqual(parseSse(text), [
    { event: 'a', data: '{"x":\n1}', id: '7', retry: 300 },
    { event: 'c', data: '', id: '' }, // `id` with no value resets it; b had no data: not dispatched
    { event: 'message', data: ' two spaces', id: '' },
  ]);
});

test('parseEvent keeps types and fields it does not know, and refuses what is no event', () => {
  const newer = parseEvent('{"type":"substep.waiting","seq":9,"until":"approval","taskId":2}');
  assert.deepEqual(newer, { type: 'substep.waiting', seq: 9, until: 'approval', taskId: 2 });
  assert.equal(parseEvent({ seq: 3 }, 'substep.started').type, 'substep.started'); // the SSE name
  assert.equal(parseEvent('{"type":"heartbeat","executionId":"x","timestamp":1}').seq, undefined);
  for (const bad of ['not json', '[1]', 'null', '{"type":"substep.started"}', '{"seq":1}']) {
    assert.throws(() => parseEvent(bad), EventParseError, bad);
  }
});
