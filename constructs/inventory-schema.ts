/**
 * The inventory's schema, written once with TypeBox (docs/adr-0016-inventory-schema.md): the
 * TypeScript types (Static<...>), the runtime validation (ajv compiles this very schema) and
 * fleet.schema.json (`npm run schema` writes it; fleet.json names it in "$schema", so editors
 * complete and check the file as it is typed) all come from here. Unknown keys are refused
 * everywhere (additionalProperties: false), except in a platform service's free settings.
 *
 * Bounds, and where they come from:
 *  - vmid 100-999999999: Proxmox's pve-vmid format (pve-common src/PVE/JSONSchema.pm).
 *  - memoryMiB 16-4194304: qemu-server's `memory` minimum and $MAX_MEM (PVE/QemuServer/Memory.pm).
 *  - cores 1-512: qemu-server's `cores` minimum 1; a VM may not have more vCPUs than its node
 *    has CPUs (qemu-server config_to_command, "MAX ... vcpus allowed per VM on this node"), and
 *    no current two-socket x86 server has more than 512.
 *  - diskGiB / dataDisks 1-65536 (64 TiB): ours; more than any single-node datastore of the
 *    clusters this targets, so a typo (1e18) is refused here instead of by the storage.
 *  - dataDisks at most 29 (scsi1-scsi29 beside the OS disk, qemu-server $MAX_SCSI_DISKS).
 *  - ports 1-65535, VLAN 1-4094 (802.1Q), iommuGroup 0-65535, startupOrder 0-65535.
 */
import { Static, TSchema, Type } from "@sinclair/typebox";
import { PLATFORM_ROLES, ROLES, ROLE_NAMES, RoleName } from "./roles";

/** A string enum as JSON Schema's `enum` (one clear error, and editors complete it). */
const Enum = <T extends string>(values: readonly T[], description: string) => Type.Unsafe<T>({ type: "string", enum: [...values], description });
/** A string with a pattern and the message editors (VS Code: patternErrorMessage) and our validator show. */
const Pattern = (pattern: string, patternErrorMessage: string, description: string, extra: object = {}) => Type.String({ pattern, patternErrorMessage, description, ...extra });
const Int = (minimum: number, maximum: number, description: string) => Type.Integer({ minimum, maximum, description });
const Obj = <T extends Record<string, TSchema>>(props: T, description: string) => Type.Object(props, { additionalProperties: false, description });
const Opt = Type.Optional;

// Strict IPv4 dotted quad: no leading zeros (so it is written as every tool prints it).
const OCTET = "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])";
const IPV4 = `${OCTET}\\.${OCTET}\\.${OCTET}\\.${OCTET}`;
const Ipv4 = (description: string) => Pattern(`^${IPV4}$`, "is not an IPv4 address such as 10.0.0.1 (four numbers 0-255, no leading zeros)", description);
const NodeName = Pattern("^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$", "is not a Proxmox node name (letters, digits and '-')", "A Proxmox node name (as `pvecm nodes` lists it).");
const StorageId = (description: string) => Pattern("^[a-zA-Z][a-zA-Z0-9_.-]*[a-zA-Z0-9]$", "is not a Proxmox storage id such as local-lvm (pve-storage-id)", description);
const PciId = (description: string) => Pattern("^[0-9a-fA-F]{4}:[0-9a-fA-F]{4}$", 'is not a vendor:device id such as "10de:2204"', description);
const PciPath = (description: string) => Pattern("^([0-9a-fA-F]{4}:)?[0-9a-fA-F]{2}:[0-9a-fA-F]{2}(\\.[0-7])?$", 'is not a PCI address such as "0000:01:00.0"', description);
const Port = (description: string) => Int(1, 65535, description);
const Bool = (description: string) => Type.Boolean({ description });
const Cores = (description: string) => Int(1, 512, description);
const Memory = (description: string) => Int(16, 4194304, description);
const Disk = (description: string) => Int(1, 65536, description);

export const ClusterSchema = Obj(
  {
    nodes: Type.Array(NodeName, { minItems: 1, maxItems: 256, uniqueItems: true, description: "Proxmox node names that hosts may be placed on." }),
    storage: StorageId('Default datastore for VM disks, EFI and cloud-init drives, e.g. "local-lvm".'),
    imageStorage: Opt(StorageId('Datastore that holds ISO/VMA/snippet files. Default "local".')),
    bridge: Pattern("^[a-zA-Z][a-zA-Z0-9_.-]{0,14}$", "is not a Linux bridge name such as vmbr0 (at most 15 characters)", 'Default bridge for VM NICs, e.g. "vmbr0".'),
    domain: Opt(Pattern("^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$", "is not a DNS domain such as lab.lan (lower-case labels of letters, digits and '-')", "DNS domain of the hosts (<host>.<domain>).")),
    dns: Opt(Type.Array(Ipv4("A DNS server."), { maxItems: 8, description: "DNS servers for statically addressed hosts without their own." })),
    timeZone: Opt(Type.String({ minLength: 1, maxLength: 64, description: 'Time zone of every host (NixOS time.timeZone), an IANA name such as "Europe/Oslo". Default "UTC".' })),
    locale: Opt(Pattern("^(C|POSIX|[a-z]{2,3}_[A-Z]{2})(\\.[A-Za-z0-9-]+)?(@[a-z]+)?$", 'is not a locale such as "en_US.UTF-8" or "C.UTF-8"', 'Default locale (NixOS i18n.defaultLocale). Default "en_US.UTF-8".')),
  },
  "The Proxmox cluster: nodes, datastores, bridge, DNS. Never credentials (PROXMOX_VE_API_TOKEN goes in the environment).",
);

export const TemplateSchema = Obj(
  {
    vmid: Int(100, 999999999, "VMID of the NixOS template that every VM is cloned from."),
    node: NodeName,
    name: Opt(Pattern("^[a-zA-Z0-9]([a-zA-Z0-9.-]{0,61}[a-zA-Z0-9])?$", "is not a VM name (letters, digits, '-' and '.')", 'Template VM name. Default "nixos-template".')),
    mode: Opt(Enum(["existing", "create"] as const, '"existing": refer to a template made beforehand; "create": manage it here (with imageUrl). Default "existing".')),
    cores: Opt(Cores("Template cores.")),
    memoryMiB: Opt(Memory("Template memory in MiB.")),
    diskGiB: Opt(Disk("Template disk in GiB (create mode; clones can only be larger).")),
    bootstrapImage: Opt(Bool("Opt-in first bootstrap (existing mode): build the VMA with nix, upload, qmrestore, qm template.")),
    imageUrl: Opt(Pattern("^https?://\\S+$", "must be an http(s) URL", "create mode: URL of a NixOS qcow2 image to import as the template's disk.")),
    imageSha256: Opt(Pattern("^[0-9a-f]{64}$", "must be 64 lower-case hex digits", "SHA-256 of the image at imageUrl.")),
    registration: Opt(Bool("First-boot registration to the CI/CD host's repository.")),
  },
  "The NixOS template VM.",
);

export const PciMappingSchema = Obj(
  {
    name: Pattern("^[a-zA-Z][a-zA-Z0-9_-]{0,63}$", "is not a mapping name (a letter, then letters, digits, '-' and '_')", "Cluster-wide name of the mapping (Datacenter > Resource Mappings)."),
    comment: Opt(Type.String({ maxLength: 4096, description: "Free text." })),
    map: Type.Array(
      Obj(
        {
          node: NodeName,
          id: PciId("The device's vendor:device id (lspci -nn)."),
          path: PciPath("PCI address on the node."),
          subsystemId: PciId("Subsystem vendor:device id (lspci -nnv, the Subsystem line)."),
          iommuGroup: Int(0, 65535, "IOMMU group (ls -l /sys/bus/pci/devices/<path>/iommu_group)."),
        },
        "The device on one node. Proxmox starts a VM with the mapping only when all of it matches the node (pve-guest-common PVE/Mapping/PCI.pm).",
      ),
      { minItems: 1, maxItems: 1024, description: "Per node: the device(s) the mapping names." },
    ),
  },
  "A Proxmox PCI resource mapping (GPU passthrough with API tokens).",
);

export const UserSchema = Obj(
  {
    name: Pattern("^[a-z_][a-z0-9_-]{0,31}$", "is not a Unix user name (lower-case, at most 32 characters)", "Unix user name."),
    sshKeys: Type.Array(Type.String({ maxLength: 16384, description: "An OpenSSH public key line: ssh-ed25519 AAAA... comment" }), { minItems: 1, maxItems: 64, description: "Public SSH keys (never private ones)." }),
    admin: Opt(Bool("Member of wheel (sudo), may deploy. Default: true for the first user.")),
  },
  "A user on every host (cloud-init and NixOS).",
);

export const DeploySchema = Obj(
  {
    user: Opt(Type.String({ minLength: 1, maxLength: 32, description: "SSH user with sudo on the hosts: an admin user. Default: the first admin user." })),
    flake: Opt(Type.String({ minLength: 1, maxLength: 4096, description: 'Flake reference of nixos/ (relative paths are from the project root). Default "./nixos".' })),
    buildHost: Opt(Pattern("^(?!-)(?:[^@\\s]+@)?[^:\\s@]+(?::\\d+)?$", "must be [user@]host[:port], not starting with - (ssh would read it as an option)", "Build on this host instead of locally (nixos-rebuild --build-host).")),
    sshPort: Opt(Port("Port sshd listens on (the hosts' firewall opens it). Default 22.")),
    engine: Opt(Enum(["terraform_data"] as const, 'Deploy step resource: "terraform_data" (built in; the null_resource engine went with cdktf 0.21, set movedFromNullResource to move old steps).')),
    movedFromNullResource: Opt(Bool("The deploy steps were null_resources: move their state (docs/adr-0003).")),
    healthStableSeconds: Opt(Type.Number({ minimum: 0, maximum: 3600, description: "How long every health check must keep passing after a switch. Default 10." })),
    maxUnavailable: Opt(Int(1, 10000, "Hosts of one non-quorum role updated at once. Default 1.")),
  },
  "How hosts are deployed.",
);

const portsOf = (role: RoleName) =>
  Obj(Object.fromEntries(Object.keys(ROLES[role].ports).map((p) => [p, Opt(Port(`${role} ${p} port (default ${ROLES[role].ports[p]}).`))])), `Port overrides of ${role} by port name.`);

/** A role's settings on one host: port overrides, vLLM's model settings, a platform service's free settings. */
export type ServiceSettings = { readonly ports?: Record<string, number>; readonly model?: string; readonly modelPath?: string; readonly startTimeout?: string; readonly [key: string]: unknown };

/** A platform service's free settings end up in its TOML config: any JSON value TOML can hold. */
const TomlValue = Type.Unsafe<unknown>({ type: ["string", "number", "boolean", "array", "object"], description: "A setting for the service's config.toml." });

const ServicesSchema = Type.Unsafe<Partial<Record<RoleName, ServiceSettings>>>(Type.Object(
  {
    vllm: Opt(
      Obj(
        {
          ports: Opt(portsOf("vllm")),
          // It reaches vLLM's unit and its readiness script: a Hugging Face id and nothing else.
          model: Opt(Pattern("^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)?$", "is not a Hugging Face model id (name or owner/name: letters, digits, '.', '_' and '-')", 'The model to serve and the name LiteLLM routes to. Default "Qwen/Qwen2.5-7B-Instruct".', { maxLength: 256 })),
          modelPath: Opt(Pattern("^/\\S*$", "must be an absolute path on the host", "Directory on the host with pre-seeded weights of `model` (no internet needed).")),
          startTimeout: Opt(Pattern("^[0-9]+(s|min|h)?$", 'must be a time span such as "45min"', 'How long the first start (download and load) may take. Default "30min".')),
        },
        "vLLM settings.",
      ),
    ),
    litellm: Opt(Obj({ ports: Opt(portsOf("litellm")) }, "LiteLLM settings.")),
    openwebui: Opt(Obj({ ports: Opt(portsOf("openwebui")) }, "Open WebUI settings.")),
    cicd: Opt(Obj({}, "CI/CD git host settings (none yet).")),
    ...Object.fromEntries(
      PLATFORM_ROLES.map((r) => [
        r,
        Opt(
          Type.Object(
            {
              ports: Opt(portsOf(r)),
              // a Raft role's member that joins a running cluster (docs/adr-0020-raft-membership.md)
              ...(ROLES[r].quorum ? { join: Opt(Type.Boolean({ description: `${r}: this member joins a running cluster (added to it later, or replacing a member): its config says initial_cluster_state = "existing". Leave unset on the members that form the cluster.` })) } : {}),
            },
            { additionalProperties: TomlValue, description: `${r}: port overrides, and free settings for its config.toml (never credentials: npm run secrets).` },
          ),
        ),
      ]),
    ),
  },
  { additionalProperties: false, description: "Per-role settings of this host (only for roles it has)." },
));

export const NetworkSchema = Obj(
  {
    dhcp: Opt(Bool("true: DHCP (cloud-init). Otherwise give address and gateway.")),
    address: Opt(Pattern(`^${IPV4}/([1-9]|[12][0-9]|3[0-2])$`, 'is not an IPv4 CIDR such as "10.0.0.5/24"', "Static IPv4 address with prefix length.")),
    gateway: Opt(Ipv4("Default gateway (inside the address's subnet).")),
    dns: Opt(Type.Array(Ipv4("A DNS server."), { maxItems: 8, description: "DNS servers; default cluster.dns." })),
    vlan: Opt(Int(1, 4094, "802.1Q VLAN tag.")),
    bridge: Opt(Pattern("^[a-zA-Z][a-zA-Z0-9_.-]{0,14}$", "is not a Linux bridge name such as vmbr0", "Bridge; default cluster.bridge.")),
  },
  'The host\'s network: { "dhcp": true } or { "address": "10.0.0.5/24", "gateway": "10.0.0.1" }.',
);

export const GpuSchema = Obj(
  {
    mapping: Opt(Type.String({ minLength: 1, maxLength: 64, description: "Name of a pciMappings entry (works with API tokens)." })),
    rawId: Opt(PciPath('Raw PCI address such as "0000:01:00"; needs root@pam with a password. Prefer mapping.')),
    pcie: Opt(Bool("Pass through as PCIe (q35).")),
    rombar: Opt(Bool("Expose the device ROM.")),
    xvga: Opt(Bool("Primary VGA.")),
    cudaCapabilities: Opt(Type.Array(Pattern("^[0-9]+\\.[0-9]+$", 'is not a CUDA compute capability such as "8.6"', "A compute capability."), { minItems: 1, maxItems: 16, description: 'vLLM: build CUDA for these compute capabilities only, e.g. ["8.6"] for an RTX 3090 (shorter from-source builds, but no public CUDA cache has them). Unset: nixpkgs\' default list, which public CUDA caches build.' })),
  },
  "A passed-through GPU.",
);

export const HostSchema = Obj(
  {
    name: Type.String({ minLength: 1, maxLength: 63, description: "Host name: lower-case letters, digits and '-', starting with a letter (RFC 1123, a Terraform identifier, a NixOS host name)." }),
    roles: Type.Array(Enum(ROLE_NAMES, "A role."), { uniqueItems: true, maxItems: ROLE_NAMES.length, description: "Roles of the host; [] is a plain NixOS host." }),
    vmid: Int(100, 999999999, "Proxmox VMID."),
    node: NodeName,
    cores: Cores("vCPU cores."),
    memoryMiB: Memory("Memory in MiB."),
    diskGiB: Disk("OS disk in GiB (a clone's disk can only grow)."),
    dataDisks: Opt(Type.Array(Obj({ sizeGiB: Disk("Size in GiB."), storage: Opt(StorageId("Datastore; default cluster.storage.")) }, "A data disk."), { maxItems: 29, description: "Extra disks (scsi1-scsi29)." })),
    network: NetworkSchema,
    gpu: Opt(GpuSchema),
    tags: Opt(Type.Array(Pattern("^[a-zA-Z0-9_][a-zA-Z0-9_+.-]{0,127}$", "is not a Proxmox tag (letters, digits, - _ . +)", "A tag."), { maxItems: 64, description: "Proxmox VM tags." })),
    // Proxmox makes a pool only when its name starts with a letter ("pool name must start with a
    // letter", pve-manager PVE/API2/Pool.pm 196-198 at 14a22df); the rest as pve-access-control
    // AccessControl.pm verify_poolname 1353-1368 (nested pools, a/b, are not made here).
    pool: Opt(Pattern("^[a-zA-Z][a-zA-Z0-9._-]{0,63}$", "is not a Proxmox pool id (a letter, then letters, digits, ., - and _)", "Resource pool (created by the cluster stack).")),
    onBoot: Opt(Bool("Start the VM when its node boots. Default true.")),
    startupOrder: Opt(Int(0, 65535, "Start order on boot (lower first).")),
    stateful: Opt(Bool("Holds data that must survive: prevent_destroy, Proxmox protection and the tag stateful.")),
    preventDestroy: Opt(Bool("Explicit opt-out for stateful hosts: false allows destroy.")),
    existing: Opt(Bool("The VM exists already: adopt it with an import block.")),
    stack: Opt(Type.String({ minLength: 1, maxLength: 32, description: 'Stack override (a short identifier); default by role ("ai", "platform", "ops").' })),
    services: Opt(ServicesSchema),
  },
  "A VM of the fleet.",
);

export const RetiredSchema = Obj(
  {
    name: Type.String({ minLength: 1, maxLength: 63, description: "The host's name as it was in hosts." }),
    vmid: Int(100, 999999999, "Its VMID."),
  },
  "A stateful host taken out of the fleet whose VM is kept: Terraform forgets it (a `removed` block with destroy = false), Proxmox keeps it running and protected. Keep the entry while the VM exists (docs/adr-0019-provider-hands-off.md).",
);

export const InventorySchema = Type.Object(
  {
    $schema: Opt(Type.String({ description: 'The schema of this file: "./fleet.schema.json".' })),
    cluster: ClusterSchema,
    template: TemplateSchema,
    pciMappings: Type.Array(PciMappingSchema, { maxItems: 1024, description: "PCI resource mappings (GPUs)." }),
    users: Type.Array(UserSchema, { minItems: 1, maxItems: 256, description: "Users on every host; admin users deploy." }),
    deploy: Opt(DeploySchema),
    externalServices: Opt(
      Obj(Object.fromEntries(ROLE_NAMES.map((r) => [r, Opt(Type.Array(Pattern("^[A-Za-z0-9.-]+:[0-9]{1,5}$", 'is not a "host:port" endpoint', "An endpoint."), { minItems: 1, maxItems: 64, description: `${r} endpoints outside the fleet.` }))])), "Services that run outside the fleet, by role: host:port endpoints that satisfy dependencies."),
    ),
    backend: Opt(Enum(["local", "pg", "s3"] as const, 'State backend: "local" (default), "pg" (PG_CONN_STR) or "s3".')),
    nix: Opt(
      Obj(
        {
          substituters: Opt(Type.Array(Pattern("^https?://\\S+$", "is not a binary cache URL (https://...)", "A binary cache."), { maxItems: 16, description: "Binary caches (e.g. a CUDA cache)." })),
          trustedPublicKeys: Opt(Type.Array(Pattern("^[^\\s:]+:[A-Za-z0-9+/]+=*$", 'is not a cache key such as "cache.example.org-1:<base64>"', "A cache's public key."), { maxItems: 16, description: "The caches' public keys." })),
        },
        "Binary caches for building the fleet.",
      ),
    ),
    // what `npm run bench` shows a synth can do within its budget (20,000 hosts <= 60 s, 2 GiB)
    hosts: Type.Array(HostSchema, { minItems: 1, maxItems: 20000, description: "The fleet's VMs (at most 20,000)." }),
    retired: Opt(Type.Array(RetiredSchema, { maxItems: 100000, description: "Hosts removed from the fleet whose VMs are kept as they are, unmanaged." })),
  },
  { additionalProperties: false, title: "proxmox-nixos-fleet inventory", description: "One inventory for the cdktf stacks and the NixOS flake (fleet.json)." },
);

export type Inventory = Static<typeof InventorySchema>;
export type ClusterSpec = Static<typeof ClusterSchema>;
export type TemplateSpec = Static<typeof TemplateSchema>;
export type PciMappingSpec = Static<typeof PciMappingSchema>;
export type UserSpec = Static<typeof UserSchema>;
export type DeploySpec = Static<typeof DeploySchema>;
export type NetworkSpec = Static<typeof NetworkSchema>;
export type GpuSpec = Static<typeof GpuSchema>;
export type HostSpec = Static<typeof HostSchema>;
export type RetiredSpec = Static<typeof RetiredSchema>;

/** The JSON Schema document published as fleet.schema.json. */
export function jsonSchema(): object {
  return { $schema: "http://json-schema.org/draft-07/schema#", $id: "https://github.com/proxmox-nixos-fleet/fleet.schema.json", ...JSON.parse(JSON.stringify(InventorySchema)) };
}
