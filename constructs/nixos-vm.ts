import { Construct } from "constructs";
import { Token } from "cdktf";
import {
  VirtualEnvironmentVm,
  VirtualEnvironmentVmDisk,
  VirtualEnvironmentVmHostpci,
} from "../.gen/providers/proxmox/virtual-environment-vm";
import type { NetworkSpec } from "./inventory";
import { addressOf } from "./deploy-step";

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
  /** Boot disk size in GiB; the template's disk is grown to this. @default 20 */
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
  /** Set lifecycle.prevent_destroy (stateful hosts). @default false */
  readonly preventDestroy?: boolean;
  /** Adopt an existing VM: emits an import block with the provider's ID "<node>/<vmid>". @default false */
  readonly importExisting?: boolean;
  /** How long the provider waits for the QEMU guest agent. @default "15m" */
  readonly agentTimeout?: string;
  /** Clone timeout in seconds. @default 1800 */
  readonly cloneTimeoutSeconds?: number;
}

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
      tags: [...(props.tags ?? [])].sort(),
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
      agent: { enabled: true, timeout: props.agentTimeout ?? "15m", trim: true },
      serialDevice: [{ device: "socket" }],
      vga: { type: "serial0" },
      operatingSystem: { type: "l26" },
      bootOrder: ["scsi0"],
      disk: [
        { interface: "scsi0", datastoreId: props.datastore, size: props.diskGiB ?? 20, fileFormat: "raw", discard: "on", iothread: true, ssd: true },
        ...dataDisks,
      ],
      networkDevice: [{ bridge: net.bridge ?? props.bridge ?? "vmbr0", model: "virtio", vlanId: net.vlan, firewall: false }],
      hostpci: props.hostpci,
      initialization: {
        datastoreId: props.datastore,
        interface: "ide2",
        type: "nocloud",
        dns: props.domain || dns ? { domain: props.domain, servers: dns ? [...dns] : undefined } : undefined,
        ipConfig: [{ ipv4: net.dhcp ? { address: "dhcp" } : { address: net.address, gateway: net.gateway } }],
        userAccount: { username: props.user.name, keys: [...props.user.sshKeys] },
      },
      lifecycle:
        props.preventDestroy || props.importExisting
          ? {
              preventDestroy: props.preventDestroy || undefined,
              // Adopted VMs (docs/adr-0005-import.md): these describe how a VM was made or
              // where its data lives, not what it should be. Reconciling them would re-clone,
              // move or reformat disks, or rewrite a cloud-init drive the VM may not have.
              // Sizes, CPU, memory, name, tags and on-boot stay managed.
              ignoreChanges: props.importExisting ? ["clone", "disk", "efi_disk", "initialization", "description"] : undefined,
            }
          : undefined,
    });
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

  /** MAC address of the first NIC. */
  get mac(): string {
    return Token.asString(`\${try(${this.address}.mac_addresses[0], "")}`);
  }
}
