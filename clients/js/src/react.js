// useExecution: a React hook over watchExecution and fold (the entry point '@dagcast/client/react';
// React is a peer dependency, imported only here).
//
// The stream opens in an effect whose cleanup closes it: on unmount, when the execution or the
// first URL changes, and on StrictMode's double run in development. Refreshed URLs stay inside the
// watch (they are not props or state), and `refresh` is read through a ref, so a new function on
// every render does not reopen the stream.
import { useEffect, useReducer, useRef } from 'react';
import { fold, initialState } from './fold.js';
import { watchExecution } from './watch.js';

/** The reducer the hook keeps its state with: fold, plus how the connection is doing. */
export function executionReducer(state, action) {
  if (action.reset !== undefined) return start(action.reset);
  if (action.connection !== undefined) return { ...state, connection: action.connection };
  if (action.error !== undefined) return { ...state, streamError: action.error };
  return fold(state, action.event);
}

function start(executionId) {
  return { ...initialState(executionId), connection: 'idle', streamError: undefined };
}

/**
 * options: {executionId, eventsUrl, refresh?, lastEventId?, types?} (the watchExecution options).
 * Returns fold's state plus `connection` (watchExecution's state) and `streamError` (why it gave up).
 */
export function useExecution({ executionId, eventsUrl, refresh, lastEventId = null, types } = {}) {
  const [state, dispatch] = useReducer(executionReducer, executionId, start);
  const latest = useRef(refresh);
  latest.current = refresh;
  const typeKey = types ? types.join(',') : '';
  useEffect(() => {
    if (!eventsUrl) return undefined;
    dispatch({ reset: executionId });
    const watch = watchExecution({
      eventsUrl,
      executionId,
      lastEventId,
      types: typeKey ? typeKey.split(',') : undefined,
      refresh: latest.current ? (id) => latest.current(id) : undefined,
      onEvent: (event) => dispatch({ event }),
      onState: (connection) => dispatch({ connection }),
      onError: (error) => dispatch({ error }),
    });
    return () => watch.stop();
  }, [executionId, eventsUrl, lastEventId, typeKey]);
  return state;
}
