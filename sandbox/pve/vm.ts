/**
 * What every VM endpoint needs: the request context, the VM lookup and lock check, the config as
 * the API shows it (pending values applied) and the drive helpers. Sources: proxmox/qemu-server
 * at e6352be ("Qemu.pm" = src/PVE/API2/Qemu.pm, "QemuServer.pm" = src/PVE/QemuServer.pm),
 * proxmox/pve-guest-common at 4a8f6cb ("AbstractConfig.pm").
 */
import { MethodInfo } from "./schema";
import { die, parseProp, SimCluster, SimVm } from "./state";

export interface Ctx {
  c: SimCluster;
  params: Record<string, string>;
  user: string;
  info: MethodInfo;
}

export function vmOn(c: SimCluster, node: string, vmid: string | number): SimVm {
  const vm = c.vms[String(vmid)];
  if (!vm || vm.node !== node) die(`Configuration file 'nodes/${node}/qemu-server/${vmid}.conf' does not exist\n`);
  return vm!;
}

/** check_lock (AbstractConfig.pm 339): "VM is locked (<lock>)". */
export function checkLock(vm: SimVm, params: Record<string, string>) {
  if (vm.lock && params.skiplock !== "1") die(`VM is locked (${vm.lock})\n`);
}

/** The config with pending values applied (GET config with current=0, Qemu.pm get_vm_config). */
export function effective(vm: SimVm): Record<string, string> {
  const conf = { ...vm.config, ...vm.pending };
  for (const k of vm.pendingDelete) delete conf[k];
  return conf;
}

/** JSON types of the schema's `returns` (booleans and integers as numbers, PVE's JSON output). */
export const DRIVE_RE = /^(ide|sata|scsi|virtio)\d+$/;


export function volumeOf(value: string): string {
  return parseProp(value, "file").file;
}

const NIC_MODELS = ["virtio", "e1000", "e1000e", "rtl8139", "vmxnet3"];

/** A NIC's property string (`<model>=<MAC>,...` as PVE prints it, or `model=`/`macaddr=`): its model, MAC and other keys. */
export function parseNet(value: string): { model?: string; mac?: string; rest: Record<string, string> } {
  const rest = parseProp(value, "model");
  let model = rest.model;
  let mac = rest.macaddr;
  for (const m of NIC_MODELS)
    if (rest[m] !== undefined) {
      model = m;
      mac = rest[m];
      delete rest[m];
    }
  delete rest.model;
  delete rest.macaddr;
  return { model, mac, rest };
}
