/**
 * proxmox-nixos-fleet: CDK Terrain (cdktn) constructs for private clouds of Proxmox VE virtual machines that
 * run NixOS (bpg/proxmox 0.112.0 provider). The public API; everything not exported here is
 * internal.
 *
 * The first page of the API documentation (docs/api-intro.md, `npm run docs`) shows the
 * constructs in a stack of their own; examples/custom-stack.ts is the same stack, tested.
 *
 * @packageDocumentation
 */

// Constructs
export { NixosTemplate } from "./constructs/nixos-template";
export type { NixosTemplateProps } from "./constructs/nixos-template";
export { NixosVm, OS_DISK } from "./constructs/nixos-vm";
export type { NixosVmProps, NetworkDevice } from "./constructs/nixos-vm";
export { PciMapping, gpuHostpci } from "./constructs/gpu";
export { NixosDeployStep, DEPLOY_SPEC_ENV, DEFAULT_DEPLOY_COMMAND } from "./constructs/deploy-step";
export type { NixosDeployStepProps, DeploySpecDocument } from "./constructs/deploy-step";
export { FleetHost } from "./constructs/fleet-host";
export type { FleetHostProps } from "./constructs/fleet-host";
export { ConfigHasher } from "./constructs/config-hash";

// Stacks from an inventory
export { buildFleet, ClusterStack, HostsStack } from "./stacks/fleet";
export type { FleetOptions, FleetStacks } from "./stacks/fleet";

// The inventory: types, loader and validator
export { loadInventory, parseInventory, validateInventory, InventoryError, formatProblem, hostPorts, stackOf, fleetFilePath, PROJECT_ROOT } from "./constructs/inventory";
export type {
  Inventory, ClusterSpec, TemplateSpec, PciMappingSpec, UserSpec, NetworkSpec, GpuSpec, ServiceSettings, HostSpec, DeploySpec, Problem,
} from "./constructs/inventory";

// Roles and secrets (the tables both the constructs and the NixOS flake read)
export { ROLES, ROLE_NAMES, PLATFORM_ROLES } from "./constructs/roles";
export type { RoleName, RoleSpec, HealthCheck } from "./constructs/roles";
export { SECRETS, secretEnvFiles } from "./constructs/secrets";
export type { SecretSpec, SecretEnvFile } from "./constructs/secrets";

// The generated provider bindings the constructs' types use, so a consumer needs no `cdktf get` for them.
export { ProxmoxProvider } from "./.gen/providers/proxmox/provider";
export type { ProxmoxProviderConfig } from "./.gen/providers/proxmox/provider";
export { VirtualEnvironmentVm } from "./.gen/providers/proxmox/virtual-environment-vm";
export type { VirtualEnvironmentVmConfig, VirtualEnvironmentVmHostpci } from "./.gen/providers/proxmox/virtual-environment-vm";
export { HardwareMappingPci } from "./.gen/providers/proxmox/hardware-mapping-pci";
export { DownloadFile } from "./.gen/providers/proxmox/download-file";
export { VirtualEnvironmentPool } from "./.gen/providers/proxmox/virtual-environment-pool";
