/**
 * The simulated Proxmox VE cluster: plain data a test can read and bend (drift, faults). VM
 * configs are kept as PVE keeps them, option -> string as in /etc/pve/qemu-server/<vmid>.conf,
 * so GET config answers what the real API answers. Sources: proxmox/qemu-server at e6352be,
 * proxmox/pve-guest-common at 4a8f6cb, proxmox/pve-common at f665029, proxmox/pve-access-control
 * at 5ccd07d (cited where used).
 */

/** An error the API answers with: PVE's status code and message (the die text). */
export class PveError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly errors?: Record<string, string>,
  ) {
    super(message);
  }
}
/** A plain `die` in an API handler: HTTP 500 with the message (pve-manager PVE/HTTPServer.pm 224-229). */
export const die = (message: string): never => {
  throw new PveError(500, message);
};
/** raise_param_exc: 400 "Parameter verification failed." with per-parameter errors (pve-common Exception.pm 78-96). */
export const paramError = (errors: Record<string, string>): never => {
  throw new PveError(400, "Parameter verification failed.", errors);
};

export interface Volume {
  storage: string;
  name: string;
  /** bytes */
  size: number;
  format: string;
  vmid?: number;
  content: string;
}

export interface GuestIface {
  name: string;
  mac: string;
  ipv4: string[];
}

/** What the guest agent answers, as a test sets it. */
export type AgentMode = "ok" | "timeout" | "not-running";

export interface SimVm {
  vmid: number;
  node: string;
  /** Option -> value, as in the VM's config file. */
  config: Record<string, string>;
  /** Options changed while running that wait for the next cold start (qemu-server vmconfig_apply_pending). */
  pending: Record<string, string>;
  pendingDelete: string[];
  status: "running" | "stopped";
  lock?: string;
  /** When the VM last started (ms); the agent answers `agentBootMs` later. */
  startedAt?: number;
  agent: AgentMode;
  /** Interfaces the agent reports; computed from the config when unset. */
  guest?: GuestIface[];
  /** A running guest that ignores ACPI shutdown (the shutdown task times out). */
  ignoresShutdown?: boolean;
}

export interface SimTask {
  upid: string;
  node: string;
  type: string;
  id: string;
  user: string;
  starttime: number;
  endtime?: number;
  status: "running" | "stopped";
  exitstatus?: string;
  log: string[];
}

export interface PciDevice {
  id: string;
  subsystemId: string;
  iommuGroup: number;
}

export interface SimCluster {
  nodes: string[];
  /** `nodes`: storage.cfg's node restriction (absent: every node). */
  storages: Record<string, { type: string; content: string[]; shared: boolean; total: number; nodes?: string[] }>;
  volumes: Record<string, Volume>;
  pools: Record<string, { comment?: string; members: string[] }>;
  vms: Record<string, SimVm>;
  mappings: Record<string, { description?: string; map: string[]; mdev?: boolean }>;
  /** Host PCI devices per node, by path. */
  pci: Record<string, Record<string, PciDevice>>;
  tasks: SimTask[];
  /** The API token the clients must present, and the privileges its role grants. */
  token: { id: string; secret: string; privileges: Set<string> };
  /** Files that download-url can fetch: URL -> size in bytes. */
  urls: Record<string, number>;
  /** How long a task stays `running` (ms) and when the agent answers after a start. */
  timing: { taskMs: number; agentBootMs: number; shutdownTimeoutMs: number };
  /** DHCP addresses handed out, and the hook that chooses them (the sandbox maps them to its SSH targets). */
  dhcp: (vm: SimVm, iface: number) => string;
  version: { version: string; release: string; repoid: string };
  nextMac: number;
  requests: number;
  /** Called on every power change of a VM (the sandbox logs them and ties its service stand-ins to them). */
  onPower?: (vm: SimVm, status: "running" | "stopped") => void;
  /** While set, tasks stay `running` until it resolves (a test's barrier instead of a race with taskMs). */
  taskGate?: Promise<void>;
}

export const ALL_PRIVILEGES = [
  "VM.Allocate", "VM.Clone", "VM.Audit", "VM.Migrate", "VM.PowerMgmt", "VM.Console",
  "VM.Config.Disk", "VM.Config.CDROM", "VM.Config.CPU", "VM.Config.Memory", "VM.Config.Network", "VM.Config.HWType",
  "VM.Config.Options", "VM.Config.Cloudinit", "VM.GuestAgent.Audit", "VM.GuestAgent.Unrestricted",
  "Datastore.Allocate", "Datastore.AllocateSpace", "Datastore.AllocateTemplate", "Datastore.Audit",
  "Pool.Allocate", "Pool.Audit", "Mapping.Use", "Mapping.Modify", "Mapping.Audit", "Sys.Audit", "Sys.Modify", "Sys.AccessNetwork", "SDN.Use",
];

/** A property string `a,b=c` as PVE stores it -> { [defaultKey]: a, b: c }. */
export function parseProp(s: string, defaultKey: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of s.split(",")) {
    if (!part) continue;
    const i = part.indexOf("=");
    if (i < 0) out[defaultKey] = part;
    else out[part.slice(0, i)] = part.slice(i + 1);
  }
  return out;
}
export const formatProp = (p: Record<string, string>, defaultKey?: string): string =>
  [...(defaultKey && p[defaultKey] !== undefined ? [p[defaultKey]] : []), ...Object.entries(p).filter(([k]) => k !== defaultKey).map(([k, v]) => `${k}=${v}`)].join(",");

/** Disk sizes: PVE::JSONSchema::parse_size (pve-common JSONSchema.pm 1022-1040): K/M/G/T powers of 1024, bare = bytes. */
export function parseSize(v: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)([KMGT](?:iB)?)?$/.exec(v);
  if (!m) return undefined;
  const mult = { K: 1, M: 2, G: 3, T: 4 }[(m[2] ?? "")[0] as "K"] ?? 0;
  return Math.floor(Number(m[1]) * 1024 ** mult);
}
/** PVE::JSONSchema::format_size (JSONSchema.pm 1042-1062). */
export function formatSize(bytes: number): string {
  const units = ["", "K", "M", "G", "T"];
  let n = Math.floor(bytes);
  let u = 0;
  while (u < 4 && n % 1024 === 0 && n > 0) {
    n /= 1024;
    u++;
  }
  return `${n}${units[u]}`;
}

export const DISK_RE = /^(ide|sata|scsi|virtio|efidisk|tpmstate)\d+$/;
export const isDiskKey = (k: string) => DISK_RE.test(k) || /^unused\d+$/.test(k);

/** PVE's MAC prefix for generated addresses (qemu-server PVE::Tools::random_ether_addr with the BC:24:11 OUI). */
export function newMac(c: SimCluster): string {
  const n = c.nextMac++;
  return `BC:24:11:${((n >> 16) & 255).toString(16).padStart(2, "0")}:${((n >> 8) & 255).toString(16).padStart(2, "0")}:${(n & 255).toString(16).padStart(2, "0")}`.toUpperCase();
}

/** Allocates a volume `vm-<vmid>-disk-<k>` (or base-) on a storage (pve-storage vdisk_alloc naming). */
export function allocVolume(c: SimCluster, storage: string, vmid: number, size: number, opts: { base?: boolean; name?: string; format?: string } = {}): string {
  if (!c.storages[storage]) die(`storage '${storage}' does not exist\n`);
  if (!c.storages[storage].content.includes("images")) die(`storage '${storage}' does not support vm images\n`);
  let name = opts.name;
  for (let k = 0; !name; k++) {
    const cand = `${opts.base ? "base" : "vm"}-${vmid}-disk-${k}`;
    if (!c.volumes[`${storage}:${cand}`] && !c.volumes[`${storage}:${cand.replace(/^base/, "vm")}`]) name = cand;
  }
  const volid = `${storage}:${name}`;
  c.volumes[volid] = { storage, name, size, format: opts.format ?? "raw", vmid, content: "images" };
  return volid;
}

export interface SeedOptions {
  nodes: string[];
  storage: string;
  imageStorage?: string;
  template?: { vmid: number; node: string; diskGiB?: number };
  pools?: string[];
  privileges?: string[];
  token?: { id: string; secret: string };
  dhcp?: (vm: SimVm, iface: number) => string;
  timing?: Partial<SimCluster["timing"]>;
}

/**
 * A cluster as an operator has it before the first apply: nodes, a thin LVM and a directory
 * storage, an RTX 3090 per node, and (for template mode "existing") the NixOS template as
 * nixos/ builds it: q35, OVMF with an EFI disk, the OS disk on virtio0 booted first
 * (nixpkgs nixos/modules/virtualisation/proxmox-image.nix maps the image to virtio0), serial
 * console, guest agent on.
 */
export function seedCluster(o: SeedOptions): SimCluster {
  let octet = 100;
  const c: SimCluster = {
    nodes: o.nodes,
    storages: {
      [o.storage]: { type: "lvmthin", content: ["images", "rootdir"], shared: false, total: 2 * 1024 ** 4 },
      [o.imageStorage ?? "local"]: { type: "dir", content: ["iso", "vztmpl", "import", "snippets", "backup"], shared: false, total: 100 * 1024 ** 3 },
    },
    volumes: {},
    pools: Object.fromEntries((o.pools ?? []).map((p) => [p, { members: [] }])),
    vms: {},
    mappings: {},
    pci: Object.fromEntries(o.nodes.map((n) => [n, {
      "0000:01:00.0": { id: "10de:2204", subsystemId: "10de:147d", iommuGroup: 14 },
      "0000:01:00.1": { id: "10de:1aef", subsystemId: "10de:147d", iommuGroup: 14 },
    }])),
    tasks: [],
    token: { ...(o.token ?? { id: "terraform@pve!fleet", secret: "00000000-0000-4000-8000-0000000000aa" }), privileges: new Set(o.privileges ?? ALL_PRIVILEGES) },
    urls: {},
    timing: { taskMs: 200, agentBootMs: 300, shutdownTimeoutMs: 3000, ...o.timing },
    dhcp: o.dhcp ?? (() => `10.0.0.${octet++}`),
    version: { version: "9.1.3", release: "9.1", repoid: "0123abcd" },
    nextMac: 0x100,
    requests: 0,
  };
  if (o.template) {
    const { vmid, node } = o.template;
    const disk = allocVolume(c, o.storage, vmid, (o.template.diskGiB ?? 4) * 1024 ** 3, { base: true });
    const efi = allocVolume(c, o.storage, vmid, 4 * 1024 ** 2, { base: true });
    c.vms[String(vmid)] = {
      vmid,
      node,
      status: "stopped",
      agent: "ok",
      pending: {},
      pendingDelete: [],
      config: {
        name: "nixos-template",
        template: "1",
        machine: "q35",
        bios: "ovmf",
        efidisk0: `${efi},efitype=4m,pre-enrolled-keys=0,size=4M`,
        virtio0: `${disk},discard=on,iothread=1,size=${formatSize(c.volumes[disk].size)}`,
        boot: "order=virtio0",
        scsihw: "virtio-scsi-single",
        net0: `virtio=${newMac(c)},bridge=vmbr0,firewall=0`,
        serial0: "socket",
        vga: "serial0",
        agent: "1",
        ostype: "l26",
        cores: "4",
        memory: "8192",
      },
    };
  }
  return c;
}
