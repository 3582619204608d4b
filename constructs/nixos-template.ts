import { Construct } from "constructs";
import { DataResource } from "cdktn";
import { VirtualEnvironmentVm } from "../.gen/providers/proxmox/virtual-environment-vm";
import { DownloadFile } from "../.gen/providers/proxmox/download-file";
import { networkDeviceJson, OS_DISK } from "./nixos-vm";

export interface NixosTemplateProps {
  /** VMID of the template. */
  readonly vmid: number;
  /** Node holding the template. */
  readonly node: string;
  /** "existing": only refer to a template made beforehand (from the VMA that nixos/ builds); "create": manage it here. @default "existing" */
  readonly mode?: "existing" | "create";
  /** Template VM name. @default "nixos-template" */
  readonly name?: string;
  /** Datastore for the template's disks. */
  readonly datastore: string;
  /** Datastore for downloaded images (content type "import"). @default "local" */
  readonly imageStorage?: string;
  /** URL of a NixOS qcow2 image to import as the boot disk ("create" mode). */
  readonly imageUrl?: string;
  /** SHA-256 of the image at imageUrl. @default none (not verified) */
  readonly imageSha256?: string;
  /** @default 4 */
  readonly cores?: number;
  /** @default 8192 */
  readonly memoryMiB?: number;
  /** @default 40 */
  readonly diskGiB?: number;
  /** Bridge for the template's NIC. @default "vmbr0" */
  readonly bridge?: string;
  /**
   * Opt-in first bootstrap: a local-exec step that runs scripts/bootstrap-template.ts
   * (nix build .#proxmox-template, upload the VMA, qmrestore, qm template). @default false
   */
  readonly bootstrapImage?: boolean;
}

/**
 * The NixOS template every VM is cloned from: q35, OVMF with an EFI disk, virtio-scsi, serial
 * console, QEMU guest agent (a clone inherits it, and an enabled agent that is not running makes
 * the provider wait), and a cloud-init drive.
 */
export class NixosTemplate extends Construct {
  readonly vmid: number;
  readonly nodeName: string;
  readonly vm?: VirtualEnvironmentVm;
  readonly bootstrap?: DataResource;

  constructor(scope: Construct, id: string, props: NixosTemplateProps) {
    super(scope, id);
    this.vmid = props.vmid;
    this.nodeName = props.node;
    if (props.bootstrapImage) {
      this.bootstrap = new DataResource(this, "bootstrap", {
        triggersReplace: { vmid: String(props.vmid), node: props.node },
        provisioners: [
          {
            type: "local-exec",
            command: "node --import tsx scripts/bootstrap-template.ts --from-env",
            workingDir: "../../..",
            environment: {
              FLEET_TEMPLATE_SPEC: JSON.stringify({ vmid: props.vmid, node: props.node, storage: props.datastore, name: props.name ?? "nixos-template" }),
            },
          },
        ],
      });
    }
    if ((props.mode ?? "existing") !== "create") return;

    const image = props.imageUrl
      ? new DownloadFile(this, "image", {
          nodeName: props.node,
          datastoreId: props.imageStorage ?? "local",
          contentType: "import",
          url: props.imageUrl,
          fileName: `${props.name ?? "nixos-template"}.qcow2`,
          checksum: props.imageSha256,
          checksumAlgorithm: props.imageSha256 ? "sha256" : undefined,
        })
      : undefined;

    this.vm = new VirtualEnvironmentVm(this, "template", {
      name: props.name ?? "nixos-template",
      nodeName: props.node,
      vmId: props.vmid,
      template: true,
      started: false,
      description: "NixOS template (cloud-init, QEMU guest agent), managed by cdktf",
      tags: ["nixos", "template"],
      machine: "q35",
      bios: "ovmf",
      efiDisk: { datastoreId: props.datastore, type: "4m", preEnrolledKeys: false },
      scsiHardware: "virtio-scsi-single",
      cpu: { type: "host", cores: props.cores ?? 4 },
      memory: { dedicated: props.memoryMiB ?? 8192 },
      agent: { enabled: true, trim: true },
      serialDevice: [{ device: "socket" }],
      vga: { type: "serial0" },
      operatingSystem: { type: "l26" },
      // The same OS disk interface and boot order as the VMA that nixos/ builds, so clones of
      // either kind of template are alike (docs/adr-0008-os-disk-virtio0.md).
      bootOrder: [OS_DISK],
      disk: [
        {
          interface: OS_DISK,
          datastoreId: props.datastore,
          size: props.diskGiB ?? 40,
          fileFormat: "raw",
          discard: "on",
          iothread: true,
          importFromAttribute: image?.id,
        },
      ],
      initialization: { datastoreId: props.datastore, interface: "ide2", type: "nocloud", ipConfig: [{ ipv4: { address: "dhcp" } }] },
    });
    this.vm.addOverride("network_device", networkDeviceJson([{ bridge: props.bridge ?? "vmbr0" }]));
  }
}
