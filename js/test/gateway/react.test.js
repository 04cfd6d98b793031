// The React hooks in jsdom (react + react-dom, no browser), against the real gateway.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { EventSource } from "eventsource";
import { JSDOM } from "jsdom";

import { connect } from "../../dist/index.js";
import { Gateway, postTask, until } from "./helpers.js";

const dom = new JSDOM("<!doctype html><div id=root></div>");
globalThis.window = dom.window;
globalThis.document = dom.window.document;
if (!globalThis.navigator) globalThis.navigator = dom.window.navigator;
// Updates arrive from the network, outside act(): the tests poll the DOM instead.
globalThis.IS_REACT_ACT_ENVIRONMENT = false;

const { createElement, StrictMode } = await import("react");
const { createRoot } = await import("react-dom/client");
const { useEventSource, useRun } = await import("../../dist/react.js");

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

function mount(element) {
  const container = document.createElement("div");
  document.body.append(container);
  const root = createRoot(container);
  root.render(createElement(StrictMode, null, element));
  return {
    text: () => container.textContent,
    unmount: () => {
      root.unmount();
      container.remove();
    },
  };
}

test("useRun renders progress, then the result; unmounting stops following", async () => {
  const renders = [];
  let api;
  function Counter() {
    api = useRun(client);
    const { status, state, progress, result, error } = api;
    renders.push({ status, state, current: progress?.current });
    return createElement(
      "p",
      null,
      `${status} ${state} ${progress ? `${progress.current}/${progress.total}` : "-"} ${result ?? ""}${error ? error.message : ""}`,
    );
  }
  const view = mount(createElement(Counter));
  await until(() => view.text().startsWith("idle PENDING"), { message: "the first render" });

  const handle = await api.run("count_to", [3], { delay: 0.1 });
  assert.ok(handle);
  await until(() => view.text() === "success SUCCESS 3/3 3", { message: `success, got ${view.text()}` });
  assert.ok(renders.some((render) => render.status === "running" && render.current === 1), "a render of step 1");

  const failing = await api.run("fail", ["boom"]);
  await until(() => view.text().startsWith("failure FAILURE"), { message: `failure, got ${view.text()}` });
  assert.match(view.text(), /ValueError: boom/);
  assert.equal(failing.state, "FAILURE");

  const refused = await api.run("add", "not a list");
  assert.equal(refused, undefined);
  await until(() => view.text().includes("failure") && view.text().includes("args"), { message: "the refusal" });

  const long = await api.run("count_to", [20], { delay: 0.1 });
  await until(() => long.events.length > 0, { message: "the long task's first event" });
  view.unmount();
  assert.equal(long.finished, true, "unmounting stops following the task");
  await assert.rejects(long.result(), /stopped following/);
});

test("useEventSource follows a task scheduled by the backend", async () => {
  const { data: taskId, token } = await postTask(gateway.url, {
    task_name: "count_to",
    args: [2],
    kwargs: { delay: 0.05 },
  });
  function Watcher() {
    const { status, progress, result } = useEventSource(gateway.url, taskId, token, { EventSource });
    return createElement("p", null, `${status} ${progress?.current ?? "-"} ${result ?? ""}`);
  }
  const view = mount(createElement(Watcher));
  try {
    await until(() => view.text() === "success 2 2", { message: `success, got ${view.text()}` });
  } finally {
    view.unmount();
  }
});
