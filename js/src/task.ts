/** A task's events, state and outcome, as one client sees them: {@link TaskView}. */

import { TaskFailed, TaskRevoked, TaskTimeout } from "./errors.js";

/** Every event name a task can emit. */
export const TASK_EVENTS = [
  "on_received",
  "on_started",
  "on_progress",
  "on_retry",
  "on_failure",
  "on_success",
  "on_return",
  "on_revoked",
] as const;

export type TaskEventName = (typeof TASK_EVENTS)[number];

/** What every event payload carries. */
export interface BasePayload {
  task_id: string;
  task_name: string;
  /** 1, 2, 3, ... per task, in the order the task emitted them. */
  event_id: number;
  /** The log that numbered them; a new one (Redis lost the log) starts again at 1. */
  epoch?: string;
  /** Seconds since the epoch, from the worker. */
  timestamp: number;
  /** Set on a final event built from the result backend after the task's event log expired. */
  synthesized?: boolean;
  [key: string]: unknown;
}

export interface ProgressPayload extends BasePayload {
  current: number;
  total: number;
  info: unknown;
}

export interface FailurePayload extends BasePayload {
  /** The traceback, when the workers run with `stirfried_error_info`. */
  einfo?: string;
}

export interface SuccessPayload extends BasePayload {
  retval: unknown;
}

export interface ReturnPayload extends BasePayload {
  status: "SUCCESS" | "FAILURE" | string;
  retval: unknown;
}

export interface RevokedPayload extends BasePayload {
  terminated: boolean;
  expired: boolean;
}

/** One event of a task: `name` tells the payload's shape. */
export type TaskEvent =
  | { name: "on_progress"; id: number; payload: ProgressPayload }
  | { name: "on_retry" | "on_failure"; id: number; payload: FailurePayload }
  | { name: "on_success"; id: number; payload: SuccessPayload }
  | { name: "on_return"; id: number; payload: ReturnPayload }
  | { name: "on_revoked"; id: number; payload: RevokedPayload }
  | { name: "on_received" | "on_started"; id: number; payload: BasePayload };

/** One `on_progress` event, as the Python client's `Progress`. */
export interface Progress {
  taskId: string;
  current: number;
  total: number;
  info: unknown;
}

/**
 * What a client knows of a task: `PENDING` until its first event, then the
 * state its events tell (`RETRY` after a retry, `PROGRESS` while it reports progress).
 */
export type TaskState =
  | "PENDING"
  | "RECEIVED"
  | "STARTED"
  | "PROGRESS"
  | "RETRY"
  | "SUCCESS"
  | "FAILURE"
  | "REVOKED";

/** An immutable picture of a task, replaced after every event (for React's useSyncExternalStore). */
export interface TaskSnapshot {
  state: TaskState;
  /** The last `on_progress`, if any. */
  progress: Progress | undefined;
  /** The return value, once the task succeeded. */
  result: unknown;
  /** Why the task did not succeed ({@link TaskFailed}, {@link TaskRevoked}), or why following it stopped. */
  error: Error | undefined;
  /** Retries so far. */
  retries: number;
  /** Whether the final event (`on_return` or `on_revoked`) arrived, or following it failed. */
  finished: boolean;
  /** The highest `event_id` seen. */
  lastEventId: number;
  /** The `epoch` of the log that numbered `lastEventId` (sent with it when resubscribing). */
  epoch: string | undefined;
  /**
   * When the task started (its `on_started`, else its first event) and finished (its
   * final event): milliseconds since the epoch, from the worker's clock.
   */
  startedAt: number | undefined;
  finishedAt: number | undefined;
  /** The events kept so far, in order (at most `eventHistory`, oldest dropped first). */
  events: readonly TaskEvent[];
}

export interface WaitOptions {
  /** Milliseconds to wait; `0` or `Infinity`: no limit. */
  timeout?: number;
  /** Stop waiting when aborted; the promise rejects with the signal's reason. */
  signal?: AbortSignal;
}

export type EventListener = (event: TaskEvent, task: TaskView) => void;

export const DEFAULT_EVENT_HISTORY = 1000;

/**
 * One task's events, in order and each once, its state and its outcome.
 * {@link TaskHandle} (Socket.IO) and {@link EventSourceTask} (SSE) extend it.
 */
export class TaskView {
  readonly id: string;
  #name: string | undefined;
  #snapshot: TaskSnapshot;
  #listeners = new Set<EventListener>();
  #changeListeners = new Set<() => void>();
  #done: Promise<unknown>;
  #settle!: { resolve: (value: unknown) => void; reject: (error: Error) => void };
  #historyLimit: number;
  #einfo: string | null = null;

  /**
   * @param after events up to this `event_id` count as seen...
   * @param epoch ...if numbered by the log of this `epoch` (a new log's are all new).
   */
  constructor(
    id: string,
    name: string | undefined,
    after = 0,
    historyLimit = DEFAULT_EVENT_HISTORY,
    epoch?: string,
  ) {
    this.id = id;
    this.#name = name;
    this.#historyLimit = historyLimit;
    this.#snapshot = {
      state: "PENDING",
      progress: undefined,
      result: undefined,
      error: undefined,
      retries: 0,
      finished: false,
      lastEventId: after,
      epoch,
      startedAt: undefined,
      finishedAt: undefined,
      events: [],
    };
    this.#done = new Promise((resolve, reject) => {
      this.#settle = { resolve, reject };
    });
    this.#done.catch(() => {}); // nobody may be waiting: not an unhandled rejection
    this.subscribe = this.subscribe.bind(this);
    this.getSnapshot = this.getSnapshot.bind(this);
  }

  /** The task's name (from the schedule call, else from its first event). */
  get name(): string | undefined {
    return this.#name;
  }

  get state(): TaskState {
    return this.#snapshot.state;
  }

  get events(): readonly TaskEvent[] {
    return this.#snapshot.events;
  }

  get lastEventId(): number {
    return this.#snapshot.lastEventId;
  }

  /** The `epoch` of the log that numbered the events seen ({@link TaskSnapshot.epoch}). */
  get epoch(): string | undefined {
    return this.#snapshot.epoch;
  }

  get finished(): boolean {
    return this.#snapshot.finished;
  }

  get progress(): Progress | undefined {
    return this.#snapshot.progress;
  }

  /** The current {@link TaskSnapshot} (the same object until something changes). */
  getSnapshot(): TaskSnapshot {
    return this.#snapshot;
  }

  /** Call `onChange` after every change; returns the function that stops it (React's store contract). */
  subscribe(onChange: () => void): () => void {
    this.#changeListeners.add(onChange);
    return () => this.#changeListeners.delete(onChange);
  }

  /**
   * Call `listener` with every event, in order and each once. With `replay` (the
   * default) it first gets the events kept so far, so it misses none that arrived
   * before it was added. Returns the function that removes it.
   */
  onEvent(listener: EventListener, { replay = true }: { replay?: boolean } = {}): () => void {
    if (replay) for (const event of this.#snapshot.events) listener(event, this);
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * The task's return value, once it arrives. Rejects with {@link TaskFailed}
   * (or {@link TaskRevoked}), or {@link TaskTimeout} after `timeout` milliseconds
   * (the task goes on: this only stops waiting).
   */
  result({ timeout = 0, signal }: WaitOptions = {}): Promise<unknown> {
    if (this.#snapshot.finished || (!timeout && !signal)) return this.#done;
    return new Promise((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const cleanup = (): void => {
        if (timer !== undefined) clearTimeout(timer);
        signal?.removeEventListener("abort", aborted);
      };
      const aborted = (): void => {
        cleanup();
        reject(signal?.reason ?? new DOMException("aborted", "AbortError"));
      };
      if (signal?.aborted) return aborted();
      signal?.addEventListener("abort", aborted, { once: true });
      if (timeout && Number.isFinite(timeout)) {
        timer = setTimeout(() => {
          cleanup();
          const name = this.#name ?? "?";
          reject(new TaskTimeout(`task ${name} (${this.id}) did not finish within ${timeout / 1000} s`));
        }, timeout);
      }
      this.#done.then(
        (value) => {
          cleanup();
          resolve(value);
        },
        (error: unknown) => {
          cleanup();
          reject(error);
        },
      );
    });
  }

  /** Async iteration: the events kept so far, then new ones, ending after the final event. */
  async *[Symbol.asyncIterator](): AsyncGenerator<TaskEvent, void, undefined> {
    const queue: TaskEvent[] = [];
    let wake: (() => void) | undefined;
    const stop = this.onEvent((event) => {
      queue.push(event);
      wake?.();
    });
    const finish = (): void => wake?.();
    this.#done.then(finish, finish);
    try {
      for (;;) {
        while (queue.length > 0) yield queue.shift() as TaskEvent;
        if (this.#snapshot.finished) return;
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
        wake = undefined;
      }
    } finally {
      stop();
    }
  }

  /**
   * Take one event from the gateway; drops it if its `event_id` was already seen
   * (unless a new log, another `epoch`, numbered it). Returns whether it was new.
   * @internal
   */
  _deliver(name: string, payload: BasePayload): boolean {
    const previous = this.#snapshot;
    if (previous.finished) return false;
    const eventId = typeof payload.event_id === "number" ? payload.event_id : undefined;
    const epoch = typeof payload.epoch === "string" ? payload.epoch : undefined;
    const newLog = epoch !== undefined && previous.epoch !== undefined && epoch !== previous.epoch;
    if (eventId !== undefined && eventId <= previous.lastEventId && !newLog) return false;
    const event = { name, id: eventId ?? previous.lastEventId, payload } as TaskEvent;
    this.#name ??= typeof payload.task_name === "string" ? payload.task_name : undefined;
    const next: TaskSnapshot = {
      ...previous,
      lastEventId: eventId ?? previous.lastEventId,
      epoch: eventId !== undefined && epoch !== undefined ? epoch : previous.epoch,
      events: appendBounded(previous.events, event, this.#historyLimit),
      startedAt: previous.startedAt ?? eventTime(payload),
    };
    this.#apply(event, next);
    this.#snapshot = next;
    for (const listener of [...this.#listeners]) {
      try {
        listener(event, this);
      } catch (error) {
        reportError(error);
      }
    }
    this.#changed();
    if (next.finished) {
      if (next.error) this.#settle.reject(next.error);
      else this.#settle.resolve(next.result);
    }
    return true;
  }

  /**
   * Stop: following the task failed (e.g. the gateway refused a subscription), or was closed.
   * Waiters get `error`.
   * @internal
   */
  _fail(error: Error): void {
    if (this.#snapshot.finished) return;
    this.#snapshot = { ...this.#snapshot, error, finished: true, finishedAt: Date.now() };
    this.#changed();
    this.#settle.reject(error);
  }

  #apply(event: TaskEvent, next: TaskSnapshot): void {
    const active = (state: TaskState): void => {
      if (!["SUCCESS", "FAILURE", "REVOKED"].includes(next.state)) next.state = state;
    };
    const name = this.#name ?? "?";
    switch (event.name) {
      case "on_received":
        active("RECEIVED");
        break;
      case "on_started":
        next.startedAt = eventTime(event.payload);
        active("STARTED");
        break;
      case "on_progress": {
        const { current, total, info } = event.payload;
        next.progress = { taskId: this.id, current, total, info };
        active("PROGRESS");
        break;
      }
      case "on_retry":
        next.retries += 1;
        next.state = "RETRY";
        break;
      case "on_failure":
        this.#einfo = typeof event.payload.einfo === "string" ? event.payload.einfo : null;
        next.state = "FAILURE";
        break;
      case "on_success":
        next.state = "SUCCESS";
        next.result = event.payload.retval;
        break;
      case "on_return":
        next.finished = true;
        next.finishedAt = eventTime(event.payload);
        if (event.payload.status === "SUCCESS") {
          next.state = "SUCCESS";
          next.result = event.payload.retval;
        } else {
          next.state = "FAILURE";
          const retval = event.payload.retval;
          next.error = new TaskFailed(this.id, name, retval == null ? null : String(retval), this.#einfo);
        }
        break;
      case "on_revoked":
        next.finished = true;
        next.finishedAt = eventTime(event.payload);
        next.state = "REVOKED";
        next.error = new TaskRevoked(this.id, name, {
          terminated: event.payload.terminated === true,
          expired: event.payload.expired === true,
        });
        break;
    }
  }

  #changed(): void {
    for (const onChange of [...this.#changeListeners]) {
      try {
        onChange();
      } catch (error) {
        reportError(error);
      }
    }
  }
}

function appendBounded<T>(list: readonly T[], item: T, limit: number): T[] {
  const next = list.length >= limit ? list.slice(list.length - limit + 1) : list.slice();
  next.push(item);
  return next;
}

function eventTime(payload: BasePayload): number {
  return typeof payload.timestamp === "number" ? payload.timestamp * 1000 : Date.now();
}

/** A listener threw: report it as the platform does for event handlers, without stopping delivery. */
function reportError(error: unknown): void {
  const report = (globalThis as { reportError?: (error: unknown) => void }).reportError;
  if (report) report(error);
  else console.error(error);
}

/** Whether `value` is an event payload for a task (has a string `task_id`). */
export function isPayload(value: unknown): value is BasePayload {
  return typeof value === "object" && value !== null && typeof (value as BasePayload).task_id === "string";
}

