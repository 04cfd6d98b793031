// The Stirfried example page: schedule example tasks and watch their events live.
// It uses the stirfried-client package (js/ in the repository), bundled with
// socket.io-client into static/vendor/stirfried-client/ (no build step, no internet).
import { RequestFailed, StirfriedClient, TaskTimeout } from "./vendor/stirfried-client/stirfried-client.js";

const EXAMPLE_ARGS = {
  add: ["[2, 3]", "{}"],
  count_to: ["[10]", '{"delay": 0.3}'],
  fail: ['["something went wrong"]', "{}"],
  flaky: ["[2]", "{}"],
  sleep: ["[5]", "{}"],
};
const FINAL = new Set(["SUCCESS", "FAILURE", "REVOKED"]);
const RUNNING = new Set(["STARTED", "PROGRESS", "RETRY"]);

const $ = (selector) => document.querySelector(selector);

// With `socketio_serializer: msgpack` the gateway speaks msgpack: load its parser.
const parser =
  document.body.dataset.serializer === "msgpack"
    ? await import("./vendor/stirfried-client/msgpack-parser.js")
    : undefined;

// The page's own origin; the client reconnects by itself, resubscribes to every
// unfinished task after the last event it saw, and never delivers an event twice.
const client = new StirfriedClient(undefined, { parser, timeout: 10_000 });

function setConnection(text, cls) {
  const badge = $("#connection");
  badge.textContent = text;
  badge.className = "status " + cls;
}

client.on("connect", ({ reconnected }) =>
  setConnection(reconnected ? "connected (reconnected)" : "connected", "connected"),
);
client.on("disconnect", () => setConnection("disconnected, reconnecting…", "disconnected"));
client.on("error", (error) => setConnection(error.message, "disconnected"));
client.socket.io.on("reconnect_attempt", () => setConnection("disconnected, reconnecting…", "disconnected"));

function show(value) {
  return typeof value === "string" ? value : JSON.stringify(value);
}

function clock(milliseconds) {
  return new Date(milliseconds).toLocaleTimeString();
}

function duration(milliseconds) {
  return milliseconds < 1000 ? `${Math.max(0, Math.round(milliseconds))} ms` : `${(milliseconds / 1000).toFixed(1)} s`;
}

/** One table row per task, drawn from the task's snapshot (and what Revoke and Info said). */
class TaskRow {
  constructor(task) {
    this.task = task;
    this.sentAt = Date.now();
    this.doneAt = undefined;
    this.note = ""; // what Revoke or Info said
    this.infoState = undefined; // the result backend's state, from Info
    this.revokedWhileRunning = false;
    this.row = document.createElement("tr");
    this.row.dataset.taskId = task.id;
    for (const name of ["name", "id", "state", "started", "duration", "progress", "result", "actions"]) {
      const td = document.createElement("td");
      td.className = name;
      this.row.appendChild(td);
    }
    this.cell("name").textContent = task.name;
    this.cell("id").textContent = task.id.slice(0, 8);
    this.cell("id").title = task.id;
    this.bar = document.createElement("progress");
    this.bar.max = 1;
    this.bar.value = 0;
    this.label = document.createElement("span");
    this.label.className = "progress-info";
    this.cell("progress").append(this.bar, " ", this.label);
    this.revokeButton = this.button("Revoke", () => this.revoke());
    this.button("Info", () => this.info());
    $("#tasks tbody").prepend(this.row);
    task.subscribe(() => this.render());
    this.render();
  }

  cell(name) {
    return this.row.querySelector("td." + name);
  }

  button(text, action) {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = text;
    button.className = text.toLowerCase();
    button.addEventListener("click", action);
    this.cell("actions").appendChild(button);
    return button;
  }

  /** The state to show: the events', unless Info knows better (no events for a dropped task). */
  state() {
    const snapshot = this.task.getSnapshot();
    if (snapshot.finished || !this.infoState) return snapshot.state;
    if (FINAL.has(this.infoState) || snapshot.state === "PENDING") return this.infoState;
    return snapshot.state;
  }

  render() {
    const snapshot = this.task.getSnapshot();
    const state = this.state();
    const stateCell = this.cell("state");
    stateCell.textContent = state === "RETRY" ? `RETRY (${snapshot.retries})` : state;
    stateCell.className = "state state-" + state;
    // From Send to the final event, on this browser's clock (the workers' may differ).
    if (snapshot.finished && this.doneAt === undefined) this.doneAt = Date.now();
    this.cell("started").textContent = clock(this.sentAt);
    this.cell("duration").textContent = this.doneAt === undefined ? "" : duration(this.doneAt - this.sentAt);
    if (snapshot.progress) {
      const { current, total, info } = snapshot.progress;
      this.bar.max = total;
      this.bar.value = current;
      this.label.textContent = `${Math.round((100 * current) / total)}%` + (info ? ` ${show(info)}` : "");
    }
    if (state === "SUCCESS") this.bar.value = this.bar.max; // a task that reports no progress is complete too
    this.cell("result").textContent = this.outcome(snapshot, state);
    this.revokeButton.disabled = snapshot.finished || FINAL.has(state);
  }

  outcome(snapshot, state) {
    const late = this.revokedWhileRunning ? " (the revoke came after it had started: it kept running)" : "";
    if (snapshot.finished) {
      if (state === "SUCCESS") return show(snapshot.result) + late;
      if (state === "REVOKED") return "revoked: a worker dropped it before it started";
      return (snapshot.error?.error ?? snapshot.error?.message ?? "failed (no details)") + late;
    }
    if (this.infoState === "SUCCESS" && this.infoResult !== undefined) return show(this.infoResult);
    return this.note;
  }

  async revoke() {
    const running = RUNNING.has(this.task.state);
    try {
      await this.task.revoke();
      this.revokedWhileRunning = running;
      this.note = running
        ? "revoke requested, but the task is running: it keeps running (Celery drops only tasks that have not started)"
        : "revoke requested";
    } catch (error) {
      this.note = "revoke failed: " + error.message;
    }
    this.render();
  }

  async info() {
    try {
      const reply = await this.task.info();
      this.infoState = reply.state;
      this.infoResult = reply.result ?? undefined;
    } catch (error) {
      this.note = "info failed: " + error.message;
    }
    this.render();
  }
}

$("#task-name").addEventListener("change", (e) => {
  const [args, kwargs] = EXAMPLE_ARGS[e.target.value];
  $("#task-args").value = args;
  $("#task-kwargs").value = kwargs;
});

$("#send-form").addEventListener("submit", async (e) => {
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
  try {
    new TaskRow(await client.schedule($("#task-name").value, args, kwargs));
  } catch (error) {
    $("#form-error").textContent =
      error instanceof TaskTimeout ? "no reply from the gateway" : error instanceof RequestFailed ? error.message : String(error);
  }
});
