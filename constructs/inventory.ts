/**
 * The fleet inventory: one JSON file, read here (validated) and by nixos/flake.nix
 * (builtins.fromJSON). Validation collects every problem before reporting, so a user fixes
 * a broken file in one pass.
 */
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { ROLES, ROLE_NAMES, PLATFORM_ROLES, RoleName, isRole } from "./roles";

/** The project root (this file lives one level down, in constructs/ or in the .build/ bundle). */
export const PROJECT_ROOT = resolve(__dirname, "..");

/** Default inventory path, relative to the project root; FLEET_FILE overrides it. */
export const DEFAULT_FLEET_FILE = "fleet.json";

export interface ClusterSpec {
  /** Proxmox node names that hosts may be placed on. */
  readonly nodes: string[];
  /** Default datastore for VM disks, EFI and cloud-init drives. */
  readonly storage: string;
  /** Datastore that holds ISO/VMA/snippet files. @default "local" */
  readonly imageStorage?: string;
  /** Default bridge for VM NICs. */
  readonly bridge: string;
  /** DNS search domain handed out by cloud-init. */
  readonly domain?: string;
  /** DNS servers for statically addressed hosts without their own. */
  readonly dns?: string[];
  /** Time zone of every host (NixOS time.timeZone). @default "UTC" */
  readonly timeZone?: string;
  /** Default locale (NixOS i18n.defaultLocale). @default "en_US.UTF-8" */
  readonly locale?: string;
}

export interface TemplateSpec {
  /** VMID of the NixOS template that every VM is cloned from. */
  readonly vmid: number;
  /** Node that holds the template. */
  readonly node: string;
  /** Template VM name. @default "nixos-template" */
  readonly name?: string;
  /** "existing": refer to a template made beforehand; "create": manage it here. @default "existing" */
  readonly mode?: "existing" | "create";
  readonly cores?: number;
  readonly memoryMiB?: number;
  readonly diskGiB?: number;
  /** Opt-in first bootstrap ("existing" mode): build the VMA with nix, upload, qmrestore, qm template. @default false */
  readonly bootstrapImage?: boolean;
  /** "create" mode: URL of a NixOS qcow2 image to import as the template's disk. */
  readonly imageUrl?: string;
  /** SHA-256 of the image at imageUrl. */
  readonly imageSha256?: string;
  /** First-boot registration to the CI/CD host's repository (branch registration/<hostname>). @default false */
  readonly registration?: boolean;
}

export interface PciMappingSpec {
  readonly name: string;
  readonly comment?: string;
  /**
   * Per node: the device's vendor:device id, PCI path, subsystem id and IOMMU group. Proxmox
   * starts a VM with a mapping only when all four match the host (pve-guest-common
   * PVE/Mapping/PCI.pm assert_valid).
   */
  readonly map: { readonly node: string; readonly id: string; readonly path: string; readonly subsystemId: string; readonly iommuGroup: number }[];
}

export interface UserSpec {
  readonly name: string;
  readonly sshKeys: string[];
  /** Member of wheel, used for deploys. @default true for the first user */
  readonly admin?: boolean;
}

export interface NetworkSpec {
  /** true: DHCP; false: static `address` + `gateway`. */
  readonly dhcp?: boolean;
  /** Static IPv4 address in CIDR form, e.g. "10.10.0.21/24". */
  readonly address?: string;
  readonly gateway?: string;
  readonly dns?: string[];
  /** 802.1Q VLAN tag. */
  readonly vlan?: number;
  /** Bridge; defaults to cluster.bridge. */
  readonly bridge?: string;
}

export interface GpuSpec {
  /** Name of a cluster PCI mapping (works with API tokens). */
  readonly mapping?: string;
  /** Raw PCI address such as "0000:01:00"; needs root@pam. Prefer `mapping`. */
  readonly rawId?: string;
  readonly pcie?: boolean;
  readonly rombar?: boolean;
  readonly xvga?: boolean;
  /** vLLM: the GPU's CUDA compute capabilities, e.g. ["8.6"] for an RTX 3090. @default ["8.6"] (nixos/lib/defaults.nix) */
  readonly cudaCapabilities?: string[];
}

export interface ServiceSettings {
  /** Port overrides by port name (see constructs/roles.ts). */
  readonly ports?: Record<string, number>;
  /** vLLM: the model to serve (also the name LiteLLM routes to). @default "Qwen/Qwen2.5-7B-Instruct" (nixos/lib/defaults.nix) */
  readonly model?: string;
  /** vLLM: directory on the host with pre-seeded weights of `model`; then no internet is needed. */
  readonly modelPath?: string;
  /** vLLM: how long the first start (download and load) may take, a systemd time span. @default "30min" */
  readonly startTimeout?: string;
  readonly [key: string]: unknown;
}

export interface HostSpec {
  readonly name: string;
  readonly roles: RoleName[];
  readonly vmid: number;
  readonly node: string;
  readonly cores: number;
  readonly memoryMiB: number;
  readonly diskGiB: number;
  readonly dataDisks?: { readonly sizeGiB: number; readonly storage?: string }[];
  readonly network: NetworkSpec;
  readonly gpu?: GpuSpec;
  readonly tags?: string[];
  readonly pool?: string;
  readonly onBoot?: boolean;
  readonly startupOrder?: number;
  /** Holds data that must survive: the VM gets prevent_destroy. */
  readonly stateful?: boolean;
  /** Explicit opt-out for stateful hosts: set false to allow destroy. */
  readonly preventDestroy?: boolean;
  /** The VM already exists on the cluster: adopt it with an import block. */
  readonly existing?: boolean;
  /** Stack override; defaults to the first role's group. */
  readonly stack?: string;
  readonly services?: Partial<Record<RoleName, ServiceSettings>>;
}

export interface DeploySpec {
  /** SSH user with sudo on the hosts; defaults to the first admin user. */
  readonly user?: string;
  /** Flake reference of nixos/ (relative paths are from the project root). @default "./nixos" */
  readonly flake?: string;
  /** Build on this host instead of locally (nixos-rebuild --build-host). */
  readonly buildHost?: string;
  readonly sshPort?: number;
  /** Deploy engine: terraform_data (default) or null_resource. */
  readonly engine?: "terraform_data" | "null_resource";
  /** The deploy steps were null_resources: move their state to terraform_data (docs/adr-0003). */
  readonly movedFromNullResource?: boolean;
  /** How long every health check must keep passing after a switch, in seconds. @default 10 */
  readonly healthStableSeconds?: number;
  /** Hosts of one (non-quorum) role updated at the same time; quorum roles always roll one by one. @default 1 */
  readonly maxUnavailable?: number;
}

export interface Inventory {
  readonly cluster: ClusterSpec;
  readonly template: TemplateSpec;
  readonly pciMappings: PciMappingSpec[];
  readonly users: UserSpec[];
  readonly deploy?: DeploySpec;
  /** Services that run outside the fleet, by role: "host:port" endpoints that satisfy dependencies. */
  readonly externalServices?: Partial<Record<RoleName, string[]>>;
  /** State backend: "local" (default), "pg" (connection string from PG_CONN_STR) or "s3". */
  readonly backend?: "local" | "pg" | "s3";
  /** Binary caches for building the fleet (e.g. a CUDA cache): added to every host's nix.conf and to the deploy's nixos-rebuild. */
  readonly nix?: { readonly substituters?: string[]; readonly trustedPublicKeys?: string[] };
  readonly hosts: HostSpec[];
}

export interface Problem {
  /** Host name, or a top-level section such as "cluster". */
  readonly where: string;
  readonly field: string;
  readonly message: string;
}

/** Raised when the inventory cannot be used; carries every problem found. */
export class InventoryError extends Error {
  constructor(
    readonly file: string,
    readonly problems: Problem[],
  ) {
    super(problems.map((p) => formatProblem(file, p)).join("\n"));
    this.name = "InventoryError";
  }
}

export function formatProblem(file: string, p: Problem): string {
  return `${file}: ${p.where}: ${p.field}: ${p.message}`;
}

/** Path of the inventory: FLEET_FILE, else fleet.json in the project root. */
export function fleetFilePath(env: NodeJS.ProcessEnv = process.env, root = PROJECT_ROOT): string {
  return resolve(root, env.FLEET_FILE || DEFAULT_FLEET_FILE);
}

/** Reads, parses and validates the inventory; throws InventoryError listing every problem. */
export function loadInventory(file: string = fleetFilePath()): Inventory {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new InventoryError(file, [
      { where: "file", field: "path", message: `cannot read it (${(e as NodeJS.ErrnoException).code ?? e}); set FLEET_FILE to an inventory JSON file` },
    ]);
  }
  return parseInventory(text, file);
}

export function parseInventory(text: string, file = "<inventory>"): Inventory {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    throw new InventoryError(file, [{ where: "file", field: "json", message: describeJsonError(text, e as Error) }]);
  }
  const problems = validateInventory(data);
  if (problems.length > 0) throw new InventoryError(file, problems);
  return data as Inventory;
}

function describeJsonError(text: string, e: Error): string {
  // V8's messages carry a position only for some errors; find it with a small scanner instead.
  const { pos, reason } = locateJsonError(text) ?? { pos: text.length, reason: e.message };
  const before = text.slice(0, pos);
  const line = before.split("\n").length;
  const column = pos - before.lastIndexOf("\n");
  return `malformed JSON at line ${line}, column ${column}: ${reason}; fix the syntax and run again`;
}

/** Position and reason of the first JSON syntax error in `text`, or undefined if it parses. */
export function locateJsonError(text: string): { pos: number; reason: string } | undefined {
  let i = 0;
  class Fail {
    constructor(readonly pos: number, readonly reason: string) {}
  }
  const ws = () => {
    while (i < text.length && " \t\n\r".includes(text[i])) i++;
  };
  const describe = (c: string | undefined) => (c === undefined ? "end of file" : `'${c}'`);
  const value = (): void => {
    ws();
    const c = text[i];
    if (c === "{") {
      i++;
      ws();
      if (text[i] === "}") return void i++;
      for (;;) {
        ws();
        if (text[i] !== '"') throw new Fail(i, `expected a property name in double quotes, found ${describe(text[i])}`);
        string();
        ws();
        if (text[i] !== ":") throw new Fail(i, `expected ':' after the property name, found ${describe(text[i])}`);
        i++;
        value();
        ws();
        if (text[i] === ",") { i++; continue; }
        if (text[i] === "}") return void i++;
        throw new Fail(i, `expected ',' or '}' in an object, found ${describe(text[i])}`);
      }
    }
    if (c === "[") {
      i++;
      ws();
      if (text[i] === "]") return void i++;
      for (;;) {
        value();
        ws();
        if (text[i] === ",") { i++; continue; }
        if (text[i] === "]") return void i++;
        throw new Fail(i, `expected ',' or ']' in a list, found ${describe(text[i])}`);
      }
    }
    if (c === '"') return string();
    const m = /^(-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?|true|false|null)/.exec(text.slice(i, i + 400));
    if (m) return void (i += m[0].length);
    throw new Fail(i, `unexpected ${describe(c)} where a value should be`);
  };
  const string = () => {
    const start = i++;
    while (i < text.length && text[i] !== '"') {
      if (text[i] === "\\") i++;
      else if (text[i] === "\n") throw new Fail(i, "line break inside a string");
      i++;
    }
    if (i >= text.length) throw new Fail(start, "string is not closed");
    i++;
  };
  try {
    value();
    ws();
    if (i < text.length) throw new Fail(i, `unexpected ${describe(text[i])} after the end of the document`);
  } catch (f) {
    if (f instanceof Fail) return { pos: f.pos, reason: f.reason };
    throw f;
  }
  return undefined;
}

// ---------------------------------------------------------------- IPv4 helpers

export function parseIpv4(s: unknown): number | undefined {
  if (typeof s !== "string") return undefined;
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m) return undefined;
  const parts = m.slice(1).map(Number);
  if (parts.some((p) => p > 255)) return undefined;
  return ((parts[0] << 24) | (parts[1] << 16) | (parts[2] << 8) | parts[3]) >>> 0;
}

export function parseCidr(s: unknown): { ip: number; prefix: number; address: string } | undefined {
  if (typeof s !== "string") return undefined;
  const [addr, len, ...rest] = s.split("/");
  if (rest.length || len === undefined || !/^\d{1,2}$/.test(len)) return undefined;
  const ip = parseIpv4(addr);
  const prefix = Number(len);
  if (ip === undefined || prefix < 1 || prefix > 32) return undefined;
  return { ip, prefix, address: addr };
}

function sameSubnet(a: number, b: number, prefix: number): boolean {
  const mask = prefix === 0 ? 0 : (~0 << (32 - prefix)) >>> 0;
  return (a & mask) >>> 0 === (b & mask) >>> 0;
}

// ---------------------------------------------------------------- validation

const HOSTNAME = /^(?=.{1,63}$)[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;
const isObj = (v: unknown): v is Record<string, any> => typeof v === "object" && v !== null && !Array.isArray(v);
const isInt = (v: unknown): v is number => typeof v === "number" && Number.isInteger(v);
const isStr = (v: unknown): v is string => typeof v === "string" && v.length > 0;

/** Effective ports of a host's roles, after the host's overrides (role -> port name -> number). */
export function hostPorts(host: Pick<HostSpec, "roles" | "services">): Record<string, Record<string, number>> {
  const out: Record<string, Record<string, number>> = {};
  for (const role of host.roles) {
    out[role] = { ...ROLES[role].ports, ...(host.services?.[role]?.ports ?? {}) };
  }
  return out;
}

/**
 * The stack a host belongs to: its own `stack`; else "platform" when it has a platform role
 * (their deploy order is kept inside one stack); else the group of its first role; "ops" for a
 * host without roles.
 */
export function stackOf(h: Pick<HostSpec, "roles" | "stack">): string {
  if (h.stack) return h.stack;
  if (h.roles.some((r) => (PLATFORM_ROLES as readonly string[]).includes(r))) return "platform";
  // A plain NixOS host (no role) goes with the operations hosts.
  return h.roles.length ? ROLES[h.roles[0]].group : "ops";
}

/** Returns every problem in the inventory; an empty list means it is usable. */
export function validateInventory(data: unknown): Problem[] {
  const problems: Problem[] = [];
  const add = (where: string, field: string, message: string) => problems.push({ where, field, message });
  if (!isObj(data)) {
    add("file", "json", "the top level must be an object with cluster, template, pciMappings, users and hosts");
    return problems;
  }

  // cluster
  const cluster = data.cluster;
  let nodes: string[] = [];
  if (!isObj(cluster)) add("cluster", "cluster", "missing; give nodes, storage and bridge");
  else {
    if (!Array.isArray(cluster.nodes) || cluster.nodes.length === 0 || !cluster.nodes.every(isStr))
      add("cluster", "nodes", "must be a non-empty list of Proxmox node names");
    else nodes = cluster.nodes;
    if (!isStr(cluster.storage)) add("cluster", "storage", 'missing; name the datastore for VM disks, e.g. "local-lvm"');
    if (!isStr(cluster.bridge)) add("cluster", "bridge", 'missing; name the bridge for VM NICs, e.g. "vmbr0"');
    if (cluster.dns !== undefined && (!Array.isArray(cluster.dns) || !cluster.dns.every((d: unknown) => parseIpv4(d) !== undefined)))
      add("cluster", "dns", "must be a list of IPv4 addresses");
    for (const k of ["apiToken", "password", "token", "api_token", "privateKey"])
      if (k in cluster) add("cluster", k, "credentials do not belong in the inventory; set PROXMOX_VE_API_TOKEN in the environment instead");
  }
  const knownNode = (n: unknown) => nodes.length === 0 || nodes.includes(n as string);

  // template
  const template = data.template;
  if (!isObj(template)) add("template", "template", "missing; give the template's vmid and node");
  else {
    if (!isInt(template.vmid) || template.vmid < 100 || template.vmid > 999999999)
      add("template", "vmid", `${JSON.stringify(template.vmid)} is not a VMID between 100 and 999999999`);
    if (!isStr(template.node) || !knownNode(template.node))
      add("template", "node", `${JSON.stringify(template.node)} is not one of cluster.nodes (${nodes.join(", ")})`);
    if (template.mode !== undefined && template.mode !== "existing" && template.mode !== "create")
      add("template", "mode", `${JSON.stringify(template.mode)} must be "existing" or "create"`);
    if (template.mode === "create" && template.bootstrapImage)
      add("template", "bootstrapImage", 'the VMA bootstrap restores the template itself; use it with mode "existing", or import a qcow2 with mode "create" and imageUrl');
    if (template.mode === "create" && !(typeof template.imageUrl === "string" && /^https?:\/\//.test(template.imageUrl)))
      add("template", "imageUrl", 'mode "create" needs the URL of a NixOS qcow2 image to import (http or https)');
    if (template.imageSha256 !== undefined && !/^[0-9a-f]{64}$/.test(String(template.imageSha256))) add("template", "imageSha256", "must be 64 lower-case hex digits");
  }

  // PCI mappings
  const mappings = new Map<string, Set<string>>();
  if (data.pciMappings !== undefined && !Array.isArray(data.pciMappings)) add("pciMappings", "pciMappings", "must be a list");
  for (const [i, m] of (Array.isArray(data.pciMappings) ? data.pciMappings : []).entries()) {
    const where = `pciMappings[${isObj(m) && isStr(m.name) ? m.name : i}]`;
    if (!isObj(m) || !isStr(m.name)) {
      add(where, "name", "each PCI mapping needs a name");
      continue;
    }
    if (mappings.has(m.name)) add(where, "name", `duplicate mapping name "${m.name}"`);
    const onNodes = new Set<string>();
    if (!Array.isArray(m.map) || m.map.length === 0) add(where, "map", "must list at least one { node, id, path }");
    for (const e of Array.isArray(m.map) ? m.map : []) {
      if (!isObj(e) || !isStr(e.node) || !isStr(e.id) || !isStr(e.path)) {
        add(where, "map", "each entry needs node, id (vendor:device) and path (PCI address)");
        continue;
      }
      if (!knownNode(e.node)) add(where, "map.node", `"${e.node}" is not one of cluster.nodes (${nodes.join(", ")})`);
      if (!/^[0-9a-f]{4}:[0-9a-f]{4}$/i.test(e.id)) add(where, "map.id", `"${e.id}" is not a vendor:device id such as "10de:2204"`);
      if (!/^([0-9a-f]{4}:)?[0-9a-f]{2}:[0-9a-f]{2}(\.[0-7])?$/i.test(e.path)) add(where, "map.path", `"${e.path}" is not a PCI address such as "0000:01:00.0"`);
      // Proxmox refuses to start a VM with an incomplete mapping (pve-guest-common
      // src/PVE/Mapping/PCI.pm assert_valid: "no 'iommugroup' for device"); the provider calls
      // such mappings incomplete (bpg docs/resources/hardware_mapping_pci.md).
      if (!isInt(e.iommuGroup) || e.iommuGroup < 0) add(where, "map.iommuGroup", `${e.iommuGroup === undefined ? "missing" : JSON.stringify(e.iommuGroup) + " is not an IOMMU group number"}; Proxmox will not start a VM with this mapping. Read it on the node: ls /sys/bus/pci/devices/${e.path.includes(":") && e.path.split(":").length === 3 ? e.path : "0000:" + e.path}/iommu_group -l (the number at the end)`);
      if (!isStr(e.subsystemId) || !/^[0-9a-f]{4}:[0-9a-f]{4}$/i.test(e.subsystemId)) add(where, "map.subsystemId", `${e.subsystemId === undefined ? "missing" : JSON.stringify(e.subsystemId) + " is not a vendor:device id"}; Proxmox will not start a VM with this mapping. Read it on the node: lspci -nnv -s ${e.path} (the "Subsystem" line), e.g. "10de:147d"`);
      onNodes.add(e.node);
    }
    mappings.set(m.name, onNodes);
  }

  // users
  if (!Array.isArray(data.users) || data.users.length === 0) add("users", "users", "list at least one user with public SSH keys (used for cloud-init and deploys)");
  for (const [i, u] of (Array.isArray(data.users) ? data.users : []).entries()) {
    const where = `users[${isObj(u) && isStr(u.name) ? u.name : i}]`;
    if (!isObj(u) || !isStr(u.name) || !/^[a-z_][a-z0-9_-]{0,31}$/.test(u.name)) add(where, "name", "must be a Unix user name");
    else if (!Array.isArray(u.sshKeys) || u.sshKeys.length === 0) add(where, "sshKeys", "list at least one public key");
    else
      for (const k of u.sshKeys)
        if (typeof k !== "string" || /PRIVATE KEY/.test(k) || !/^(ssh-(ed25519|rsa)|ecdsa-sha2-nistp\d+|sk-(ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com) /.test(k))
          add(where, "sshKeys", "each entry must be an OpenSSH public key line (ssh-ed25519 AAAA...); never a private key");
  }

  // deploy
  if (data.deploy !== undefined) {
    const d = data.deploy;
    if (!isObj(d)) add("deploy", "deploy", "must be an object: { user, flake, buildHost, sshPort, engine }");
    else {
      const admins = (Array.isArray(data.users) ? data.users : []).filter((u: any, i: number) => isObj(u) && (u.admin === true || (u.admin === undefined && i === 0))).map((u: any) => u.name);
      // The deploy logs in as this user and runs the activation with sudo: it must be in wheel
      // (nixos/modules/users.nix makes admin users members), which sudo and Nix trust
      // (nixos/modules/base.nix: wheelNeedsPassword = false, trusted-users @wheel). Root cannot
      // log in at all (PermitRootLogin "no").
      if (d.user !== undefined && !(isStr(d.user) && admins.includes(d.user)))
        add("deploy", "user", `${JSON.stringify(d.user)} is not an admin user of the inventory (${admins.join(", ") || "none"}); the deploy needs sudo, which only admin users have${d.user === "root" ? "; root logins are refused on fleet hosts" : ""}`);
      if (d.sshPort !== undefined && !(isInt(d.sshPort) && d.sshPort >= 1 && d.sshPort <= 65535)) add("deploy", "sshPort", `${JSON.stringify(d.sshPort)} is not a port number (1-65535)`);
      if (d.engine !== undefined && d.engine !== "terraform_data" && d.engine !== "null_resource") add("deploy", "engine", `${JSON.stringify(d.engine)} must be "terraform_data" or "null_resource"`);
      if (d.buildHost !== undefined && !(isStr(d.buildHost) && /^(?:[^@\s]+@)?[^:\s@]+(?::\d+)?$/.test(d.buildHost))) add("deploy", "buildHost", `${JSON.stringify(d.buildHost)} must be [user@]host[:port]`);
      if (d.healthStableSeconds !== undefined && !(typeof d.healthStableSeconds === "number" && d.healthStableSeconds >= 0 && d.healthStableSeconds <= 3600))
        add("deploy", "healthStableSeconds", `${JSON.stringify(d.healthStableSeconds)} must be a number of seconds from 0 to 3600`);
      if (d.maxUnavailable !== undefined && !(isInt(d.maxUnavailable) && d.maxUnavailable >= 1 && d.maxUnavailable <= 10000))
        add("deploy", "maxUnavailable", `${JSON.stringify(d.maxUnavailable)} must be a whole number from 1`);
      if (d.flake !== undefined && !(isStr(d.flake) && d.flake.length > 0)) add("deploy", "flake", "must be a flake reference such as \"./nixos\"");
    }
  }

  if (data.backend !== undefined && !["local", "pg", "s3"].includes(data.backend)) add("backend", "backend", `${JSON.stringify(data.backend)} must be "local", "pg" or "s3"`);

  // hosts
  if (!Array.isArray(data.hosts) || data.hosts.length === 0) {
    add("hosts", "hosts", "list at least one host");
    return problems;
  }
  const names = new Map<string, number>();
  const vmids = new Map<number, string>();
  const ips = new Map<number, string>();
  if (isObj(template) && isInt(template.vmid)) vmids.set(template.vmid, "the template");
  const rolesInFleet = new Set<string>();
  for (const [i, h] of data.hosts.entries()) {
    if (!isObj(h)) {
      add(`hosts[${i}]`, "host", "must be an object");
      continue;
    }
    const where = isStr(h.name) ? `host "${h.name}"` : `hosts[${i}]`;
    if (!isStr(h.name) || !HOSTNAME.test(h.name))
      add(where, "name", `${JSON.stringify(h.name)} is not an RFC 1123 host name (lower-case letters, digits and '-', at most 63, no leading or trailing '-')`);
    if (isStr(h.name)) {
      if (names.has(h.name)) add(where, "name", `duplicate host name (also hosts[${names.get(h.name)}])`);
      else names.set(h.name, i);
    }
    if (!isInt(h.vmid) || h.vmid < 100 || h.vmid > 999999999) add(where, "vmid", `${JSON.stringify(h.vmid)} is outside 100-999999999`);
    else if (vmids.has(h.vmid)) add(where, "vmid", `${h.vmid} is already used by ${vmids.get(h.vmid)}`);
    else vmids.set(h.vmid, where);
    if (!isStr(h.node) || !knownNode(h.node)) add(where, "node", `${JSON.stringify(h.node)} is not one of cluster.nodes (${nodes.join(", ")})`);

    // roles
    const roles: RoleName[] = [];
    if (!Array.isArray(h.roles)) add(where, "roles", `must be a list of roles (${ROLE_NAMES.join(", ")}); [] makes a plain NixOS host`);
    for (const r of Array.isArray(h.roles) ? h.roles : []) {
      if (!isRole(r)) add(where, "roles", `unknown role ${JSON.stringify(r)}; known roles: ${ROLE_NAMES.join(", ")}`);
      else if (roles.includes(r)) add(where, "roles", `role "${r}" is listed twice`);
      else roles.push(r);
    }
    roles.forEach((r) => rolesInFleet.add(r));

    // sizes
    for (const [field, unit] of [["cores", ""], ["memoryMiB", " MiB"], ["diskGiB", " GiB"]] as const) {
      const v = h[field];
      if (!isInt(v) || v < 1) {
        add(where, field, `${JSON.stringify(v)} must be a positive whole number`);
        continue;
      }
      for (const r of roles) {
        const min = ROLES[r].min[field];
        if (v < min) add(where, field, `${v}${unit} is below the ${r} role's minimum of ${min}${unit}; raise ${field}`);
      }
    }
    // A clone's OS disk can grow, never shrink (bpg v0.111.0 proxmoxtf/resource/vm/disk/disk.go
    // UpdateClone: "disk resize failure: requested size ... is lower than current size").
    const templateDisk = isObj(template) && template.mode === "create" ? (isInt(template.diskGiB) ? template.diskGiB : 40) : undefined;
    if (templateDisk !== undefined && isInt(h.diskGiB) && h.diskGiB < templateDisk)
      add(where, "diskGiB", `${h.diskGiB} GiB is smaller than the template's disk (template.diskGiB = ${templateDisk}); a clone's disk can only grow: raise diskGiB or lower template.diskGiB`);
    for (const [j, d] of (Array.isArray(h.dataDisks) ? h.dataDisks : []).entries())
      if (!isObj(d) || !isInt(d.sizeGiB) || d.sizeGiB < 1) add(where, `dataDisks[${j}].sizeGiB`, "must be a positive whole number of GiB");
    if (h.dataDisks !== undefined && !Array.isArray(h.dataDisks)) add(where, "dataDisks", "must be a list of { sizeGiB, storage? }");
    if (Array.isArray(h.dataDisks) && h.dataDisks.length > 29) add(where, "dataDisks", "at most 29 data disks (scsi1-scsi29)");

    // network
    const net = h.network;
    if (!isObj(net)) add(where, "network", 'missing; give { "dhcp": true } or { "address": "10.0.0.5/24", "gateway": "10.0.0.1" }');
    else {
      if (net.dhcp === true) {
        if (net.address !== undefined) add(where, "network.address", "set either dhcp: true or a static address, not both");
      } else {
        const cidr = parseCidr(net.address);
        if (!cidr) add(where, "network.address", `${JSON.stringify(net.address)} is not an IPv4 CIDR such as "10.0.0.5/24" (or set dhcp: true)`);
        else {
          if (ips.has(cidr.ip)) add(where, "network.address", `${cidr.address} is already used by ${ips.get(cidr.ip)}`);
          else ips.set(cidr.ip, where);
          const gw = parseIpv4(net.gateway);
          if (net.gateway === undefined) add(where, "network.gateway", "a static address needs a gateway");
          else if (gw === undefined) add(where, "network.gateway", `${JSON.stringify(net.gateway)} is not an IPv4 address`);
          else if (!sameSubnet(gw, cidr.ip, cidr.prefix)) add(where, "network.gateway", `${net.gateway} is outside the subnet of ${net.address}`);
          else if (gw === cidr.ip) add(where, "network.gateway", `${net.gateway} is the host's own address`);
        }
      }
      if (net.dns !== undefined && (!Array.isArray(net.dns) || !net.dns.every((d: unknown) => parseIpv4(d) !== undefined)))
        add(where, "network.dns", "must be a list of IPv4 addresses");
      if (net.vlan !== undefined && (!isInt(net.vlan) || net.vlan < 1 || net.vlan > 4094)) add(where, "network.vlan", `${JSON.stringify(net.vlan)} is not a VLAN id 1-4094`);
    }

    // GPU
    const gpu = h.gpu;
    const needsGpu = roles.filter((r) => ROLES[r].gpu);
    if (needsGpu.length > 0 && !isObj(gpu)) add(where, "gpu", `the ${needsGpu.join(", ")} role needs a GPU; add "gpu": { "mapping": "<pciMappings name>" }`);
    if (isObj(gpu)) {
      if (!isStr(gpu.mapping) && !isStr(gpu.rawId)) add(where, "gpu.mapping", "name a PCI mapping from pciMappings (or a rawId, which needs root@pam)");
      if (isStr(gpu.mapping)) {
        const onNodes = mappings.get(gpu.mapping);
        if (!onNodes) add(where, "gpu.mapping", `"${gpu.mapping}" is not defined in pciMappings`);
        else if (isStr(h.node) && !onNodes.has(h.node))
          add(where, "gpu.mapping", `"${gpu.mapping}" has no device on node "${h.node}" (it maps ${[...onNodes].join(", ") || "no node"}); move the host or extend the mapping`);
      }
      if (isStr(gpu.rawId) && !/^([0-9a-f]{4}:)?[0-9a-f]{2}:[0-9a-f]{2}(\.[0-7])?$/i.test(gpu.rawId))
        add(where, "gpu.rawId", `"${gpu.rawId}" is not a PCI address such as "0000:01:00"`);
      // qemu-server PVE/API2/Qemu.pm check_hostpci_perm: an unmapped device may be set only by
      // root@pam logged in with its password, never through an API token (not even root@pam's).
      else if (isStr(gpu.rawId) && process.env.PROXMOX_VE_API_TOKEN)
        add(where, "gpu.rawId", "a raw PCI id needs root@pam with a password, and PROXMOX_VE_API_TOKEN is set (Proxmox refuses raw ids from every API token); define the device in pciMappings and use gpu.mapping");
    }

    if (isObj(gpu) && gpu.cudaCapabilities !== undefined && !(Array.isArray(gpu.cudaCapabilities) && gpu.cudaCapabilities.length > 0 && gpu.cudaCapabilities.every((c: unknown) => isStr(c) && /^\d+\.\d+$/.test(c))))
      add(where, "gpu.cudaCapabilities", `${JSON.stringify(gpu.cudaCapabilities)} must be a list of CUDA compute capabilities such as ["8.6"] (the GPU's, see NVIDIA's CUDA GPU list)`);

    // ports: two services on one host wanting the same port
    const services = isObj(h.services) ? h.services : {};
    const vllm = isObj(services.vllm) ? services.vllm : {};
    if (vllm.model !== undefined && !(isStr(vllm.model) && vllm.model.length > 0)) add(where, "services.vllm.model", "must be a model id such as \"Qwen/Qwen2.5-7B-Instruct\"");
    if (vllm.modelPath !== undefined && !(isStr(vllm.modelPath) && vllm.modelPath.startsWith("/"))) add(where, "services.vllm.modelPath", `${JSON.stringify(vllm.modelPath)} must be an absolute path on the host`);
    if (vllm.startTimeout !== undefined && !(isStr(vllm.startTimeout) && /^\d+(s|min|h)?$/.test(vllm.startTimeout))) add(where, "services.vllm.startTimeout", `${JSON.stringify(vllm.startTimeout)} must be a time span such as "45min"`);
    for (const key of Object.keys(services)) if (!roles.includes(key as RoleName)) add(where, `services.${key}`, `settings for role "${key}", which the host does not have`);
    const seen = new Map<number, string>();
    for (const [role, ports] of Object.entries(hostPorts({ roles, services }))) {
      for (const [pname, port] of Object.entries(ports)) {
        if (!isInt(port) || port < 1 || port > 65535) {
          add(where, `services.${role}.ports.${pname}`, `${JSON.stringify(port)} is not a port number`);
          continue;
        }
        const other = seen.get(port);
        if (other) add(where, `services.${role}.ports.${pname}`, `port ${port} is also wanted by ${other} on this host; give one of them another port`);
        else seen.set(port, `${role}.${pname}`);
      }
    }
    if (h.startupOrder !== undefined && (!isInt(h.startupOrder) || h.startupOrder < 0)) add(where, "startupOrder", "must be a whole number >= 0");
    if (h.tags !== undefined && (!Array.isArray(h.tags) || !h.tags.every((t: unknown) => isStr(t) && /^[a-z0-9_.+-]+$/i.test(t as string))))
      add(where, "tags", "must be a list of tags (letters, digits, - _ . +)");
  }

  // The platform's deploy order is kept inside one stack: its hosts must not be split.
  const platformStacks = new Map<string, string[]>();
  for (const h of data.hosts)
    if (isObj(h) && Array.isArray(h.roles) && h.roles.some((r: unknown) => (PLATFORM_ROLES as readonly unknown[]).includes(r))) {
      const st = stackOf({ roles: h.roles, stack: typeof h.stack === "string" ? h.stack : undefined });
      platformStacks.set(st, [...(platformStacks.get(st) ?? []), String(h.name)]);
    }
  if (platformStacks.size > 1) {
    const [first, ...others] = [...platformStacks.keys()];
    for (const st of others)
      for (const n of platformStacks.get(st)!)
        add(`host "${n}"`, "stack", `platform hosts must share one stack (their deploy order is kept inside a stack): this one is in "${st}", others in "${first}"`);
  }

  // platform dependencies across the fleet (or satisfied by external endpoints)
  if (data.nix !== undefined) {
    const n = data.nix;
    if (!isObj(n)) add("nix", "nix", 'must be { "substituters": [...], "trustedPublicKeys": [...] }');
    else {
      if (n.substituters !== undefined && !(Array.isArray(n.substituters) && n.substituters.every((u: unknown) => isStr(u) && /^https?:\/\/\S+$/.test(u))))
        add("nix", "substituters", "must be a list of binary cache URLs (https://...)");
      if (n.trustedPublicKeys !== undefined && !(Array.isArray(n.trustedPublicKeys) && n.trustedPublicKeys.every((k: unknown) => isStr(k) && /^[^\s:]+:[A-Za-z0-9+/]+=*$/.test(k))))
        add("nix", "trustedPublicKeys", 'must be a list of cache keys such as "cache.example.org-1:<base64>"');
      if ((n.substituters?.length ?? 0) > 0 && !((n.trustedPublicKeys?.length ?? 0) > 0))
        add("nix", "trustedPublicKeys", "a substituter is used only with its public key: add the key its operator publishes");
    }
  }
  const external = isObj(data.externalServices) ? data.externalServices : {};
  for (const [role, eps] of Object.entries(external)) {
    if (!isRole(role)) add("externalServices", role, `unknown role "${role}"; known roles: ${ROLE_NAMES.join(", ")}`);
    else if (!Array.isArray(eps) || eps.length === 0 || !eps.every((e) => typeof e === "string" && /^[A-Za-z0-9.-]+:\d{1,5}$/.test(e)))
      add("externalServices", role, 'must be a non-empty list of "host:port" endpoints');
    else rolesInFleet.add(role);
  }
  for (const role of PLATFORM_ROLES) {
    if (!rolesInFleet.has(role)) continue;
    for (const need of ROLES[role].requires)
      if (!rolesInFleet.has(need)) {
        const holders = data.hosts.filter((h: any) => isObj(h) && Array.isArray(h.roles) && h.roles.includes(role)).map((h: any) => h.name);
        add(`host "${holders[0]}"`, "roles", `${role} needs ${need}, but no host in the fleet has the ${need} role; add one or list it in externalServices`);
      }
  }
  return problems;
}
