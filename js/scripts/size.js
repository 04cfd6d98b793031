// Size of the package as an app bundles it: minified ESM (esbuild), then gzip -9.
//   node scripts/size.js
import { gzipSync } from "node:zlib";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { build } from "esbuild";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

async function measure(entry, external) {
  const result = await build({
    absWorkingDir: root,
    ...(entry.startsWith("export")
      ? { stdin: { contents: entry, resolveDir: root, sourcefile: "entry.js" } }
      : { entryPoints: [entry] }),
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2020",
    minify: true,
    legalComments: "none",
    write: false,
    external,
  });
  const code = result.outputFiles[0].contents;
  return { minified: code.length, gzipped: gzipSync(code, { level: 9 }).length };
}

const kib = (bytes) => `${(bytes / 1024).toFixed(1)} KiB`;
const rows = [
  ["stirfried-client with socket.io-client", await measure("src/index.ts", [])],
  ["stirfried-client alone (socket.io-client external)", await measure("src/index.ts", ["socket.io-client"])],
  ["followWithEventSource only", await measure('export { followWithEventSource } from "stirfried-client";', [])],
  ["stirfried-client/react alone (react, socket.io-client external)", await measure("src/react.ts", ["react", "socket.io-client"])],
];
for (const [label, { minified, gzipped }] of rows) {
  console.log(`${label}: ${kib(minified)} minified, ${kib(gzipped)} minified+gzipped`);
}
