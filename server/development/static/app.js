// The Stirfried example page: schedule example tasks and watch their events live.
// Uses the Socket.IO JavaScript client (vendored from npm: socket.io-client).
"use strict";

const EXAMPLE_ARGS = {
  add: ["[2, 3]", "{}"],
  count_to: ["[10]", '{"delay": 0.3}'],
  fail: ['["something went wrong"]', "{}"],
  flaky: ["[2]", "{}"],
  sleep: ["[5]", "{}"],
};
const FINISHED = new Set(["SUCCESS", "FAILURE", "REVOKED"]);

const socket = io({ transports: ["websocket", "polling"] });
const rows = new Map(); // task id -> {row, state, token, lastEventId}
let connectedBefore = false;

const $ = (selector) => document.querySelector(selector);

function setConnection(text, cls) {
  const badge = $("#connection");
  badge.textContent = text;
  badge.className = "status " + cls;
}

socket.on("connect", () => {
  setConnection(connectedBefore ? "connected (reconnected)" : "connected", "connected");
  connectedBefore = true;
  // A new connection is a new client to the gateway: resubscribe to every
  // unfinished task from the last event seen, and the gateway replays the rest.
  for (const [taskId, entry] of rows) {
    if (!FINISHED.has(entry.state)) resubscribe(taskId, entry);
  }
});

function resubscribe(taskId, entry) {
  const request = { task_id: taskId, after: entry.lastEventId, token: entry.token };
  if (entry.epoch) request.epoch = entry.epoch; // a lost log (new epoch) is then replayed whole
  socket.timeout(10000).emit("subscribe_task", request, (error, reply) => {
    if (error || !reply || reply.status !== "success") requestInfo(taskId);
  });
}

// Events can overtake the send_task reply: keep them until the task's row exists.
const early = new Map(); // task id -> [[handler, event], ...]
const EARLY_LIMIT = 1000;

function onTaskEvent(name, handler) {
  socket.on(name, (event) => {
    if (!event || typeof event.task_id !== "string") return;
    if (rows.has(event.task_id)) return handler(event);
    if (!early.has(event.task_id)) {
      if (early.size >= EARLY_LIMIT) early.delete(early.keys().next().value);
      early.set(event.task_id, []);
    }
    early.get(event.task_id).push([handler, event]);
  });
}

// Each event once: a replay may repeat what already arrived live. An event of a
// new log (another epoch: Redis lost the old one) counts from 1 again.
function fresh(event) {
  const entry = rows.get(event.task_id);
  if (!entry) return null;
  const newLog = typeof event.epoch === "string" && entry.epoch && event.epoch !== entry.epoch;
  if (!newLog && !(event.event_id > entry.lastEventId)) return null;
  entry.lastEventId = event.event_id;
  if (typeof event.epoch === "string") entry.epoch = event.epoch;
  return entry;
}
socket.on("disconnect", () => setConnection("disconnected, reconnecting…", "disconnected"));
socket.io.on("reconnect_attempt", () => setConnection("disconnected, reconnecting…", "disconnected"));

function cell(row, name) {
  return row.querySelector("td." + name);
}

function setState(taskId, state) {
  const entry = rows.get(taskId);
  if (!entry) return;
  entry.state = state;
  const stateCell = cell(entry.row, "state");
  stateCell.textContent = state;
  stateCell.className = "state state-" + state;
}

function setResult(taskId, text) {
  const entry = rows.get(taskId);
  if (entry) cell(entry.row, "result").textContent = text;
}

function show(value) {
  return typeof value === "string" ? value : JSON.stringify(value);
}

function addRow(taskId, taskName, token) {
  const row = document.createElement("tr");
  row.dataset.taskId = taskId;
  for (const name of ["name", "id", "state", "progress", "result", "actions"]) {
    const td = document.createElement("td");
    td.className = name;
    row.appendChild(td);
  }
  cell(row, "name").textContent = taskName;
  cell(row, "id").textContent = taskId.slice(0, 8);
  cell(row, "id").title = taskId;
  const bar = document.createElement("progress");
  bar.max = 1;
  bar.value = 0;
  const label = document.createElement("span");
  label.className = "progress-info";
  cell(row, "progress").append(bar, " ", label);
  for (const [text, action] of [["Revoke", revoke], ["Info", requestInfo]]) {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = text;
    button.className = text.toLowerCase();
    button.addEventListener("click", () => action(taskId));
    cell(row, "actions").appendChild(button);
  }
  $("#tasks tbody").prepend(row);
  rows.set(taskId, { row, state: "PENDING", token, lastEventId: 0 });
  setState(taskId, "PENDING");
  for (const [handler, event] of early.get(taskId) || []) handler(event);
  early.delete(taskId);
}

function revoke(taskId) {
  socket.emit("revoke_task", taskId, (reply) => {
    if (reply && reply.status === "success") setResult(taskId, "revoke requested");
  });
}

function requestInfo(taskId) {
  socket.emit("task_info", taskId, (reply) => {
    if (!reply || reply.status === "failed") {
      setResult(taskId, "info failed: " + (reply ? reply.data : "no reply"));
      return;
    }
    setState(taskId, reply.state);
    if (reply.result !== null && reply.result !== undefined) setResult(taskId, show(reply.result));
  });
}

onTaskEvent("on_received", (event) => {
  const entry = fresh(event);
  if (entry && !FINISHED.has(entry.state)) setState(event.task_id, "RECEIVED");
});
onTaskEvent("on_started", (event) => {
  const entry = fresh(event);
  if (entry && !FINISHED.has(entry.state)) setState(event.task_id, "STARTED");
});
onTaskEvent("on_revoked", (event) => {
  if (fresh(event)) setState(event.task_id, "REVOKED");
});
onTaskEvent("on_progress", (event) => {
  const entry = fresh(event);
  if (!entry) return;
  const bar = cell(entry.row, "progress").querySelector("progress");
  bar.max = event.total;
  bar.value = event.current;
  cell(entry.row, "progress").querySelector(".progress-info").textContent =
    `${Math.round((100 * event.current) / event.total)}%` + (event.info ? ` ${show(event.info)}` : "");
  if (!FINISHED.has(entry.state)) setState(event.task_id, "PROGRESS");
});
onTaskEvent("on_retry", (event) => {
  const entry = fresh(event);
  if (!entry) return;
  entry.retries = (entry.retries || 0) + 1;
  setState(event.task_id, `RETRY (${entry.retries})`);
});
onTaskEvent("on_success", (event) => {
  const entry = fresh(event);
  if (!entry) return;
  setState(event.task_id, "SUCCESS");
  setResult(event.task_id, show(event.retval));
  const bar = cell(entry.row, "progress").querySelector("progress");
  bar.value = bar.max; // a task that reports no progress is still complete
});
onTaskEvent("on_failure", (event) => {
  if (!fresh(event)) return;
  setState(event.task_id, "FAILURE");
  if (event.einfo) setResult(event.task_id, event.einfo.trim().split("\n").pop());
});
onTaskEvent("on_return", (event) => {
  if (!fresh(event)) return;
  if (event.status === "FAILURE") setResult(event.task_id, event.retval ? show(event.retval) : "failed (no details)");
});

$("#task-name").addEventListener("change", (e) => {
  const [args, kwargs] = EXAMPLE_ARGS[e.target.value];
  $("#task-args").value = args;
  $("#task-kwargs").value = kwargs;
});

$("#send-form").addEventListener("submit", (e) => {
  e.preventDefault();
  $("#form-error").textContent = "";
  let args, kwargs;
  try {
    args = JSON.parse($("#task-args").value || "[]");
    kwargs = JSON.parse($("#task-kwargs").value || "{}");
  } catch (error) {
    $("#form-error").textContent = "args and kwargs must be JSON: " + error.message;
    return;
  }
  const taskName = $("#task-name").value;
  socket.timeout(10000).emit("send_task", { task_name: taskName, args, kwargs }, (error, reply) => {
    if (error) $("#form-error").textContent = "no reply from the gateway";
    else if (reply.status !== "success") $("#form-error").textContent = reply.data;
    else addRow(reply.data, taskName, reply.token);
  });
});
