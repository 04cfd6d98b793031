// Start and stop real gateway processes for the node tests; tests/test_js_sdk.py
// provides the services (Valkey, the example worker) and these variables.
import { spawn } from "node:child_process";
import { once } from "node:events";
import { createHmac } from "node:crypto";
import { createServer } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";

function required(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set: run these tests through pytest (tests/test_js_sdk.py)`);
  }
  return value;
}

export const env = {
  get python() {
    return required("STIRFRIED_PYTHON");
  },
  get anonymousConfig() {
    return required("STIRFRIED_CONFIG_ANONYMOUS");
  },
  get tokenConfig() {
    return required("STIRFRIED_CONFIG_TOKENS");
  },
  get msgpackConfig() {
    return required("STIRFRIED_CONFIG_MSGPACK");
  },
  get authSecret() {
    return required("STIRFRIED_TEST_AUTH_SECRET");
  },
  get token() {
    return required("STIRFRIED_TEST_TOKEN");
  },
};

export async function freePort() {
  const server = createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address();
  server.close();
  await once(server, "close");
  return port;
}

/** A `python -m stirfried.server` process on a fixed port, restartable. */
export class Gateway {
  constructor(config, port) {
    this.config = config;
    this.port = port;
    this.url = `http://127.0.0.1:${port}`;
    this.process = undefined;
    this.output = "";
  }

  static async start(config = env.anonymousConfig) {
    const gateway = new Gateway(config, await freePort());
    await gateway.start();
    return gateway;
  }

  async start() {
    const child = spawn(
      env.python,
      ["-m", "stirfried.server", "--config", this.config, "--host", "127.0.0.1", "--port", String(this.port)],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    this.process = child;
    // Never outlive this test file, even when a test times out before its after() hook.
    const kill = () => child.kill("SIGKILL");
    process.on("exit", kill);
    child.on("exit", () => process.off("exit", kill));
    const keep = (chunk) => {
      this.output = (this.output + chunk).slice(-5000);
    };
    child.stdout.on("data", keep);
    child.stderr.on("data", keep);
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`gateway exited (${child.exitCode}):\n${this.output}`);
      try {
        const response = await fetch(`${this.url}/healthz`);
        if (response.ok) return;
      } catch {
        // not serving yet
      }
      if (Date.now() > deadline) throw new Error(`gateway did not serve within 30 s:\n${this.output}`);
      await sleep(100);
    }
  }

  /** SIGTERM and wait for the process to exit (the gateway drops its Socket.IO clients first). */
  async stop() {
    const child = this.process;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, "exit");
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
    await exited;
    clearTimeout(timer);
  }
}

/** Wait until `condition()` is truthy. */
export async function until(condition, { timeout = 20_000, message = "condition" } = {}) {
  const deadline = Date.now() + timeout;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${message}`);
    await sleep(25);
  }
}

/** POST /task over HTTP, as a web backend would: `{data: taskId, token}`. */
export async function postTask(url, task, headers = {}) {
  const response = await fetch(`${url}/task`, {
    method: "POST",
    headers: { "Content-Type": "application/json", ...headers },
    body: JSON.stringify(task),
  });
  const body = await response.json();
  if (response.status !== 201) throw new Error(`POST /task: ${response.status} ${JSON.stringify(body)}`);
  return body;
}

/** A client token (HS256 JWT) signed with the token gateway's auth secret, valid for `seconds`. */
export function mintToken(seconds, claims = {}) {
  const encode = (value) => Buffer.from(JSON.stringify(value)).toString("base64url");
  const now = Math.floor(Date.now() / 1000);
  const body = `${encode({ alg: "HS256", typ: "JWT" })}.${encode({ sub: "js-tests", exp: now + seconds, tasks: ["*"], ...claims })}`;
  return `${body}.${createHmac("sha256", env.authSecret).update(body).digest("base64url")}`;
}
