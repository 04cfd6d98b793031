// TaskView: each event once, in order; the outcome from the final event.
import assert from "node:assert/strict";
import { test } from "node:test";

import { TaskFailed, TaskRevoked, TaskTimeout, TaskView } from "../../dist/index.js";

const base = (id, extra = {}) => ({ task_id: "t1", task_name: "count_to", event_id: id, timestamp: 1000 + id, ...extra });

test("repeated events (live and replayed) are delivered once", () => {
  const task = new TaskView("t1", "count_to");
  const seen = [];
  task.onEvent((event) => seen.push(event.id));
  assert.equal(task._deliver("on_started", base(1)), true);
  assert.equal(task._deliver("on_progress", base(2, { current: 1, total: 2, info: null })), true);
  assert.equal(task._deliver("on_started", base(1)), false);
  assert.equal(task._deliver("on_progress", base(2, { current: 1, total: 2, info: null })), false);
  task._deliver("on_progress", base(3, { current: 2, total: 2, info: "done" }));
  assert.deepEqual(seen, [1, 2, 3]);
  assert.equal(task.state, "PROGRESS");
  assert.deepEqual(task.progress, { taskId: "t1", current: 2, total: 2, info: "done" });
  assert.equal(task.getSnapshot().startedAt, 1001_000);
});

test("a listener added late gets the earlier events first", () => {
  const task = new TaskView("t1", undefined, 0);
  task._deliver("on_received", base(1));
  task._deliver("on_started", base(2));
  const seen = [];
  task.onEvent((event) => seen.push(event.name));
  task._deliver("on_success", base(3, { retval: 5 }));
  assert.deepEqual(seen, ["on_received", "on_started", "on_success"]);
  assert.equal(task.name, "count_to", "the name comes from the events");
});

test("following after N ignores events up to N", () => {
  const task = new TaskView("t1", "count_to", 2);
  assert.equal(task._deliver("on_started", base(2)), false);
  assert.equal(task._deliver("on_progress", base(3, { current: 1, total: 1, info: null })), true);
});

test("on_return resolves the result; events after it are dropped", async () => {
  const task = new TaskView("t1", "add");
  task._deliver("on_success", base(1, { retval: 42 }));
  task._deliver("on_return", base(2, { status: "SUCCESS", retval: 42 }));
  assert.equal(await task.result(), 42);
  assert.equal(task._deliver("on_progress", base(3, { current: 1, total: 1, info: null })), false);
  assert.equal(task.finished, true);
  assert.equal(task.getSnapshot().finishedAt, 1002_000);
});

test("a failure rejects with TaskFailed carrying the error and traceback", async () => {
  const task = new TaskView("t1", "fail");
  task._deliver("on_failure", base(1, { einfo: "Traceback...\nValueError: no" }));
  task._deliver("on_return", base(2, { status: "FAILURE", retval: "ValueError: no" }));
  const error = await task.result().catch((e) => e);
  assert.ok(error instanceof TaskFailed);
  assert.equal(error.message, "task fail (t1) failed: ValueError: no");
  assert.equal(error.einfo, "Traceback...\nValueError: no");
  assert.equal(task.getSnapshot().error, error);
});

test("without error info the failure says so", async () => {
  const task = new TaskView("t1", "fail");
  task._deliver("on_return", base(1, { status: "FAILURE", retval: null }));
  const error = await task.result().catch((e) => e);
  assert.equal(error.error, null);
  assert.match(error.message, /no details: the workers run with stirfried_error_info off/);
});

test("on_revoked rejects with TaskRevoked", async () => {
  const task = new TaskView("t1", "add");
  task._deliver("on_revoked", base(1, { terminated: false, expired: false }));
  await assert.rejects(task.result(), TaskRevoked);
  assert.equal(task.state, "REVOKED");
});

test("a terminated task ends: TaskRevoked says it was terminated, later events are dropped", async () => {
  const task = new TaskView("t1", "sleep");
  task._deliver("on_started", base(1));
  task._deliver("on_revoked", base(2, { terminated: true, expired: false }));
  const error = await task.result().catch((e) => e);
  assert.ok(error instanceof TaskRevoked);
  assert.equal(error.terminated, true);
  assert.equal(error.expired, false);
  assert.equal(error.message, "task sleep (t1) failed: the task was terminated");
  assert.equal(task.finished, true);
  assert.equal(task._deliver("on_return", base(3, { status: "FAILURE", retval: null })), false);
});

test("an expired task's TaskRevoked says so", async () => {
  const task = new TaskView("t1", "add");
  task._deliver("on_revoked", base(1, { terminated: false, expired: true }));
  const error = await task.result().catch((e) => e);
  assert.equal(error.expired, true);
  assert.match(error.message, /expired before it started/);
});

test("the epoch of the events seen is kept; a new log's events count from its start", () => {
  const task = new TaskView("t1", "count_to");
  const progress = (id, epoch) => base(id, { epoch, current: id, total: 9, info: null });
  task._deliver("on_progress", progress(1, "aa"));
  task._deliver("on_progress", progress(2, "aa"));
  assert.equal(task._deliver("on_progress", progress(2, "aa")), false);
  assert.equal(task.epoch, "aa");
  // Redis lost the log: the task's next event is number 1 of a new one.
  assert.equal(task._deliver("on_progress", progress(1, "bb")), true);
  assert.equal(task._deliver("on_progress", progress(1, "bb")), false);
  assert.deepEqual([task.lastEventId, task.epoch, task.getSnapshot().epoch], [1, "bb", "bb"]);
});

test("following after N of a known epoch ignores that log's events up to N, not a new log's", () => {
  const task = new TaskView("t1", "count_to", 2, 1000, "aa");
  assert.equal(task._deliver("on_started", base(2, { epoch: "aa" })), false);
  assert.equal(task._deliver("on_started", base(2, { epoch: "bb" })), true);
});

test("result() times out and can be aborted; the task is still followed", async () => {
  const task = new TaskView("t1", "sleep");
  await assert.rejects(task.result({ timeout: 20 }), TaskTimeout);
  const controller = new AbortController();
  const waiting = task.result({ signal: controller.signal });
  controller.abort(new Error("stop"));
  await assert.rejects(waiting, /stop/);
  task._deliver("on_return", base(1, { status: "SUCCESS", retval: 1 }));
  assert.equal(await task.result({ timeout: 20 }), 1);
});

test("the history is bounded; snapshots change only when something happens", () => {
  const task = new TaskView("t1", "count_to", 0, 3);
  let changes = 0;
  task.subscribe(() => changes++);
  const first = task.getSnapshot();
  assert.equal(task.getSnapshot(), first);
  for (let id = 1; id <= 5; id++) task._deliver("on_progress", base(id, { current: id, total: 5, info: null }));
  task._deliver("on_progress", base(5, { current: 5, total: 5, info: null }));
  assert.equal(changes, 5);
  assert.deepEqual(
    task.events.map((event) => event.id),
    [3, 4, 5],
  );
  assert.notEqual(task.getSnapshot(), first);
});

test("async iteration yields every event and ends after the final one", async () => {
  const task = new TaskView("t1", "add");
  task._deliver("on_started", base(1));
  setTimeout(() => {
    task._deliver("on_success", base(2, { retval: 3 }));
    task._deliver("on_return", base(3, { status: "SUCCESS", retval: 3 }));
  }, 10);
  const names = [];
  for await (const event of task) names.push(event.name);
  assert.deepEqual(names, ["on_started", "on_success", "on_return"]);
});
