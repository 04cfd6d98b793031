/** What the client takes: the options of its calls, and the task object they become. */

import type { ManagerOptions, SocketOptions } from "socket.io-client";

import { StirfriedError } from "./errors.js";
import { isSessionKey, tabSessionKey } from "./session.js";
import type { EventListener, Progress } from "./task.js";

/** A client token (JWT), or a function giving one: called on every (re)connection, so it may refresh. */
export type TokenSource = string | (() => string | Promise<string>);

export interface ConnectOptions {
  /** A client token for gateways that require one (sent in the Socket.IO `auth` payload). */
  token?: TokenSource;
  /** Milliseconds to wait for the connection and for each reply. Default 30 000. */
  timeout?: number;
  /**
   * A Socket.IO parser, e.g. `import * as msgpackParser from "socket.io-msgpack-parser"`
   * for gateways with `socketio_serializer: msgpack`.
   */
  parser?: unknown;
  /** Headers sent when connecting (Node.js only: browsers cannot set them on a websocket). */
  headers?: Record<string, string>;
  /** Events kept per task ({@link TaskView.events}); default 1000. */
  eventHistory?: number;
  /** Anything else for socket.io-client's `io(url, options)` (path, transports, reconnection delays...). */
  socketOptions?: Partial<ManagerOptions & SocketOptions>;
  /**
   * On an anonymous gateway, the key under which it records the tasks this client
   * schedules, so that a later connection with the same key lists them
   * ({@link StirfriedClient.listMyTasks}). `true`: this tab's key, kept in
   * sessionStorage (made on first use; survives a reload, not shared with other
   * tabs); a string: that key (22-128 characters of `A-Za-z0-9_-`, e.g. from
   * `createSessionKey()`); `false`: none (`listMyTasks` lists this connection's tasks).
   * Default: `true` where sessionStorage exists and no `token` is given, else `false`.
   */
  session?: boolean | string;
}

/**
 * Celery's scheduling options, accepted where the gateway's `stirfried_task_options`
 * (and the token) allow each; sent as the gateway reads them. `countdown` and
 * `expires` are seconds, as in Celery.
 */
export interface CeleryOptions {
  /** Seconds to wait before running the task. */
  countdown?: number;
  /** When to run it (a `Date`, or an ISO 8601 string). */
  eta?: Date | string;
  /** Seconds from now, or a time, after which a worker drops it unstarted (it ends with `on_revoked`). */
  expires?: number | Date | string;
  /** 0 to 9, as the broker understands it. */
  priority?: number;
  /** A queue the gateway's `stirfried_task_queues` names. */
  queue?: string;
}

/** Options of {@link StirfriedClient.schedule}. */
export interface ScheduleOptions extends CeleryOptions {
  /** Task objects (without `chain`) to run after this one (applied in reverse order, as Stirfried 0.7.0). */
  chain?: ChainedTask[];
  /** The room to send events to (honoured with `stirfried_custom_rooms`, or the sentinel room). */
  room?: string;
  /**
   * Retry a submit safely (e.g. after a {@link TaskTimeout}): a repeat with the same key
   * and the same task gets the first task back, which runs once (a different task under
   * the same key is refused). 1-255 visible ASCII characters.
   */
  idempotencyKey?: string;
  /** Give up waiting for the gateway's reply (the task may still have been scheduled). */
  signal?: AbortSignal;
  /** Called with every event, in order and each once (from the first). */
  onEvent?: EventListener;
  /** Called with every `on_progress` event, in order. */
  onProgress?: (progress: Progress) => void;
}

/** A task of a chain, as the gateway reads it (Celery's options as on the wire: seconds, ISO 8601 strings). */
export interface ChainedTask {
  task_name: string;
  args?: unknown[];
  kwargs?: Record<string, unknown>;
  room?: string;
  countdown?: number;
  eta?: string;
  expires?: number | string;
  priority?: number;
  queue?: string;
}

/** Options of {@link StirfriedClient.run}: those of `schedule`, and how long to wait. */
export interface RunOptions extends ScheduleOptions {
  /**
   * Milliseconds to wait for the result once the task is scheduled (default: the
   * client's `timeout`); `0` or `Infinity`: no limit.
   */
  timeout?: number;
}

export interface FollowOptions {
  /** Replay the events after this `event_id` (default 0: all that are logged)... */
  after?: number;
  /** ...of the log of this `epoch` (a handle's `epoch`); if the task's log is another, all of it is replayed. */
  epoch?: string;
  onEvent?: EventListener;
  onProgress?: (progress: Progress) => void;
  signal?: AbortSignal;
}

/** Options of {@link StirfriedClient.revoke} and {@link StirfriedClient.info}. */
export interface TaskRequestOptions {
  /** The task's subscription token (default: the one this client got when it scheduled or followed it). */
  token?: string;
  /** Give up waiting for the reply. */
  signal?: AbortSignal;
}

/** Options of {@link StirfriedClient.revoke}. */
export interface RevokeOptions extends TaskRequestOptions {
  /**
   * Stop the task also if it is running (where the gateway's `stirfried_terminate`, and
   * the token, allow it); its followers get `on_revoked` with `terminated: true`.
   */
  terminate?: boolean;
  /** The signal that terminates it, e.g. `"SIGKILL"` (default: Celery's, `SIGTERM`). */
  killSignal?: string;
}

/** Options of {@link StirfriedClient.listMyTasks}. */
export interface ListMyTasksOptions {
  /** Tasks per page (the gateway's default: 20). */
  limit?: number;
  /** A page's `next`: the page after it. */
  cursor?: string;
  signal?: AbortSignal;
}

/** The `send_task` task object; Celery's options as the gateway reads them (times in ISO 8601). */
export function taskObject(
  taskName: string,
  args: unknown[],
  kwargs: Record<string, unknown>,
  options: ScheduleOptions,
): Record<string, unknown> {
  const task: Record<string, unknown> = { task_name: taskName, args, kwargs };
  if (options.chain !== undefined) task.chain = options.chain;
  if (options.room !== undefined) task.room = options.room;
  for (const name of ["countdown", "eta", "expires", "priority", "queue"] as const) {
    const value = options[name];
    if (value !== undefined) task[name] = value instanceof Date ? value.toISOString() : value;
  }
  if (options.idempotencyKey !== undefined) task.idempotency_key = options.idempotencyKey;
  return task;
}

/** The session key to send: an explicit one, this tab's, or none. */
export function sessionKey(option: boolean | string | undefined, anonymous: boolean): string | undefined {
  if (typeof option === "string") {
    if (!isSessionKey(option)) throw new StirfriedError("a session key is 22 to 128 characters of A-Z, a-z, 0-9, _ and -");
    return option;
  }
  return (option ?? anonymous) ? tabSessionKey() : undefined;
}
