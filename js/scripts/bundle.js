// Build the self-contained ES modules the example page loads (no build step for
// page users, no internet): stirfried-client with socket.io-client inside, and
// socket.io-msgpack-parser for gateways with `socketio_serializer: msgpack`.
//
//   node scripts/bundle.js [OUTDIR]   (default: ../server/development/static/vendor/stirfried-client)
//
// Writes LICENSES.txt (the licences of everything bundled) and SHA256SUMS; the
// build is deterministic, and test/unit/vendored.test.js checks the committed
// files equal a fresh build.
import { createHash } from "node:crypto";
import { mkdir, readFile, readdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { build } from "esbuild";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "..");
export const DEFAULT_OUTDIR = path.resolve(root, "../server/development/static/vendor/stirfried-client");
export const FILES = ["stirfried-client.js", "msgpack-parser.js", "LICENSES.txt"];

async function packageOf(input) {
  // node_modules/<name>/... or node_modules/@scope/<name>/...
  const parts = input.split("/");
  const at = parts.lastIndexOf("node_modules");
  if (at < 0) return undefined;
  const name = parts[at + 1].startsWith("@") ? parts.slice(at + 1, at + 3).join("/") : parts[at + 1];
  const directory = path.join(root, ...parts.slice(0, at + 1), name);
  const manifest = JSON.parse(await readFile(path.join(directory, "package.json"), "utf8"));
  return { name, version: manifest.version, license: manifest.license, directory };
}

async function licenceText(directory) {
  const names = (await readdir(directory)).filter((name) => /^(licen[cs]e|copying)(\.(md|txt))?$/i.test(name));
  if (names.length === 0) throw new Error(`no licence file in ${directory}`);
  return (await readFile(path.join(directory, names.sort()[0]), "utf8")).trim();
}

export async function bundle(outdir = DEFAULT_OUTDIR) {
  const own = JSON.parse(await readFile(path.join(root, "package.json"), "utf8"));
  const result = await build({
    absWorkingDir: root,
    entryPoints: { "stirfried-client": "src/index.ts", "msgpack-parser": "scripts/msgpack-parser.js" },
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2020",
    minify: true,
    legalComments: "none",
    charset: "utf8",
    metafile: true,
    write: false,
    outdir,
    banner: { js: `/*! stirfried-client ${own.version} (MIT) with its dependencies: see LICENSES.txt */` },
  });
  await mkdir(outdir, { recursive: true });
  const packages = new Map();
  for (const input of Object.keys(result.metafile.inputs)) {
    const found = await packageOf(input);
    if (found) packages.set(found.name, found);
  }
  const sections = [`stirfried-client ${own.version} (${own.license})\n\n${(await readFile(path.join(root, "LICENSE"), "utf8")).trim()}`];
  for (const found of [...packages.values()].sort((a, b) => a.name.localeCompare(b.name))) {
    sections.push(`${found.name} ${found.version} (${found.license})\n\n${await licenceText(found.directory)}`);
  }
  const contents = new Map();
  for (const file of result.outputFiles) contents.set(path.basename(file.path), file.contents);
  contents.set("LICENSES.txt", Buffer.from(`${sections.join(`\n\n${"-".repeat(72)}\n\n`)}\n`));
  const sums = [];
  for (const name of FILES) {
    const data = contents.get(name);
    await writeFile(path.join(outdir, name), data);
    sums.push(`${createHash("sha256").update(data).digest("hex")}  ${name}`);
  }
  await writeFile(path.join(outdir, "SHA256SUMS"), `${sums.join("\n")}\n`);
  return { outdir, packages: [...packages.keys()].sort() };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { outdir, packages } = await bundle(process.argv[2] ? path.resolve(process.argv[2]) : DEFAULT_OUTDIR);
  console.log(`bundled stirfried-client with ${packages.join(", ")} into ${outdir}`);
}
