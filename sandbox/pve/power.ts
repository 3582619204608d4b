/**
 * Power and the guest agent: start (pending values applied, mapped PCI devices checked), stop,
 * shutdown, reboot, status/current, agent ping and network-get-interfaces. Sources as in ./vm.ts.
 */
import { detach } from "./config";
import { die, parseProp, SimCluster, SimVm } from "./state";
import { startTask } from "./tasks";
import { Ctx, DRIVE_RE, effective, parseNet, vmOn, volumeOf } from "./vm";

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
  c.onPower?.(vm, "running");
}

function stop(c: SimCluster, vm: SimVm) {
  vm.status = "stopped";
  vm.startedAt = undefined;
  c.onPower?.(vm, "stopped");
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
      return startTask(c, node, "qmstop", vmid, user, () => stop(c, vm));
    case "shutdown":
      // QemuServer.pm 6261-6295: ACPI shutdown, "VM quit/powerdown failed - got timeout" unless forceStop.
      return startTask(c, node, "qmshutdown", vmid, user, async () => {
        if (vm.status !== "running") return;
        if (vm.ignoresShutdown || vm.agent !== "ok") {
          await new Promise((r) => setTimeout(r, c.timing.shutdownTimeoutMs));
          if (params.forceStop !== "1") die("VM quit/powerdown failed - got timeout\n");
        }
        stop(c, vm);
      });
    case "reboot":
      // QemuServer.pm 4013: "VM $vmid not running" before the fork.
      if (vm.status !== "running") die(`VM ${vmid} not running\n`);
      return startTask(c, node, "qmreboot", vmid, user, () => {
        stop(c, vm);
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
function guestIfaces(c: SimCluster, vm: SimVm) {
  if (vm.guest) return vm.guest;
  const conf = effective(vm);
  vm.guest = Object.keys(conf)
    .filter((k) => /^net\d+$/.test(k))
    .sort()
    .map((k, i) => {
      const macAddr = parseNet(conf[k]).mac ?? "";
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

