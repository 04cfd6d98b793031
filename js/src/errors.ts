/** The errors this package throws; all extend {@link StirfriedError}. */

/** Base class of the client's errors. */
export class StirfriedError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The gateway answered `{status: "failed", data: message}`; `message` is the gateway's. */
export class RequestFailed extends StirfriedError {
  /** The Socket.IO event (or HTTP request) that was refused, e.g. `"send_task"`. */
  readonly request: string;

  constructor(request: string, message: string) {
    super(message);
    this.request = request;
  }
}

/** The gateway could not be reached (refused TCP connection, DNS, CORS, timeout). */
export class ConnectionError extends StirfriedError {
  readonly url: string;

  constructor(url: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.url = url;
  }
}

/**
 * The gateway refused the Socket.IO connection (`connect_error`): a missing,
 * invalid or expired token, or too many connections from this address.
 * `reason` is the gateway's own message.
 */
export class ConnectionRefused extends ConnectionError {
  readonly reason: string;

  constructor(url: string, reason: string, options?: { cause?: unknown }) {
    super(url, `the gateway at ${url} refused the connection: ${reason}`, options);
    this.reason = reason;
  }
}

/**
 * The task raised (or was revoked: {@link TaskRevoked}). `error` is the gateway's
 * `"ExceptionType: message"` and `einfo` the traceback, when the workers run with
 * `stirfried_error_info` on; both are `null` otherwise.
 */
export class TaskFailed extends StirfriedError {
  readonly taskId: string;
  readonly taskName: string;
  readonly error: string | null;
  readonly einfo: string | null;

  constructor(taskId: string, taskName: string, error: string | null, einfo: string | null = null) {
    const detail = error ?? "no details: the workers run with stirfried_error_info off";
    super(`task ${taskName} (${taskId}) failed: ${detail}`);
    this.taskId = taskId;
    this.taskName = taskName;
    this.error = error;
    this.einfo = einfo;
  }
}

/**
 * The task was revoked (its final event was `on_revoked`): a worker dropped it before it
 * started, or it `expired` while queued, or it was `terminated` while it ran.
 */
export class TaskRevoked extends TaskFailed {
  readonly terminated: boolean;
  readonly expired: boolean;

  constructor(taskId: string, taskName: string, { terminated = false, expired = false } = {}) {
    const reason = terminated
      ? "the task was terminated"
      : expired
        ? "the task expired before it started"
        : "the task was revoked";
    super(taskId, taskName, reason);
    this.terminated = terminated;
    this.expired = expired;
  }
}

/** The task did not finish, or the gateway did not answer, in time. */
export class TaskTimeout extends StirfriedError {}
