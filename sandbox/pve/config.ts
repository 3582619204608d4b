/**
 * VM configuration: GET/PUT/POST config, pending values, drives (allocation, cloud-init drive,
 * detaching to unusedN), NICs, resize and disk moves. Sources as in ./vm.ts.
 */
import { createHash } from "node:crypto";
import { MethodInfo } from "./schema";
import { allocVolume, die, formatProp, formatSize, newMac, paramError, parseProp, parseSize, SimCluster, SimVm } from "./state";
import { startTask } from "./tasks";
import { checkLock, Ctx, DRIVE_RE, effective, parseNet, vmOn, volumeOf } from "./vm";

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

/**
 * A NIC as qemu-server prints it: `<model>=<MAC>,bridge=...`, a MAC generated when none is given
 * (QemuServer.pm parse_net/print_net), or always (`freshMac`: a clone's NICs get new addresses).
 */
export function normalizeNet(c: SimCluster, value: string, opts: { freshMac?: boolean } = {}): string {
  const { model, mac, rest } = parseNet(value);
  return [`${model}=${(opts.freshMac || !mac ? newMac(c) : mac).toUpperCase()}`, ...Object.entries(rest).map(([k, v]) => `${k}=${v}`)].join(",");
}

/** Moves a removed drive's volume to the lowest free unusedN (QemuServer.pm 4969-4983, vmconfig_delete_or_detach_drive). */
export function detach(c: SimCluster, conf: Record<string, string>, value: string) {
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
  // Qemu.pm 2136 (qemu-server e6352be), the unbalanced quote as in the original
  if (overlap) paramError({ delete: `you can't use '-${overlap}' and -delete ${overlap}' at the same time` });
  const running = vm.status === "running";
  const conf = vm.config;
  for (const k of deletes) {
    const current = vm.pending[k] ?? conf[k];
    if (current === undefined) continue; // Qemu.pm 2298: "cannot delete '$opt' - not set in current configuration!" is a warning
    // Qemu.pm 2310-2341 with AbstractConfig.pm check_protection 393: every drive, a cdrom too
    if (/^(ide|sata|scsi|virtio|efidisk|tpmstate)\d+$/.test(k) && conf.protection === "1") die(`can't remove drive '${k}' - protection mode enabled\n`);
    if (/^unused\d+$/.test(k) && conf.protection === "1") die(`can't remove unused disk '${volumeOf(current)}' - protection mode enabled\n`);
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
  // Pending values equal to the current ones, and pending deletes of unset options, are dropped
  // (vmconfig_hotplug_pending calls cleanup_pending first: pve-guest-common
  // src/PVE/AbstractConfig.pm cleanup_pending at 4a8f6cb, "remove pending changes when nothing
  // changed"): the provider re-sends cpu, sockets and numa with every cores change.
  for (const [k, v] of Object.entries(vm.pending)) if (conf[k] !== undefined && conf[k] === v) delete vm.pending[k];
  vm.pendingDelete = vm.pendingDelete.filter((k) => conf[k] !== undefined);
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
    // a size the schema's pattern let through but the parser does not take: Qemu.pm 6032
    if (n === undefined) die("internal error");
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
export function cloudinitUpdate({ c, params }: Ctx, node: string, vmid: string) {
  checkLock(vmOn(c, node, vmid), params);
  return null;
}

/** The guest's interfaces: the static addresses of ipconfigN, else a DHCP lease per NIC. */
