// Type-checked as a consumer sees the package (its exports and .d.ts files), not run.
import {
  ConnectionRefused,
  type Progress,
  type TaskEvent,
  TaskFailed,
  TaskTimeout,
  connect,
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
