/** Follow a task over the gateway's Server-Sent Events endpoint: {@link followWithEventSource}. */

import { StirfriedError } from "./errors.js";
import { DEFAULT_EVENT_HISTORY, type EventListener, type Progress, TASK_EVENTS, TaskView, isPayload } from "./task.js";

/** The part of the `EventSource` interface this module uses (the browser's, or a Node.js package's). */
export interface EventSourceLike {
  readonly readyState: number;
  addEventListener(type: string, listener: (event: { data?: unknown; lastEventId?: string }) => void): void;
  close(): void;
}

export type EventSourceConstructor = new (url: string) => EventSourceLike;

export interface EventSourceFollowOptions {
  /** Replay the events after this `event_id` (default 0: all that are logged). */
  after?: number;
  onEvent?: EventListener;
  onProgress?: (progress: Progress) => void;
  /** Stop following when aborted. */
  signal?: AbortSignal;
  /** Events kept ({@link TaskView.events}); default 1000. */
  eventHistory?: number;
  /** The `EventSource` class; default `globalThis.EventSource` (Node.js: e.g. the `eventsource` package). */
  EventSource?: EventSourceConstructor;
}

const CLOSED = 2;

/** A task followed over SSE: a {@link TaskView} whose stream {@link close} ends. */
export class EventSourceTask extends TaskView {
  readonly #source: EventSourceLike;

  /** @internal Use {@link followWithEventSource}. */
  constructor(id: string, source: EventSourceLike, after: number, eventHistory: number) {
    super(id, undefined, after, eventHistory);
    this.#source = source;
  }

  /** Close the stream (the task goes on); waiters reject with a StirfriedError. */
  close(): void {
    this.#source.close();
    this._fail(new StirfriedError(`stopped following task ${this.id}`));
  }
}

/**
 * Follow a task over `GET /task/{id}/events?token=T`, for pages that only watch a
 * task their backend scheduled (no Socket.IO needed). Replays the events after
 * `after`, then live ones; closes the stream after the final event (`on_return`,
 * `on_revoked`), since an EventSource would otherwise reconnect. Resumes by itself
 * after a dropped connection (the browser sends `Last-Event-ID`), with no event twice.
 *
 * @param url the gateway, e.g. `https://tasks.example.com` (`""`: the page's own origin).
 */
export function followWithEventSource(
  url: string,
  taskId: string,
  token: string,
  options: EventSourceFollowOptions = {},
): EventSourceTask {
  const Source = options.EventSource ?? (globalThis as { EventSource?: EventSourceConstructor }).EventSource;
  if (!Source) throw new StirfriedError("no EventSource here: pass one in the EventSource option");
  const after = options.after ?? 0;
  const query = new URLSearchParams({ token, ...(after ? { after: String(after) } : {}) });
  const address = `${url.replace(/\/+$/, "")}/task/${encodeURIComponent(taskId)}/events?${query}`;
  const source = new Source(address);
  const task = new EventSourceTask(taskId, source, after, options.eventHistory ?? DEFAULT_EVENT_HISTORY);
  if (options.onEvent) task.onEvent(options.onEvent);
  if (options.onProgress) {
    const { onProgress } = options;
    task.onEvent((event) => {
      if (event.name === "on_progress") {
        const { current, total, info } = event.payload;
        onProgress({ taskId, current, total, info });
      }
    });
  }
  let received = false;
  for (const name of TASK_EVENTS) {
    source.addEventListener(name, (message) => {
      let payload: unknown;
      try {
        payload = JSON.parse(String(message.data));
      } catch {
        return;
      }
      if (!isPayload(payload)) return;
      received = true;
      task._deliver(name, payload);
      if (task.finished) source.close();
    });
  }
  source.addEventListener("error", () => {
    // CLOSED: the browser gave up (a 403 for a wrong token, a 404...); else it retries by itself.
    if (source.readyState === CLOSED && !task.finished) {
      const detail = received ? "the stream failed" : "the gateway refused the event stream (a wrong token?)";
      task._fail(new StirfriedError(`cannot follow task ${taskId}: ${detail}`));
    }
  });
  options.signal?.addEventListener("abort", () => task.close(), { once: true });
  return task;
}
