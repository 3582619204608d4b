#!/usr/bin/env node
// Extract a subset of the Proxmox VE API schema from pve-docs' api-viewer/apidata.js.
//
// Usage:
//   node extract.mjs <path/to/apidata.js> [out.json] [--commit SHA] [--commit-date ISO] [--pve-version VER]
//
// Defaults: out.json = ./pve-api-subset.json (next to this script).
// If --commit/--commit-date/--pve-version are not given they are read from the
// environment (PVE_DOCS_COMMIT, PVE_DOCS_COMMIT_DATE, PVE_DOCS_VERSION), otherwise
// left as null. See README.md for the exact command used.
//
// The script is deterministic: same apidata.js -> byte-identical JSON.

import fs from 'node:fs';
import path from 'node:path';
import vm from 'node:vm';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

// ---------------------------------------------------------------- arguments
const argv = process.argv.slice(2);
const opts = {};
const positional = [];
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  if (a.startsWith('--')) opts[a.slice(2)] = argv[++i];
  else positional.push(a);
}
const inFile = positional[0];
if (!inFile) {
  console.error('usage: node extract.mjs <apidata.js> [out.json] [--commit SHA] [--commit-date ISO] [--pve-version VER]');
  process.exit(2);
}
const outFile = positional[1] ?? path.join(here, 'pve-api-subset.json');

// ---------------------------------------------------------------- parse
// apidata.js is `const apiSchema = [ ... ];` (possibly followed by other JS).
// Cut out the array literal by bracket matching (string-aware), then JSON.parse
// it; fall back to evaluating it in a vm sandbox if it is not strict JSON.
function sliceArrayLiteral(src) {
  const m = /const\s+apiSchema\s*=\s*/.exec(src);
  if (!m) throw new Error('`const apiSchema =` not found');
  let i = m.index + m[0].length;
  if (src[i] !== '[') throw new Error('apiSchema is not an array literal');
  const start = i;
  let depth = 0;
  let inStr = null;
  for (; i < src.length; i++) {
    const c = src[i];
    if (inStr) {
      if (c === '\\') i++;
      else if (c === inStr) inStr = null;
      continue;
    }
    if (c === '"' || c === "'") inStr = c;
    else if (c === '[' || c === '{') depth++;
    else if (c === ']' || c === '}') {
      depth--;
      if (depth === 0) return src.slice(start, i + 1);
    }
  }
  throw new Error('unterminated apiSchema array');
}

const src = fs.readFileSync(inFile, 'utf8');
const literal = sliceArrayLiteral(src);
let tree;
try {
  tree = JSON.parse(literal);
} catch {
  tree = vm.runInNewContext(`(${literal})`, Object.create(null), { timeout: 10000 });
}

// ---------------------------------------------------------------- index
const byPath = new Map();
(function walk(nodes) {
  for (const n of nodes) {
    byPath.set(n.path, n);
    if (Array.isArray(n.children)) walk(n.children);
  }
})(tree);

// ---------------------------------------------------------------- selection
const VM = '/nodes/{node}/qemu/{vmid}';
const exact = [
  '/version',
  '/cluster/resources',
  '/cluster/tasks',
  '/cluster/nextid',
  '/cluster/mapping/pci',
  '/cluster/mapping/pci/{id}',
  '/cluster/ha/resources',
  '/cluster/ha/resources/{sid}',
  '/nodes',
  '/nodes/{node}/status',
  '/nodes/{node}/qemu',
  VM,
  `${VM}/config`,
  `${VM}/pending`,
  `${VM}/clone`,
  `${VM}/resize`,
  `${VM}/move_disk`,
  `${VM}/migrate`,
  `${VM}/template`,
  `${VM}/status`,
  `${VM}/status/current`,
  ...['start', 'stop', 'shutdown', 'reboot', 'reset', 'suspend', 'resume'].map((s) => `${VM}/status/${s}`),
  `${VM}/agent`,
  ...['network-get-interfaces', 'get-osinfo', 'ping', 'info'].map((s) => `${VM}/agent/${s}`),
  `${VM}/cloudinit`,
  `${VM}/cloudinit/dump`,
  '/nodes/{node}/tasks',
  '/nodes/{node}/tasks/{upid}',
  '/nodes/{node}/tasks/{upid}/status',
  '/nodes/{node}/tasks/{upid}/log',
  '/nodes/{node}/storage',
  '/nodes/{node}/storage/{storage}',
  '/nodes/{node}/storage/{storage}/status',
  '/nodes/{node}/storage/{storage}/content',
  '/nodes/{node}/storage/{storage}/content/{volume}',
  '/nodes/{node}/storage/{storage}/download-url',
  '/nodes/{node}/storage/{storage}/upload',
  '/nodes/{node}/query-url-metadata',
  '/storage',
  '/storage/{storage}',
  '/access/permissions',
  '/access/acl',
];
// Whole subtrees: every pool path, every per-VM firewall path.
const prefixes = ['/pools', `${VM}/firewall`];

const selected = new Set();
const missing = [];
for (const p of exact) (byPath.has(p) ? selected.add(p) : missing.push(p));
for (const p of byPath.keys()) {
  if (prefixes.some((pre) => p === pre || p.startsWith(pre + '/'))) selected.add(p);
}

// ---------------------------------------------------------------- slimming
// Drop prose (description / verbose_description) from JSON-schema objects to
// save space, but keep everything structural: type, optional, format (string
// or inline property-string format object), enum, pattern, minimum, maximum,
// minLength, maxLength, default, typetext, format_description, items,
// properties, additionalProperties, requires, alias, default_key, ...
// Property *names* called "description" (e.g. the VM `description` option)
// are of course kept.
// Exception: indexed properties (`net[n]`, `scsi[n]`, ...) keep their
// `description`, because the only statement of the index range ("n is 0 to
// 30") lives there.
function slimSchema(s, keepDescription = false) {
  if (Array.isArray(s)) return s.map((x) => slimSchema(x));
  if (s === null || typeof s !== 'object') return s;
  const o = {};
  for (const [k, v] of Object.entries(s)) {
    if (k === 'verbose_description' || (k === 'description' && !keepDescription)) continue;
    if ((k === 'properties' || k === 'format') && v && typeof v === 'object' && !Array.isArray(v)) {
      // map of name -> schema
      o[k] = Object.fromEntries(
        Object.entries(v).map(([n, sub]) => [n, slimSchema(sub, k === 'properties' && n.endsWith('[n]'))]),
      );
    } else if (k === 'items' || (k === 'additionalProperties' && typeof v === 'object')) {
      o[k] = slimSchema(v);
    } else {
      o[k] = v; // scalars, enum arrays, links, etc.
    }
  }
  return o;
}

function slimMethod(m) {
  const o = {};
  for (const [k, v] of Object.entries(m)) {
    if (k === 'parameters' || k === 'returns') o[k] = slimSchema(v);
    else o[k] = v; // description (method summary), method, name, permissions, protected, proxyto, allowtoken, ...
  }
  return o;
}

function sortKeys(v) {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v === null || typeof v !== 'object') return v;
  return Object.fromEntries(
    Object.keys(v)
      .sort()
      .map((k) => [k, sortKeys(v[k])]),
  );
}

const paths = {};
for (const p of [...selected].sort()) {
  const info = byPath.get(p).info ?? {};
  const entry = {};
  for (const [method, def] of Object.entries(info)) entry[method] = slimMethod(def);
  paths[p] = entry;
}

const out = sortKeys({
  source: {
    repo: 'proxmox/pve-docs',
    path: 'api-viewer/apidata.js',
    commit: opts['commit'] ?? process.env.PVE_DOCS_COMMIT ?? null,
    commitDate: opts['commit-date'] ?? process.env.PVE_DOCS_COMMIT_DATE ?? null,
    pveVersion: opts['pve-version'] ?? process.env.PVE_DOCS_VERSION ?? null,
  },
  paths,
});

let text = JSON.stringify(out, null, 1) + '\n';
if (Buffer.byteLength(text) > 600 * 1024) text = JSON.stringify(out) + '\n';
fs.mkdirSync(path.dirname(outFile), { recursive: true });
fs.writeFileSync(outFile, text);

console.error(`wrote ${outFile}: ${Object.keys(paths).length} paths, ${Buffer.byteLength(text)} bytes`);
if (missing.length) console.error(`not present in this apidata.js: ${missing.join(', ')}`);
