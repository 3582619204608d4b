/**
 * /nodes/{node}/qemu/...: VM config, clone, resize, power, migrate, destroy, guest agent.
 * Each rule cites proxmox/qemu-server at e6352be ("Qemu.pm" = src/PVE/API2/Qemu.pm,
 * "QemuServer.pm" = src/PVE/QemuServer.pm) or proxmox/pve-guest-common at 4a8f6cb
 * ("AbstractConfig.pm" = src/PVE/AbstractConfig.pm), with PVE's message texts.
 */
import { createHash } from "node:crypto";
import { MethodInfo } from "./schema";
import { allocVolume, die, formatProp, formatSize, newMac, paramError, parseProp, parseSize, PveError, SimCluster, SimVm } from "./state";
import { startTask } from "./tasks";

export interface Ctx {
  c: SimCluster;
  params: Record<string, string>;
  user: string;
  info: MethodInfo;
}

const CLOUDINIT_OPTS = ["ciuser", "cipassword", "citype", "ciupgrade", "cicustom", "searchdomain", "nameserver", "sshkeys"];
// QemuServer.pm 4593-4611: applied at once even while the VM runs.
const FAST_PLUG = new Set(["description", "hookscript", "lock", "migrate_downtime", "migrate_speed", "name", "onboot", "protection", "shares", "startup", "tags", "vmstatestorage", ...CLOUDINIT_OPTS]);
const isFastPlug = (k: string) => FAST_PLUG.has(k) || /^ipconfig\d+$/.test(k);
/** Hotplug default "network,disk,usb" (QemuServer.pm 253-263): NICs and ide-less disks change live. */
const isHotplug = (k: string, conf: Record<string, string>) => {
  const hotplug = (conf.hotplug ?? "network,disk,usb").split(",");
  return (/^net\d+$/.test(k) && hotplug.includes("network")) || (/^(scsi|virtio|sata)\d+$/.test(k) && hotplug.includes("disk")) || (/^usb\d+$/.test(k) && hotplug.includes("usb"));
};

/** The VM on this node, or PVE's not-found die (AbstractConfig.pm 57: load_config). */
export function vmOn(c: SimCluster, node: string, vmid: string | number): SimVm {
  const vm = c.vms[String(vmid)];
  if (!vm || vm.node !== node) die(`Configuration file 'nodes/${node}/qemu-server/${vmid}.conf' does not exist\n`);
  return vm!;
}

/** check_lock (AbstractConfig.pm 339): "VM is locked (<lock>)". */
function checkLock(vm: SimVm, params: Record<string, string>) {
  if (vm.lock && params.skiplock !== "1") die(`VM is locked (${vm.lock})\n`);
}

/** The config with pending values applied (GET config with current=0, Qemu.pm get_vm_config). */
function effective(vm: SimVm): Record<string, string> {
  const conf = { ...vm.config, ...vm.pending };
  for (const k of vm.pendingDelete) delete conf[k];
  return conf;
}

/** JSON types of the schema's `returns` (booleans and integers as numbers, PVE's JSON output). */
function typed(info: MethodInfo, conf: Record<string, string>): Record<string, unknown> {
  const props = info.returns?.properties ?? {};
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(conf)) {
    const p = props[k] ?? props[k.replace(/\d+$/, "[n]")];
    out[k] = p && (p.type === "integer" || p.type === "number" || p.type === "boolean") ? Number(v) : v;
  }
  return out;
}

export function getConfig({ c, params, info }: Ctx, node: string, vmid: string) {
  const vm = vmOn(c, node, vmid);
  const conf = params.current === "1" ? { ...vm.config } : effective(vm);
  const digest = createHash("sha1").update(JSON.stringify(vm.config)).digest("hex");
  return { ...typed(info, conf), digest };
}

export function getPending({ c }: Ctx, node: string, vmid: string) {
  const vm = vmOn(c, node, vmid);
  const keys = new Set([...Object.keys(vm.config), ...Object.keys(vm.pending), ...vm.pendingDelete]);
  return [...keys].sort().map((key) => ({ key, ...(vm.config[key] !== undefined ? { value: vm.config[key] } : {}), ...(vm.pending[key] !== undefined ? { pending: vm.pending[key] } : {}), ...(vm.pendingDelete.includes(key) ? { delete: 1 } : {}) }));
}

const DRIVE_RE = /^(ide|sata|scsi|virtio)\d+$/;

/**
 * A new drive value as qemu-server stores it: `STORAGE:SIZE_GiB` allocates a volume
 * (Qemu.pm create_disks 600-760), `STORAGE:0,import-from=VOLID` imports one, `STORAGE:cloudinit`
 * makes the cloud-init drive `STORAGE:vm-<id>-cloudinit,media=cdrom` (QemuServer/Cloudinit.pm).
 */
function materializeDrive(c: SimCluster, vm: SimVm, key: string, value: string): string {
  const p = parseProp(value, "file");
  const file = p.file ?? "";
  const alloc = /^([^:]+):(\d+(?:\.\d+)?)$/.exec(file);
  const ci = /^([^:]+):cloudinit$/.exec(file);
  if (ci) {
    const volid = `${ci[1]}:vm-${vm.vmid}-cloudinit`;
    c.volumes[volid] = { storage: ci[1], name: `vm-${vm.vmid}-cloudinit`, size: 4 * 1024 ** 2, format: "raw", vmid: vm.vmid, content: "images" };
    return formatProp({ file: volid, media: "cdrom" }, "file");
  }
  if (p.media === "cdrom") return formatProp(p, "file");
  if (alloc) {
    let size = Number(alloc[2]) * 1024 ** 3;
    if (key === "efidisk0") size = 4 * 1024 ** 2;
    if (p["import-from"]) {
      const src = c.volumes[p["import-from"]];
      // Qemu.pm 713: "volume $volid does not exist"
      if (!src) die(`volume ${p["import-from"]} does not exist\n`);
      size = src.size;
      delete p["import-from"];
    }
    const volid = allocVolume(c, alloc[1], vm.vmid, size);
    delete p.file;
    return formatProp({ file: volid, ...p, size: formatSize(c.volumes[volid].size) }, "file");
  }
  const vol = c.volumes[file];
  if (!vol && file !== "none") die(`volume '${file}' does not exist\n`);
  if (vol) p.size = formatSize(vol.size);
  return formatProp(p, "file");
}

/** A NIC as qemu-server prints it: `<model>=<MAC>,bridge=...`, a MAC generated when none is given (QemuServer.pm parse_net/print_net). */
function normalizeNet(c: SimCluster, value: string): string {
  const p = parseProp(value, "model");
  const models = ["virtio", "e1000", "e1000e", "rtl8139", "vmxnet3"];
  let model = p.model;
  let mac = p.macaddr;
  for (const m of models)
    if (p[m] !== undefined) {
      model = m;
      mac = p[m];
      delete p[m];
    }
  delete p.model;
  delete p.macaddr;
  return [`${model}=${(mac ?? newMac(c)).toUpperCase()}`, ...Object.entries(p).map(([k, v]) => `${k}=${v}`)].join(",");
}

function volumeOf(value: string): string {
  return parseProp(value, "file").file;
}

/** Moves a removed drive's volume to the lowest free unusedN (QemuServer.pm 4969-4983, vmconfig_delete_or_detach_drive). */
function detach(c: SimCluster, conf: Record<string, string>, value: string) {
  const p = parseProp(value, "file");
  if (p.media === "cdrom") {
    if (/cloudinit$/.test(p.file)) delete c.volumes[p.file];
    return;
  }
  let i = 0;
  while (conf[`unused${i}`] !== undefined) i++;
  conf[`unused${i}`] = p.file;
}

/**
 * update_vm_api (Qemu.pm 2040-2610): deletes and sets, protection, pending values on a running
 * VM, hotplug of NICs and disks, the cloud-init drive.
 */
export function applyConfig(c: SimCluster, vm: SimVm, params: Record<string, string>) {
  checkLock(vm, params);
  // Qemu.pm 2211: digest compares against the config file as read.
  if (params.digest && params.digest !== createHash("sha1").update(JSON.stringify(vm.config)).digest("hex")) die("checksum mismatch (file change by other user?)\n");
  const deletes = (params.delete ?? "").split(/[,;\s]+/).filter(Boolean);
  const sets = Object.fromEntries(Object.entries(params).filter(([k]) => !["node", "vmid", "delete", "digest", "skiplock", "revert", "force", "background_delay"].includes(k)));
  const overlap = deletes.find((k) => sets[k] !== undefined);
  if (overlap) paramError({ delete: `cannot set and delete '${overlap}' at the same time` });
  const running = vm.status === "running";
  const conf = vm.config;
  for (const k of deletes) {
    const current = vm.pending[k] ?? conf[k];
    if (current === undefined) continue; // Qemu.pm 2280: "cannot delete '$opt' - not set in current configuration!" is a warning
    if (/^(ide|sata|scsi|virtio|efidisk|tpmstate)\d+$/.test(k) && !/media=cdrom/.test(current) && (conf.protection === "1")) die(`can't remove drive '${k}' - protection mode enabled\n`);
    if (/^unused\d+$/.test(k) && conf.protection === "1") die(`unable to delete '${volumeOf(current)}' - protection mode enabled\n`);
    if (running && !isFastPlug(k) && !isHotplug(k, conf)) {
      if (!vm.pendingDelete.includes(k)) vm.pendingDelete.push(k);
      delete vm.pending[k];
      continue;
    }
    if (/^unused\d+$/.test(k)) delete c.volumes[current];
    else if (/^(ide|sata|scsi|virtio|efidisk|tpmstate)\d+$/.test(k)) detach(c, conf, current);
    delete conf[k];
    delete vm.pending[k];
  }
  for (const [k, raw] of Object.entries(sets)) {
    let v = raw;
    if (DRIVE_RE.test(k) || k === "efidisk0" || k === "tpmstate0") {
      const old = conf[k];
      const oldVol = old && volumeOf(old);
      v = materializeDrive(c, vm, k, v);
      if (old && oldVol !== volumeOf(v) && !/media=cdrom/.test(old)) detach(c, conf, old);
    } else if (/^net\d+$/.test(k)) v = normalizeNet(c, v);
    if (running && !isFastPlug(k) && !isHotplug(k, conf)) {
      vm.pending[k] = v;
      vm.pendingDelete = vm.pendingDelete.filter((x) => x !== k);
      continue;
    }
    conf[k] = v;
  }
}

export function putConfig({ c, params }: Ctx, node: string, vmid: string) {
  applyConfig(c, vmOn(c, node, vmid), params);
  return null;
}

export function postConfig({ c, params, user }: Ctx, node: string, vmid: string) {
  const vm = vmOn(c, node, vmid);
  checkLock(vm, params);
  return startTask(c, node, "qmconfig", vmid, user, () => applyConfig(c, vm, params));
}

/**
 * A VM that already exists (an operator made it by hand): its config as `qm set` would take it
 * (`STORAGE:SIZE` disks are allocated, NICs get MACs), running unless `stopped`.
 */
export function addVm(c: SimCluster, vmid: number, node: string, config: Record<string, string>, opts: { stopped?: boolean; pool?: string } = {}): SimVm {
  const vm: SimVm = { vmid, node, config: {}, pending: {}, pendingDelete: [], status: "stopped", agent: "ok" };
  c.vms[String(vmid)] = vm;
  applyConfig(c, vm, config);
  if (opts.pool) c.pools[opts.pool].members.push(`qemu/${vmid}`);
  if (!opts.stopped) start(c, vm);
  return vm;
}

/** Cold start applies pending changes (QemuServer.pm vmconfig_apply_pending). */
function applyPending(c: SimCluster, vm: SimVm) {
  for (const k of vm.pendingDelete) {
    const cur = vm.config[k];
    if (cur !== undefined && /^(ide|sata|scsi|virtio|efidisk|tpmstate)\d+$/.test(k)) detach(c, vm.config, cur);
    delete vm.config[k];
  }
  Object.assign(vm.config, vm.pending);
  vm.pending = {};
  vm.pendingDelete = [];
}

/**
 * Start checks: a template does not start (QemuServer.pm vm_start); a mapped hostpci needs an
 * entry for this node (QemuServer/PCI.pm 446-447 "PCI device mapping not found for '%s'") whose
 * id, iommugroup and subsystem-id match the host's device (pve-guest-common
 * src/PVE/Mapping/PCI.pm 150-200 assert_valid, wrapped as "PCI device mapping invalid (hardware
 * probably changed): ..." by PCI.pm 455).
 */
function checkStart(c: SimCluster, vm: SimVm) {
  if (vm.config.template === "1") die("you can't start a vm if it's a template\n");
  const conf = effective(vm);
  for (const [k, v] of Object.entries(conf)) {
    if (!/^hostpci\d+$/.test(k)) continue;
    const name = parseProp(v, "host").mapping;
    if (!name) continue;
    const entries = (c.mappings[name]?.map ?? []).map((e) => parseProp(e, "")).filter((e) => e.node === vm.node);
    if (!entries.length) die(`PCI device mapping not found for '${name}'\n`);
    for (const e of entries) {
      const invalid = (msg: string) => die(`PCI device mapping invalid (hardware probably changed): ${msg}\n`);
      const path = /\.[0-9a-f]$/i.test(e.path) ? e.path : `${e.path}.0`;
      const dev = c.pci[vm.node]?.[path];
      if (!dev) invalid(`pci device '${path}' not found`);
      const expected: Record<string, string> = { id: dev!.id, iommugroup: String(dev!.iommuGroup), "subsystem-id": dev!.subsystemId };
      for (const prop of Object.keys(expected).sort()) {
        if (e[prop] === undefined) invalid(`missing expected property '${prop}' for device '${path}'`);
        if (e[prop] !== expected[prop]) invalid(`'${prop}' does not match for '${name}' (${expected[prop]} != ${e[prop]})`);
      }
    }
  }
}

export function start(c: SimCluster, vm: SimVm) {
  checkStart(c, vm);
  applyPending(c, vm);
  vm.status = "running";
  vm.startedAt = Date.now();
}

function stop(vm: SimVm) {
  vm.status = "stopped";
  vm.startedAt = undefined;
}

export function powerAction({ c, params, user }: Ctx, node: string, vmid: string, action: string) {
  const vm = vmOn(c, node, vmid);
  if (params.skiplock !== "1" && vm.lock) die(`VM is locked (${vm.lock})\n`);
  switch (action) {
    case "start":
      // The "already running" error is a task error (QemuServer.pm 5531).
      return startTask(c, node, "qmstart", vmid, user, () => {
        if (vm.status === "running") die(`VM ${vmid} already running\n`);
        start(c, vm);
      });
    case "stop":
      return startTask(c, node, "qmstop", vmid, user, () => stop(vm));
    case "shutdown":
      // QemuServer.pm 6261-6295: ACPI shutdown, "VM quit/powerdown failed - got timeout" unless forceStop.
      return startTask(c, node, "qmshutdown", vmid, user, async () => {
        if (vm.status !== "running") return;
        if (vm.ignoresShutdown || vm.agent !== "ok") {
          await new Promise((r) => setTimeout(r, c.timing.shutdownTimeoutMs));
          if (params.forceStop !== "1") die("VM quit/powerdown failed - got timeout\n");
        }
        stop(vm);
      });
    case "reboot":
      // QemuServer.pm 4013: "VM $vmid not running" before the fork.
      if (vm.status !== "running") die(`VM ${vmid} not running\n`);
      return startTask(c, node, "qmreboot", vmid, user, () => {
        stop(vm);
        start(c, vm);
      });
  }
  return die(`unknown action ${action}\n`);
}

/** status/current (QemuServer.pm vmstatus 2371-2789). */
export function statusCurrent({ c }: Ctx, node: string, vmid: string) {
  const vm = vmOn(c, node, vmid);
  const conf = effective(vm);
  const disk = Object.entries(conf).filter(([k, v]) => DRIVE_RE.test(k) && !/media=cdrom/.test(v)).reduce((s, [, v]) => s + (c.volumes[volumeOf(v)]?.size ?? 0), 0);
  return {
    vmid: vm.vmid,
    name: conf.name ?? `VM ${vm.vmid}`,
    status: vm.status,
    qmpstatus: vm.status,
    ha: { managed: 0 },
    cpus: Number(conf.cores ?? 1) * Number(conf.sockets ?? 1),
    maxmem: Number(parseProp(conf.memory ?? "512", "current").current) * 1024 ** 2,
    maxdisk: disk,
    uptime: vm.startedAt ? Math.floor((Date.now() - vm.startedAt) / 1000) : 0,
    ...(vm.status === "running" ? { pid: 10000 + vm.vmid } : {}),
    ...(parseProp(conf.agent ?? "0", "enabled").enabled === "1" ? { agent: 1 } : {}),
    ...(vm.lock ? { lock: vm.lock } : {}),
    ...(conf.tags ? { tags: conf.tags } : {}),
    ...(conf.template === "1" ? { template: 1 } : {}),
  };
}

export function listVms({ c }: Ctx, node: string) {
  return Object.values(c.vms).filter((v) => v.node === node).map((v) => statusCurrent({ c } as Ctx, node, String(v.vmid)));
}

/** check_pool_exist (Qemu.pm 1295, 4449; pve-access-control RPCEnvironment.pm 377-386): a 403. */
function assertPool(c: SimCluster, pool: string) {
  if (!c.pools[pool]) throw new PveError(403, `Permission check failed (pool '${pool}' does not exist)\n`);
}

/**
 * clone_vm (Qemu.pm 4328-4751): checks before the fork answer directly; the target config is
 * written at once with `lock: clone` (4505) and the copy happens in the `qmclone` task whose id is
 * the source vmid (4749). Full copies get new volumes on `storage` (or the source's), new MACs.
 */
export function clone({ c, params, user }: Ctx, node: string, vmid: string) {
  const src = vmOn(c, node, vmid);
  const newid = params.newid;
  if (params.pool) assertPool(c, params.pool); // Qemu.pm 4449, before the target checks
  if (c.vms[newid]) die(`unable to create VM ${newid}: config file already exists\n`);
  const target = params.target ?? node;
  if (!c.nodes.includes(target)) die(`no such cluster node '${target}'\n`);
  const full = params.full !== undefined ? params.full === "1" : src.config.template !== "1";
  if (!full && (params.storage || params.format)) die(`parameter '${params.storage ? "storage" : "format"}' not allowed for linked clones\n`);
  if (params.storage && !c.storages[params.storage]) die(`storage '${params.storage}' does not exist\n`);
  if (target !== node) {
    const storage = params.storage;
    const local = Object.entries(src.config).filter(([k, v]) => (DRIVE_RE.test(k) || k === "efidisk0") && !/media=cdrom/.test(v)).map(([, v]) => c.storages[storage ?? volumeOf(v).split(":")[0]]);
    if (storage && !c.storages[storage].shared) die(`can't clone to non-shared storage '${storage}'\n`);
    if (local.some((s) => !s?.shared)) die(`can't clone VM to node '${target}' (VM uses local storage)\n`);
  }
  if (src.lock) die(`VM is locked (${src.lock})\n`);
  const vm: SimVm = { vmid: Number(newid), node: target, config: {}, pending: {}, pendingDelete: [], status: "stopped", agent: "ok", lock: "clone" };
  c.vms[newid] = vm;
  if (params.pool) c.pools[params.pool].members.push(`qemu/${newid}`);
  return startTask(c, node, "qmclone", vmid, user, () => {
    const conf: Record<string, string> = {};
    for (const [k, v] of Object.entries(src.config)) {
      if (k === "template" || /^unused\d+$/.test(k)) continue;
      if (DRIVE_RE.test(k) || k === "efidisk0" || k === "tpmstate0") {
        const p = parseProp(v, "file");
        if (p.media === "cdrom") {
          if (!/cloudinit/.test(p.file)) conf[k] = v;
          continue;
        }
        const srcVol = c.volumes[p.file];
        if (!srcVol) die(`volume '${p.file}' does not exist\n`);
        const vol = allocVolume(c, params.storage ?? srcVol.storage, Number(newid), srcVol.size, { format: params.format ?? srcVol.format });
        conf[k] = formatProp({ ...p, file: vol, size: formatSize(srcVol.size) }, "file");
      } else if (/^net\d+$/.test(k)) {
        const p = parseProp(v, "model");
        const model = Object.keys(p).find((x) => ["virtio", "e1000", "e1000e", "rtl8139", "vmxnet3"].includes(x))!;
        conf[k] = normalizeNet(c, formatProp(Object.fromEntries(Object.entries(p).filter(([x]) => x !== model).concat([["model", model]]))));
      } else conf[k] = v;
    }
    if (params.name) conf.name = params.name;
    if (params.description) conf.description = params.description;
    vm.config = conf;
    delete vm.lock;
  });
}

/** create_vm (Qemu.pm 1000-1400): a VM from scratch; `import-from` disks copy an image volume. */
export function create({ c, params, user }: Ctx, node: string) {
  const vmid = params.vmid;
  if (c.vms[vmid]) die(`unable to create VM ${vmid}: config file already exists\n`);
  if (params.pool) assertPool(c, params.pool);
  const vm: SimVm = { vmid: Number(vmid), node, config: {}, pending: {}, pendingDelete: [], status: "stopped", agent: "ok", lock: "create" };
  c.vms[vmid] = vm;
  return startTask(c, node, "qmcreate", vmid, user, () => {
    const { pool, start: startAfter, ...rest } = params;
    delete vm.lock;
    try {
      applyConfig(c, vm, Object.fromEntries(Object.entries(rest).filter(([k]) => !["node", "vmid", "template"].includes(k))));
    } catch (e) {
      delete c.vms[vmid];
      throw e;
    }
    if (pool) c.pools[pool].members.push(`qemu/${vmid}`);
    if (startAfter === "1") start(c, vm);
  });
}

/** resize_vm (Qemu.pm 5938-6074): a `resize` task; `+N` grows by N, bare numbers are bytes; never shrinks. */
export function resize({ c, params, user }: Ctx, node: string, vmid: string) {
  const vm = vmOn(c, node, vmid);
  checkLock(vm, params);
  return startTask(c, node, "resize", vmid, user, () => {
    const conf = vm.config;
    const disk = params.disk;
    if (!conf[disk]) die(`disk '${disk}' does not exist\n`);
    const p = parseProp(conf[disk], "file");
    const vol = c.volumes[p.file];
    if (!vol) die(`volume '${p.file}' does not exist\n`);
    const rel = params.size.startsWith("+");
    const n = parseSize(params.size.replace(/^\+/, ""));
    if (n === undefined) die(`invalid size '${params.size}'\n`);
    const size = rel ? vol.size + n! : n!;
    if (size < vol.size) die("shrinking disks is not supported\n");
    vol.size = size;
    conf[disk] = formatProp({ ...p, size: formatSize(size) }, "file");
  });
}

/**
 * move_vm_disk (Qemu.pm 4840-5200): checked before the fork (4862-4885): the disk must exist and
 * not be a cdrom, and "you can't move to the same storage with same format"; the `qmmove` task
 * copies the volume and, with delete=1, removes the old one (else it stays as unusedN).
 */
export function moveDisk({ c, params, user }: Ctx, node: string, vmid: string) {
  const vm = vmOn(c, node, vmid);
  checkLock(vm, params);
  const disk = params.disk;
  const cur = vm.config[disk];
  if (!cur) die(`disk '${disk}' does not exist\n`);
  const p = parseProp(cur!, "file");
  if (p.media === "cdrom") die("you can't move a cdrom\n");
  const old = c.volumes[p.file];
  const storage = params.storage;
  if (p.file.split(":")[0] === storage && (!params.format || !old || old.format === params.format)) die("you can't move to the same storage with same format\n");
  if (!c.storages[storage]?.content.includes("images")) paramError({ storage: `storage '${storage}' does not support vm images` });
  return startTask(c, node, "qmmove", vmid, user, () => {
    const volid = allocVolume(c, storage, vm.vmid, old?.size ?? 0, { format: params.format ?? old?.format });
    vm.config[disk] = formatProp({ ...p, file: volid }, "file");
    if (params.delete === "1") delete c.volumes[p.file];
    else detach(c, vm.config, cur!);
  });
}

/** template (Qemu.pm 6480-6560): a stopped VM becomes a template; its disks become base volumes. */
export function template({ c, params, user }: Ctx, node: string, vmid: string) {
  const vm = vmOn(c, node, vmid);
  checkLock(vm, params);
  // Qemu.pm 6567
  if (vm.status === "running") die("you can't convert a VM to template if VM is running\n");
  return startTask(c, node, "qmtemplate", vmid, user, () => {
    vm.config.template = "1";
  });
}

/**
 * destroy_vm (Qemu.pm 2775-2895): protection and a running VM are refused before the fork
 * (2829, 2842); a lock fails the task (QemuServer.pm 1847); purge removes pool membership.
 */
export function destroy({ c, params, user }: Ctx, node: string, vmid: string) {
  const vm = vmOn(c, node, vmid);
  if (vm.config.protection === "1") die(`can't remove VM ${vmid} - protection mode enabled\n`);
  if (vm.status === "running") die(`VM ${vmid} is running - destroy failed\n`);
  return startTask(c, node, "qmdestroy", vmid, user, () => {
    if (vm.lock && params.skiplock !== "1") die(`VM is locked (${vm.lock})\n`);
    for (const [k, v] of Object.entries(vm.config)) if (DRIVE_RE.test(k) || /^(efidisk|tpmstate)\d+$/.test(k) || /^unused\d+$/.test(k)) delete c.volumes[volumeOf(v)];
    if (params["destroy-unreferenced-disks"] !== "0") for (const [id, vol] of Object.entries(c.volumes)) if (vol.vmid === Number(vmid) && vol.content === "images") delete c.volumes[id];
    delete c.vms[vmid];
    for (const p of Object.values(c.pools)) p.members = p.members.filter((m) => m !== `qemu/${vmid}`);
  });
}

/**
 * migrate_vm (QemuMigrate.pm 270-300 at e6352be): mapped PCI devices refuse a live migration
 * unless the mapping is live-migration-capable; the target must have the mapping. Checks run
 * inside the task, which then ends "migration aborted" (pve-guest-common AbstractMigrate.pm 241).
 */
export function migrate({ c, params, user }: Ctx, node: string, vmid: string) {
  const vm = vmOn(c, node, vmid);
  checkLock(vm, params);
  const target = params.target;
  if (!c.nodes.includes(target)) die(`no such cluster node '${target}'\n`);
  if (target === node) die(`target is local node.\n`);
  if (vm.status === "running" && params.online !== "1") die("can't migrate running VM without --online\n");
  vm.lock = "migrate";
  return startTask(c, node, "qmigrate", vmid, user, (log) => {
    const mapped = Object.entries(effective(vm)).filter(([k, v]) => /^hostpci\d+$/.test(k) && parseProp(v, "host").mapping);
    const local = Object.entries(effective(vm)).filter(([k, v]) => /^hostpci\d+$/.test(k) && !parseProp(v, "host").mapping);
    try {
      if (local.length && (vm.status === "running" || params.force !== "1")) die(`can't migrate VM which uses local devices: ${local.map(([k]) => k).join(", ")}\n`);
      const missing = mapped.filter(([, v]) => !(c.mappings[parseProp(v, "host").mapping]?.map ?? []).some((e) => parseProp(e, "").node === target));
      if (missing.length) die(`can't migrate to '${target}': missing mapped devices ${missing.map(([k]) => k).join(", ")}\n`);
      if (vm.status === "running" && mapped.length) die(`can't live migrate running VM which uses following mapped devices: ${mapped.map(([k, v]) => `${k}:${parseProp(v, "host").mapping}`).join(", ")}\n`);
    } catch (e: any) {
      delete vm.lock;
      log(`ERROR: ${e.message.trim()}`);
      die("migration aborted\n");
    }
    vm.node = target;
    delete vm.lock;
  });
}

/** The cloud-init drive is regenerated (Qemu.pm cloudinit_update): a no-op here beyond the lock check. */
export function cloudinitUpdate({ c, params }: Ctx, node: string, vmid: string) {
  checkLock(vmOn(c, node, vmid), params);
  return null;
}

/** The guest's interfaces: the static addresses of ipconfigN, else a DHCP lease per NIC. */
function guestIfaces(c: SimCluster, vm: SimVm) {
  if (vm.guest) return vm.guest;
  const conf = effective(vm);
  vm.guest = Object.keys(conf)
    .filter((k) => /^net\d+$/.test(k))
    .sort()
    .map((k, i) => {
      const mac = parseProp(conf[k], "model");
      const macAddr = Object.entries(mac).find(([x]) => ["virtio", "e1000", "e1000e", "rtl8139", "vmxnet3"].includes(x))?.[1] ?? "";
      const ip = parseProp(conf[`ipconfig${k.slice(3)}`] ?? "ip=dhcp", "").ip;
      const addr = !ip || ip === "dhcp" ? c.dhcp(vm, i) : ip.split("/")[0];
      return { name: `ens${18 + i}`, mac: macAddr.toLowerCase(), ipv4: [addr] };
    });
  return vm.guest;
}

/**
 * agent commands (qemu-server src/PVE/QemuServer/Agent.pm 109-113, QMPClient.pm 175): "No QEMU
 * guest agent configured", "VM N is not running", "QEMU guest agent is not running" (the agent
 * starts `agentBootMs` after the VM), and a timeout.
 */
function agentReady(c: SimCluster, vm: SimVm) {
  const conf = effective(vm);
  if (conf.agent === undefined) die("No QEMU guest agent configured\n");
  if (vm.status !== "running") die(`VM ${vm.vmid} is not running\n`);
  if (vm.agent === "not-running" || Date.now() - (vm.startedAt ?? 0) < c.timing.agentBootMs) die("QEMU guest agent is not running\n");
  if (vm.agent === "timeout") die(`VM ${vm.vmid} qga command 'guest-network-get-interfaces' failed - got timeout\n`);
}

export function agentPing({ c }: Ctx, node: string, vmid: string) {
  const vm = vmOn(c, node, vmid);
  agentReady(c, vm);
  return { result: {} };
}

export function networkInterfaces({ c }: Ctx, node: string, vmid: string) {
  const vm = vmOn(c, node, vmid);
  agentReady(c, vm);
  const lo = { name: "lo", "hardware-address": "00:00:00:00:00:00", "ip-addresses": [{ "ip-address": "127.0.0.1", "ip-address-type": "ipv4", prefix: 8 }, { "ip-address": "::1", "ip-address-type": "ipv6", prefix: 128 }] };
  return {
    result: [
      lo,
      ...guestIfaces(c, vm).map((g) => ({
        name: g.name,
        "hardware-address": g.mac,
        "ip-addresses": [...g.ipv4.map((a) => ({ "ip-address": a, "ip-address-type": "ipv4", prefix: 24 })), { "ip-address": `fe80::be24:11ff:fe00:${g.mac.slice(-5).replace(":", "")}`, "ip-address-type": "ipv6", prefix: 64 }],
        statistics: { "rx-bytes": 1000, "rx-packets": 10, "rx-errs": 0, "rx-dropped": 0, "tx-bytes": 1000, "tx-packets": 10, "tx-errs": 0, "tx-dropped": 0 },
      })),
    ],
  };
}

export { PveError };
