// A gateway restart in the middle of a task: the client reconnects, resubscribes
// after the last event it saw, and every event arrives exactly once.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { connect } from "../../dist/index.js";
import { Gateway, postTask, until } from "./helpers.js";

let gateway;
let client;

before(async () => {
  gateway = await Gateway.start();
  client = await connect(gateway.url, {
    timeout: 15_000,
    socketOptions: { reconnectionDelay: 200, reconnectionDelayMax: 500 },
  });
});

after(async () => {
  client?.close();
  await gateway?.stop();
});

test("events before and after a gateway restart all arrive, each exactly once", async () => {
  const connections = [];
  client.on("connect", (info) => connections.push(info.reconnected ? "reconnected" : "connected"));
  const disconnects = [];
  client.on("disconnect", (reason) => disconnects.push(reason));
  const subscriptions = [];
  client.socket.onAnyOutgoing((event, request) => {
    if (event === "subscribe_task") subscriptions.push(request);
  });

  const seen = [];
  const progress = [];
  const running = client.run(
    "count_to",
    [12],
    { delay: 0.25 },
    { onEvent: (event) => seen.push(event.id), onProgress: (p) => progress.push(p.current) },
  );
  // A task scheduled elsewhere and followed with its token resumes too.
  const { data: followedId, token } = await postTask(gateway.url, {
    task_name: "count_to",
    args: [12],
    kwargs: { delay: 0.25 },
  });
  const followed = await client.follow(followedId, token);
  await until(() => progress.length >= 2, { message: "two progress events" });

  await gateway.stop();
  const beforeRestart = seen.length;
  await new Promise((resolve) => setTimeout(resolve, 1000)); // the task goes on meanwhile
  await gateway.start();

  assert.equal(await running, 12);
  assert.equal(await followed.result({ timeout: 20_000 }), 12);
  assert.deepEqual(connections, ["reconnected"]);
  assert.ok(disconnects.length >= 1);
  assert.ok(beforeRestart >= 4 && beforeRestart < seen.length, `${beforeRestart} of ${seen.length} before the restart`);
  // received, started, 12 progress, success, return: numbered 1..16, none missing, none twice
  assert.deepEqual(
    seen,
    Array.from({ length: 16 }, (_, index) => index + 1),
  );
  assert.deepEqual(
    progress,
    Array.from({ length: 12 }, (_, index) => index + 1),
  );
  assert.deepEqual(
    followed.events.map((event) => event.id),
    Array.from({ length: 16 }, (_, index) => index + 1),
  );

  // It resubscribed to both after the last event it saw, of the log that numbered it.
  const resubscriptions = subscriptions.filter((request) => request.after > 0);
  assert.equal(resubscriptions.length, 2);
  for (const request of resubscriptions) assert.match(request.epoch, /^[0-9a-f]+$/);
  assert.equal(followed.epoch, resubscriptions.find((request) => request.task_id === followedId).epoch);

  // The client works as before on its new connection.
  assert.equal(await client.run("add", [20, 22]), 42);
});
