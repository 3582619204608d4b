/**
 * Using the constructs directly, without an inventory: one GPU VM cloned from the NixOS template,
 * its PCI mapping, and the deploy step that applies `nixos#ml-box` once the VM exists.
 * Synthesized by __tests__/examples.test.ts, so it stays correct.
 *
 *   new App() -> new CustomStack(app, "ml") -> app.synth()
 */
import { TerraformStack } from "cdktn";
import { Construct } from "constructs";
// The package's public entry (in another project: from "proxmox-nixos-fleet").
import { NixosDeployStep, NixosVm, PciMapping, ProxmoxProvider, gpuHostpci } from "../index";

export class CustomStack extends TerraformStack {
  constructor(scope: Construct, id: string) {
    super(scope, id);
    new ProxmoxProvider(this, "proxmox", {}); // endpoint and token from PROXMOX_VE_* variables

    const gpu = new PciMapping(this, "gpu", { name: "rtx4090", map: [{ node: "pve1", id: "10de:2684", path: "0000:41:00.0", subsystemId: "10de:16f1", iommuGroup: 40 }] });

    const vm = new NixosVm(this, "ml-box", {
      name: "ml-box",
      node: "pve1",
      vmid: 420,
      templateVmid: 8100,
      datastore: "local-zfs",
      cores: 16,
      memoryMiB: 65536,
      diskGiB: 200,
      network: { address: "10.0.0.42/24", gateway: "10.0.0.1" },
      user: { name: "ops", sshKeys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMBdEQbWhgNDvUkSvdg4aRf6CDzDCIrCGUKcIJmGvsZo ops@laptop"] },
      // A reference (not the literal name): Terraform then creates the mapping before the VM.
      hostpci: gpuHostpci({ mapping: gpu.resource.name }),
      preventDestroy: true,
    });

    new NixosDeployStep(this, "deploy", {
      spec: {
        host: "ml-box",
        vmid: 420,
        node: "pve1",
        roles: ["vllm"],
        finalAddress: "10.0.0.42",
        flake: "./nixos",
        user: "ops",
        sshPort: 22,
        health: [{ role: "vllm", kind: "http", port: 8000, path: "/health" }],
        timeouts: { sshSeconds: 600, switchSeconds: 3600, healthSeconds: 600 },
      },
      agentAddress: vm.ipv4,
      vmAddress: vm.address,
      configHash: "set-me-from-ConfigHasher", // see constructs/config-hash.ts
      dependsOn: [vm.vm],
    });
  }
}
