/**
 * Terraform contract: every stack of every example inventory goes through real Terraform 1.11
 * (init, validate, plan, apply, plan again) against the committed bpg/proxmox 0.111.0 schema.
 * The provider binary is the project's provider double, a STAND-IN for the provider's behaviour
 * and the Proxmox API (__tests__/provider-double/); Terraform core's own checks are real.
 */
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "./helpers";
import { DoubleFleet, load, one, vmsOf } from "./provider-double/harness";

const INVENTORIES = ["fleet.json", ...readdirSync(join(ROOT, "examples")).filter((f) => f.endsWith(".json")).map((f) => `examples/${f}`)];

describe.each(INVENTORIES)("%s through real Terraform with the provider double", (rel) => {
  let fleet: DoubleFleet;
  beforeAll(async () => {
    fleet = await DoubleFleet.create(load(rel));
  });

  it("every stack validates, applies, and plans empty afterwards (no perpetual diff)", async () => {
    // The cluster stack first (every host stack depends on it), then the host stacks side by
    // side, as `cdktf deploy '*'` runs them.
    const check = async (stack: string) => {
      const r = await fleet.lifecycle(stack);
      expect(r.failed ?? "").toBe("");
      // -detailed-exitcode: 0 = no changes, 2 = changes
      if (r.replan!.status !== 0) throw new Error(`stack ${stack}: the plan after apply is not empty:\n${r.replan!.out}`);
    };
    const [first, ...rest] = fleet.stacks;
    await check(first);
    await Promise.all(rest.map(check));
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
