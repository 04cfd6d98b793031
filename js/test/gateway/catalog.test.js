// Issue 15 from the browser's side: the catalog, my tasks (by session key), idempotent
// submits, Celery's options and terminate, against a real gateway and the example worker.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { RequestFailed, TaskRevoked, connect, createSessionKey } from "../../dist/index.js";
import { Gateway, until } from "./helpers.js";

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

test("listTasks lists the example worker's tasks, each with its docstring and argument schema", async () => {
  const tasks = await client.listTasks();
  const names = tasks.map((task) => task.name);
  assert.deepEqual(names, names.toSorted());
  // The catalog is the fleet's: pytest's other workers may serve more tasks (and `add` too).
  for (const name of ["add", "count_to", "fail", "flaky", "sleep"]) assert.ok(names.includes(name), name);
  const countTo = tasks.find((task) => task.name === "count_to");
  assert.match(countTo.doc, /^Count to/);
  assert.ok(countTo.workers >= 1);
  assert.deepEqual(countTo.queues, ["stirfried-js-examples"]);
  assert.equal(countTo.parameters.properties.total.type, "integer");
  assert.equal(countTo.parameters.properties.total.default, 10);
  assert.equal(countTo.parameters.properties.room, undefined);
  assert.deepEqual(tasks.find((task) => task.name === "add").parameters.required, ["x", "y"]);
});

test("a task no live worker serves is refused at once", async () => {
  const error = await client.schedule("nothing.serves_this").catch((e) => e);
  assert.ok(error instanceof RequestFailed, String(error));
  assert.match(error.message, /no live worker serves task 'nothing.serves_this'/);
});

test("listMyTasks finds a session's tasks from a later connection, newest first, a page at a time", async () => {
  const session = createSessionKey();
  const first = await connect(gateway.url, { session });
  const older = await first.schedule("add", [1, 2]);
  const newer = await first.schedule("add", [3, 4]);
  await Promise.all([older.result(), newer.result()]);
  first.close();

  const later = await connect(gateway.url, { session });
  const stranger = await connect(gateway.url, { session: createSessionKey() });
  try {
    const page = await later.listMyTasks({ limit: 1 });
    assert.deepEqual(
      page.tasks.map((task) => task.id),
      [newer.id],
    );
    assert.ok(page.next);
    const rest = await later.listMyTasks({ limit: 1, cursor: page.next });
    assert.deepEqual(
      rest.tasks.map((task) => [task.id, task.name, task.state]),
      [[older.id, "add", "SUCCESS"]],
    );
    assert.ok(rest.tasks[0].scheduledAt <= rest.tasks[0].finishedAt);
    assert.ok(rest.tasks[0].scheduledAt > Date.now() - 60_000, "milliseconds");
    const followed = await later.follow(older.id, rest.tasks[0].token);
    assert.equal(await followed.result({ timeout: 10_000 }), 3);
    assert.deepEqual((await stranger.listMyTasks()).tasks, []);
  } finally {
    later.close();
    stranger.close();
  }
});

test("a schedule retried with the same idempotency key gets the first task, which ran once", async () => {
  const idempotencyKey = `order-${createSessionKey()}`;
  const first = await client.schedule("add", [2, 3], {}, { idempotencyKey });
  const other = await connect(gateway.url);
  try {
    const again = await other.schedule("add", [2, 3], {}, { idempotencyKey });
    assert.equal(again.id, first.id);
    assert.equal(await again.result({ timeout: 10_000 }), 5);
    assert.equal(again.events.filter((event) => event.name === "on_started").length, 1);
    const error = await other.schedule("add", [2, 4], {}, { idempotencyKey }).catch((e) => e);
    assert.ok(error instanceof RequestFailed, String(error));
    // The client that scheduled it, once it has finished following it, gets it back too.
    assert.equal(await first.result({ timeout: 10_000 }), 5);
    const third = await client.schedule("add", [2, 3], {}, { idempotencyKey });
    assert.equal(third.id, first.id);
    assert.equal(await third.result({ timeout: 10_000 }), 5);
  } finally {
    other.close();
  }
});

test("a countdown delays the task", async () => {
  const started = Date.now();
  assert.equal(await client.run("add", [1, 2], {}, { countdown: 1 }), 3);
  assert.ok(Date.now() - started >= 900, `${Date.now() - started} ms`);
});

test("terminate stops a running task: its handle rejects with TaskRevoked, terminated", async () => {
  const task = await client.schedule("count_to", [100], { delay: 0.1 });
  await until(() => task.state === "PROGRESS", { message: "the task's progress" });
  await task.revoke({ terminate: true, killSignal: "SIGKILL" });
  const error = await task.result({ timeout: 15_000 }).catch((e) => e);
  assert.ok(error instanceof TaskRevoked, String(error));
  assert.equal(error.terminated, true);
  assert.equal(task.state, "REVOKED");
  assert.ok(task.progress.current < 100);
});
