import { Construct } from "constructs";
import { Token } from "cdktn";
import {
  VirtualEnvironmentVm,
  VirtualEnvironmentVmDisk,
  VirtualEnvironmentVmHostpci,
} from "../.gen/providers/proxmox/virtual-environment-vm";
import type { NetworkSpec } from "./inventory";
import { addressOf } from "./deploy-step";
import { STATEFUL_TAG } from "./markers";

/**
 * The OS disk of the NixOS template, hence of every clone: nixpkgs'
 * nixos/modules/virtualisation/proxmox-image.nix writes the image to `virtio0` (the VMA map
 * `#qmdump#map:virtio0:drive-virtio0`). A clone must declare this interface to grow it: for an
 * interface the clone lacks, the provider adds a new blank disk instead
 * (bpg/terraform-provider-proxmox v0.111.0, proxmoxtf/resource/vm/disk/disk.go UpdateClone).
 * See docs/adr-0008-os-disk-virtio0.md.
 */
export const OS_DISK = "virtio0";

/** A network_device object in the shape Terraform requires (see networkDevice). */
export interface NetworkDevice {
  readonly bridge: string;
  readonly model?: string;
  readonly vlanId?: number;
  readonly firewall?: boolean;
  readonly macAddress?: string;
}

/**
 * network_device is an *attribute* of type list(object) (SDKv2 ConfigMode Attr; bpg v0.111.0
 * proxmoxtf/resource/vm/network/schema.go), not a block: in JSON every object must carry all
 * 11 keys, null where unset. The generated binding drops undefined keys, so the list is written
 * as an override with every key. Unset keys get the provider's defaults at plan time.
 */
export function networkDeviceJson(devices: readonly NetworkDevice[]): Record<string, unknown>[] {
  return devices.map((d) => ({
    bridge: d.bridge,
    disconnected: null,
    enabled: null, // deprecated in bpg 0.112.0 (remove the block instead); unset keeps the provider default (true) without the warning
    firewall: d.firewall ?? false,
    mac_address: d.macAddress ?? null,
    model: d.model ?? "virtio",
    mtu: null,
    queues: null,
    rate_limit: null,
    trunks: null,
    vlan_id: d.vlanId ?? null,
  }));
}

export interface NixosVmProps {
  /** Host name (RFC 1123); also the VM name and the cloud-init hostname. */
  readonly name: string;
  /** Proxmox node the VM runs on. */
  readonly node: string;
  /** VMID of the VM. */
  readonly vmid: number;
  /** VMID of the NixOS template to clone. */
  readonly templateVmid: number;
  /** Node holding the template (for cross-node clones). @default the VM's node */
  readonly templateNode?: string;
  /** Datastore for the boot disk, data disks and cloud-init drive. */
  readonly datastore: string;
  /** @default 2 */
  readonly cores?: number;
  /** Dedicated memory in MiB. @default 2048 */
  readonly memoryMiB?: number;
  /** OS disk size in GiB: the template's OS disk (virtio0) is grown to this, never shrunk. @default 20 */
  readonly diskGiB?: number;
  /** Extra data disks (scsi1, scsi2, ...). @default none */
  readonly dataDisks?: readonly { readonly sizeGiB: number; readonly storage?: string }[];
  /** Network: DHCP or static address. @default { dhcp: true } */
  readonly network?: NetworkSpec;
  /** Bridge when network.bridge is unset. @default "vmbr0" */
  readonly bridge?: string;
  /** DNS search domain handed out by cloud-init. @default none */
  readonly domain?: string;
  /** DNS servers for a static address when network.dns is unset. @default none */
  readonly dnsServers?: readonly string[];
  /** Cloud-init user and its public keys (never a password). */
  readonly user: { readonly name: string; readonly sshKeys: readonly string[] };
  /** PCI passthrough devices (see GpuPassthrough.hostpci). @default none */
  readonly hostpci?: VirtualEnvironmentVmHostpci[];
  /** @default [] */
  readonly tags?: readonly string[];
  /** Resource pool. @default none */
  readonly pool?: string;
  /** Start with the node. @default true */
  readonly onBoot?: boolean;
  /** Startup order on the node. @default none */
  readonly startupOrder?: number;
  /** A VM that holds data: lifecycle.prevent_destroy, Proxmox protection and the `stateful` tag. @default false */
  readonly preventDestroy?: boolean;
  /** Adopt an existing VM: emits an import block with the provider's ID "<node>/<vmid>". @default false */
  readonly importExisting?: boolean;
  /** How long the provider waits for the QEMU guest agent. @default "15m" */
  readonly agentTimeout?: string;
  /** Clone timeout in seconds. @default 1800 */
  readonly cloneTimeoutSeconds?: number;
}

/**
 * What a clone reads only when it is made (docs/adr-0019-provider-hands-off.md). Every `clone.*`
 * attribute is ForceNew (bpg v0.112.0 proxmoxtf/resource/vm/vm.go clone schema): a rebuilt or moved
 * template would re-clone every host. `initialization` is the first boot's cloud-init; after it
 * NixOS owns users, keys, names and addresses (docs/adr-0010), and a change to it is a reboot
 * (vm.go vmUpdate, rebootRequired for every initialization change). `started`: a VM an operator
 * stopped stays stopped (the provider's default `started = true` would boot it on any apply).
 */
export const CLONE_IGNORED = ["clone", "initialization", "started"] as const;

/**
 * Attributes an adopted VM keeps as it is (docs/adr-0005-import.md, docs/adr-0019): how it was
 * made, how it boots, its disks, NICs and firmware, and every device or option the provider would
 * reset to its own default or remove when the configuration does not name it (USB, audio,
 * watchdog, TPM state, NUMA, RNG, virtiofs, SMBIOS, SEV, a CD-ROM, `args`, a hook script, the
 * tablet, the keyboard layout, ACPI, the startup order). Name, tags, pool and on-boot stay managed.
 */
export const ADOPTED_IGNORED = [
  ...CLONE_IGNORED,
  "disk", "efi_disk", "description", "boot_order", "network_device", "bios", "machine", "agent", "vga", "cpu", "memory", "scsi_hardware", "serial_device", "operating_system", "hostpci",
  "usb", "audio_device", "watchdog", "tpm_state", "numa", "rng", "virtiofs", "smbios", "amd_sev", "cdrom", "kvm_arguments", "hook_script_file_id", "tablet_device", "keyboard_layout", "acpi", "startup",
] as const;

/**
 * Terraform expression for the first IPv4 address the guest agent reports on an interface other
 * than `lo`, skipping loopback and link-local addresses; "" until the agent reports. `ref` is
 * anything with network_interface_names and ipv4_addresses (a list per interface).
 */
export function firstIpv4Expression(ref: string): string {
  return `\${try(flatten([for i, n in ${ref}.network_interface_names : [for ip in ${ref}.ipv4_addresses[i] : ip if !startswith(ip, "127.") && !startswith(ip, "169.254.")] if n != "lo"])[0], "")}`;
}

/**
 * A NixOS VM: a full clone of the NixOS template, configured by cloud-init, with the QEMU guest
 * agent on so its address can be read back. Exposes vmid, ipv4 (first non-loopback address
 * reported by the agent, picked by interface name) and mac.
 */
export class NixosVm extends Construct {
  readonly vm: VirtualEnvironmentVm;
  readonly vmid: number;

  constructor(scope: Construct, id: string, props: NixosVmProps) {
    super(scope, id);
    const net = props.network ?? { dhcp: true };
    this.vmid = props.vmid;
    const dataDisks: VirtualEnvironmentVmDisk[] = (props.dataDisks ?? []).map((d, i) => ({
      interface: `scsi${i + 1}`,
      datastoreId: d.storage ?? props.datastore,
      size: d.sizeGiB,
      fileFormat: "raw",
      discard: "on",
      iothread: true,
      ssd: true,
    }));
    const dns = net.dhcp ? undefined : (net.dns ?? props.dnsServers);

    this.vm = new VirtualEnvironmentVm(this, "vm", {
      name: props.name,
      nodeName: props.node,
      vmId: props.vmid,
      description: `NixOS host ${props.name}, managed by cdktf (proxmox-nixos-fleet)`,
      tags: [...new Set([...(props.tags ?? []), ...(props.preventDestroy ? [STATEFUL_TAG] : [])])].sort(),
      // Proxmox refuses to delete a protected VM or to remove its drives ("can't remove VM N -
      // protection mode enabled", qemu-server e6352be src/PVE/API2/Qemu.pm 2827-2829; "can't remove
      // drive ..." 2340-2341): a second wall behind prevent_destroy, which goes away with the resource.
      protection: props.preventDestroy ? true : undefined,
      poolId: props.pool,
      onBoot: props.onBoot ?? true,
      startup: props.startupOrder !== undefined ? { order: props.startupOrder } : undefined,
      // An adopted VM was not cloned by us: no clone block (see lifecycle below).
      clone: props.importExisting ? undefined : { vmId: props.templateVmid, nodeName: props.templateNode ?? props.node, full: true, datastoreId: props.datastore, retries: 3 },
      timeoutClone: props.cloneTimeoutSeconds ?? 1800,
      machine: "q35",
      bios: "ovmf",
      // Same EFI vars disk as the template (declared, so the provider keeps the cloned one).
      efiDisk: { datastoreId: props.datastore, type: "4m", preEnrolledKeys: false },
      scsiHardware: "virtio-scsi-single",
      cpu: { type: "host", cores: props.cores ?? 2, sockets: 1 },
      memory: { dedicated: props.memoryMiB ?? 2048 },
      // wait_for_ip.ipv4: return only once an IPv4 address is up, not the first (often IPv6
      // link-local) address (bpg issue #2062; vm.go getAgentWaitForIPConfig).
      agent: { enabled: true, timeout: props.agentTimeout ?? "15m", trim: true, waitForIp: { ipv4: true } },
      // node_name is ForceNew unless migrate = true (bpg vm.go CustomizeDiff ForceNewIf): a VM that
      // HA or an operator moved would otherwise be destroyed and re-cloned.
      migrate: true,
      serialDevice: [{ device: "socket" }],
      vga: { type: "serial0" },
      operatingSystem: { type: "l26" },
      // The template already boots from virtio0 (nixos/modules/template.nix sets
      // proxmox.qemuConf.boot): a clone keeps that even though the provider does not apply
      // boot_order when cloning before 0.111.1 (issue #850; we pin 0.112.0), so the first plan
      // after the clone is empty. PVE marks only listed devices bootable.
      bootOrder: [OS_DISK],
      disk: [
        // No `ssd` here: qemu-server offers SSD emulation on ide, sata and scsi only, not virtio.
        { interface: OS_DISK, datastoreId: props.datastore, size: props.diskGiB ?? 20, fileFormat: "raw", discard: "on", iothread: true },
        ...dataDisks,
      ],
      hostpci: props.hostpci,
      initialization: {
        datastoreId: props.datastore,
        interface: "ide2",
        type: "nocloud",
        dns: props.domain || dns ? { domain: props.domain, servers: dns ? [...dns] : undefined } : undefined,
        ipConfig: [{ ipv4: net.dhcp ? { address: "dhcp" } : { address: net.address, gateway: net.gateway } }],
        userAccount: { username: props.user.name, keys: [...props.user.sshKeys] },
      },
      // Never a reboot as a side effect of an apply (docs/adr-0019-provider-hands-off.md): a change
      // that needs one stays pending in Proxmox, and the host's deploy step reboots it through the
      // API, one member of a quorum role at a time (scripts/lib/pve-reboot.ts). The provider's
      // default (true) restarts every VM of a stack at once (vm.go vmFinalizePowerState).
      rebootAfterUpdate: false,
      lifecycle: {
        preventDestroy: props.preventDestroy || undefined,
        // Adopted VMs (docs/adr-0005-import.md): what describes how a VM was made, where its data
        // lives or which devices it has is left as it is; a protection flag too, unless the
        // inventory says the host is stateful (then it is set).
        ignoreChanges: props.importExisting
          ? [...ADOPTED_IGNORED.filter((a) => !(a === "startup" && props.startupOrder !== undefined)), ...(props.preventDestroy ? [] : ["protection"])]
          : // A VM with a passthrough device stays on the node HA or an operator moved it to:
            // Proxmox refuses to live-migrate it back ("can't live migrate running VM which uses
            // following mapped devices", qemu-server src/PVE/QemuMigrate.pm 270-300), and every
            // apply would fail on it. Move such a host by hand (shut down, qm migrate), then edit
            // its node (docs/adr-0019-provider-hands-off.md).
            [...CLONE_IGNORED, ...(props.hostpci?.length ? ["node_name"] : [])],
      },
    });
    this.vm.addOverride("network_device", networkDeviceJson([{ bridge: net.bridge ?? props.bridge ?? "vmbr0", vlanId: net.vlan, firewall: false }]));
    if (props.importExisting) this.vm.importFrom(`${props.node}/${props.vmid}`);
  }

  /** Terraform address of the VM resource, e.g. proxmox_virtual_environment_vm.x_vm_1234. */
  get address(): string {
    return addressOf(this.vm);
  }

  /**
   * First IPv4 reported by the guest agent that is not loopback or link-local. ipv4_addresses[i]
   * belongs to network_interface_names[i] and `lo` usually comes first, so the address is picked
   * by interface name, never by a fixed index. Empty until the agent reports.
   */
  get ipv4(): string {
    return Token.asString(firstIpv4Expression(this.address));
  }

  /**
   * MAC address of the first NIC, from its network_device entry. Not mac_addresses[0]: that list
   * is the guest agent's, one per guest interface with `lo` first (00:00:00:00:00:00).
   */
  get mac(): string {
    return Token.asString(`\${try(${this.address}.network_device[0].mac_address, "")}`);
  }
}
