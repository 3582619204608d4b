// An esbuild plugin for the synth bundle (scripts/app.mjs): cdktn loads fflate (a zip library) at
// start-up for module and file assets (cdktn/lib/private/fs.js, cdktn 0.24.0), which this app
// never makes; loading it builds fflate's Huffman tables and loads Node's worker_threads, ~5 ms of
// every synth (issue #30). The one edit loads it at its first use instead. When cdktn's source no
// longer has the exact line, the file is bundled as it is (`__tests__/synth-speed.test.ts` says so).
import { applyEdits, loadPatched } from "./cdktn-fast-resolve.mjs";

export const FS_FILE = /[\\/]cdktn[\\/]lib[\\/]private[\\/]fs\.js$/;
export const FFLATE_EDIT = [
  'const fflate_1 = require("fflate");\n',
  'let __fleetFflate;\nconst fflate_1 = new Proxy({}, { get: (_, k) => (__fleetFflate ??= require("fflate"))[k] });\n',
];

/** The edited source, or undefined when cdktn's source does not have the line exactly once. */
export function patchFs(source) {
  return applyEdits(source, [FFLATE_EDIT]);
}

export const lazyFflate = {
  name: "cdktn-lazy-fflate",
  setup: (build) => loadPatched(build, FS_FILE, patchFs),
};
