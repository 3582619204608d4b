/**
 * Terraform contract, the failure side: what real OpenTofu, the real bpg/proxmox provider or
 * Proxmox refuses makes these fail. Proxmox is the API simulator (sandbox/pve, a STAND-IN for a
 * PVE cluster, with PVE's own refusals and texts).
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseInventory } from "../constructs/inventory";
import { ROOT } from "./helpers";
import { load, one, SimFleet, vmsOf } from "./sim-harness";


describe("the contract fails on what real Terraform or Proxmox refuse", () => {
  const inv = () => load("fleet.json");

  it("a network_device object without one of its 11 keys is refused by terraform validate", async () => {
    const fleet = await SimFleet.create(inv());
    const json = fleet.json("ai");
    delete (vmsOf(json)[0].network_device[0] as any).mtu;
    fleet.writeJson("ai", json);
    expect((await fleet.run("ai", "init", "-input=false")).status).toBe(0);
    const r = await fleet.run("ai", "validate");
    expect(r.status).not.toBe(0);
    expect(r.out).toMatch(/Inappropriate value for attribute "network_device"[\s\S]*"mtu"[\s\S]*required/);
  });

  it("an attribute the schema does not have is refused by terraform validate", async () => {
    const fleet = await SimFleet.create(inv());
    const json = fleet.json("ai");
    one(vmsOf(json)[0].cpu).turbo = true;
    fleet.writeJson("ai", json);
    await fleet.run("ai", "init", "-input=false");
    const r = await fleet.run("ai", "validate");
    expect(r.status).not.toBe(0);
    expect(r.out).toContain('No argument or block type is named "turbo"');
  });

  it("a clone that declares scsi0 instead of the template's virtio0 gets a blank extra disk, keeps a 4 GiB OS disk, and the re-plan does not notice (why NixosVm fixes the OS disk at virtio0)", async () => {
    const fleet = await SimFleet.create(inv());
    const json = fleet.json("ai");
    for (const vm of vmsOf(json)) vm.disk[0].interface = "scsi0";
    fleet.writeJson("ai", json);
    expect((await fleet.lifecycle("cluster", { validate: false })).replan!.status).toBe(0);
    const r = await fleet.lifecycle("ai", { validate: false });
    // bpg reads back the disks a clone declares (disk.Read with the planned interfaces): the
    // template's virtio0 is not in the plan, so nothing shows the mistake.
    expect(r.replan!.status).toBe(0);
    const vm = Object.values(fleet.cluster.vms).find((v) => v.config.name === "tappaas-vllm")!;
    expect(Object.keys(vm.config).filter((k) => /^(scsi|virtio)\d+$/.test(k)).sort()).toEqual(["scsi0", "virtio0"]);
    expect(vm.config.virtio0).toMatch(/,size=4G/);
    expect(vm.config.boot).toBe("order=virtio0");
  });

  it("cloning into a pool that does not exist fails (the cluster stack creates the pools)", async () => {
    const fleet = await SimFleet.create(inv());
    const r = await fleet.lifecycle("ai", { validate: false });
    expect(r.failed!.replace(/\s+/g, " ")).toContain("Permission check failed (pool 'ai' does not exist)");
  });

  it("a VM using a PCI mapping without iommu_group does not start", async () => {
    const fleet = await SimFleet.create(inv());
    const json = fleet.json("cluster");
    for (const m of Object.values<any>(json.resource.proxmox_hardware_mapping_pci)) for (const e of m.map) delete e.iommu_group;
    fleet.writeJson("cluster", json);
    expect((await fleet.lifecycle("cluster", { validate: false })).replan!.status).toBe(0);
    const r = await fleet.lifecycle("ai", { validate: false });
    expect(r.failed!.replace(/\s+/g, " ")).toContain("PCI device mapping invalid (hardware probably changed): missing expected property 'iommugroup' for device '0000:01:00.0'");
  });

  it("moving a VM to another node replaces it without migrate, and migrates it with migrate = true", async () => {
    const data = JSON.parse(readFileSync(join(ROOT, "examples", "ha-3-node-platform.json"), "utf8"));
    const fleet = await SimFleet.create(parseInventory(JSON.stringify(data), "ha.json"));
    for (const s of fleet.stacks) expect((await fleet.lifecycle(s, { validate: false })).failed ?? "").toBe("");
    const stack = fleet.stacks.find((s) => s !== "cluster")!;
    const json = fleet.json(stack);
    const vm = vmsOf(json)[0];
    const other = data.cluster.nodes.find((n: string) => n !== vm.node_name);
    vm.node_name = other;
    fleet.writeJson(stack, json);
    const migrate = await fleet.run(stack, "plan", "-input=false");
    expect(migrate.out).toMatch(/will be updated in-place/);
    expect(migrate.out).not.toMatch(/must be replaced/);
    delete vm.migrate;
    fleet.writeJson(stack, json);
    const replace = await fleet.run(stack, "plan", "-input=false");
    expect(replace.out).toMatch(/must be replaced[\s\S]*node_name[\s\S]*# forces replacement/);
  });

  it("shrinking a disk fails at apply", async () => {
    const fleet = await SimFleet.create(inv());
    for (const s of ["cluster", "ai"]) expect((await fleet.lifecycle(s, { validate: false })).failed ?? "").toBe("");
    const json = fleet.json("ai");
    vmsOf(json)[0].disk[0].size = 1;
    fleet.writeJson("ai", json);
    const r = await fleet.run("ai", "apply", "-auto-approve", "-input=false");
    expect(r.status).not.toBe(0);
    // bpg proxmoxtf/resource/vm/vm.go (update path, disk resize planning)
    expect(r.out.replace(/\s+/g, " ")).toMatch(/Cannot shrink local-lvm:vm-8202-disk-\d in VM 8202, it is not supported!/);
  });

  it("without the guest-agent privilege the address lists are empty and the DHCP host's address is empty", async () => {
    const fleet = await SimFleet.create(inv(), { seed: (c) => ["VM.GuestAgent.Audit", "VM.GuestAgent.Unrestricted"].forEach((p) => c.token.privileges.delete(p)) });
    for (const s of ["cluster", "ai"]) expect((await fleet.lifecycle(s, { validate: false })).failed ?? "").toBe("");
    const out = await fleet.run("ai", "output", "-json");
    const ip = Object.entries<any>(JSON.parse(out.out)).find(([k]) => k.startsWith("tappaas-litellm_ip"))![1].value;
    expect(ip).toBe("");
  });
});
