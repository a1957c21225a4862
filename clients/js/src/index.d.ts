// The types of '@dagcast/client'. The event types are generated (events.d.ts, `make types`); this
// file adds what is open about them and the functions' signatures.
import type { DagcastEvent, ExecutionSnapshot, ExecutionStatus, Heartbeat, TaskView } from './events.js';

export * from './events.js';

/** An event of a type this client does not know yet (a newer server): every field kept. */
export interface UnknownEvent {
  type: string;
  seq?: number;
  executionId?: string;
  timestamp?: number;
  [k: string]: unknown;
}

/** What the stream may send: the known events, or one of a newer type (never an error). */
export type AnyEvent = DagcastEvent | UnknownEvent;

export const EVENT_TYPES: readonly string[];
export const TERMINAL_TYPES: readonly string[];
export const HEARTBEAT: 'heartbeat';
export class EventParseError extends Error {}
export function parseEvent(data: string | object, type?: string): AnyEvent;
export function isTerminal(event: AnyEvent): boolean;
export function isFinalSnapshot(event: AnyEvent): boolean;

/** substep.progress's `progress`. */
export interface Progress {
  done?: number;
  total?: number;
  message?: string;
  [k: string]: unknown;
}

/** A task as fold keeps it: the snapshot's view, updated by each event; `text` is the current
 * attempt's partial text from `textOffset` on (0 unless its start was never seen). */
export interface TaskState extends Partial<Omit<TaskView, 'status'>> {
  taskId: number;
  status: TaskView['status'];
  text: string;
  textOffset: number;
  progress?: Progress;
  willRetry?: boolean;
  retryInSeconds?: number;
  [k: string]: unknown;
}

export interface ExecutionState extends Partial<Omit<ExecutionSnapshot, 'tasks' | 'status' | 'seq' | 'type' | 'snapshot'>> {
  executionId?: string;
  status: ExecutionStatus | 'unknown';
  lastSeq: number | null;
  events: number;
  tasks: Record<number, TaskState>;
  done: boolean;
  [k: string]: unknown;
}

export function initialState(executionId?: string): ExecutionState;
export function fold(state: ExecutionState, event: AnyEvent): ExecutionState;
export function placeText(task: TaskState, delta: string, offset?: number): TaskState;

export interface SseMessage { event: string; data: string; id: string; retry?: number }
export function parseSse(text: string): SseMessage[];

export type WatchState = 'idle' | 'connecting' | 'open' | 'reconnecting' | 'refreshing' | 'closed' | 'failed';

/** A fresh stream URL, or an answer that has one (POST …/stream-token's, or your backend's). */
export type Fresh = string | { eventsUrl: string; streamTokenExpiresAt?: number; [k: string]: unknown };

export interface WatchOptions {
  /** The stream URL the API answered (it carries ?token=). */
  eventsUrl: string;
  executionId?: string;
  /** Called when the stream refuses the token (it expired): a fresh URL. */
  refresh?: (executionId: string | undefined) => Promise<Fresh> | Fresh;
  /** null (default): a snapshot first; 0: every event from the first; N: the events after N. */
  lastEventId?: number | null;
  /** Only these types (exact names or prefix.*); the terminal types are always added. */
  types?: string[];
  onEvent?: (event: AnyEvent) => void;
  onHeartbeat?: (event: Heartbeat) => void;
  onState?: (state: WatchState) => void;
  onConnect?: () => void;
  onRefresh?: (fresh: Fresh) => void;
  onEnd?: (lastEventId: number | null) => void;
  onError?: (error: WatchError) => void;
  maxRefusals?: number;
  EventSource?: unknown;
  fetch?: typeof fetch;
}

export class WatchError extends Error {
  status?: number;
}

export interface Watch extends AsyncIterable<AnyEvent> {
  stop(): void;
  readonly lastEventId: number | null;
  readonly state: WatchState;
  /** Resolves with the last seq when the stream ended; rejects with a WatchError when it gave up. */
  readonly done: Promise<number | null>;
}

export function watchExecution(options: WatchOptions): Watch;
