/**
 * The Proxmox VE API simulator's HTTP front: https under /api2/json, API-token auth, PVE's
 * permission checks from the schema, parameter verification (./schema), and PVE's JSON envelope.
 * Sources: proxmox/pve-http-server at 5c9e4ea (src/PVE/APIServer/AnyEvent.pm: 306-315 status
 * line = first line of the message, 923-947 GET/DELETE parameters from the query string only,
 * 1456/1657 501s, 1578-1647 token header and the 3 s delay of a 401; Formatter/Standard.pm
 * 14-40 `{data, errors?, message?}`), proxmox/pve-manager at 14a22df (PVE/HTTPServer.pm 87-103
 * "Authentication failed!"/"No ticket", 144-229 routing, URI/body conflicts, permission check
 * before the handler, error mapping), proxmox/pve-access-control at 5ccd07d
 * (src/PVE/RPCEnvironment.pm 473-478 check_api2_permissions; 403 "Permission check failed
 * (<path>, <priv>)").
 */
import { createServer, Server } from "node:https";
import { IncomingMessage, ServerResponse } from "node:http";
import { AddressInfo } from "node:net";
import * as cl from "./cluster";
import * as cfg from "./config";
import * as pw from "./power";
import * as q from "./qemu";
import { route, verifyParams, verifyReturns, MethodInfo } from "./schema";
import { PveError, SimCluster } from "./state";
import { Ctx } from "./vm";
import * as st from "./storage";

type Handler = (ctx: Ctx, ...uri: string[]) => unknown;

/** Method + schema path template -> handler; the URI parameters are passed in template order. */
const HANDLERS: Record<string, Handler> = {
  "GET /version": cl.version,
  "GET /nodes": cl.nodes,
  "GET /nodes/{node}/status": cl.nodeStatus,
  "GET /cluster/resources": cl.resources,
  "GET /cluster/nextid": cl.nextid,
  "GET /cluster/tasks": cl.tasks,
  "GET /cluster/ha/resources": cl.haResources,
  "GET /cluster/ha/resources/{sid}": cl.haResource,
  "GET /nodes/{node}/tasks": cl.nodeTasks,
  "GET /nodes/{node}/tasks/{upid}": cl.taskGet,
  "GET /nodes/{node}/tasks/{upid}/status": cl.taskGet,
  "GET /nodes/{node}/tasks/{upid}/log": cl.taskLog,
  "DELETE /nodes/{node}/tasks/{upid}": cl.taskStop,
  "GET /pools": cl.poolsGet,
  "POST /pools": cl.poolCreate,
  "PUT /pools": (ctx) => cl.poolUpdate(ctx),
  "DELETE /pools": (ctx) => cl.poolDelete(ctx),
  "GET /pools/{poolid}": (ctx, id) => cl.poolsGet({ ...ctx, params: { ...ctx.params, poolid: id } })[0],
  "PUT /pools/{poolid}": (ctx, id) => cl.poolUpdate(ctx, id),
  "DELETE /pools/{poolid}": (ctx, id) => cl.poolDelete(ctx, id),
  "GET /cluster/mapping/pci": cl.mappingsList,
  "POST /cluster/mapping/pci": cl.mappingCreate,
  "GET /cluster/mapping/pci/{id}": cl.mappingGet,
  "PUT /cluster/mapping/pci/{id}": cl.mappingUpdate,
  "DELETE /cluster/mapping/pci/{id}": cl.mappingDelete,
  "GET /storage": st.storageConfigs,
  "GET /nodes/{node}/storage": st.nodeStorages,
  "GET /nodes/{node}/storage/{storage}/status": st.storageStatus,
  "GET /nodes/{node}/storage/{storage}/content": st.content,
  "GET /nodes/{node}/storage/{storage}/content/{volume}": st.contentGet,
  "DELETE /nodes/{node}/storage/{storage}/content/{volume}": st.contentDelete,
  "POST /nodes/{node}/storage/{storage}/download-url": st.downloadUrl,
  "GET /nodes/{node}/query-url-metadata": st.urlMetadata,
  "GET /nodes/{node}/qemu": pw.listVms,
  "POST /nodes/{node}/qemu": q.create,
  "GET /nodes/{node}/qemu/{vmid}/config": cfg.getConfig,
  "PUT /nodes/{node}/qemu/{vmid}/config": cfg.putConfig,
  "POST /nodes/{node}/qemu/{vmid}/config": cfg.postConfig,
  "GET /nodes/{node}/qemu/{vmid}/pending": cfg.getPending,
  "POST /nodes/{node}/qemu/{vmid}/clone": q.clone,
  "PUT /nodes/{node}/qemu/{vmid}/resize": cfg.resize,
  "POST /nodes/{node}/qemu/{vmid}/move_disk": cfg.moveDisk,
  "POST /nodes/{node}/qemu/{vmid}/template": q.template,
  "DELETE /nodes/{node}/qemu/{vmid}": q.destroy,
  "POST /nodes/{node}/qemu/{vmid}/migrate": q.migrate,
  "PUT /nodes/{node}/qemu/{vmid}/cloudinit": cfg.cloudinitUpdate,
  "GET /nodes/{node}/qemu/{vmid}/status/current": pw.statusCurrent,
  "POST /nodes/{node}/qemu/{vmid}/status/start": (ctx, n, v) => pw.powerAction(ctx, n, v, "start"),
  "POST /nodes/{node}/qemu/{vmid}/status/stop": (ctx, n, v) => pw.powerAction(ctx, n, v, "stop"),
  "POST /nodes/{node}/qemu/{vmid}/status/shutdown": (ctx, n, v) => pw.powerAction(ctx, n, v, "shutdown"),
  "POST /nodes/{node}/qemu/{vmid}/status/reboot": (ctx, n, v) => pw.powerAction(ctx, n, v, "reboot"),
  "POST /nodes/{node}/qemu/{vmid}/agent/ping": pw.agentPing,
  "GET /nodes/{node}/qemu/{vmid}/agent/network-get-interfaces": pw.networkInterfaces,
};

/** One request as the simulator saw it (tests and the bench read these). */
export interface RequestRecord {
  method: string;
  path: string;
  status: number;
  /** The body parameters of a POST/PUT (tests look at what the provider sent). */
  body?: string;
  /** Where the simulator's own answer strays from the schema's `returns` (a simulator bug). */
  returns?: string[];
}

export interface SimServer {
  url: string;
  port: number;
  server: Server;
  requests: RequestRecord[];
  close(): Promise<void>;
}

/** check_api2_permissions: the schema's permission spec against the token's privileges. */
function permitted(spec: any, privs: Set<string>, uri: Record<string, string>): { ok: boolean; what?: string } {
  const check = spec?.check;
  if (!check) return { ok: true };
  const evalCheck = (ch: any[]): { ok: boolean; what?: string } => {
    const [kind, ...rest] = ch;
    if (kind === "perm") {
      const path = String(rest[0]).replace(/\{(\w+)\}/g, (_, n) => uri[n] ?? `{${n}}`);
      const wanted: string[] = rest[1];
      const any = rest.includes("any");
      const ok = any ? wanted.some((p) => privs.has(p)) : wanted.every((p) => privs.has(p));
      return ok ? { ok } : { ok, what: `${path}, ${any ? wanted.join("|") : wanted.find((p) => !privs.has(p))}` };
    }
    if (kind === "and") {
      for (const sub of rest) {
        const r = evalCheck(sub);
        if (!r.ok) return r;
      }
      return { ok: true };
    }
    // RPCEnvironment.pm 473-478: an "or" that fails says no more than "Permission check failed".
    if (kind === "or") return rest.some((sub: any[]) => evalCheck(sub).ok) ? { ok: true } : { ok: false };
    return { ok: true }; // userid-param, userid-group: not used by the token's calls
  };
  return evalCheck(check);
}

function send(res: ServerResponse, status: number, body: unknown, message?: string) {
  const raw = JSON.stringify(body);
  res.statusCode = status;
  if (message) res.statusMessage = message.split("\n")[0].replace(/[^\x20-\x7e]/g, "?");
  res.setHeader("Content-Type", "application/json;charset=UTF-8");
  res.setHeader("Content-Length", Buffer.byteLength(raw));
  res.end(raw);
}

/**
 * Parameters (AnyEvent.pm 895-948 extract_params/decode_urlencoded): the form or JSON body of a
 * POST/PUT, then the query string on top; a repeated key becomes a list. Then
 * RESTHandler.pm 485-507 (pve-common): a list for a `*-list` string is joined with ",", a
 * single value for an array is wrapped.
 */
function parseParams(search: URLSearchParams, body: string, contentType: string, info: MethodInfo): Record<string, unknown> {
  const form = (text: string) => {
    const out: Record<string, unknown> = {};
    for (const [k, v] of new URLSearchParams(text)) out[k] = out[k] === undefined ? v : ([] as unknown[]).concat(out[k], v);
    return out;
  };
  const params = { ...(body ? (contentType.startsWith("application/json") ? JSON.parse(body) : form(body)) : {}), ...form(search.toString()) };
  const props = info.parameters?.properties ?? {};
  for (const [k, v] of Object.entries(params)) {
    const p = props[k];
    if (!p) continue;
    if (Array.isArray(v) && p.type === "string" && /-list$/.test(p.format ?? "")) params[k] = v.join(",");
    else if (!Array.isArray(v) && p.type === "array") params[k] = [v];
  }
  return params;
}

export function startSimulator(c: SimCluster, opts: { cert: string; key: string; port?: number; host?: string }): Promise<SimServer> {
  const requests: RequestRecord[] = [];
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const ch of req) chunks.push(ch as Buffer);
    const body = Buffer.concat(chunks).toString("utf8");
    const method = req.method ?? "GET";
    const url = new URL(req.url ?? "/", "https://pve");
    const record = (status: number, returns?: string[]) => requests.push({ method, path: url.pathname + url.search, status, ...(body ? { body } : {}), ...(returns?.length ? { returns } : {}) });
    c.requests++;
    const fail = (status: number, message: string, errors?: Record<string, string>) => {
      record(status);
      send(res, status, { data: null, ...(errors ? { errors } : {}), message: message.endsWith("\n") ? message : `${message}\n` }, message);
    };
    if (!url.pathname.startsWith("/api2/json/")) return fail(501, "no such uri");
    // AnyEvent.pm 1578-1647: the token header; every failure is 401 "Authentication failed!" after 3 s.
    const auth = /^PVEAPIToken[= ](.+)=([^=]+)$/.exec(String(req.headers.authorization ?? ""));
    if (!auth) return fail(401, "No ticket");
    if (auth[1] !== c.token.id || auth[2] !== c.token.secret) {
      await new Promise((r) => setTimeout(r, 3000));
      record(401);
      res.statusCode = 401;
      res.statusMessage = "Authentication failed!";
      return res.end();
    }
    if ((method === "GET" || method === "DELETE") && body) return fail(501, `Unexpected content for method '${method}'`);
    // Path segments are percent-decoded after the split: %2F stays inside a segment.
    const rel = url.pathname.slice("/api2/json".length);
    const r = route(method, rel);
    if ("notImplemented" in r) return fail(501, r.notImplemented);
    let params: Record<string, unknown>;
    try {
      params = parseParams(url.searchParams, body, String(req.headers["content-type"] ?? ""), r.info);
    } catch (e) {
      // pve-http-server src/PVE/APIServer/AnyEvent.pm 925-940 and 1068-1069 (5c9e4ea): a body that
      // is not JSON dies in decode_json inside the handler: 500 with the decoder's text
      return fail(500, `${(e as Error).message} at /usr/share/perl5/PVE/APIServer/AnyEvent.pm line 934.`);
    }
    for (const [k, v] of Object.entries(r.uriParams)) {
      if (params[k] !== undefined && params[k] !== v) return fail(400, "Parameter verification failed.", { [k]: "duplicate parameter (already defined in URI) with conflicting values!" });
      params[k] = v;
    }
    const perm = permitted(r.info.permissions, c.token.privileges, r.uriParams);
    if (!perm.ok) return fail(403, `Permission check failed${perm.what ? ` (${perm.what})` : ""}`);
    const errors = verifyParams(r.info, params);
    if (errors) return fail(400, "Parameter verification failed.", errors);
    const handler = HANDLERS[`${method} ${r.template}`];
    if (!handler) return fail(501, `Method '${method} ${rel}' not implemented`);
    const templateNames = [...r.template.matchAll(/\{(\w+)\}/g)].map((m) => m[1]);
    const strParams = Object.fromEntries(Object.entries(params).map(([k, v]) => [k, Array.isArray(v) ? v : typeof v === "boolean" ? (v ? "1" : "0") : String(v)])) as Record<string, string>;
    try {
      const data = await handler({ c, params: strParams, user: c.token.id.split("!")[0], info: r.info as MethodInfo }, ...templateNames.map((n) => r.uriParams[n]));
      record(200, verifyReturns(r.info.returns, data ?? null));
      send(res, 200, { data: data ?? null });
    } catch (e: any) {
      if (e instanceof PveError) return fail(e.status, e.message, e.errors);
      return fail(500, `simulator error: ${e?.stack ?? e}`);
    }
  };
  const server = createServer({ cert: opts.cert, key: opts.key, minVersion: "TLSv1.2" }, (req, res) => {
    handle(req, res).catch((e) => {
      res.statusCode = 500;
      res.end(String(e));
    });
  });
  return new Promise((resolve) => {
    server.listen(opts.port ?? 0, opts.host ?? "127.0.0.1", () => {
      const port = (server.address() as AddressInfo).port;
      resolve({
        url: `https://${opts.host ?? "127.0.0.1"}:${port}/`,
        port,
        server,
        requests,
        close: () => new Promise<void>((d) => {
          server.closeAllConnections?.();
          server.close(() => d());
        }),
      });
    });
  });
}
