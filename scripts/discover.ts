/**
 * npm run discover — lists the VMs on the Proxmox cluster that the inventory does not know,
 * with an `npm run import` line for each. Reads the API with the provider's own variables:
 * PROXMOX_VE_ENDPOINT and PROXMOX_VE_API_TOKEN (or PROXMOX_VE_USERNAME + PROXMOX_VE_PASSWORD),
 * PROXMOX_VE_INSECURE=true for a self-signed certificate. Credentials are never printed.
 * The whole run has a deadline (FLEET_DISCOVER_TIMEOUT seconds, default 60): a server that
 * trickles bytes cannot keep it waiting. Each suggested import line is checked with the
 * inventory's own rules (scripts/lib/import-entry.ts) before it is printed; a VM that cannot be
 * imported as it is gets the reason instead.
 * Exit codes: 0 listed (possibly nothing), 1 the API failed or answered something unexpected, 2 bad configuration.
 */
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { loadInventory, InventoryError, RESERVED_HOST_NAMES } from "../constructs/inventory";
import { shellQuote } from "./lib/ssh-transport";
import { entryProblems, hostEntry, ImportFlags } from "./lib/import-entry";
import { blockingStdio, printable } from "./lib/stdio";

// output reaches a pipe whole before the process exits (scripts/lib/stdio.ts)
blockingStdio();

interface ApiVm {
  vmid: number;
  name?: string;
  node: string;
  type: string;
  template?: number;
  maxcpu?: number;
  maxmem?: number;
  maxdisk?: number;
  status?: string;
  tags?: string;
}

function fail(message: string, code: number): never {
  process.stderr.write(`discover: ${message}\n`);
  process.exit(code);
}

/** One deadline for the whole run: every request is aborted when it passes, and the suggestions stop. */
const deadlineSeconds = Number(process.env.FLEET_DISCOVER_TIMEOUT || 60);
if (!(Number.isFinite(deadlineSeconds) && deadlineSeconds > 0 && deadlineSeconds <= 86400)) fail(`FLEET_DISCOVER_TIMEOUT must be a number of seconds (1-86400), got ${JSON.stringify(process.env.FLEET_DISCOVER_TIMEOUT)}`, 2);
const deadline = AbortSignal.timeout(deadlineSeconds * 1000);
const deadlineAt = Date.now() + deadlineSeconds * 1000;

function call(method: string, url: URL, headers: Record<string, string>, body?: string): Promise<{ status: number; text: string }> {
  const insecure = /^(1|true|yes)$/i.test(process.env.PROXMOX_VE_INSECURE ?? "");
  const req = url.protocol === "https:" ? httpsRequest : httpRequest;
  return new Promise((done, reject) => {
    const r = req(url, { method, headers, rejectUnauthorized: !insecure, signal: deadline }, (res) => {
      let text = "";
      res.on("data", (d) => {
        text += d;
        // a cluster of a few thousand guests answers in well under this
        if (text.length > 64 << 20) r.destroy(new Error("the answer is larger than 64 MiB"));
      });
      res.on("end", () => done({ status: res.statusCode ?? 0, text }));
      res.on("error", reject);
    });
    r.on("error", (e) => reject(deadline.aborted ? new Error(`no complete answer within ${deadlineSeconds}s (FLEET_DISCOVER_TIMEOUT)`) : e));
    if (body) r.write(body);
    r.end();
  });
}

/** A host name the inventory accepts: lower-case, letters/digits/'-', starting with a letter, not taken. */
function hostName(vm: ApiVm, taken: Set<string>): string {
  let n = (vm.name ?? "").toLowerCase().replace(/[^a-z0-9-]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 50).replace(/-+$/, "");
  if (!/^[a-z]/.test(n)) n = n ? `vm-${n}` : `vm-${vm.vmid}`;
  if (RESERVED_HOST_NAMES.test(n) || taken.has(n)) n = `${n}-${vm.vmid}`;
  taken.add(n);
  return n;
}

/** The guests of GET /cluster/resources?type=vm, or why the answer is not that (api2/json: { data: [ { vmid, node, type, ... } ] }). */
function guestsOf(text: string): ApiVm[] | string {
  let body: any;
  try {
    body = JSON.parse(text);
  } catch {
    return "did not answer JSON";
  }
  if (!body || typeof body !== "object" || !Array.isArray(body.data)) return `answered JSON without a "data" list (${JSON.stringify(text.slice(0, 80))}); is PROXMOX_VE_ENDPOINT a Proxmox VE API?`;
  const bad = body.data.findIndex((v: any) => !v || typeof v !== "object" || !Number.isInteger(v.vmid) || typeof v.node !== "string" || typeof v.type !== "string");
  if (bad >= 0) return `answered a guest without vmid, node or type (data[${bad}]: ${JSON.stringify(body.data[bad]).slice(0, 120)})`;
  return body.data;
}

async function main() {
  const endpoint = process.env.PROXMOX_VE_ENDPOINT;
  if (!endpoint) fail("PROXMOX_VE_ENDPOINT is not set (e.g. https://pve1:8006/)", 2);
  let base: URL;
  try {
    base = new URL(endpoint);
  } catch {
    fail(`PROXMOX_VE_ENDPOINT is not a URL: ${endpoint}`, 2);
  }
  const api = (path: string) => new URL(`api2/json/${path}`, base.href.endsWith("/") ? base.href : `${base.href}/`);

  let inventory;
  try {
    inventory = loadInventory();
  } catch (e) {
    if (e instanceof InventoryError) fail(`the inventory is not usable:\n${e.message}`, 2);
    throw e;
  }

  const headers: Record<string, string> = { Accept: "application/json" };
  if (process.env.PROXMOX_VE_API_TOKEN) headers.Authorization = `PVEAPIToken=${process.env.PROXMOX_VE_API_TOKEN}`;
  else if (process.env.PROXMOX_VE_USERNAME && process.env.PROXMOX_VE_PASSWORD) {
    const body = new URLSearchParams({ username: process.env.PROXMOX_VE_USERNAME, password: process.env.PROXMOX_VE_PASSWORD }).toString();
    const t = await call("POST", api("access/ticket"), { "Content-Type": "application/x-www-form-urlencoded" }, body).catch((e) => fail(`cannot reach ${base.origin}: ${e.message}`, 1));
    if (t.status !== 200) fail(`login as ${process.env.PROXMOX_VE_USERNAME} failed (HTTP ${t.status}); check PROXMOX_VE_USERNAME/PROXMOX_VE_PASSWORD`, 1);
    let ticket: unknown;
    try {
      ticket = JSON.parse(t.text)?.data?.ticket;
    } catch {
      /* reported below */
    }
    if (typeof ticket !== "string") fail("the login answered without a ticket; is PROXMOX_VE_ENDPOINT a Proxmox VE API?", 1);
    headers.Cookie = `PVEAuthCookie=${ticket}`;
  } else fail("set PROXMOX_VE_API_TOKEN (or PROXMOX_VE_USERNAME and PROXMOX_VE_PASSWORD)", 2);

  const r = await call("GET", api("cluster/resources?type=vm"), headers).catch((e) => fail(`cannot reach ${base.origin}: ${e.message}`, 1));
  if (r.status === 401 || r.status === 403) fail(`the API refused the credentials (HTTP ${r.status}); the token needs VM.Audit on /vms`, 1);
  if (r.status !== 200) fail(`GET /cluster/resources answered HTTP ${r.status}`, 1);
  const vms = guestsOf(r.text);
  if (typeof vms === "string") fail(`GET /cluster/resources ${vms}`, 1);

  const known = new Set([inventory.template.vmid, ...inventory.hosts.map((h) => h.vmid)]);
  const unknown = vms.filter((v) => v.type === "qemu" && !v.template && !known.has(v.vmid)).sort((a, b) => a.vmid - b.vmid);
  const managed = vms.filter((v) => known.has(v.vmid)).length;
  process.stdout.write(`${vms.length} guests on the cluster, ${managed} in the inventory, ${unknown.length} VMs not in it\n`);
  const taken = new Set(inventory.hosts.map((h) => h.name));
  const data = JSON.parse(JSON.stringify(inventory));
  for (const [i, v] of unknown.entries()) {
    // checking each suggestion validates the inventory with it (hosts x VMs): the deadline bounds it too
    if (Date.now() > deadlineAt) {
      process.stdout.write(`\n  ... ${unknown.length - i} more VMs not examined within ${deadlineSeconds}s (FLEET_DISCOVER_TIMEOUT); raise it to see them all\n`);
      process.exitCode = 1;
      break;
    }
    const mem = Math.round((Number(v.maxmem) || 0) / 1048576);
    const disk = Math.round((Number(v.maxdisk) || 0) / 1073741824);
    // names, nodes and states come from the API: shown with their control characters escaped
    process.stdout.write(printable(`\n  ${v.vmid}  ${v.name ?? "(no name)"} on ${v.node}, ${v.status ?? "?"}, ${v.maxcpu ?? "?"} cores, ${mem} MiB, ${disk} GiB`) + "\n");
    // Sizes the API does not know (0 for some stopped guests) are left to import's defaults.
    const flags: ImportFlags = {
      name: hostName(v, taken),
      node: v.node,
      vmid: v.vmid,
      ...(Number.isInteger(v.maxcpu) && v.maxcpu! > 0 ? { cores: v.maxcpu } : {}),
      ...(mem >= 16 ? { memory: mem } : {}),
      ...(disk >= 1 ? { disk } : {}),
    };
    const problems = entryProblems(data, hostEntry(flags));
    if (problems.length) {
      process.stdout.write(`${printable(`  cannot be imported as it is: ${problems.map((p) => `${p.field}: ${p.message}`).join("; ")}`)}\n`);
      continue;
    }
    const args = ["--name", flags.name, "--node", flags.node, "--vmid", String(flags.vmid), ...(flags.cores ? ["--cores", String(flags.cores)] : []), ...(flags.memory ? ["--memory", String(flags.memory)] : []), ...(flags.disk ? ["--disk", String(flags.disk)] : [])];
    process.stdout.write(`  npm run import -- ${shellQuote(args)}    # add --role <role> (and --address/--gateway for a static address)\n`);
  }
}

main().catch((e) => fail(`unexpected error: ${(e as Error)?.message ?? e}`, 1));
