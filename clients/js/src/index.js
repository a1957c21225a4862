// @dagcast/client: follow a dagcast execution live from a browser (or any runtime with
// EventSource), and fold its events into the execution's current state. No dependencies.
export { EVENT_TYPES, TERMINAL_TYPES, HEARTBEAT, EventParseError, parseEvent, isTerminal, isFinalSnapshot } from './events.js';
export { fold, initialState, placeText } from './fold.js';
export { parseSse } from './sse.js';
export { watchExecution, WatchError } from './watch.js';
