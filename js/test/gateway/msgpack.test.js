// A gateway with `socketio_serializer: msgpack`, with socket.io-msgpack-parser as the parser.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import * as msgpackParser from "socket.io-msgpack-parser";

import { connect } from "../../dist/index.js";
import { Gateway, env } from "./helpers.js";

let gateway;
let client;

before(async () => {
  gateway = await Gateway.start(env.msgpackConfig);
  client = await connect(gateway.url, { parser: msgpackParser, timeout: 15_000 });
});

after(async () => {
  client?.close();
  await gateway?.stop();
});

test("run with progress over msgpack", async () => {
  const progress = [];
  const result = await client.run("count_to", [3], { delay: 0.05 }, { onProgress: (p) => progress.push(p.current) });
  assert.equal(result, 3);
  assert.deepEqual(progress, [1, 2, 3]);
  assert.equal(await client.run("add", [0.5, 2]), 2.5);
});
