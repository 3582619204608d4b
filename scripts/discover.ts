/**
 * npm run discover — lists the VMs on the Proxmox cluster that the inventory does not know,
 * with an `npm run import` line for each. Reads the API with the provider's own variables:
 * PROXMOX_VE_ENDPOINT and PROXMOX_VE_API_TOKEN (or PROXMOX_VE_USERNAME + PROXMOX_VE_PASSWORD),
 * PROXMOX_VE_INSECURE=true for a self-signed certificate. Credentials are never printed.
 * Exit codes: 0 listed (possibly nothing), 1 the API failed, 2 bad configuration.
 */
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { loadInventory, InventoryError } from "../constructs/inventory";

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

function call(method: string, url: URL, headers: Record<string, string>, body?: string): Promise<{ status: number; text: string }> {
  const insecure = /^(1|true|yes)$/i.test(process.env.PROXMOX_VE_INSECURE ?? "");
  const req = url.protocol === "https:" ? httpsRequest : httpRequest;
  return new Promise((done, reject) => {
    const r = req(url, { method, headers, rejectUnauthorized: !insecure, timeout: 15000 }, (res) => {
      let text = "";
      res.on("data", (d) => (text += d));
      res.on("end", () => done({ status: res.statusCode ?? 0, text }));
    });
    r.on("timeout", () => r.destroy(new Error("timed out after 15s")));
    r.on("error", reject);
    if (body) r.write(body);
    r.end();
  });
}

/** Host name that passes the inventory's RFC 1123 check. */
function hostName(vm: ApiVm): string {
  const n = (vm.name ?? `vm-${vm.vmid}`).toLowerCase().replace(/[^a-z0-9-]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 63);
  return n || `vm-${vm.vmid}`;
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
    headers.Cookie = `PVEAuthCookie=${JSON.parse(t.text).data.ticket}`;
  } else fail("set PROXMOX_VE_API_TOKEN (or PROXMOX_VE_USERNAME and PROXMOX_VE_PASSWORD)", 2);

  const r = await call("GET", api("cluster/resources?type=vm"), headers).catch((e) => fail(`cannot reach ${base.origin}: ${e.message}`, 1));
  if (r.status === 401 || r.status === 403) fail(`the API refused the credentials (HTTP ${r.status}); the token needs VM.Audit on /vms`, 1);
  if (r.status !== 200) fail(`GET /cluster/resources answered HTTP ${r.status}`, 1);
  let vms: ApiVm[];
  try {
    vms = JSON.parse(r.text).data;
  } catch {
    fail("GET /cluster/resources did not answer JSON", 1);
  }

  const known = new Set([inventory.template.vmid, ...inventory.hosts.map((h) => h.vmid)]);
  const unknown = vms.filter((v) => v.type === "qemu" && !v.template && !known.has(v.vmid)).sort((a, b) => a.vmid - b.vmid);
  const managed = vms.filter((v) => known.has(v.vmid)).length;
  process.stdout.write(`${vms.length} guests on the cluster, ${managed} in the inventory, ${unknown.length} VMs not in it\n`);
  for (const v of unknown) {
    const mem = Math.round((v.maxmem ?? 0) / 1048576);
    const disk = Math.round((v.maxdisk ?? 0) / 1073741824);
    process.stdout.write(`\n  ${v.vmid}  ${v.name ?? "(no name)"} on ${v.node}, ${v.status ?? "?"}, ${v.maxcpu ?? "?"} cores, ${mem} MiB, ${disk} GiB\n`);
    process.stdout.write(`  npm run import -- --name ${hostName(v)} --node ${v.node} --vmid ${v.vmid} --role <role> --cores ${v.maxcpu ?? 1} --memory ${mem} --disk ${disk}\n`);
  }
}

main().catch((e) => fail(`unexpected error: ${(e as Error)?.message ?? e}`, 1));
