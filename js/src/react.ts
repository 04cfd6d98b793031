/**
 * React hooks (`stirfried-client/react`): {@link useRun} schedules a task and
 * follows it, {@link useTask} renders any task handle, {@link useEventSource}
 * follows a task over SSE. Each stops following when the component unmounts.
 *
 * ```jsx
 * const { run, status, progress, result, error } = useRun(client);
 * <button onClick={() => run("count_to", [5])}>Count</button>
 * ```
 */

import { useCallback, useEffect, useRef, useState, useSyncExternalStore } from "react";

import type { StirfriedClient, TaskHandle } from "./client.js";
import type { ScheduleOptions } from "./options.js";
import { type EventSourceFollowOptions, type EventSourceTask, followWithEventSource } from "./sse.js";
import type { TaskSnapshot, TaskView } from "./task.js";

/** A task's snapshot, and a coarse `status` to switch on when rendering. */
export interface TaskStatus extends TaskSnapshot {
  /** `idle`: no task yet; `scheduling`: waiting for the gateway; `running`; then `success` or `failure` (also revoked, or following failed). */
  status: "idle" | "scheduling" | "running" | "success" | "failure";
}

const NO_TASK: TaskSnapshot = Object.freeze({
  state: "PENDING",
  progress: undefined,
  result: undefined,
  error: undefined,
  retries: 0,
  finished: false,
  lastEventId: 0,
  epoch: undefined,
  startedAt: undefined,
  finishedAt: undefined,
  events: Object.freeze([]),
}) as TaskSnapshot;

const noop = (): void => {};

function statusOf(task: TaskView | null | undefined, snapshot: TaskSnapshot): TaskStatus["status"] {
  if (!task) return "idle";
  if (!snapshot.finished) return "running";
  return snapshot.error ? "failure" : "success";
}

/**
 * Re-render on every event of `task` (a {@link TaskHandle}, an {@link EventSourceTask},
 * or none); returns its state, progress, result and error. Does not close the task.
 */
export function useTask(task: TaskView | null | undefined): TaskStatus {
  const subscribe = useCallback((onChange: () => void) => (task ? task.subscribe(onChange) : noop), [task]);
  const getSnapshot = useCallback(() => (task ? task.getSnapshot() : NO_TASK), [task]);
  const snapshot = useSyncExternalStore(subscribe, getSnapshot, getSnapshot);
  return { ...snapshot, status: statusOf(task, snapshot) };
}

export interface RunState extends TaskStatus {
  /**
   * Schedule a task and follow it (the previous one is no longer followed). Resolves
   * to its handle, or `undefined` when scheduling failed: then `error` says why. Never rejects.
   */
  run: (
    taskName: string,
    args?: unknown[],
    kwargs?: Record<string, unknown>,
    options?: ScheduleOptions,
  ) => Promise<TaskHandle | undefined>;
  /** The task being followed. */
  task: TaskHandle | undefined;
  /** Back to `idle` (stops following the current task). */
  reset: () => void;
}

/**
 * Schedule tasks with `client` and follow the latest one; stops following it
 * (the task itself goes on) when the component unmounts.
 */
export function useRun(client: StirfriedClient | null | undefined): RunState {
  const [task, setTask] = useState<TaskHandle>();
  const [scheduling, setScheduling] = useState(false);
  const [scheduleError, setScheduleError] = useState<Error>();
  const mounted = useRef(false);
  const current = useRef<TaskHandle | undefined>(undefined);
  useEffect(() => {
    mounted.current = true;
    return () => {
      mounted.current = false;
      current.current?.close();
      current.current = undefined;
    };
  }, []);

  const run = useCallback<RunState["run"]>(
    async (taskName, args = [], kwargs = {}, options = {}) => {
      if (!client) {
        setScheduleError(new Error("useRun: not connected yet (no client)"));
        return undefined;
      }
      setScheduling(true);
      setScheduleError(undefined);
      try {
        const handle = await client.schedule(taskName, args, kwargs, options);
        if (!mounted.current) {
          handle.close();
          return handle;
        }
        current.current?.close();
        current.current = handle;
        setTask(handle);
        return handle;
      } catch (error) {
        if (mounted.current) setScheduleError(error instanceof Error ? error : new Error(String(error)));
        return undefined;
      } finally {
        if (mounted.current) setScheduling(false);
      }
    },
    [client],
  );

  const reset = useCallback(() => {
    current.current?.close();
    current.current = undefined;
    setTask(undefined);
    setScheduleError(undefined);
  }, []);

  const status = useTask(task);
  return {
    ...status,
    status: scheduling ? "scheduling" : scheduleError ? "failure" : status.status,
    error: scheduleError ?? status.error,
    run,
    task,
    reset,
  };
}

/**
 * Follow a task over SSE ({@link followWithEventSource}) while the component is
 * mounted, e.g. one the page's backend scheduled. Pass no `taskId` to follow nothing.
 */
export function useEventSource(
  url: string,
  taskId: string | null | undefined,
  token: string | null | undefined,
  options: Pick<EventSourceFollowOptions, "after" | "EventSource" | "eventHistory"> = {},
): TaskStatus & { task: EventSourceTask | undefined } {
  const [task, setTask] = useState<EventSourceTask>();
  const { after, EventSource, eventHistory } = options;
  useEffect(() => {
    if (!taskId || !token) {
      setTask(undefined);
      return undefined;
    }
    const followed = followWithEventSource(url, taskId, token, { after, EventSource, eventHistory });
    setTask(followed);
    return () => followed.close();
  }, [url, taskId, token, after, EventSource, eventHistory]);
  return { ...useTask(task), task };
}
