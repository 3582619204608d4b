/**
 * What a plan does to each host's VM (docs/adr-0019-provider-hands-off.md): reboot, replace
 * (re-clone), data disk detached, destroyed, adopted, forgotten, or changed in place without a
 * reboot. From the plan's own actions and the attributes that change, against the table below.
 */

/**
 * Attributes whose change bpg/terraform-provider-proxmox v0.112.0 counts as needing a reboot:
 * `rebootRequired = true` in vmUpdate, proxmoxtf/resource/vm/vm.go (lines at that tag). With
 * reboot_after_update = false the change stays pending in Proxmox until the host's deploy step
 * reboots the VM (scripts/lib/pending-reboot.ts).
 */
export const REBOOT_ATTRIBUTES: Readonly<Record<string, string>> = {
  acpi: "vm.go 6192-6195",
  kvm_arguments: "vm.go 6198-6201",
  bios: "vm.go 6204-6207",
  keyboard_layout: "vm.go 6234-6237",
  machine: "vm.go 6240-6243",
  tablet_device: "vm.go 6259-6262",
  agent: "vm.go 6266-6290",
  amd_sev: "vm.go 6294-6299",
  audio_device: "vm.go 6303-6316",
  boot_order: "vm.go 6320-6331",
  cpu: "vm.go 6420-6477 (unless only vCPUs change and cpu is hotpluggable)",
  disk: "vm.go 6493-6532 (a drive's options; a resize alone is online)",
  efi_disk: "vm.go 6538-6547",
  tpm_state: "vm.go 6551-6577",
  rng: "vm.go 6581-6586",
  initialization: "vm.go 6592-6683",
  hostpci: "vm.go 6687-6701",
  numa: "vm.go 6705-6720",
  usb: "vm.go 6724-6738",
  memory: "vm.go 6740-6812 (unless an increase with memory hotplug)",
  operating_system: "vm.go 6850-6866",
  serial_device: "vm.go 6870-6877",
  vga: "vm.go 6895-6897",
  virtiofs: "vm.go 6901-6908",
  scsi_hardware: "vm.go 6912-6916",
  watchdog: "vm.go 6929-6956",
};

export interface VmChange {
  readonly actions: readonly string[];
  readonly before?: any;
  readonly after?: any;
  /** Attributes known only after apply (computed): not a change of the configuration. */
  readonly after_unknown?: any;
  readonly importing?: unknown;
}

const same = (a: unknown, b: unknown) => JSON.stringify(a ?? null) === JSON.stringify(b ?? null);

/**
 * Data disks (not the OS disk virtio0) an update removes: the provider deletes the drive from the
 * config, which Proxmox turns into `unusedN` (the volume is kept), and refuses on a protected VM
 * ("can't remove drive 'scsiN' - protection mode enabled", qemu-server Qemu.pm 2340-2341).
 */
export function detachedDisks(c: VmChange): string[] {
  const ifaces = (v: any) => new Set<string>((Array.isArray(v?.disk) ? v.disk : []).map((d: any) => String(d?.interface)));
  const after = ifaces(c.after);
  return [...ifaces(c.before)].filter((i) => i !== "virtio0" && !after.has(i)).sort();
}

/** One line per VM change: what happens to the host. */
export function vmImpact(c: VmChange): string {
  const a = c.actions;
  if (a.includes("forget")) return "forgotten: the VM keeps running as it is, unmanaged (retired)";
  if (a.includes("delete") && a.includes("create")) return "REPLACED: destroyed and cloned again (new disk, MAC, host key)";
  if (a.includes("delete")) return "DESTROYED";
  if (a.includes("create")) return c.importing ? "adopted (import)" : "created (cloned)";
  if (c.importing && !a.includes("update")) return "adopted (import), nothing changed";
  if (!a.includes("update")) return "unchanged";
  const keys = [...new Set([...Object.keys(c.before ?? {}), ...Object.keys(c.after ?? {})])].filter((k) => c.after_unknown?.[k] !== true && !same(c.before?.[k], c.after?.[k]));
  const reboot = keys.filter((k) => k in REBOOT_ATTRIBUTES).sort();
  const parts: string[] = [];
  if (c.importing) parts.push("adopted (import)");
  const detached = detachedDisks(c);
  if (detached.length) parts.push(`data disk ${detached.join(", ")} DETACHED (kept as unusedN; refused by Proxmox on a protected VM)`);
  parts.push(reboot.length ? `reboot by its deploy step, in the rolling order (${reboot.join(", ")})` : `changed in place, no reboot (${keys.sort().join(", ") || "provider settings"})`);
  return parts.join("; ");
}
