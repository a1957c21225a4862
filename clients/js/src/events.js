// Event names and the parsing of one event: what the stream sends, as the client reads it.
//
// Open by design (docs/compatibility.md): a type this file does not know is parsed like any other
// (it keeps every field) and folded into nothing; a field it does not know is kept. Only what
// cannot be an event at all (not JSON, not an object, a stored event without a seq) is an error.

/** The types this client knows. The stream sends only named events, so a watcher listens for these
 * and for the ones its caller names (`types`); anything newer is ignored unless asked for. */
export const EVENT_TYPES = Object.freeze([
  'execution.created', 'execution.updated', 'execution.completed', 'execution.failed',
  'substep.started', 'substep.progress', 'substep.completed', 'substep.failed', 'substep.waiting',
]);

/** The events that end an execution's stream (and nothing else does). */
export const TERMINAL_TYPES = Object.freeze(['execution.completed', 'execution.failed']);

export const HEARTBEAT = 'heartbeat';

export class EventParseError extends Error {}

/** One event from an SSE message's data (a JSON text) or an object already parsed. `type` is the
 * SSE event name, used when the data says none. Heartbeats carry no seq; every other event must. */
export function parseEvent(data, type) {
  let event = data;
  if (typeof data === 'string') {
    try {
      event = JSON.parse(data);
    } catch (err) {
      throw new EventParseError(`not JSON: ${err.message}`);
    }
  }
  if (event === null || typeof event !== 'object' || Array.isArray(event)) {
    throw new EventParseError('an event is a JSON object');
  }
  if (typeof event.type !== 'string') {
    if (typeof type !== 'string') throw new EventParseError('an event without a type');
    event = { ...event, type };
  }
  if (event.type !== HEARTBEAT && !Number.isInteger(event.seq)) {
    throw new EventParseError(`a ${event.type} event without a seq`);
  }
  return event;
}

export const isTerminal = (event) => TERMINAL_TYPES.includes(event.type);

/** A snapshot of an execution that has finished: the stream ends after it, no terminal event follows. */
export const isFinalSnapshot = (event) => event.snapshot === true && event.status !== 'running';
