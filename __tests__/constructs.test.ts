import { Testing, TerraformStack } from "cdktn";
import { NixosVm } from "../constructs/nixos-vm";
import { NixosTemplate } from "../constructs/nixos-template";
import { PciMapping, gpuHostpci } from "../constructs/gpu";
import { NixosDeployStep, DEPLOY_SPEC_ENV } from "../constructs/deploy-step";
import { VirtualEnvironmentVm } from "../.gen/providers/proxmox/virtual-environment-vm";
import { HardwareMappingPci } from "../.gen/providers/proxmox/hardware-mapping-pci";
import { DownloadFile } from "../.gen/providers/proxmox/download-file";

const user = { name: "admin", sshKeys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMBdEQbWhgNDvUkSvdg4aRf6CDzDCIrCGUKcIJmGvsZo admin@laptop"] };
const base = { name: "web1", node: "pve1", vmid: 300, templateVmid: 8100, datastore: "local-lvm", user };

describe("NixosVm", () => {
  it("clones the template in full with q35, OVMF, virtio-scsi, serial console, agent and cloud-init", () => {
    const synth = Testing.synthScope((s) => new NixosVm(s, "vm", base));
    expect(synth).toHaveResourceWithProperties(VirtualEnvironmentVm, {
      name: "web1",
      node_name: "pve1",
      vm_id: 300,
      clone: { vm_id: 8100, full: true, node_name: "pve1", datastore_id: "local-lvm", retries: 3 },
      machine: "q35",
      bios: "ovmf",
      efi_disk: { datastore_id: "local-lvm", type: "4m", pre_enrolled_keys: false },
      scsi_hardware: "virtio-scsi-single",
      cpu: { type: "host", cores: 2, sockets: 1 },
      memory: { dedicated: 2048 },
      agent: { enabled: true, timeout: "15m", trim: true, wait_for_ip: { ipv4: true } },
      migrate: true,
      serial_device: [{ device: "socket" }],
      boot_order: ["virtio0"],
      on_boot: true,
      timeout_clone: 1800,
      initialization: expect.objectContaining({ ip_config: [{ ipv4: { address: "dhcp" } }], user_account: { username: "admin", keys: user.sshKeys } }),
    });
  });

  it("gives a static address, DNS, VLAN, data disks, startup order, pool, tags and prevent_destroy", () => {
    const synth = Testing.synthScope(
      (s) =>
        new NixosVm(s, "vm", {
          ...base,
          network: { address: "10.0.0.5/24", gateway: "10.0.0.1", vlan: 30 },
          dnsServers: ["10.0.0.2"],
          domain: "lan",
          dataDisks: [{ sizeGiB: 100 }, { sizeGiB: 5, storage: "tank" }],
          startupOrder: 3,
          pool: "p",
          tags: ["b", "a"],
          preventDestroy: true,
        }),
    );
    const vm: any = Object.values(JSON.parse(synth).resource.proxmox_virtual_environment_vm)[0];
    expect(vm.initialization.ip_config).toEqual([{ ipv4: { address: "10.0.0.5/24", gateway: "10.0.0.1" } }]);
    expect(vm.initialization.dns).toEqual({ domain: "lan", servers: ["10.0.0.2"] });
    expect(vm.network_device).toEqual([{ bridge: "vmbr0", disconnected: null, enabled: null, firewall: false, mac_address: null, model: "virtio", mtu: null, queues: null, rate_limit: null, trunks: null, vlan_id: 30 }]);
    expect(vm.disk.map((d: any) => [d.interface, d.size, d.datastore_id])).toEqual([
      ["virtio0", 20, "local-lvm"],
      ["scsi1", 100, "local-lvm"],
      ["scsi2", 5, "tank"],
    ]);
    expect(vm.startup).toEqual({ order: 3 });
    expect(vm.pool_id).toBe("p");
    expect(vm.tags).toEqual(["a", "b", "stateful"]); // the mark plan-comment reads from Proxmox
    expect(vm.protection).toBe(true);
    expect(vm.lifecycle).toEqual({ prevent_destroy: true, ignore_changes: ["clone", "initialization", "started"] });
    expect(vm.reboot_after_update).toBe(false);
  });

  it("picks the agent's IPv4 by interface name, skipping lo and loopback/link-local addresses", () => {
    let vm!: NixosVm;
    Testing.synthScope((s) => (vm = new NixosVm(s, "vm", base)));
    expect(vm.ipv4).toContain(".network_interface_names");
    expect(vm.ipv4).toContain('if n != "lo"');
    expect(vm.ipv4).toContain('!startswith(ip, "127.")');
    expect(vm.ipv4).not.toMatch(/ipv4_addresses\[\d\]/);
  });

  it("adopts an existing VM with an import block using <node>/<vmid>", () => {
    const synth = JSON.parse(Testing.synthScope((s) => new NixosVm(s, "vm", { ...base, importExisting: true })));
    expect(synth.import).toEqual([{ id: "pve1/300", to: expect.stringMatching(/^proxmox_virtual_environment_vm\./) }]);
  });
});

describe("GPU passthrough", () => {
  it("creates a cluster PCI mapping with per-node devices", () => {
    const synth = Testing.synthScope((s) => new PciMapping(s, "gpu", { name: "gpu0", map: [{ node: "pve1", id: "10de:2204", path: "0000:01:00.0", subsystemId: "10de:147d", iommuGroup: 14 }] }));
    expect(synth).toHaveResourceWithProperties(HardwareMappingPci, { name: "gpu0", map: [{ node: "pve1", id: "10de:2204", path: "0000:01:00.0", subsystem_id: "10de:147d", iommu_group: 14 }] });
  });

  it("passes the GPU by mapping name by default, with pcie and rombar", () => {
    expect(gpuHostpci({ mapping: "gpu0" })).toEqual([{ device: "hostpci0", mapping: "gpu0", id: undefined, pcie: true, rombar: true, xvga: false }]);
  });

  it("passes a raw PCI id only when asked (needs root@pam)", () => {
    expect(gpuHostpci({ mapping: "gpu0", rawId: "0000:01:00", xvga: true })[0]).toMatchObject({ id: "0000:01:00", mapping: undefined, xvga: true });
  });
});

describe("NixosTemplate", () => {
  it("only refers to an existing template by default", () => {
    let t!: NixosTemplate;
    const synth = Testing.synthScope((s) => (t = new NixosTemplate(s, "t", { vmid: 8100, node: "pve1", datastore: "local-lvm" })));
    expect(synth).not.toHaveResource(VirtualEnvironmentVm);
    expect(t.vmid).toBe(8100);
  });

  it("creates a UEFI q35 template with EFI disk, agent, serial console and cloud-init drive, importing an image", () => {
    const synth = Testing.synthScope(
      (s) => new NixosTemplate(s, "t", { vmid: 8100, node: "pve1", datastore: "local-lvm", mode: "create", imageUrl: "https://example.invalid/nixos.qcow2" }),
    );
    expect(synth).toHaveResourceWithProperties(DownloadFile, { content_type: "import", node_name: "pve1", file_name: "nixos-template.qcow2" });
    expect(synth).toHaveResourceWithProperties(VirtualEnvironmentVm, {
      template: true,
      vm_id: 8100,
      machine: "q35",
      bios: "ovmf",
      efi_disk: { datastore_id: "local-lvm", type: "4m", pre_enrolled_keys: false },
      agent: { enabled: true, trim: true },
      serial_device: [{ device: "socket" }],
      cpu: { type: "host", cores: 4 },
      memory: { dedicated: 8192 },
      initialization: expect.objectContaining({ interface: "ide2" }),
      boot_order: ["virtio0"],
      disk: [expect.objectContaining({ interface: "virtio0", size: 40, import_from: expect.stringContaining("proxmox_download_file.") })],
    });
  });

  it("adds the opt-in VMA bootstrap step (nix build, upload, qmrestore, qm template)", () => {
    const synth = JSON.parse(Testing.synthScope((s) => new NixosTemplate(s, "t", { vmid: 8100, node: "pve1", datastore: "local-lvm", bootstrapImage: true })));
    const step: any = Object.values(synth.resource.terraform_data)[0];
    expect(step.provisioner[0]["local-exec"].command).toContain("scripts/bootstrap-template.ts");
    expect(JSON.parse(step.provisioner[0]["local-exec"].environment.FLEET_TEMPLATE_SPEC)).toMatchObject({ vmid: 8100, node: "pve1" });
  });
});

describe("NixosDeployStep", () => {
  const spec = {
    host: "web1",
    vmid: 300,
    node: "pve1",
    roles: ["litellm"],
    flake: "./nixos",
    user: "admin",
    sshPort: 22,
    health: [],
    timeouts: { sshSeconds: 1, switchSeconds: 1, healthSeconds: 1 },
  };

  function synthStep(extra: object) {
    const app = Testing.app();
    const stack = new TerraformStack(app, "s");
    new NixosDeployStep(stack, "d", { spec, configHash: "abc", ...extra });
    return JSON.parse(Testing.synth(stack));
  }

  it("hands its input to the script as one JSON document in one environment variable", () => {
    const json = synthStep({ spec: { ...spec, finalAddress: "10.0.0.5" } });
    const step: any = Object.values(json.resource.terraform_data)[0];
    const env = step.provisioner[0]["local-exec"].environment;
    expect(Object.keys(env)).toEqual([DEPLOY_SPEC_ENV]);
    expect(JSON.parse(env[DEPLOY_SPEC_ENV])).toMatchObject({ host: "web1", vmid: 300, finalAddress: "10.0.0.5", flake: "./nixos", user: "admin" });
    expect(step.triggers_replace).toEqual({ vmid: "300", address: "10.0.0.5", config_hash: "abc" });
  });

  it("escapes template sequences in static values and splices the agent address expression in; the agent's address is no trigger", () => {
    const json = synthStep({ spec: { ...spec, flake: "./nixos?x=${y}" }, agentAddress: "${vm.ip}" });
    const step: any = Object.values(json.resource.terraform_data)[0];
    const env = step.provisioner[0]["local-exec"].environment[DEPLOY_SPEC_ENV];
    expect(env).toContain('"flake":"./nixos?x=$${y}"');
    expect(env).toContain('"agentAddress":"${vm.ip}"');
    expect(step.triggers_replace).toEqual({ vmid: "300", config_hash: "abc" });
  });

});

describe("NixosDeployStep migration", () => {
  it("emits a moved block from the null_resource of the same name", () => {
    const app = Testing.app();
    const stack = new TerraformStack(app, "s");
    const step = new NixosDeployStep(stack, "d", {
      spec: { host: "h", vmid: 300, node: "pve1", roles: [], finalAddress: "10.0.0.5", flake: "./nixos", user: "admin", sshPort: 22, health: [], timeouts: { sshSeconds: 1, switchSeconds: 1, healthSeconds: 1 } },
      configHash: "abc",
      movedFromNullResource: true,
    });
    const json = JSON.parse(Testing.synth(stack));
    const id = (step.resource as any).friendlyUniqueId;
    expect(json.moved).toEqual([{ from: `null_resource.${id}`, to: `terraform_data.${id}` }]);
  });
});
