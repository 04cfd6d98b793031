// A gateway that requires client tokens (stirfried_auth_secret, no anonymous clients).
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { ConnectionRefused, StirfriedError, connect } from "../../dist/index.js";
import { Gateway, env, mintToken, until } from "./helpers.js";
import { RequestFailed } from "../../dist/index.js";

let gateway;

before(async () => {
  gateway = await Gateway.start(env.tokenConfig);
});

after(async () => {
  await gateway?.stop();
});

test("without a token the connection is refused with the gateway's reason", async () => {
  const error = await connect(gateway.url, { timeout: 5000 }).catch((e) => e);
  assert.ok(error instanceof ConnectionRefused, String(error));
  assert.ok(error instanceof StirfriedError);
  assert.match(error.message, new RegExp(`^the gateway at ${gateway.url} refused the connection: .+`));
  assert.match(error.reason, /token/);
});

test("an invalid token is refused, naming the problem", async () => {
  const error = await connect(gateway.url, { token: "not-a-jwt", timeout: 5000 }).catch((e) => e);
  assert.ok(error instanceof ConnectionRefused, String(error));
  assert.match(error.reason, /invalid token/);
});

test("a valid token works: run, info and revoke with the task's own token", async () => {
  const client = await connect(gateway.url, { token: env.token, timeout: 15_000 });
  try {
    assert.equal(await client.run("add", [2, 3]), 5);
    const task = await client.schedule("count_to", [2], { delay: 0.05 });
    assert.equal(await task.result(), 2);
    assert.equal((await task.info()).state, "SUCCESS");
    await task.revoke();
  } finally {
    client.close();
  }
});

test("the token may come from a function (called on every connection)", async () => {
  let calls = 0;
  const client = await connect(gateway.url, {
    token: async () => {
      calls += 1;
      return env.token;
    },
  });
  try {
    assert.equal(await client.run("add", [1, 1]), 2);
    assert.equal(calls, 1);
  } finally {
    client.close();
  }
});

test("an unreachable gateway gives a ConnectionError within the timeout", async () => {
  const error = await connect("http://127.0.0.1:9", { timeout: 1500 }).catch((e) => e);
  assert.ok(error instanceof StirfriedError, String(error));
  assert.ok(!(error instanceof ConnectionRefused));
  assert.match(error.message, /cannot connect to http:\/\/127.0.0.1:9 within 1.5 s/);
});

test("a reconnection the gateway refuses fails the waiting tasks with the gateway's reason", async () => {
  let token = env.token;
  const client = await connect(gateway.url, {
    token: () => token,
    socketOptions: { reconnectionDelay: 200, reconnectionDelayMax: 500 },
  });
  const errors = [];
  client.on("error", (error) => errors.push(error));
  try {
    const task = await client.schedule("sleep", [2]);
    token = "revoked-by-the-backend";
    await gateway.stop();
    await gateway.start();
    const error = await task.result({ timeout: 20_000 }).catch((e) => e);
    assert.ok(error instanceof ConnectionRefused, String(error));
    assert.match(error.reason, /invalid token/);
    await until(() => errors.length === 1, { message: "the error event" });
    assert.equal(errors[0], error);
    await assert.rejects(task.revoke(), /not connected to/);
  } finally {
    client.close();
  }
});

test("an expired token from a token function is replaced by a fresh one, transparently", async () => {
  const tokens = [mintToken(2), env.token]; // valid for 1 to 2 s
  let calls = 0;
  const client = await connect(gateway.url, { token: () => tokens[Math.min(calls++, 1)] });
  try {
    const task = await client.schedule("count_to", [12], { delay: 0.25 });
    await new Promise((resolve) => setTimeout(resolve, 2100)); // the first token expires meanwhile
    assert.equal(await client.run("add", [1, 2]), 3);
    assert.equal(calls, 2);
    assert.ok(!task.finished, "still running when the client reconnected");
    assert.equal(await task.result({ timeout: 15_000 }), 12, "the reconnection resubscribed the running task");
    assert.deepEqual(
      task.events.map((event) => event.id),
      Array.from({ length: 16 }, (_, index) => index + 1),
    );
  } finally {
    client.close();
  }
});

test("an expired fixed token gives the gateway's message", async () => {
  const client = await connect(gateway.url, { token: mintToken(2) });
  try {
    await new Promise((resolve) => setTimeout(resolve, 2100));
    const error = await client.schedule("add", [1, 2]).catch((e) => e);
    assert.ok(error instanceof RequestFailed, String(error));
    assert.equal(error.message, "the token has expired");
  } finally {
    client.close();
  }
});

test("listMyTasks lists the token subject's tasks, from any of its connections", async () => {
  const subject = `js-mine-${Date.now()}`;
  const first = await connect(gateway.url, { token: mintToken(600, { sub: subject }), timeout: 15_000 });
  const second = await connect(gateway.url, { token: () => mintToken(600, { sub: subject }), timeout: 15_000 });
  const stranger = await connect(gateway.url, { token: mintToken(600, { sub: `${subject}-other` }), timeout: 15_000 });
  try {
    const task = await first.schedule("add", [1, 1]);
    await task.result();
    const { tasks } = await second.listMyTasks();
    assert.deepEqual(
      tasks.map((mine) => [mine.id, mine.name]),
      [[task.id, "add"]],
    );
    assert.deepEqual((await stranger.listMyTasks()).tasks, []);
    assert.ok((await second.listTasks()).some((entry) => entry.name === "add"));
  } finally {
    first.close();
    second.close();
    stranger.close();
  }
});
