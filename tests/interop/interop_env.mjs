// Shared plumbing for the Node interop scripts: where the outside packages live, how to read
// the inputs the Rust tests pass in the environment, and how to fail with a clear message.
//
// The packages are not installed beside these scripts but under PORTCULLIS_INTEROP_DIR/node
// (scripts/test.sh puts them in <repo>/.interop/node), so bare `import 'jose'` would not find
// them; `importInterop` resolves the package from that folder instead.

import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

/** The folder holding node_modules for the interop clients. */
export function interopNodeDir() {
  const base = process.env.PORTCULLIS_INTEROP_DIR || resolve(here, '..', '..', '.interop');
  return join(base, 'node');
}

/** Imports an npm package installed under PORTCULLIS_INTEROP_DIR/node. */
export async function importInterop(name) {
  const dir = interopNodeDir();
  const manifest = join(dir, 'package.json');
  if (!existsSync(manifest)) {
    fail(`interop packages are not installed in ${dir} (run scripts/test.sh, or set PORTCULLIS_INTEROP_DIR)`);
  }
  let entry;
  try {
    entry = createRequire(manifest).resolve(name);
  } catch (err) {
    fail(`cannot resolve npm package '${name}' from ${dir}: ${err.message}`);
  }
  return import(pathToFileURL(entry).href);
}

/** Reads a required environment variable or fails naming it. */
export function requireEnv(name) {
  const value = process.env[name];
  if (value === undefined || value === '') fail(`environment variable ${name} is required`);
  return value;
}

/** Prints the reason and exits non-zero. */
export function fail(message) {
  console.error(`FAIL: ${message}`);
  process.exit(1);
}

/** Prints one passed check. */
export function ok(message) {
  console.log(`ok: ${message}`);
}

/** Decodes a compact JWS's payload without verifying it (the verify scripts do that). */
export function unverifiedPayload(jwt) {
  const parts = String(jwt).split('.');
  if (parts.length !== 3) fail(`access token is not a compact JWS (${parts.length} parts)`);
  try {
    return JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
  } catch (err) {
    fail(`access token payload is not JSON: ${err.message}`);
  }
}

/** Runs main and turns any thrown error into a clear failure. */
export function run(main) {
  main().then(
    () => process.exit(0),
    (err) => {
      const detail = err && err.cause ? ` (cause: ${JSON.stringify(err.cause)})` : err && err.error ? ` (${err.error}: ${err.error_description})` : '';
      fail(`${err && err.stack ? err.stack : err}${detail}`);
    },
  );
}
