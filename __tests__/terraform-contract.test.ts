/**
 * Terraform contract: every stack of every example inventory goes through real Terraform 1.11
 * (init, validate, plan, apply, plan again) against the committed bpg/proxmox 0.111.0 schema.
 * The provider binary is the project's provider double, a STAND-IN for the provider's behaviour
 * and the Proxmox API (__tests__/provider-double/); Terraform core's own checks are real.
 */
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { Inventory, parseInventory } from "../constructs/inventory";
import { ROOT } from "./helpers";
import { DoubleFleet } from "./provider-double/harness";

const INVENTORIES = ["fleet.json", ...readdirSync(join(ROOT, "examples")).filter((f) => f.endsWith(".json")).map((f) => `examples/${f}`)];
const load = (rel: string): Inventory => parseInventory(readFileSync(join(ROOT, rel), "utf8"), join(ROOT, rel));
const vmsOf = (json: any): any[] => Object.values(json.resource?.proxmox_virtual_environment_vm ?? {});
/** A nested block of at most one item: cdktf writes it as an object, Terraform also takes a list. */
const one = (b: any): any => (Array.isArray(b) ? b[0] : b);

describe.each(INVENTORIES)("%s through real Terraform with the provider double", (rel) => {
  let fleet: DoubleFleet;
  beforeAll(async () => {
    fleet = await DoubleFleet.create(load(rel));
  });

  it("every stack validates, applies, and plans empty afterwards (no perpetual diff)", async () => {
    for (const stack of fleet.stacks) {
      const r = await fleet.lifecycle(stack);
      expect(r.failed ?? "").toBe("");
      // -detailed-exitcode: 0 = no changes, 2 = changes
      if (r.replan!.status !== 0) throw new Error(`stack ${stack}: the plan after apply is not empty:\n${r.replan!.out}`);
    }
    // What the cluster holds afterwards: every VM boots from the template's grown OS disk.
    const cluster = fleet.cluster();
    const inv = load(rel);
    for (const h of inv.hosts) {
      const vm = cluster.vms[String(h.vmid)];
      expect({ host: h.name, disks: Object.keys(vm.disks).filter((d) => !d.startsWith("scsi")), boot: vm.boot, size: vm.disks.virtio0.size }).toEqual({ host: h.name, disks: ["virtio0"], boot: ["virtio0"], size: h.diskGiB });
      expect(vm.running).toBe(true);
    }
    // The API token is a credential: never in state.
    for (const stack of fleet.stacks) {
      const state = readFileSync(join(fleet.dir, `terraform.${stack}.tfstate`), "utf8");
      expect(state).not.toContain(fleet.double.env.PROXMOX_VE_API_TOKEN.split("=")[1]);
    }
  });

  it("synthesizes what the provider needs: full network_device objects, OS disk virtio0 booted, IPv4 wait, migrate, pools, complete PCI mappings", () => {
    const inv = load(rel);
    const pools = new Set(inv.hosts.flatMap((h) => (h.pool ? [h.pool] : [])));
    const cluster = fleet.json("cluster");
    expect(Object.values(cluster.resource?.proxmox_virtual_environment_pool ?? {}).map((p: any) => p.pool_id).sort()).toEqual([...pools].sort());
    for (const m of Object.values<any>(cluster.resource?.proxmox_hardware_mapping_pci ?? {}))
      for (const e of m.map) expect(e).toEqual(expect.objectContaining({ iommu_group: expect.any(Number), subsystem_id: expect.stringMatching(/^[0-9a-f]{4}:[0-9a-f]{4}$/) }));
    for (const stack of fleet.stacks.filter((s) => s !== "cluster")) {
      const json = fleet.json(stack);
      for (const vm of vmsOf(json)) {
        for (const nic of vm.network_device) expect(Object.keys(nic).sort()).toEqual(["bridge", "disconnected", "enabled", "firewall", "mac_address", "model", "mtu", "queues", "rate_limit", "trunks", "vlan_id"]);
        expect(vm.disk[0].interface).toBe("virtio0");
        expect(vm.boot_order).toEqual(["virtio0"]);
        expect(one(one(vm.agent).wait_for_ip)).toEqual({ ipv4: true });
        expect(vm.migrate).toBe(true);
      }
      expect(JSON.stringify(json.output ?? {})).not.toContain("mac_addresses[0]");
    }
  });
});

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
    expect((await fleet.lifecycle("cluster")).replan!.status).toBe(0);
    const r = await fleet.lifecycle("ai");
    expect(r.replan!.status).toBe(2);
    expect(r.replan!.out).toContain('- interface         = "virtio0"');
    const vm = Object.values(fleet.cluster().vms).find((v) => v.name === "tappaas-vllm")!;
    expect(Object.keys(vm.disks).sort()).toEqual(["scsi0", "virtio0"]);
  });

  it("cloning into a pool that does not exist fails (the cluster stack creates the pools)", async () => {
    const fleet = await DoubleFleet.create(inv());
    const r = await fleet.lifecycle("ai");
    expect(r.failed).toContain("pool 'ai' does not exist");
  });

  it("a VM using a PCI mapping without iommu_group does not start", async () => {
    const fleet = await DoubleFleet.create(inv());
    const json = fleet.json("cluster");
    for (const m of Object.values<any>(json.resource.proxmox_hardware_mapping_pci)) for (const e of m.map) delete e.iommu_group;
    fleet.writeJson("cluster", json);
    expect((await fleet.lifecycle("cluster")).replan!.status).toBe(0);
    const r = await fleet.lifecycle("ai");
    expect(r.failed).toContain("no 'iommugroup' for device '0000:01:00.0'");
  });

  it("moving a VM to another node replaces it without migrate, and migrates it with migrate = true", async () => {
    const data = JSON.parse(readFileSync(join(ROOT, "examples", "ha-3-node-platform.json"), "utf8"));
    const fleet = await DoubleFleet.create(parseInventory(JSON.stringify(data), "ha.json"));
    for (const s of fleet.stacks) expect((await fleet.lifecycle(s)).failed ?? "").toBe("");
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
    for (const s of ["cluster", "ai"]) expect((await fleet.lifecycle(s)).failed ?? "").toBe("");
    const json = fleet.json("ai");
    vmsOf(json)[0].disk[0].size = 1;
    fleet.writeJson("ai", json);
    const r = await fleet.tf("ai", "apply", "-auto-approve", "-input=false");
    expect(r.status).not.toBe(0);
    expect(r.out).toMatch(/disk resize failure: requested size \(1G\) is lower than current size/);
  });

  it("without the guest-agent privilege the address lists are empty and the DHCP host's address is empty", async () => {
    const fleet = await DoubleFleet.create(inv(), (c) => (c.auth.privileges = c.auth.privileges.filter((p) => p !== "VM.GuestAgent.Audit")));
    for (const s of ["cluster", "ai"]) expect((await fleet.lifecycle(s)).failed ?? "").toBe("");
    const out = await fleet.tf("ai", "output", "-json");
    const ip = Object.entries<any>(JSON.parse(out.out)).find(([k]) => k.startsWith("tappaas-litellm_ip"))![1].value;
    expect(ip).toBe("");
  });
});

describe("adopting an existing VM (import block) through real Terraform", () => {
  it("imports it, and the first apply changes nothing that reboots it or touches its boot order, disks or NICs", async () => {
    const data = JSON.parse(readFileSync(join(ROOT, "fleet.json"), "utf8"));
    const host = data.hosts.find((h: any) => h.name === "tappaas-litellm");
    host.existing = true;
    const existingVm = {
      node: host.node,
      name: host.name,
      disks: { scsi0: { storage: "local-lvm", size: 64 }, scsi1: { storage: "local-lvm", size: 100 } },
      boot: ["scsi0", "net0"],
      nics: [
        { bridge: "vmbr0", model: "virtio", mac: "BC:24:11:AA:BB:01", firewall: true },
        { bridge: "vmbr1", model: "e1000", mac: "BC:24:11:AA:BB:02" },
      ],
      hostpci: [],
      running: true,
      cores: 8,
      memory: 16384,
      tags: ["legacy"],
    };
    const fleet = await DoubleFleet.create(parseInventory(JSON.stringify(data), "fleet.json"), (c) => (c.vms[String(host.vmid)] = structuredClone(existingVm)));
    expect((await fleet.lifecycle("cluster")).failed ?? "").toBe("");
    expect((await fleet.tf("ai", "init", "-input=false")).status).toBe(0);
    const plan = await fleet.tf("ai", "plan", "-input=false");
    expect(plan.status).toBe(0);
    const block = plan.out.slice(plan.out.indexOf("# proxmox_virtual_environment_vm.tappaas-litellm"));
    const vmPlan = block.slice(0, block.indexOf("\n    }\n") + 6);
    expect(vmPlan).toContain('(imported from "pve1/8202")');
    for (const attr of ["boot_order", "disk", "network_device", "bios", "machine", "reboot", "started", "cpu", "memory", "agent", "vga"]) expect(vmPlan).not.toMatch(new RegExp(`^\\s*[~+-] ${attr}\\b`, "m"));
    const apply = await fleet.tf("ai", "apply", "-auto-approve", "-input=false");
    expect(apply.status).toBe(0);
    const vm = fleet.cluster().vms[String(host.vmid)];
    expect({ disks: vm.disks, boot: vm.boot, nics: vm.nics }).toEqual({ disks: existingVm.disks, boot: existingVm.boot, nics: existingVm.nics });
    expect((await fleet.tf("ai", "plan", "-detailed-exitcode", "-input=false")).status).toBe(0);
  });
});
