import { Testing } from "cdktn";
import { CustomStack } from "../examples/custom-stack";

describe("examples/custom-stack.ts (constructs without an inventory)", () => {
  it("synthesizes a GPU VM by mapping, its mapping, and a deploy step after the VM", () => {
    const json = JSON.parse(Testing.synth(new CustomStack(Testing.app(), "ml")));
    const vm: any = Object.values(json.resource.proxmox_virtual_environment_vm)[0];
    expect(vm.hostpci).toEqual([{ device: "hostpci0", mapping: expect.stringMatching(/^\$\{proxmox_hardware_mapping_pci\.gpu_mapping_[0-9A-F]{8}\.name\}$/), pcie: true, rombar: true, xvga: false }]);
    expect(vm.lifecycle).toEqual({ prevent_destroy: true, ignore_changes: ["clone", "initialization", "started", "node_name"] });
    const step: any = Object.values(json.resource.terraform_data)[0];
    expect(step.depends_on).toEqual([expect.stringMatching(/^proxmox_virtual_environment_vm\.ml-box_vm_/)]);
    expect(step.triggers_replace).toEqual({ vmid: "420", address: "10.0.0.42", config_hash: "set-me-from-ConfigHasher" });
  });
});
