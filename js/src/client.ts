/** The Socket.IO client: {@link connect}, {@link StirfriedClient}, {@link TaskHandle}. */

import { io, type ManagerOptions, type Socket, type SocketOptions } from "socket.io-client";

import { type MyTasksPage, type TaskInfo, type TaskType, parseMyTasksPage, parseTaskTypes } from "./replies.js";
import {
  ConnectionError,
  ConnectionRefused,
  RequestFailed,
  StirfriedError,
  TaskTimeout,
} from "./errors.js";
import {
  type ConnectOptions,
  type FollowOptions,
  type ListMyTasksOptions,
  type RevokeOptions,
  type RunOptions,
  type ScheduleOptions,
  type TaskRequestOptions,
  sessionKey,
  taskObject,
} from "./options.js";
import {
  DEFAULT_EVENT_HISTORY,
  type EventListener,
  type Progress,
  TASK_EVENTS,
  TaskView,
  isPayload,
  type BasePayload,
} from "./task.js";

/** Milliseconds to wait for the connection and for each reply (and, by default, for `run`). */
export const DEFAULT_TIMEOUT = 30_000;
/** Events can overtake the `send_task` reply: kept for at most this many unknown tasks... */
export const EARLY_TASK_LIMIT = 1000;
/** ...and this many events each. */
export const EARLY_EVENT_LIMIT = 1000;
/** The gateway's reply to a request whose client token has expired. */
const EXPIRED = "the token has expired";
/** Subscription tokens of tasks this client scheduled, newest kept. */
const TOKEN_LIMIT = 10_000;
/** Finished (or no longer followed) tasks remembered, so their late or repeated events are dropped, not buffered. */
const FINISHED_LIMIT = 1000;

export type ConnectionListener = (info: { reconnected: boolean }) => void;
export type DisconnectListener = (reason: string) => void;
export type ErrorListener = (error: StirfriedError) => void;

interface ClientEvents {
  connect: ConnectionListener;
  disconnect: DisconnectListener;
  error: ErrorListener;
}

type Reply = Record<string, unknown>;

/**
 * Connect to a gateway. Resolves once connected; rejects with
 * {@link ConnectionRefused} (the gateway's reason, e.g. an invalid token) or
 * {@link ConnectionError} (unreachable within `timeout`).
 *
 * @param url the gateway, e.g. `https://tasks.example.com`; omitted: the page's own origin.
 */
export async function connect(url?: string, options: ConnectOptions = {}): Promise<StirfriedClient> {
  const client = new StirfriedClient(url, options);
  try {
    await client.ready();
  } catch (error) {
    client.close();
    throw error;
  }
  return client;
}

/**
 * A client of one gateway over Socket.IO. Reconnects by itself: on every new
 * connection it resubscribes to each unfinished task after the last `event_id`
 * it saw, so every event arrives once, none twice, none skipped.
 */
export class StirfriedClient {
  readonly url: string;
  readonly timeout: number;
  /** The socket.io-client socket: an escape hatch for what this API does not cover. */
  readonly socket: Socket;
  #eventHistory: number;
  #tasks = new Map<string, TaskHandle>();
  #early = new Map<string, [string, BasePayload][]>();
  #tokens = new Map<string, string>();
  #finished = new Set<string>();
  #listeners: { [K in keyof ClientEvents]: Set<ClientEvents[K]> } = {
    connect: new Set(),
    disconnect: new Set(),
    error: new Set(),
  };
  #connectedBefore = false;
  #closed = false;
  #refreshableToken: boolean;
  #reconnecting: Promise<void> | undefined;
  #ready: Promise<void>;

  /**
   * Prefer {@link connect}. The constructor starts connecting without waiting, and
   * socket.io-client keeps trying until the gateway answers (a page that must come
   * up while the gateway is down does this and listens to `connect`).
   */
  constructor(url: string | undefined, options: ConnectOptions = {}) {
    this.url = url ?? (typeof location === "undefined" ? "" : location.origin);
    this.timeout = options.timeout ?? DEFAULT_TIMEOUT;
    this.#eventHistory = options.eventHistory ?? DEFAULT_EVENT_HISTORY;
    const { token } = options;
    this.#refreshableToken = typeof token === "function";
    const session = sessionKey(options.session, token === undefined);
    const socketOptions: Partial<ManagerOptions & SocketOptions> = {
      // WebSocket first (no sticky sessions needed); HTTP long-polling if it cannot connect.
      transports: ["websocket", "polling"],
      tryAllTransports: true,
      timeout: this.timeout,
      ...(options.parser ? { parser: options.parser } : {}),
      ...(options.headers ? { extraHeaders: options.headers } : {}),
      ...(token === undefined && session === undefined
        ? {}
        : {
            auth: (callback: (data: object) => void) => {
              const base = session === undefined ? {} : { session };
              if (token === undefined) return callback(base);
              if (typeof token === "string") return callback({ ...base, token });
              Promise.resolve()
                .then(token)
                .then(
                  (value) => callback({ ...base, token: value }),
                  (error: unknown) => {
                    this.#emit("error", new StirfriedError(`the token function failed: ${String(error)}`));
                    callback(base);
                  },
                );
            },
          }),
      ...options.socketOptions,
    };
    this.socket = url === undefined ? io(socketOptions) : io(url, socketOptions);
    for (const name of TASK_EVENTS) {
      this.socket.on(name, (payload: unknown) => this.#dispatch(name, payload));
    }
    this.socket.on("connect", () => this.#onConnect());
    this.socket.on("disconnect", (reason) => this.#emit("disconnect", reason));
    this.#ready = this.#firstConnection();
    this.#ready.catch(() => {});
    this.socket.on("connect_error", (error) => {
      // A refusal by the gateway (not a network error) is final: socket.io-client gives up.
      if (this.#connectedBefore && !this.socket.active) this.#refused(error);
    });
  }

  /** Resolves once first connected; rejects like {@link connect} (without closing the client). */
  ready(): Promise<void> {
    return this.#ready;
  }

  /** Whether the socket is connected now. */
  get connected(): boolean {
    return this.socket.connected;
  }

  /**
   * Listen to the connection: `connect` (`{reconnected}`), `disconnect` (the reason;
   * the client reconnects by itself), `error` (e.g. the gateway refused a reconnection).
   * Returns the function that removes the listener.
   */
  on<K extends keyof ClientEvents>(event: K, listener: ClientEvents[K]): () => void {
    this.#listeners[event].add(listener);
    return () => this.#listeners[event].delete(listener);
  }

  /** Disconnect. Tasks keep running on the workers; waiting handles reject. */
  close(): void {
    this.#closed = true;
    this.socket.disconnect();
    const error = new StirfriedError("the client was closed");
    for (const handle of this.#tasks.values()) handle._fail(error);
    this.#tasks.clear();
  }

  /**
   * Schedule a task; resolves to its {@link TaskHandle} once the gateway accepted it.
   * Rejects with {@link RequestFailed} carrying the gateway's message (unknown field,
   * task not allowed, no live worker serves it, option not allowed, rate limit...).
   * With an `idempotencyKey` the gateway already saw, resolves to the first task's handle.
   */
  async schedule(
    taskName: string,
    args: unknown[] = [],
    kwargs: Record<string, unknown> = {},
    options: ScheduleOptions = {},
  ): Promise<TaskHandle> {
    const reply = await this.#call("send_task", taskObject(taskName, args, kwargs, options), options.signal);
    const taskId = reply.data;
    if (typeof taskId !== "string") throw new StirfriedError(`unexpected reply to send_task: ${JSON.stringify(reply)}`);
    const token = typeof reply.token === "string" ? reply.token : undefined;
    if (token !== undefined) remember(this.#tokens, taskId, token, TOKEN_LIMIT);
    const existing = this.#tasks.get(taskId);
    if (existing) {
      attach(existing, options); // a replayed submission of a task this client follows
      return existing;
    }
    const handle = new TaskHandle(this, taskId, taskName, token, 0, this.#eventHistory);
    attach(handle, options);
    this.#track(handle);
    if (reply.replayed === true && this.#finished.delete(taskId) && !handle.finished) {
      // A replayed submission is the first task, whose events the gateway replays from the
      // start; this client had finished following it, so it dropped them: ask again.
      await this.#call("subscribe_task", subscription(handle), options.signal);
    }
    return handle;
  }

  /**
   * The tasks this client may schedule that live workers serve (the gateway's catalog),
   * by name: each with its docstring, signature and a JSON Schema of its arguments.
   */
  async listTasks(options: { signal?: AbortSignal } = {}): Promise<TaskType[]> {
    return parseTaskTypes(await this.#call("list_tasks", {}, options.signal));
  }

  /**
   * This caller's recent tasks, newest first, a page at a time: by the token's subject;
   * on an anonymous gateway by the `session` key (else this connection's only). Follow
   * the unfinished ones again with `client.follow(task.id, task.token)`.
   */
  async listMyTasks(options: ListMyTasksOptions = {}): Promise<MyTasksPage> {
    const request: Record<string, unknown> = {};
    if (options.limit !== undefined) request.limit = options.limit;
    if (options.cursor !== undefined) request.cursor = options.cursor;
    return parseMyTasksPage(await this.#call("list_my_tasks", request, options.signal));
  }

  /**
   * Schedule a task and wait for its return value. Rejects with {@link TaskFailed}
   * if it fails ({@link TaskRevoked} if revoked), {@link TaskTimeout} after `timeout`
   * milliseconds, or the signal's reason when aborted (the task goes on; revoke it if need be).
   */
  async run(
    taskName: string,
    args: unknown[] = [],
    kwargs: Record<string, unknown> = {},
    options: RunOptions = {},
  ): Promise<unknown> {
    const handle = await this.schedule(taskName, args, kwargs, options);
    try {
      return await handle.result({ timeout: options.timeout ?? this.timeout, signal: options.signal });
    } finally {
      if (!handle.finished) handle.close();
    }
  }

  /**
   * Follow a task scheduled elsewhere (a backend, `curl`, another page) or earlier:
   * subscribes with its subscription `token` (default: the token of a task this client
   * scheduled) and replays its events after `after`. Resolves to its handle once the
   * gateway accepted the subscription; rejects with {@link RequestFailed} for a wrong token.
   */
  async follow(taskId: string, token?: string, options: FollowOptions = {}): Promise<TaskHandle> {
    const existing = this.#tasks.get(taskId);
    if (existing) {
      attach(existing, options);
      return existing;
    }
    const effectiveToken = token ?? this.#tokens.get(taskId);
    const after = options.after ?? 0;
    const handle = new TaskHandle(this, taskId, undefined, effectiveToken, after, this.#eventHistory, options.epoch);
    attach(handle, options);
    this.#track(handle); // before subscribing: the replay can overtake the reply
    try {
      await this.#call("subscribe_task", subscription(handle), options.signal);
    } catch (error) {
      this.#untrack(handle);
      throw error;
    }
    return handle;
  }

  /** The subscription token the gateway gave for a task this client scheduled. */
  tokenFor(taskId: string): string | undefined {
    return this.#tokens.get(taskId);
  }

  /**
   * Revoke a task: a worker drops it if it has not started; a running task runs on,
   * unless `terminate` (where the gateway allows it). `token`: the task's subscription
   * token (default: the one this client got for it), needed by gateways that require client tokens.
   */
  async revoke(taskId: string, options: RevokeOptions = {}): Promise<void> {
    let request = this.#reference(taskId, options.token);
    if (options.terminate) {
      request = typeof request === "string" ? { task_id: request } : { ...request };
      request.terminate = true;
      if (options.killSignal !== undefined) request.signal = options.killSignal;
    }
    await this.#call("revoke_task", request, options.signal);
  }

  /** The task's state and result from the gateway's result backend (`token` as for {@link revoke}). */
  async info(taskId: string, options: TaskRequestOptions = {}): Promise<TaskInfo> {
    const reply = await this.#call("task_info", this.#reference(taskId, options.token), options.signal);
    return { id: String(reply.id), state: String(reply.state), result: reply.result };
  }

  /** @internal Stop following a task: the gateway sends no more of its events to this client. */
  _close(handle: TaskHandle): void {
    if (this.#tasks.get(handle.id) !== handle) return;
    this.#untrack(handle);
    this.#ignore(handle.id); // its events still in flight
    if (this.socket.connected) this.socket.emit("unsubscribe_task", handle.id, () => {});
  }

  #reference(taskId: string, token?: string): string | Record<string, unknown> {
    const known = token ?? this.#tokens.get(taskId) ?? this.#tasks.get(taskId)?.token;
    return known === undefined ? taskId : { task_id: taskId, token: known };
  }

  #track(handle: TaskHandle): void {
    this.#tasks.set(handle.id, handle);
    const early = this.#early.get(handle.id);
    this.#early.delete(handle.id);
    for (const [name, payload] of early ?? []) this.#deliver(handle, name, payload);
  }

  #untrack(handle: TaskHandle): void {
    if (this.#tasks.get(handle.id) === handle) this.#tasks.delete(handle.id);
  }

  #dispatch(name: string, payload: unknown): void {
    if (!isPayload(payload)) return;
    const taskId = payload.task_id;
    const handle = this.#tasks.get(taskId);
    if (handle) return this.#deliver(handle, name, payload);
    if (this.#finished.has(taskId)) return;
    let events = this.#early.get(taskId);
    if (!events) {
      if (this.#early.size >= EARLY_TASK_LIMIT) this.#early.delete(this.#early.keys().next().value as string);
      events = [];
      this.#early.set(taskId, events);
    }
    if (events.length < EARLY_EVENT_LIMIT) events.push([name, payload]);
  }

  #deliver(handle: TaskHandle, name: string, payload: BasePayload): void {
    handle._deliver(name, payload);
    if (handle.finished) {
      this.#untrack(handle);
      this.#ignore(handle.id);
    }
  }

  #ignore(taskId: string): void {
    this.#finished.add(taskId);
    if (this.#finished.size > FINISHED_LIMIT) this.#finished.delete(this.#finished.values().next().value as string);
  }

  #onConnect(): void {
    const reconnected = this.#connectedBefore;
    this.#connectedBefore = true;
    if (reconnected) {
      // A new connection is a new client to the gateway: ask again for every
      // unfinished task's events, after the last one seen.
      for (const handle of this.#tasks.values()) void this.#resubscribe(handle);
    }
    this.#emit("connect", { reconnected });
  }

  async #resubscribe(handle: TaskHandle): Promise<void> {
    try {
      await this.#call("subscribe_task", subscription(handle));
    } catch (error) {
      if (this.#tasks.get(handle.id) !== handle || !(error instanceof RequestFailed)) return;
      // The gateway will not send this task's events any more (e.g. its token is refused).
      this.#untrack(handle);
      handle._fail(new RequestFailed("subscribe_task", `cannot follow task ${handle.id} after reconnecting: ${error.message}`));
    }
  }

  #firstConnection(): Promise<void> {
    return new Promise((resolve, reject) => {
      let lastError: Error | undefined;
      const finish = (error?: Error): void => {
        clearTimeout(timer);
        this.socket.off("connect", connected);
        this.socket.off("connect_error", failed);
        if (error) reject(error);
        else resolve();
      };
      const connected = (): void => finish();
      const failed = (error: Error & { type?: string; description?: unknown }): void => {
        lastError = error;
        if (!this.socket.active) finish(this.#refusal(error)); // the gateway said no: final
      };
      const timer = setTimeout(() => {
        const reason = lastError ? `: ${lastError.message}` : "";
        finish(new ConnectionError(this.url, `cannot connect to ${this.url || "the gateway"} within ${this.timeout / 1000} s${reason}`, { cause: lastError }));
      }, this.timeout);
      this.socket.on("connect", connected);
      this.socket.on("connect_error", failed);
    });
  }

  #refusal(error: Error): ConnectionRefused {
    return new ConnectionRefused(this.url || "(this page's origin)", error.message, { cause: error });
  }

  #refused(error: Error): void {
    const refusal = this.#refusal(error);
    this.#emit("error", refusal);
    for (const handle of this.#tasks.values()) handle._fail(refusal);
    this.#tasks.clear();
  }

  async #call(event: string, data: unknown, signal?: AbortSignal): Promise<Reply> {
    try {
      return await this.#callOnce(event, data, signal);
    } catch (error) {
      // The gateway checks a token's expiry on every request, also on a long-lived
      // connection; the token function gives a fresh one on a new connection.
      if (!(error instanceof RequestFailed) || error.message !== EXPIRED || !this.#refreshableToken) throw error;
      await this.#reconnect();
      return this.#callOnce(event, data, signal);
    }
  }

  /** Connect again (the token function is called again); unfinished tasks are resubscribed. */
  #reconnect(): Promise<void> {
    this.#reconnecting ??= new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => finish(new ConnectionError(this.url, `cannot reconnect to ${this.url || "the gateway"} within ${this.timeout / 1000} s`)), this.timeout);
      const finish = (error?: Error): void => {
        clearTimeout(timer);
        this.socket.off("connect", connected);
        this.socket.off("connect_error", failed);
        this.#reconnecting = undefined;
        if (error) reject(error);
        else resolve();
      };
      const connected = (): void => finish();
      const failed = (error: Error): void => {
        if (!this.socket.active) finish(this.#refusal(error));
      };
      this.socket.on("connect", connected);
      this.socket.on("connect_error", failed);
      this.socket.disconnect();
      this.socket.connect();
    });
    return this.#reconnecting;
  }

  async #callOnce(event: string, data: unknown, signal?: AbortSignal): Promise<Reply> {
    if (this.#closed) throw new StirfriedError("the client was closed");
    // Not connected and not reconnecting (the gateway refused the connection): no reply will come.
    if (!this.socket.active) throw new StirfriedError(`not connected to ${this.url || "the gateway"}`);
    signal?.throwIfAborted();
    let reply: unknown;
    const pending = this.socket.timeout(this.timeout).emitWithAck(event, data);
    pending.catch(() => {}); // the signal may win the race
    try {
      reply = await (signal ? abortable(pending, signal) : pending);
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      throw new TaskTimeout(`no reply to ${event} within ${this.timeout / 1000} s`, { cause: error });
    }
    if (typeof reply !== "object" || reply === null) {
      throw new StirfriedError(`unexpected reply to ${event}: ${JSON.stringify(reply)}`);
    }
    const answer = reply as Reply;
    if (answer.status === "failed") throw new RequestFailed(event, String(answer.data));
    return answer;
  }

  #emit<K extends keyof ClientEvents>(event: K, value: Parameters<ClientEvents[K]>[0]): void {
    for (const listener of [...this.#listeners[event]]) {
      try {
        (listener as (value: unknown) => void)(value);
      } catch (error) {
        console.error(error);
      }
    }
  }
}

/** A task followed over Socket.IO: a {@link TaskView} that can also be revoked, asked about and closed. */
export class TaskHandle extends TaskView {
  /** The task's subscription token (follow it elsewhere with it). */
  readonly token: string | undefined;
  readonly #client: StirfriedClient;

  /** @internal Handles come from {@link StirfriedClient.schedule} and {@link StirfriedClient.follow}. */
  constructor(
    client: StirfriedClient,
    id: string,
    name: string | undefined,
    token: string | undefined,
    after: number,
    eventHistory: number,
    epoch?: string,
  ) {
    super(id, name, after, eventHistory, epoch);
    this.#client = client;
    this.token = token;
  }

  /** Revoke the task: a worker drops it if it has not started; a running task runs on unless `terminate`. */
  revoke(options: Omit<RevokeOptions, "token"> = {}): Promise<void> {
    return this.#client.revoke(this.id, { ...options, token: this.token });
  }

  /** The task's state and result from the result backend. */
  info(options: Omit<TaskRequestOptions, "token"> = {}): Promise<TaskInfo> {
    return this.#client.info(this.id, { ...options, token: this.token });
  }

  /** Stop following the task (it goes on running); waiters reject with a StirfriedError. */
  close(): void {
    this.#client._close(this);
    this._fail(new StirfriedError(`stopped following task ${this.id}`));
  }
}

function attach(handle: TaskView, options: { onEvent?: EventListener; onProgress?: (progress: Progress) => void }): void {
  const { onEvent, onProgress } = options;
  if (onEvent) handle.onEvent(onEvent);
  if (onProgress) {
    handle.onEvent((event) => {
      if (event.name === "on_progress") {
        const { current, total, info } = event.payload;
        onProgress({ taskId: handle.id, current, total, info });
      }
    });
  }
}

/** `subscribe_task`'s request: the events after the last one seen, of the log that numbered it. */
function subscription(handle: TaskHandle): Record<string, unknown> {
  const request: Record<string, unknown> = { task_id: handle.id, after: handle.lastEventId, token: handle.token };
  if (handle.epoch !== undefined) request.epoch = handle.epoch;
  return request;
}

function remember<K, V>(map: Map<K, V>, key: K, value: V, limit: number): void {
  map.delete(key);
  map.set(key, value);
  if (map.size > limit) map.delete(map.keys().next().value as K);
}

function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise((resolve, reject) => {
    const aborted = (): void => reject(signal.reason);
    signal.addEventListener("abort", aborted, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener("abort", aborted);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener("abort", aborted);
        reject(error);
      },
    );
  });
}
