// What the client sends and how it reads the gateway's replies: single functions, no gateway.
import assert from "node:assert/strict";
import { test } from "node:test";

import { sessionKey, taskObject } from "../../dist/options.js";
import { parseMyTasksPage, parseTaskTypes } from "../../dist/replies.js";
import { SESSION_STORAGE_KEY, createSessionKey, isSessionKey, tabSessionKey } from "../../dist/session.js";
import { StirfriedError } from "../../dist/index.js";

test("the task object carries Celery's options as the gateway reads them", () => {
  const eta = new Date(Date.UTC(2030, 0, 2, 3, 4, 5));
  assert.deepEqual(
    taskObject("add", [1], { y: 2 }, { eta, expires: 30, priority: 3, queue: "fast", countdown: 1.5, idempotencyKey: "k-1", onEvent: () => {} }),
    {
      task_name: "add", args: [1], kwargs: { y: 2 },
      countdown: 1.5, eta: "2030-01-02T03:04:05.000Z", expires: 30, priority: 3, queue: "fast", idempotency_key: "k-1",
    },
  );
  assert.deepEqual(taskObject("add", [], {}, {}), { task_name: "add", args: [], kwargs: {} });
});

test("session keys: random, 43 base64url characters, kept per tab in sessionStorage", () => {
  const keys = new Set(Array.from({ length: 10 }, createSessionKey));
  assert.equal(keys.size, 10);
  for (const key of keys) assert.match(key, /^[A-Za-z0-9_-]{43}$/);

  const items = new Map();
  const storage = { getItem: (name) => items.get(name) ?? null, setItem: (name, value) => items.set(name, value) };
  const first = tabSessionKey(storage);
  assert.ok(isSessionKey(first));
  assert.equal(items.get(SESSION_STORAGE_KEY), first);
  assert.equal(tabSessionKey(storage), first, "the same after a reload");
  const refusing = { getItem: () => { throw new Error("SecurityError"); } };
  assert.equal(tabSessionKey(refusing), undefined);
});

test("the session option: a key of the wrong shape is refused; none in Node.js by default", () => {
  assert.equal(sessionKey(undefined, true), undefined, "no sessionStorage in Node.js");
  assert.equal(sessionKey(false, true), undefined);
  const key = createSessionKey();
  assert.equal(sessionKey(key, false), key);
  assert.throws(() => sessionKey("too-short", true), StirfriedError);
});

test("catalog entries and my-tasks pages are read from the replies; times become milliseconds", () => {
  const [add] = parseTaskTypes({
    status: "success",
    data: [{ name: "add", doc: null, signature: "(x: int)", parameters: { type: "object", properties: { x: { type: "integer" } }, required: ["x"] }, queues: ["celery"], workers: 2 }],
  });
  assert.deepEqual(add, {
    name: "add", doc: null, signature: "(x: int)", queues: ["celery"], workers: 2,
    parameters: { type: "object", properties: { x: { type: "integer" } }, required: ["x"] },
  });
  const page = parseMyTasksPage({
    status: "success",
    data: [{ id: "t1", name: "add", state: "SUCCESS", scheduled: 1700000000.5, started: 1700000001, finished: null, token: "tok" }],
    next: "c2",
  });
  assert.deepEqual(page, {
    tasks: [{ id: "t1", name: "add", state: "SUCCESS", scheduledAt: 1700000000500, startedAt: 1700000001000, finishedAt: null, token: "tok" }],
    next: "c2",
  });
  assert.throws(() => parseTaskTypes({ status: "success", data: "nope" }), StirfriedError);
  assert.equal(parseMyTasksPage({ status: "success", data: [] }).next, null);
});
