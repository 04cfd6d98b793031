// Type-checked as a consumer sees the package (its exports and .d.ts files), not run.
import {
  ConnectionRefused,
  type MyTask,
  type Progress,
  type TaskEvent,
  TaskFailed,
  TaskRevoked,
  type TaskType,
  TaskTimeout,
  connect,
  createSessionKey,
  followWithEventSource,
} from "stirfried-client";
import { connect as connectFromBundle } from "stirfried-client/browser";
import { useEventSource, useRun, useTask } from "stirfried-client/react";

export async function example(): Promise<void> {
  const client = await connect("http://127.0.0.1:8000", { token: () => "jwt", timeout: 5000 });
  const sum: unknown = await client.run("add", [2, 3], {}, { onProgress: (p: Progress) => p.current, timeout: 0 });
  const task = await client.schedule("count_to", [5], { delay: 0.1 }, { chain: [{ task_name: "add", args: [1] }] });
  task.onEvent((event: TaskEvent) => {
    if (event.name === "on_progress") event.payload.current.toFixed();
    if (event.name === "on_return") String(event.payload.status);
  });
  const id: string = task.id;
  const token: string | undefined = task.token;
  await task.revoke();
  const info = await client.info(id, { token });
  info.state.toLowerCase();
  const followed = await client.follow(id, token, { after: 3 });
  followed.result({ timeout: 1000, signal: AbortSignal.timeout(100) }).catch((error: unknown) => {
    if (error instanceof TaskFailed) return error.taskName + error.taskId + (error.error ?? "");
    if (error instanceof TaskTimeout || error instanceof ConnectionRefused) return error.message;
    return undefined;
  });
  const catalog: TaskType[] = await client.listTasks();
  const schema = catalog[0]?.parameters.properties?.x?.type;
  const page = await client.listMyTasks({ limit: 5, cursor: "c" });
  const mine: MyTask | undefined = page.tasks[0];
  const next: string | null = page.next;
  await client.schedule("add", [1, 2], {}, {
    countdown: 2, eta: new Date(), expires: "2030-01-01T00:00:00Z", priority: 3, queue: "q", idempotencyKey: "k",
    chain: [{ task_name: "add", args: [3], countdown: 1, queue: "q" }],
  });
  await client.revoke(id, { terminate: true, killSignal: "SIGKILL" });
  await task.revoke({ terminate: true });
  const resumed = await client.follow(id, mine?.token ?? undefined, { after: task.lastEventId, epoch: task.epoch });
  resumed.result().catch((error: unknown) => (error instanceof TaskRevoked ? error.terminated : undefined));
  void [schema, next, mine?.scheduledAt];
  (await connect("http://127.0.0.1:8000", { session: createSessionKey() })).close();
  const sse = followWithEventSource("", id, "token", { onEvent: (event) => event.id });
  sse.close();
  client.close();
  void sum;
  (await connectFromBundle()).close();
}

export function Hooks(): string {
  const run = useRun(null);
  void run.run("add", [1, 2]);
  const watched = useTask(run.task);
  const streamed = useEventSource("", "id", "token");
  return `${run.status} ${watched.progress?.current} ${streamed.result} ${run.error?.message}`;
}
