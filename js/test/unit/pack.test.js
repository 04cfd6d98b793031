// `npm pack`: the tarball holds the ESM build, its type declarations, README and LICENSE, nothing else.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

test("npm pack ships ESM, type declarations, README and LICENSE", () => {
  const destination = mkdtempSync(path.join(tmpdir(), "stirfried-pack-"));
  try {
    const output = execFileSync("npm", ["pack", "--json", "--pack-destination", destination], {
      cwd: root,
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
    });
    const [packed] = JSON.parse(output.slice(output.indexOf("[")));
    const manifest = JSON.parse(readFileSync(path.join(root, "package.json"), "utf8"));
    assert.equal(packed.name, "stirfried-client");
    assert.equal(packed.version, manifest.version);
    const files = packed.files.map((file) => file.path).sort();
    for (const name of ["index", "client", "errors", "options", "react", "replies", "session", "sse", "task"]) {
      assert.ok(files.includes(`dist/${name}.js`), `dist/${name}.js`);
      assert.ok(files.includes(`dist/${name}.d.ts`), `dist/${name}.d.ts`);
    }
    for (const name of ["README.md", "LICENSE", "package.json"]) assert.ok(files.includes(name), name);
    // dist/browser/: one self-contained ES module (socket.io-client inside) for pages without a bundler
    for (const name of ["stirfried-client.js", "msgpack-parser.js", "LICENSES.txt", "SHA256SUMS"]) {
      assert.ok(files.includes(`dist/browser/${name}`), `dist/browser/${name}`);
    }
    assert.deepEqual(
      files.filter((file) => !/^dist\/(\w+\.(js|d\.ts)|browser\/.+)$/.test(file)),
      ["LICENSE", "README.md", "package.json"],
    );

    // Every export resolves to a file in the tarball, ESM with declarations.
    assert.equal(manifest.type, "module");
    for (const [subpath, target] of Object.entries(manifest.exports)) {
      if (subpath === "./package.json") continue;
      const { default: code, types } = typeof target === "string" ? { default: target } : target;
      assert.ok(files.includes(code.slice(2)), `${subpath} -> ${code}`);
      if (types) assert.ok(files.includes(types.slice(2)), `${subpath} types -> ${types}`);
    }
    const listing = execFileSync("tar", ["-tzf", path.join(destination, packed.filename)], { encoding: "utf8" });
    assert.ok(listing.includes("package/dist/index.js"));
    const built = readFileSync(path.join(root, "dist/index.js"), "utf8");
    assert.match(built, /^export \{/m, "ES module syntax");
    assert.doesNotMatch(built, /require\(/);
  } finally {
    rmSync(destination, { recursive: true, force: true });
  }
});

test("react is an optional peer dependency, socket.io-client a dependency", () => {
  const manifest = JSON.parse(readFileSync(path.join(root, "package.json"), "utf8"));
  assert.ok(manifest.dependencies["socket.io-client"]);
  assert.ok(manifest.peerDependencies.react);
  assert.equal(manifest.peerDependenciesMeta.react.optional, true);
  assert.equal(manifest.dependencies.react, undefined);
});
