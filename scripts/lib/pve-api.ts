/**
 * The few Proxmox VE API calls the deploy makes itself, with the credentials the bpg provider
 * reads (PROXMOX_VE_ENDPOINT, PROXMOX_VE_API_TOKEN, PROXMOX_VE_INSECURE): where a VM runs, what
 * configuration it holds pending, and a reboot that applies it. Paths and answers as in
 * pve-docs api-viewer/apidata.js (e5010dc): GET /cluster/resources, GET
 * /nodes/{node}/qemu/{vmid}/pending, POST /nodes/{node}/qemu/{vmid}/status/reboot ("Reboot the
 * VM by shutting it down, and starting it again. Applies pending changes."), GET
 * /nodes/{node}/tasks/{upid}/status, PUT /pools (a VM out of a pool, scripts/lib/pool-leave.ts).
 */
import { request } from "node:https";
import { request as httpRequest } from "node:http";

export interface PveAccess {
  readonly endpoint: URL;
  readonly token: string;
  readonly insecure: boolean;
}

/** The API access the environment gives, or why there is none (one line). */
export function pveAccess(env: NodeJS.ProcessEnv = process.env): PveAccess | string {
  if (!env.PROXMOX_VE_ENDPOINT) return "PROXMOX_VE_ENDPOINT is not set";
  if (!env.PROXMOX_VE_API_TOKEN) return "PROXMOX_VE_API_TOKEN is not set (the deploy reads Proxmox with an API token only)";
  let endpoint: URL;
  try {
    endpoint = new URL(env.PROXMOX_VE_ENDPOINT);
  } catch {
    return `PROXMOX_VE_ENDPOINT ${JSON.stringify(env.PROXMOX_VE_ENDPOINT)} is not a URL`;
  }
  return { endpoint, token: env.PROXMOX_VE_API_TOKEN, insecure: /^(1|true)$/i.test(env.PROXMOX_VE_INSECURE ?? "") };
}

export class PveApiError extends Error {}

/** One API call; the answer's `data`. PVE's error text (the status line, `errors`) becomes the message. */
export function pveCall(a: PveAccess, method: "GET" | "POST" | "PUT", path: string, params: Record<string, string> = {}): Promise<any> {
  const url = new URL(`${a.endpoint.pathname.replace(/\/+$/, "")}/api2/json${path}`, a.endpoint);
  const body = new URLSearchParams(params).toString();
  if (method === "GET") for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
  const send = url.protocol === "http:" ? httpRequest : request;
  return new Promise((resolve, reject) => {
    const req = send(
      url,
      {
        method,
        rejectUnauthorized: !a.insecure,
        timeout: 30_000,
        headers: {
          Authorization: `PVEAPIToken=${a.token}`,
          ...(method !== "GET" ? { "Content-Type": "application/x-www-form-urlencoded", "Content-Length": Buffer.byteLength(body) } : {}),
        },
      },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (c) => (text += c));
        res.on("end", () => {
          let doc: any;
          try {
            doc = JSON.parse(text);
          } catch {
            doc = undefined;
          }
          if (res.statusCode !== 200) {
            const detail = doc?.errors ? `: ${Object.entries(doc.errors).map(([k, v]) => `${k}: ${String(v).trim()}`).join("; ")}` : "";
            return reject(new PveApiError(`${method} ${path}: ${res.statusCode} ${(res.statusMessage ?? "").trim()}${detail}`));
          }
          resolve(doc?.data);
        });
      },
    );
    req.on("timeout", () => req.destroy(new PveApiError(`${method} ${path}: no answer within 30s`)));
    req.on("error", (e) => reject(e instanceof PveApiError ? e : new PveApiError(`${method} ${path}: ${e.message}`)));
    if (method !== "GET") req.write(body);
    req.end();
  });
}

/** The node a VM runs on now (HA or an operator may have moved it), from /cluster/resources. */
export async function nodeOf(a: PveAccess, vmid: number): Promise<string | undefined> {
  const list: any[] = (await pveCall(a, "GET", "/cluster/resources", { type: "vm" })) ?? [];
  return list.find((r) => Number(r.vmid) === vmid && r.type === "qemu")?.node;
}

/** Keys whose new value (or removal) waits for the next cold start (GET .../pending: `pending` or `delete` set). */
export async function pendingKeys(a: PveAccess, node: string, vmid: number): Promise<string[]> {
  const list: any[] = (await pveCall(a, "GET", `/nodes/${encodeURIComponent(node)}/qemu/${vmid}/pending`)) ?? [];
  return list.filter((e) => e.pending !== undefined || e.delete !== undefined).map((e) => String(e.key)).sort();
}

/** Status of the VM (running, stopped). */
export async function vmStatus(a: PveAccess, node: string, vmid: number): Promise<string> {
  return (await pveCall(a, "GET", `/nodes/${encodeURIComponent(node)}/qemu/${vmid}/status/current`))?.status;
}

/** Reboots the VM (shutdown, then start: pending values applied) and waits for its task to end; throws with the task's error. */
export async function rebootAndWait(a: PveAccess, node: string, vmid: number, timeoutSeconds: number): Promise<void> {
  const upid: string = await pveCall(a, "POST", `/nodes/${encodeURIComponent(node)}/qemu/${vmid}/status/reboot`, { timeout: String(timeoutSeconds) });
  const until = Date.now() + (timeoutSeconds + 60) * 1000;
  for (;;) {
    const st = await pveCall(a, "GET", `/nodes/${encodeURIComponent(node)}/tasks/${encodeURIComponent(upid)}/status`);
    if (st?.status === "stopped") {
      if (st.exitstatus !== "OK") throw new PveApiError(`the reboot task of VM ${vmid} failed: ${st.exitstatus}`);
      return;
    }
    if (Date.now() > until) throw new PveApiError(`the reboot task of VM ${vmid} (${upid}) did not end within ${timeoutSeconds + 60}s`);
    await new Promise((r) => setTimeout(r, 1000));
  }
}
