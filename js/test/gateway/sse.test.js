// followWithEventSource over GET /task/{id}/events, with the `eventsource` package as EventSource.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { EventSource } from "eventsource";

import { StirfriedError, TaskFailed, followWithEventSource } from "../../dist/index.js";
import { Gateway, postTask } from "./helpers.js";

let gateway;

before(async () => {
  gateway = await Gateway.start();
});

after(async () => {
  await gateway?.stop();
});

function countTo(total) {
  return postTask(gateway.url, { task_name: "count_to", args: [total], kwargs: { delay: 0.05 } });
}

test("follows a task scheduled by a backend to its result, and closes the stream", async () => {
  const { data: taskId, token } = await countTo(3);
  const progress = [];
  const task = followWithEventSource(gateway.url, taskId, token, {
    EventSource,
    onProgress: (p) => progress.push(p.current),
  });
  assert.equal(await task.result({ timeout: 15_000 }), 3);
  assert.deepEqual(progress, [1, 2, 3]);
  assert.deepEqual(
    task.events.map((event) => [event.id, event.name]),
    [
      [1, "on_received"],
      [2, "on_started"],
      [3, "on_progress"],
      [4, "on_progress"],
      [5, "on_progress"],
      [6, "on_success"],
      [7, "on_return"],
    ],
  );
  assert.equal(task.name, "count_to");
});

test("replays from after a given event", async () => {
  const { data: taskId, token } = await countTo(3);
  const task = followWithEventSource(gateway.url, taskId, token, { EventSource, after: 4 });
  assert.equal(await task.result({ timeout: 15_000 }), 3);
  assert.deepEqual(
    task.events.map((event) => event.id),
    [5, 6, 7],
  );
});

test("a failing task rejects with TaskFailed", async () => {
  const { data: taskId, token } = await postTask(gateway.url, { task_name: "fail", args: ["no space"] });
  const task = followWithEventSource(gateway.url, taskId, token, { EventSource });
  const error = await task.result({ timeout: 15_000 }).catch((e) => e);
  assert.ok(error instanceof TaskFailed, String(error));
  assert.equal(error.error, "ValueError: no space");
});

test("a wrong token gives a clear error, not endless retries", async () => {
  const { data: taskId } = await countTo(1);
  const task = followWithEventSource(gateway.url, taskId, "wrong-token", { EventSource });
  const error = await task.result({ timeout: 15_000 }).catch((e) => e);
  assert.ok(error instanceof StirfriedError, String(error));
  assert.match(error.message, /cannot follow task .*: the gateway refused the event stream/);
});
