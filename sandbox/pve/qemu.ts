/**
 * /nodes/{node}/qemu/...: the VM lifecycle (create, clone, template, migrate, destroy, adopting an
 * existing VM); config in ./config.ts, power and agent in ./power.ts, shared basics in ./vm.ts.
 * Each rule cites proxmox/qemu-server at e6352be ("Qemu.pm" = src/PVE/API2/Qemu.pm,
 * "QemuServer.pm" = src/PVE/QemuServer.pm) or proxmox/pve-guest-common at 4a8f6cb
 * ("AbstractConfig.pm" = src/PVE/AbstractConfig.pm), with PVE's message texts.
 */
import { applyConfig, normalizeNet } from "./config";
import { start } from "./power";
import { allocVolume, die, formatProp, formatSize, paramError, parseProp, PveError, SimCluster, SimVm } from "./state";
import { startTask } from "./tasks";
import { checkLock, Ctx, DRIVE_RE, effective, vmOn, volumeOf } from "./vm";

export type { Ctx } from "./vm";

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
      } else if (/^net\d+$/.test(k)) conf[k] = normalizeNet(c, v, { freshMac: true });
      else conf[k] = v;
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
  // Qemu.pm 1295 checks the pool first; 1372-1375 with AbstractConfig.pm 261 and pve-cluster
  // Cluster.pm 796 check_vmid_unused
  if (params.pool) assertPool(c, params.pool);
  if (c.vms[vmid]) die(`unable to create VM ${vmid} - VM ${vmid} already exists on node '${c.vms[vmid].node}'\n`);
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
  if (target === node) paramError({ target: "target is local node." }); // Qemu.pm 5567
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
      // pve-guest-common AbstractMigrate.pm 18-28 and 232-242 (4a8f6cb)
      log(`${new Date().toISOString().replace("T", " ").slice(0, 19)} ERROR: migration aborted (duration 00:00:00): ${e.message.trim()}`);
      die("migration aborted\n");
    }
    vm.node = target;
    delete vm.lock;
  });
}

/** The cloud-init drive is regenerated (Qemu.pm cloudinit_update): a no-op here beyond the lock check. */
