/**
 * The simulated Proxmox VE cluster behind the provider double: a JSON file (PVE_DOUBLE_CLUSTER)
 * that the test seeds (nodes, storages, pools, the NixOS template, VMs to adopt, host PCI
 * devices, what the API token may do) and the double changes as Terraform applies.
 * Every behaviour rule cites the provider (bpg/terraform-provider-proxmox at tag v0.111.0) or
 * Proxmox VE source it copies.
 */
import { closeSync, openSync, readFileSync, renameSync, unlinkSync, writeFileSync } from "node:fs";

export interface PveDisk {
  storage: string;
  /** GiB */
  size: number;
}
export interface PveNic {
  bridge: string;
  model: string;
  mac: string;
  vlan?: number | null;
  firewall?: boolean;
}
export interface PveVm {
  node: string;
  name: string;
  template?: boolean;
  pool?: string;
  disks: Record<string, PveDisk>;
  /** qemu-server `boot: order=...`; empty = PVE's legacy default order */
  boot: string[];
  nics: PveNic[];
  hostpci: { device: string; mapping?: string; id?: string }[];
  running: boolean;
  /** What the guest agent would report once the VM runs (interface name, ipv4s). */
  guest?: { name: string; mac: string; ipv4: string[] }[];
  tags?: string[];
  cores?: number;
  memory?: number;
  protection?: boolean;
}
export interface PciDevice {
  id: string;
  subsystemId: string;
  iommuGroup: number;
}
export interface Cluster {
  nodes: string[];
  storages: Record<string, { content: string[] }>;
  pools: Record<string, { comment?: string }>;
  vms: Record<string, PveVm>;
  mappings: Record<string, { map: { node: string; path: string; id: string; iommuGroup?: number | null; subsystemId?: string | null }[] }>;
  /** Host PCI devices per node, by path (e.g. "0000:01:00.0"). */
  pci: Record<string, Record<string, PciDevice>>;
  /** What the credentials in use may do. */
  auth: { token: boolean; pveMajor: number; privileges: string[] };
  /** Counter for guest addresses handed out by the simulated DHCP server. */
  nextHostOctet: number;
}

export function readCluster(file: string): Cluster {
  return JSON.parse(readFileSync(file, "utf8"));
}

/**
 * Runs `fn` holding the cluster's lock file: several provider processes (one per stack applied
 * side by side) change the same cluster, and each change is a read-modify-write.
 */
export function withClusterLock<T>(file: string, fn: () => T): T {
  const lock = `${file}.lock`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      closeSync(openSync(lock, "wx"));
      break;
    } catch (e: any) {
      if (e.code !== "EEXIST" || Date.now() > deadline) throw e;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
    }
  }
  try {
    return fn();
  } finally {
    unlinkSync(lock);
  }
}

/** Written whole and renamed into place: a crash never leaves half a cluster. */
export function writeCluster(file: string, c: Cluster): void {
  writeFileSync(`${file}.tmp`, JSON.stringify(c, null, 2));
  renameSync(`${file}.tmp`, file);
}

/** A minimal cluster for the example inventories: one NixOS template as nixos/ builds it. */
export function seedCluster(opts: { nodes: string[]; templateVmid: number; templateNode: string; storage: string; imageStorage?: string; pools?: string[]; pveMajor?: number }): Cluster {
  const pci: Cluster["pci"] = {};
  for (const n of opts.nodes)
    pci[n] = {
      // An RTX 3090 and its audio function, as `lspci -nn` / the PVE API report them.
      "0000:01:00.0": { id: "10de:2204", subsystemId: "10de:147d", iommuGroup: 14 },
      "0000:01:00.1": { id: "10de:1aef", subsystemId: "10de:147d", iommuGroup: 14 },
    };
  return {
    nodes: opts.nodes,
    storages: { [opts.storage]: { content: ["images", "rootdir"] }, [opts.imageStorage ?? "local"]: { content: ["iso", "vztmpl", "import", "snippets"] } },
    pools: Object.fromEntries((opts.pools ?? []).map((p) => [p, {}])),
    vms: {
      [String(opts.templateVmid)]: {
        node: opts.templateNode,
        name: "nixos-template",
        template: true,
        // nixpkgs nixos/modules/virtualisation/proxmox-image.nix: the VMA maps the image to
        // virtio0 (`#qmdump#map:virtio0:drive-virtio0`), and our template module sets
        // proxmox.qemuConf.boot = "order=virtio0" (nixos/modules/template.nix).
        disks: { virtio0: { storage: opts.storage, size: 4 } },
        boot: ["virtio0"],
        nics: [{ bridge: "vmbr0", model: "virtio", mac: "BC:24:11:00:00:01", firewall: false }],
        hostpci: [],
        running: false,
      },
    },
    mappings: {},
    pci,
    auth: { token: true, pveMajor: opts.pveMajor ?? 9, privileges: ["VM.Allocate", "VM.Clone", "VM.Config.Disk", "VM.Config.CPU", "VM.Config.Memory", "VM.Config.Network", "VM.Config.Cloudinit", "VM.Config.Options", "VM.Config.HWType", "VM.PowerMgmt", "VM.Audit", "VM.GuestAgent.Audit", "VM.Monitor", "Datastore.AllocateSpace", "Datastore.Audit", "Pool.Allocate", "Pool.Audit", "Mapping.Use", "Mapping.Modify", "Mapping.Audit", "Sys.Audit", "SDN.Use"] },
    nextHostOctet: 100,
  };
}
