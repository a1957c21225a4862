import type { ExecutionState, WatchOptions, WatchState, WatchError, AnyEvent } from './index.js';

export interface ExecutionHookState extends ExecutionState {
  connection: WatchState;
  streamError?: WatchError;
}

export type ExecutionAction =
  | { reset: string | undefined }
  | { connection: WatchState }
  | { error: WatchError }
  | { event: AnyEvent };

export function executionReducer(state: ExecutionHookState, action: ExecutionAction): ExecutionHookState;

export function useExecution(
  options: Pick<WatchOptions, 'eventsUrl' | 'executionId' | 'refresh' | 'lastEventId' | 'types'> | Partial<WatchOptions>,
): ExecutionHookState;
