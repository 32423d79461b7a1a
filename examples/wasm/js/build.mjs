// Builds math.js into a component with componentize-js's JS API (the jco
// CLI's `componentize` does not work on this machine kind).
// Usage: COMPONENTIZE_JS_DIR=DIR node build.mjs OUT.wasm, where DIR holds
// node_modules/@bytecodealliance/componentize-js (npm install there).
import { writeFile } from "node:fs/promises";
import { fileURLToPath, pathToFileURL } from "node:url";
import { dirname, resolve } from "node:path";

const dir = process.env.COMPONENTIZE_JS_DIR ?? ".";
const entry = resolve(dir, "node_modules/@bytecodealliance/componentize-js/src/componentize.js");
const { componentize } = await import(pathToFileURL(entry).href);
const here = dirname(fileURLToPath(import.meta.url));
const out = process.argv[2] ?? resolve(here, "math_js.wasm");
const { component } = await componentize({
  sourcePath: resolve(here, "math.js"),
  witPath: resolve(here, "../../../sdk-wit/wit"),
  worldName: "step-handler",
  // Only what the contract allows: no wasi:http.
  disableFeatures: ["http", "fetch-event"],
});
await writeFile(out, component);
console.log(`wrote ${out} (${component.length} bytes)`);
