/**
 * What the gateway answers, typed: a task's state (`task_info`), what one can schedule
 * (`list_tasks`) and what one scheduled (`list_my_tasks`).
 */

import { StirfriedError } from "./errors.js";

/** A task's state from the gateway's result backend (`task_info`). */
export interface TaskInfo {
  id: string;
  state: string;
  result: unknown;
}

/** A JSON Schema, as the gateway derives it from a task's type annotations. */
export interface JsonSchema {
  type?: string | string[];
  title?: string;
  description?: string;
  default?: unknown;
  enum?: unknown[];
  items?: JsonSchema;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  additionalProperties?: boolean | JsonSchema;
  anyOf?: JsonSchema[];
  [keyword: string]: unknown;
}

/** A task the caller may schedule and live workers serve: one entry of {@link StirfriedClient.listTasks}. */
export interface TaskType {
  name: string;
  /** The first paragraph of its docstring, or `null`. */
  doc: string | null;
  /** Its arguments as Python shows them, e.g. `(x: int, y: int = 2)`. */
  signature: string;
  /** A JSON Schema (`type: "object"`) of its keyword arguments: `properties`, `required`, defaults. */
  parameters: JsonSchema;
  /** The queues its workers consume. */
  queues: string[];
  /** How many live workers serve it. */
  workers: number;
}

/** One of the caller's recent tasks ({@link StirfriedClient.listMyTasks}). */
export interface MyTask {
  id: string;
  name: string;
  /** Celery's state: `PENDING`, `STARTED`, `SUCCESS`, `FAILURE`, `RETRY`, `REVOKED`. */
  state: string;
  /** When it was scheduled, started and finished: milliseconds since the epoch, `null` until then. */
  scheduledAt: number | null;
  startedAt: number | null;
  finishedAt: number | null;
  /** Its subscription token: `client.follow(task.id, task.token)` follows it (again). */
  token: string | null;
}

/** A page of {@link StirfriedClient.listMyTasks}, newest first; `next` asks for the following page. */
export interface MyTasksPage {
  tasks: MyTask[];
  /** Pass it as `cursor` for the next page; `null` on the last. */
  next: string | null;
}

type Reply = Record<string, unknown>;

/** `list_tasks`' reply: `{status: "success", data: [entry, ...]}`. */
export function parseTaskTypes(reply: Reply): TaskType[] {
  return entries("list_tasks", reply).map((entry) => {
    if (typeof entry.name !== "string") throw unexpected("list_tasks", reply);
    const parameters = isObject(entry.parameters) ? (entry.parameters as JsonSchema) : { type: "object", properties: {} };
    return {
      name: entry.name,
      doc: typeof entry.doc === "string" ? entry.doc : null,
      signature: typeof entry.signature === "string" ? entry.signature : "()",
      parameters,
      queues: Array.isArray(entry.queues) ? entry.queues.map(String) : [],
      workers: typeof entry.workers === "number" ? entry.workers : 0,
    };
  });
}

/** `list_my_tasks`' reply: `{status: "success", data: [entry, ...], next: cursor | null}`; times become milliseconds. */
export function parseMyTasksPage(reply: Reply): MyTasksPage {
  const tasks = entries("list_my_tasks", reply).map((entry) => {
    if (typeof entry.id !== "string" || typeof entry.name !== "string") throw unexpected("list_my_tasks", reply);
    return {
      id: entry.id,
      name: entry.name,
      state: String(entry.state),
      scheduledAt: milliseconds(entry.scheduled),
      startedAt: milliseconds(entry.started),
      finishedAt: milliseconds(entry.finished),
      token: typeof entry.token === "string" ? entry.token : null,
    };
  });
  return { tasks, next: typeof reply.next === "string" ? reply.next : null };
}

function entries(request: string, reply: Reply): Reply[] {
  if (!Array.isArray(reply.data) || !reply.data.every(isObject)) throw unexpected(request, reply);
  return reply.data as Reply[];
}

function milliseconds(seconds: unknown): number | null {
  return typeof seconds === "number" ? seconds * 1000 : null;
}

function isObject(value: unknown): value is Reply {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function unexpected(request: string, reply: Reply): StirfriedError {
  return new StirfriedError(`unexpected reply to ${request}: ${JSON.stringify(reply)}`);
}
