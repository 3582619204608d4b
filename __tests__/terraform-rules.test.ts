/**
 * Terraform contract, the failure side: what real Terraform or the provider and Proxmox refuse
 * makes these fail, and adopted VMs and a created template go through real Terraform too.
 * The provider binary is the project's provider double, a STAND-IN for the provider's behaviour
 * and the Proxmox API (__tests__/provider-double/); Terraform core's own checks are real.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseInventory } from "../constructs/inventory";
import { ROOT } from "./helpers";
import { DoubleFleet, load, one, vmsOf } from "./provider-double/harness";


describe("the contract fails on what real Terraform or Proxmox refuse", () => {
  const inv = () => load("fleet.json");

  it("a network_device object without one of its 11 keys is refused by terraform validate", async () => {
    const fleet = await DoubleFleet.create(inv());
    const json = fleet.json("ai");
    delete (vmsOf(json)[0].network_device[0] as any).mtu;
    fleet.writeJson("ai", json);
    expect((await fleet.tf("ai", "init", "-input=false")).status).toBe(0);
    const r = await fleet.tf("ai", "validate");
    expect(r.status).not.toBe(0);
    expect(r.out).toMatch(/Inappropriate value for attribute "network_device"[\s\S]*"mtu"[\s\S]*required/);
  });

  it("an attribute the schema does not have is refused by terraform validate", async () => {
    const fleet = await DoubleFleet.create(inv());
    const json = fleet.json("ai");
    one(vmsOf(json)[0].cpu).turbo = true;
    fleet.writeJson("ai", json);
    await fleet.tf("ai", "init", "-input=false");
    const r = await fleet.tf("ai", "validate");
    expect(r.status).not.toBe(0);
    expect(r.out).toContain('No argument or block type is named "turbo"');
  });

  it("a clone that declares scsi0 instead of the template's virtio0 gets a blank extra disk and never plans empty", async () => {
    const fleet = await DoubleFleet.create(inv());
    const json = fleet.json("ai");
    for (const vm of vmsOf(json)) vm.disk[0].interface = "scsi0";
    fleet.writeJson("ai", json);
    expect((await fleet.lifecycle("cluster", { validate: false })).replan!.status).toBe(0);
    const r = await fleet.lifecycle("ai", { validate: false });
    expect(r.replan!.status).toBe(2);
    expect(r.replan!.out).toContain('- interface         = "virtio0"');
    const vm = Object.values(fleet.cluster().vms).find((v) => v.name === "tappaas-vllm")!;
    expect(Object.keys(vm.disks).sort()).toEqual(["scsi0", "virtio0"]);
  });

  it("cloning into a pool that does not exist fails (the cluster stack creates the pools)", async () => {
    const fleet = await DoubleFleet.create(inv());
    const r = await fleet.lifecycle("ai", { validate: false });
    expect(r.failed).toContain("pool 'ai' does not exist");
  });

  it("a VM using a PCI mapping without iommu_group does not start", async () => {
    const fleet = await DoubleFleet.create(inv());
    const json = fleet.json("cluster");
    for (const m of Object.values<any>(json.resource.proxmox_hardware_mapping_pci)) for (const e of m.map) delete e.iommu_group;
    fleet.writeJson("cluster", json);
    expect((await fleet.lifecycle("cluster", { validate: false })).replan!.status).toBe(0);
    const r = await fleet.lifecycle("ai", { validate: false });
    expect(r.failed).toContain("no 'iommugroup' for device '0000:01:00.0'");
  });

  it("moving a VM to another node replaces it without migrate, and migrates it with migrate = true", async () => {
    const data = JSON.parse(readFileSync(join(ROOT, "examples", "ha-3-node-platform.json"), "utf8"));
    const fleet = await DoubleFleet.create(parseInventory(JSON.stringify(data), "ha.json"));
    for (const s of fleet.stacks) expect((await fleet.lifecycle(s, { validate: false })).failed ?? "").toBe("");
    const stack = fleet.stacks.find((s) => s !== "cluster")!;
    const json = fleet.json(stack);
    const vm = vmsOf(json)[0];
    const other = data.cluster.nodes.find((n: string) => n !== vm.node_name);
    vm.node_name = other;
    fleet.writeJson(stack, json);
    const migrate = await fleet.tf(stack, "plan", "-input=false");
    expect(migrate.out).toMatch(/will be updated in-place/);
    expect(migrate.out).not.toMatch(/must be replaced/);
    delete vm.migrate;
    fleet.writeJson(stack, json);
    const replace = await fleet.tf(stack, "plan", "-input=false");
    expect(replace.out).toMatch(/must be replaced[\s\S]*node_name[\s\S]*# forces replacement/);
  });

  it("shrinking a disk fails at apply", async () => {
    const fleet = await DoubleFleet.create(inv());
    for (const s of ["cluster", "ai"]) expect((await fleet.lifecycle(s, { validate: false })).failed ?? "").toBe("");
    const json = fleet.json("ai");
    vmsOf(json)[0].disk[0].size = 1;
    fleet.writeJson("ai", json);
    const r = await fleet.tf("ai", "apply", "-auto-approve", "-input=false");
    expect(r.status).not.toBe(0);
    expect(r.out).toMatch(/disk resize failure: requested size \(1G\) is lower than current size/);
  });

  it("without the guest-agent privilege the address lists are empty and the DHCP host's address is empty", async () => {
    const fleet = await DoubleFleet.create(inv(), (c) => (c.auth.privileges = c.auth.privileges.filter((p) => p !== "VM.GuestAgent.Audit")));
    for (const s of ["cluster", "ai"]) expect((await fleet.lifecycle(s, { validate: false })).failed ?? "").toBe("");
    const out = await fleet.tf("ai", "output", "-json");
    const ip = Object.entries<any>(JSON.parse(out.out)).find(([k]) => k.startsWith("tappaas-litellm_ip"))![1].value;
    expect(ip).toBe("");
  });
});
