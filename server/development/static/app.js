// The Stirfried example page: pick a task the workers serve, fill in its arguments,
// send it and watch its events live; "My tasks" lists this tab's tasks again after
// a reload and follows the unfinished ones. It uses the stirfried-client package
// (js/ in the repository), bundled with socket.io-client into
// static/vendor/stirfried-client/ (no build step, no internet).
import { RequestFailed, StirfriedClient, TaskTimeout } from "./vendor/stirfried-client/stirfried-client.js";

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
// It sends this tab's session key (sessionStorage), under which the gateway lists
// the tab's tasks again after a reload.
const client = new StirfriedClient(undefined, { parser, timeout: 10_000 });

function setConnection(text, cls) {
  const badge = $("#connection");
  badge.textContent = text;
  badge.className = "status " + cls;
}

client.on("connect", ({ reconnected }) => {
  setConnection(reconnected ? "connected (reconnected)" : "connected", "connected");
  void loadCatalog(); // workers may have come or gone meanwhile
  if (!reconnected) void loadMyTasks();
});
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

/**
 * One table row per task, drawn from the task's snapshot (and what Revoke and Info said).
 * `listed`: the task's entry in "my tasks" when the row comes from that list (after a reload).
 */
class TaskRow {
  constructor(task, listed = undefined) {
    this.task = task;
    this.listed = listed;
    // From Send to the final event on this browser's clock; for a listed task, the gateway's and the worker's.
    this.sentAt = listed?.scheduledAt ?? Date.now();
    this.doneAt = listed?.finishedAt ?? undefined;
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
    this.cell("name").textContent = listed?.name ?? task.name;
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
    if (listed) $("#tasks tbody").append(this.row); // the list comes newest first
    else $("#tasks tbody").prepend(this.row);
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
    if (snapshot.finished && this.doneAt === undefined) {
      this.doneAt = this.listed ? (snapshot.finishedAt ?? Date.now()) : Date.now();
    }
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
      if (state === "REVOKED") {
        if (snapshot.error?.terminated) return "terminated while it ran";
        if (snapshot.error?.expired) return "expired before it started";
        return "revoked: a worker dropped it before it started";
      }
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

// The task picker and the argument form, built from the gateway's catalog: the
// tasks live workers serve, each with its docstring and a JSON Schema of its arguments.
let catalog = [];

async function loadCatalog() {
  let latest;
  try {
    latest = await client.listTasks();
  } catch (error) {
    $("#form-error").textContent = "cannot list the tasks: " + error.message;
    return;
  }
  // Unchanged (after a reconnect, say): keep what the user typed.
  const shape = (tasks) => JSON.stringify(tasks.map(({ name, doc, parameters }) => [name, doc, parameters]));
  if (shape(latest) === shape(catalog) && catalog.length > 0) return;
  catalog = latest;
  const select = $("#task-name");
  const chosen = select.value;
  select.replaceChildren(...catalog.map((task) => new Option(task.name, task.name)));
  if (catalog.length === 0) select.append(new Option("no live worker serves any task", ""));
  if (catalog.some((task) => task.name === chosen)) select.value = chosen;
  select.disabled = $("#send").disabled = catalog.length === 0;
  showTask();
}

/** The JSON Schema type of a property: its `type`, or the first non-null one of a union. */
function typeOf(schema) {
  const types = [schema.type, ...(schema.anyOf ?? []).map((option) => option.type)].flat();
  return types.find((type) => type && type !== "null") ?? "any";
}

/** The docstring and one input per argument (its type, its default, whether required). */
function showTask() {
  const task = catalog.find((entry) => entry.name === $("#task-name").value);
  $("#task-doc").textContent = (task?.doc ?? "").replace(/``/g, ""); // reStructuredText's literals
  const fieldset = $("#task-fields");
  fieldset.replaceChildren(fieldset.querySelector("legend"));
  const schema = task?.parameters ?? {};
  const required = new Set(schema.required ?? []);
  // In the signature's order (the schema's properties come sorted by name).
  const position = (name) => task.signature.search(new RegExp(`[(,]\\s*${name}\\b`)) >>> 0;
  const properties = Object.entries(schema.properties ?? {}).sort(([a], [b]) => position(a) - position(b));
  for (const [name, property] of properties) {
    const type = typeOf(property);
    const input = document.createElement("input");
    input.id = "arg-" + name;
    input.name = name;
    input.dataset.type = type;
    input.spellcheck = false;
    input.required = required.has(name);
    if (type === "integer" || type === "number") {
      input.type = "number";
      input.step = type === "integer" ? "1" : "any";
    } else if (type === "boolean") {
      input.type = "checkbox";
    } else if (type !== "string") {
      input.placeholder = "JSON";
    }
    if ("default" in property) {
      if (type === "boolean") input.checked = Boolean(property.default);
      else input.value = typeof property.default === "string" ? property.default : JSON.stringify(property.default);
    }
    const label = document.createElement("label");
    label.className = type === "boolean" ? "checkbox" : "";
    label.append(`${property.title ?? name} (${type})${input.required ? " *" : ""}`, input);
    fieldset.append(label);
  }
  if (fieldset.children.length === 1) fieldset.append("no arguments");
}

/** The form's values as keyword arguments; empty optional fields are left to the task's defaults. */
function readArguments() {
  const kwargs = {};
  for (const input of $("#task-fields").querySelectorAll("input")) {
    const type = input.dataset.type;
    if (type === "boolean") kwargs[input.name] = input.checked;
    else if (input.value === "") continue;
    else if (type === "integer" || type === "number") kwargs[input.name] = Number(input.value);
    else if (type === "string") kwargs[input.name] = input.value;
    else {
      try {
        kwargs[input.name] = JSON.parse(input.value);
      } catch {
        if (type !== "any") throw new Error(`${input.name} must be JSON (${type})`);
        kwargs[input.name] = input.value; // untyped: taken as a string
      }
    }
  }
  return kwargs;
}

$("#task-name").addEventListener("change", showTask);

$("#send-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  $("#form-error").textContent = "";
  let kwargs;
  try {
    kwargs = readArguments();
  } catch (error) {
    $("#form-error").textContent = error.message;
    return;
  }
  try {
    new TaskRow(await client.schedule($("#task-name").value, [], kwargs));
  } catch (error) {
    $("#form-error").textContent =
      error instanceof TaskTimeout ? "no reply from the gateway" : error instanceof RequestFailed ? error.message : String(error);
  }
});

// "My tasks": what this tab scheduled before a reload, followed again (a finished
// task's events are replayed from its log, so its result shows too).
async function loadMyTasks() {
  let page;
  try {
    page = await client.listMyTasks({ limit: 20 });
  } catch (error) {
    $("#form-error").textContent = "cannot list my tasks: " + error.message;
    return;
  }
  for (const listed of page.tasks) {
    if (document.querySelector(`#tasks tr[data-task-id="${CSS.escape(listed.id)}"]`)) continue;
    try {
      new TaskRow(await client.follow(listed.id, listed.token ?? undefined), listed);
    } catch (error) {
      console.warn(`cannot follow task ${listed.id}: ${error.message}`);
    }
  }
}
