// Shared by the tests: the recorded streams, read as the client reads them.
import { readFileSync } from 'node:fs';
import { parseEvent, parseSse } from '../src/index.js';

export const FIXTURES = new URL('./fixtures/', import.meta.url);
export const RECORDED = ['completed', 'failed']; // tests/support/record_streams.py's jobs

/** A recording's events (heartbeats left out), parsed from the SSE text the server sent. */
export function recorded(name, how) {
  const text = readFileSync(new URL(`${name}.${how}.sse`, FIXTURES), 'utf8');
  return parseSse(text).map((m) => parseEvent(m.data, m.event)).filter((e) => e.type !== 'heartbeat');
}
