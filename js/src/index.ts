/**
 * stirfried-client: schedule Celery tasks through a Stirfried gateway and get
 * their progress and results live, from a browser or Node.js.
 *
 * ```js
 * import { connect } from "stirfried-client";
 * const client = await connect("http://127.0.0.1:8000");
 * console.log(await client.run("add", [2, 3])); // 5
 * ```
 */

export { connect, DEFAULT_TIMEOUT, StirfriedClient, TaskHandle } from "./client.js";
export {
  type CeleryOptions,
  type ChainedTask,
  type ConnectOptions,
  type FollowOptions,
  type ListMyTasksOptions,
  type RevokeOptions,
  type RunOptions,
  type ScheduleOptions,
  type TaskRequestOptions,
  type TokenSource,
} from "./options.js";
export { type JsonSchema, type MyTask, type MyTasksPage, type TaskInfo, type TaskType } from "./replies.js";
export { SESSION_STORAGE_KEY, createSessionKey } from "./session.js";
export {
  ConnectionError,
  ConnectionRefused,
  RequestFailed,
  StirfriedError,
  TaskFailed,
  TaskRevoked,
  TaskTimeout,
} from "./errors.js";
export {
  EventSourceTask,
  followWithEventSource,
  type EventSourceConstructor,
  type EventSourceFollowOptions,
  type EventSourceLike,
} from "./sse.js";
export {
  TASK_EVENTS,
  TaskView,
  type BasePayload,
  type EventListener,
  type FailurePayload,
  type Progress,
  type ProgressPayload,
  type ReturnPayload,
  type RevokedPayload,
  type SuccessPayload,
  type TaskEvent,
  type TaskEventName,
  type TaskSnapshot,
  type TaskState,
  type WaitOptions,
} from "./task.js";
