import { Construct } from "constructs";
import { HardwareMappingPci } from "../.gen/providers/proxmox/hardware-mapping-pci";
import type { VirtualEnvironmentVmHostpci } from "../.gen/providers/proxmox/virtual-environment-vm";
import type { GpuSpec, PciMappingSpec } from "./inventory";

/**
 * A cluster PCI resource mapping (proxmox_hardware_mapping_pci): names a device per node so VMs
 * can use it with an API token (raw PCI ids need root@pam).
 */
export class PciMapping extends Construct {
  readonly resource: HardwareMappingPci;
  readonly name: string;

  constructor(scope: Construct, id: string, spec: PciMappingSpec) {
    super(scope, id);
    this.name = spec.name;
    this.resource = new HardwareMappingPci(this, "mapping", {
      name: spec.name,
      comment: spec.comment ?? `GPU passthrough mapping ${spec.name}, managed by cdktf`,
      map: spec.map.map((m) => ({
        nodeAttribute: m.node,
        id: m.id,
        path: m.path,
        subsystemId: m.subsystemId,
        iommuGroup: m.iommuGroup,
      })),
    });
  }
}

/**
 * The hostpci entry for a passed-through GPU: by mapping name (default) or by raw PCI id
 * (needs root@pam; opt in with `rawId`). pcie needs q35 (which NixosVm uses).
 */
export function gpuHostpci(gpu: GpuSpec, mappingName?: string): VirtualEnvironmentVmHostpci[] {
  return [
    {
      device: "hostpci0",
      mapping: gpu.rawId ? undefined : (mappingName ?? gpu.mapping),
      id: gpu.rawId,
      pcie: gpu.pcie ?? true,
      rombar: gpu.rombar ?? true,
      xvga: gpu.xvga ?? false,
    },
  ];
}
