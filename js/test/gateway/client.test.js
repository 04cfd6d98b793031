// The Socket.IO client against a real gateway and the example worker.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { RequestFailed, StirfriedError, TaskFailed, TaskRevoked, TaskTimeout, connect } from "../../dist/index.js";
import { Gateway, postTask, until } from "./helpers.js";

let gateway;
let client;

before(async () => {
  gateway = await Gateway.start();
  client = await connect(gateway.url, { timeout: 15_000 });
});

after(async () => {
  client?.close();
  await gateway?.stop();
});

describe("run", () => {
  test("resolves to the result", async () => {
    assert.equal(await client.run("add", [2, 40]), 42);
  });

  test("reports progress in order, then the result", async () => {
    const seen = [];
    const result = await client.run("count_to", [4], { delay: 0.05 }, { onProgress: (p) => seen.push(p) });
    assert.equal(result, 4);
    assert.deepEqual(
      seen.map((p) => [p.current, p.total, p.info]),
      [1, 2, 3, 4].map((step) => [step, 4, `step ${step} of 4`]),
    );
  });

  test("rejects with TaskFailed naming the task, its id and its error", async () => {
    const error = await client.run("fail", ["the disk is full"]).catch((e) => e);
    assert.ok(error instanceof TaskFailed, String(error));
    assert.equal(error.taskName, "fail");
    assert.match(error.taskId, /^[0-9a-f-]{36}$/);
    assert.equal(error.error, "ValueError: the disk is full");
    assert.match(error.einfo, /ValueError: the disk is full/);
    assert.equal(error.message, `task fail (${error.taskId}) failed: ValueError: the disk is full`);
  });

  test("follows a retrying task to its result", async () => {
    const events = [];
    const result = await client.run("flaky", [2], {}, { onEvent: (event) => events.push(event.name) });
    assert.equal(result, "succeeded after 2 retries");
    assert.equal(events.filter((name) => name === "on_retry").length, 2);
    assert.equal(events.at(-1), "on_return");
  });

  test("rejects with TaskTimeout when the task outlives the timeout", async () => {
    const error = await client.run("sleep", [1.5], {}, { timeout: 200 }).catch((e) => e);
    assert.ok(error instanceof TaskTimeout, String(error));
    assert.match(error.message, /did not finish within 0.2 s/);
  });

  test("stops waiting when aborted", async () => {
    const controller = new AbortController();
    const running = client.run("sleep", [1], {}, { signal: controller.signal });
    setTimeout(() => controller.abort(new Error("changed my mind")), 100);
    await assert.rejects(running, /changed my mind/);
  });
});

describe("schedule", () => {
  test("gives a handle with every event in order, each once", async () => {
    const task = await client.schedule("count_to", [3], { delay: 0.05 });
    assert.equal(await task.result(), 3);
    const names = task.events.map((event) => event.name);
    assert.deepEqual(names, [
      "on_received",
      "on_started",
      "on_progress",
      "on_progress",
      "on_progress",
      "on_success",
      "on_return",
    ]);
    assert.deepEqual(
      task.events.map((event) => event.id),
      names.map((_, index) => index + 1),
    );
    assert.equal(task.state, "SUCCESS");
    assert.equal(task.finished, true);
    assert.ok(task.token);
    const snapshot = task.getSnapshot();
    assert.ok(snapshot.finishedAt >= snapshot.startedAt);
  });

  test("the handle iterates its events asynchronously until the last", async () => {
    const task = await client.schedule("count_to", [2], { delay: 0.05 });
    const names = [];
    for await (const event of task) names.push(event.name);
    assert.equal(names.at(-1), "on_return");
    assert.equal(names.filter((name) => name === "on_progress").length, 2);
  });

  test("a refused task object rejects with the gateway's message", async () => {
    const error = await client.schedule("add", "not a list").catch((e) => e);
    assert.ok(error instanceof RequestFailed, String(error));
    assert.equal(error.request, "send_task");
    assert.match(error.message, /args/);
  });

});

describe("revoke and info", () => {
  test("a revoked queued task is dropped: TaskRevoked", async () => {
    const blockers = [await client.schedule("sleep", [1.5]), await client.schedule("sleep", [1.5])];
    const queued = await client.schedule("add", [1, 2]);
    await queued.revoke();
    const error = await queued.result({ timeout: 15_000 }).catch((e) => e);
    assert.ok(error instanceof TaskRevoked, String(error));
    assert.ok(error instanceof TaskFailed);
    assert.equal(queued.state, "REVOKED");
    assert.equal(queued.events.at(-1).name, "on_revoked");
    await Promise.all(blockers.map((blocker) => blocker.result({ timeout: 15_000 })));
    assert.equal((await queued.info()).state, "REVOKED");
  });

  test("info reads the result backend", async () => {
    const task = await client.schedule("add", [20, 22]);
    await task.result();
    assert.deepEqual(await client.info(task.id), { id: task.id, state: "SUCCESS", result: 42 });
  });

  test("revoke of an unknown id succeeds, as the gateway says", async () => {
    await client.revoke("00000000-0000-0000-0000-000000000000");
  });
});

describe("follow", () => {
  test("follows a task scheduled over HTTP, from its first event or after one", async () => {
    const { data: taskId, token } = await postTask(gateway.url, {
      task_name: "count_to",
      args: [3],
      kwargs: { delay: 0.05 },
    });
    const seen = [];
    const task = await client.follow(taskId, token, { onEvent: (event) => seen.push(event.id) });
    assert.equal(await task.result(), 3);
    assert.deepEqual(seen, [1, 2, 3, 4, 5, 6, 7]);

    const other = await connect(gateway.url);
    try {
      const late = await other.follow(taskId, token, { after: 4 });
      assert.equal(await late.result(), 3);
      assert.deepEqual(
        late.events.map((event) => event.id),
        [5, 6, 7],
      );
    } finally {
      other.close();
    }
  });

  test("events that arrive before the task is known are kept, then delivered once", async () => {
    const other = await connect(gateway.url);
    try {
      // The task's events go to `other` (its room) before it knows the task, as events
      // overtaking the send_task reply do; following it then replays them all again.
      const task = await client.schedule("count_to", [2], { delay: 0.05 }, { room: other.socket.id });
      task.close(); // this client does not get the events: they go to the task's room and `other`
      await until(async () => (await client.info(task.id)).state === "SUCCESS", { message: "the task's end" });
      await new Promise((resolve) => setTimeout(resolve, 200)); // and its last events to reach `other`
      const followed = await other.follow(task.id, task.token);
      assert.equal(await followed.result(), 2);
      assert.deepEqual(
        followed.events.map((event) => event.id),
        [1, 2, 3, 4, 5, 6],
      );
    } finally {
      other.close();
    }
  });

  test("a wrong token is refused with the gateway's message", async () => {
    const { data: taskId } = await postTask(gateway.url, { task_name: "add", args: [1, 1] });
    const error = await client.follow(taskId, "wrong").catch((e) => e);
    assert.ok(error instanceof RequestFailed, String(error));
    assert.equal(error.request, "subscribe_task");
    assert.ok(error instanceof StirfriedError);
  });
});
