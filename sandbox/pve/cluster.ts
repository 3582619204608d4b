/**
 * /version, /nodes, /cluster/{resources,nextid,tasks}, /pools, /cluster/mapping/pci, and the
 * task endpoints. Sources: proxmox/pve-manager at 14a22df (PVE/API2/Cluster.pm, Pool.pm,
 * Cluster/Mapping/PCI.pm, Tasks.pm), proxmox/pve-access-control at 5ccd07d (RPCEnvironment.pm).
 */
import { Ctx } from "./vm";
import { die, paramError, parseProp, PveError } from "./state";
import { clusterTasks, findTask, taskStatus } from "./tasks";

export const version = ({ c }: Ctx) => ({ ...c.version });

export const nodes = ({ c }: Ctx) => c.nodes.map((node) => ({ node, status: "online", type: "node", id: `node/${node}`, maxcpu: 32, maxmem: 256 * 1024 ** 3, cpu: 0.05, mem: 8 * 1024 ** 3, uptime: 86400, level: "" }));

export function nodeStatus({ c }: Ctx, node: string) {
  if (!c.nodes.includes(node)) die(`no such cluster node '${node}'\n`);
  return { uptime: 86400, cpu: 0.05, pveversion: `pve-manager/${c.version.version}`, kversion: "Linux 6.14", memory: { total: 256 * 1024 ** 3, used: 8 * 1024 ** 3, free: 248 * 1024 ** 3 }, cpuinfo: { cpus: 32, model: "Sim CPU", sockets: 1 }, loadavg: ["0.1", "0.1", "0.1"], rootfs: { total: 1, used: 0, free: 1, avail: 1 }, swap: { total: 0, used: 0, free: 0 }, ksm: { shared: 0 }, "boot-info": { mode: "efi" }, "current-kernel": { sysname: "Linux", release: "6.14", version: "#1", machine: "x86_64" }, idle: 0, wait: 0 };
}

/** /cluster/resources (Cluster.pm 390-560): one entry per guest, node and storage; `type` filters. */
export function resources({ c, params }: Ctx) {
  const poolOf = new Map(Object.entries(c.pools).flatMap(([pool, p]) => p.members.map((m) => [m, pool] as const)));
  const vms = Object.values(c.vms).map((vm) => ({
    id: `qemu/${vm.vmid}`,
    type: "qemu",
    vmid: vm.vmid,
    node: vm.node,
    name: vm.config.name ?? `VM ${vm.vmid}`,
    status: vm.status,
    template: vm.config.template === "1" ? 1 : 0,
    maxcpu: Number(vm.config.cores ?? 1),
    maxmem: Number(parseProp(vm.config.memory ?? "512", "current").current) * 1024 ** 2,
    uptime: vm.startedAt ? Math.floor((Date.now() - vm.startedAt) / 1000) : 0,
    ...(poolOf.has(`qemu/${vm.vmid}`) ? { pool: poolOf.get(`qemu/${vm.vmid}`) } : {}),
    ...(vm.lock ? { lock: vm.lock } : {}),
  }));
  const nodeEntries = c.nodes.map((n) => ({ id: `node/${n}`, type: "node", node: n, status: "online", maxcpu: 32, maxmem: 256 * 1024 ** 3 }));
  const storages = c.nodes.flatMap((n) => Object.entries(c.storages).map(([s, st]) => ({ id: `storage/${n}/${s}`, type: "storage", node: n, storage: s, status: "available", plugintype: st.type, shared: st.shared ? 1 : 0, maxdisk: st.total })));
  const pools = Object.keys(c.pools).map((p) => ({ id: `/pool/${p}`, type: "pool", pool: p }));
  const all = [...vms, ...nodeEntries, ...storages, ...pools];
  if (!params.type) return all;
  return all.filter((r) => (params.type === "vm" ? r.type === "qemu" || r.type === "lxc" : r.type === params.type));
}

/**
 * HA resources: this cluster has none (pve-ha-manager src/PVE/API2/HA/Resources.pm: the index
 * lists the configured ones; `read` dies "no such resource '<sid>'" through api_copy_config for
 * any other, a 500). The provider asks before it migrates a VM (bpg vm.go migrateVM 7674-7695).
 */
export function haResources() {
  return [];
}

export function haResource(_ctx: Ctx, sid: string) {
  const m = /^(?:(vm|ct):)?(\d+)$/.exec(sid);
  return die(`no such resource '${m ? `${m[1] ?? "vm"}:${m[2]}` : sid}'\n`);
}

/** /cluster/nextid (Cluster.pm nextid): the lowest free id >= 100; a taken one is 400 "VM N already exists". */
export function nextid({ c, params }: Ctx) {
  if (params.vmid) {
    if (c.vms[params.vmid]) paramError({ vmid: `VM ${params.vmid} already exists` });
    return params.vmid;
  }
  let id = 100;
  while (c.vms[String(id)]) id++;
  return String(id);
}

export const tasks = ({ c }: Ctx) => clusterTasks(c);
export const nodeTasks = ({ c }: Ctx, node: string) => clusterTasks(c).filter((t) => t.node === node);
export function taskGet({ c }: Ctx, node: string, upid: string) {
  const t = findTask(c, upid);
  if (t.node !== node) paramError({ upid: "no such task" });
  return taskStatus(t);
}
export function taskLog({ c }: Ctx, node: string, upid: string) {
  const t = findTask(c, upid);
  return t.log.map((l, i) => ({ n: i + 1, t: l }));
}
export function taskStop({ c }: Ctx, node: string, upid: string) {
  findTask(c, upid);
  return null;
}

/** Pool.pm: GET /pools (list, or ?poolid= with members), POST, PUT ?poolid (comment, vms add/delete), DELETE ?poolid. */
export function poolsGet({ c, params }: Ctx) {
  if (params.poolid !== undefined) {
    const p = c.pools[params.poolid];
    if (!p) die(`pool '${params.poolid}' does not exist\n`);
    return [{ poolid: params.poolid, ...(p!.comment ? { comment: p!.comment } : {}), members: [...p!.members].sort().filter((m) => c.vms[m.split("/")[1]]).map((m) => memberOf(c, m)) }];
  }
  return Object.entries(c.pools).map(([poolid, p]) => ({ poolid, ...(p.comment ? { comment: p.comment } : {}) }));
}
function memberOf(c: Ctx["c"], m: string) {
  const vmid = Number(m.split("/")[1]);
  const vm = c.vms[String(vmid)];
  return { id: m, type: "qemu", vmid, node: vm?.node ?? "", status: vm?.status ?? "unknown", name: vm?.config.name ?? "" };
}
/**
 * Pool.pm (pve-manager 14a22df) changes user.cfg inside PVE::AccessControl::lock_user_config,
 * which prefixes every error with its caller's text (pve-access-control
 * src/PVE/AccessControl.pm lock_user_config: `die "$errmsg: $err"`).
 */
function locked(what: string, fn: () => void) {
  try {
    fn();
  } catch (e) {
    if (e instanceof PveError) throw new PveError(e.status, `${what}: ${e.message}`, e.errors);
    throw e;
  }
}
/** Pool.pm 183-210: "create pool failed"; a pool name starts with a letter. */
export function poolCreate({ c, params }: Ctx) {
  locked("create pool failed", () => {
    if (c.pools[params.poolid]) die(`pool '${params.poolid}' already exists\n`);
    if (!/^[A-Za-z]/.test(params.poolid)) die("pool name must start with a letter\n");
    c.pools[params.poolid] = { comment: params.comment || undefined, members: [] };
  });
  return null;
}
/** Pool.pm 321-378: "update pools failed"; adding a member twice or deleting a non-member is refused. */
export function poolUpdate({ c, params }: Ctx, poolid = params.poolid) {
  locked("update pools failed", () => {
    const p = c.pools[poolid];
    if (!p) die(`pool '${poolid}' does not exist\n`);
    if (params.comment !== undefined) p!.comment = params.comment || undefined;
    for (const vmid of (params.vms ?? "").split(/[,;\s]+/).filter(Boolean)) {
      const id = `qemu/${vmid}`;
      if (params.delete === "1") {
        if (!p!.members.includes(id)) die(`VM ${vmid} is not a pool member\n`);
        p!.members = p!.members.filter((m) => m !== id);
      } else {
        if (p!.members.includes(id)) die(`VM ${vmid} is already a pool member\n`);
        const other = Object.entries(c.pools).find(([n, q]) => n !== poolid && q.members.includes(id));
        if (other && params["allow-move"] !== "1") die(`VM ${vmid} belongs already to pool '${other[0]}' and 'allow-move' is not set\n`);
        if (other) other[1].members = other[1].members.filter((m) => m !== id);
        p!.members.push(id);
      }
    }
  });
  return null;
}
/** Pool.pm 501-532: "delete pool failed"; a pool with a (still existing) member is not deleted. */
export function poolDelete({ c, params }: Ctx, poolid = params.poolid) {
  locked("delete pool failed", () => {
    const p = c.pools[poolid];
    if (!p) die(`pool '${poolid}' does not exist\n`);
    // `sort keys`: Perl's string order
    const vm = p!.members.map((m) => m.split("/")[1]).sort().find((v) => c.vms[v]);
    if (vm) die(`pool '${poolid}' is not empty (contains VM ${vm})\n`);
    delete c.pools[poolid];
  });
  return null;
}

/**
 * /cluster/mapping/pci (pve-manager PVE/API2/Cluster/Mapping/PCI.pm at 14a22df): entries keep the
 * `map` strings as written; an unknown id is "mapping 'X' not found" (175); create and update run
 * under pve-guest-common Mapping/PCI.pm's lock, whose errors get "create hardware mapping failed: "
 * (210, 217) or "update hardware mapping failed: " (254, 269); delete removes only what exists
 * (300-311). The map's node is only the format pve-node: no check that the node exists.
 */
export function mappingsList({ c }: Ctx) {
  return Object.entries(c.mappings).map(([id, m]) => ({ id, type: "pci", map: m.map, ...(m.description ? { description: m.description } : {}) }));
}
export function mappingGet({ c }: Ctx, id: string) {
  const m = c.mappings[id];
  if (!m) die(`mapping '${id}' not found\n`);
  return { id, type: "pci", map: m!.map, ...(m!.description ? { description: m!.description } : {}), ...(m!.mdev ? { mdev: 1 } : {}) };
}
const asList = (v: unknown): string[] => (Array.isArray(v) ? v.map(String) : v === undefined ? [] : [String(v)]);
function checkMap(c: Ctx["c"], entries: string[]) {
  for (const e of entries) {
    const p = parseProp(e, "");
    for (const k of Object.keys(p)) if (!["id", "node", "path", "iommugroup", "subsystem-id", "description"].includes(k)) paramError({ map: `invalid format - invalid key in comma-separated list property: ${k}` });
    if (!p.node || !p.path || !p.id) paramError({ map: `invalid format - format error\n${!p.id ? "id" : !p.node ? "node" : "path"}: property is missing and it is not optional` });
  }
}
export function mappingCreate({ c, params }: Ctx) {
  if (c.mappings[params.id]) die(`create hardware mapping failed: pci ID '${params.id}' already defined\n`);
  const map = asList(params.map);
  checkMap(c, map);
  c.mappings[params.id] = { map, description: params.description, mdev: params.mdev === "1" };
  return null;
}
export function mappingUpdate({ c, params }: Ctx, id: string) {
  const m = c.mappings[id];
  if (!m) die(`update hardware mapping failed: pci ID '${id}' does not exist\n`);
  const deletes = (params.delete ?? "").split(/[,;\s]+/).filter(Boolean);
  if (params.map !== undefined) {
    const map = asList(params.map);
    checkMap(c, map);
    m!.map = map;
  }
  if (params.description !== undefined) m!.description = params.description;
  if (params.mdev !== undefined) m!.mdev = params.mdev === "1";
  if (deletes.includes("description")) delete m!.description;
  if (deletes.includes("mdev")) m!.mdev = false;
  return null;
}
export function mappingDelete({ c }: Ctx, id: string) {
  // qemu-server refuses nothing here: a VM using the mapping fails at its next start.
  delete c.mappings[id];
  return null;
}
