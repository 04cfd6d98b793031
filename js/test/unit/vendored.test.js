// The example page's bundle (server/static/vendor/stirfried-client) equals a fresh build.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";

import { DEFAULT_OUTDIR, FILES, bundle } from "../../scripts/bundle.js";

test("the browser bundle in dist/ is the vendored one", () => {
  for (const name of [...FILES, "SHA256SUMS"]) {
    const vendored = readFileSync(path.join(DEFAULT_OUTDIR, name));
    assert.ok(vendored.equals(readFileSync(new URL(`../../dist/browser/${name}`, import.meta.url))), name);
  }
});

test("the vendored bundle is a fresh build of this package (run `npm run bundle` after a change)", async () => {
  const fresh = mkdtempSync(path.join(tmpdir(), "stirfried-bundle-"));
  try {
    await bundle(fresh);
    for (const name of [...FILES, "SHA256SUMS"]) {
      const vendored = readFileSync(path.join(DEFAULT_OUTDIR, name));
      assert.ok(vendored.equals(readFileSync(path.join(fresh, name))), `${name} differs: run npm run bundle`);
    }
  } finally {
    rmSync(fresh, { recursive: true, force: true });
  }
});
