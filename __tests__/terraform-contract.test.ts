/**
 * Terraform contract on the real components: every stack of every example inventory goes
 * through real OpenTofu (init, validate, apply, plan again) with the real bpg/proxmox provider
 * (built from source by scripts/tools.mjs) against the Proxmox VE API simulator (sandbox/pve, a
 * STAND-IN for a Proxmox VE cluster, every request checked against PVE's API schema).
 */
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { parseInventory } from "../constructs/inventory";
import { ROOT } from "./helpers";
import { load, one, SimFleet, TOKEN, tools, vmsOf } from "./sim-harness";

const INVENTORIES = ["fleet.json", ...readdirSync(join(ROOT, "examples")).filter((f) => f.endsWith(".json")).map((f) => `examples/${f}`)];

/** Requests the simulator refused as PVE would refuse an unknown path (501) or parameter (400). */
const refused = (f: SimFleet) => f.sim.requests.filter((r) => r.status === 501 || r.status === 400 || r.status === 403).map((r) => `${r.method} ${r.path} ${r.status} ${r.body ?? ""}`);

describe.each(INVENTORIES)("%s: real OpenTofu + the real bpg provider against the PVE simulator", (rel) => {
  let fleet: SimFleet;
  beforeAll(async () => {
    fleet = await SimFleet.create(load(rel));
  });
  afterAll(() => fleet.close());

  it("every stack validates, applies, and plans empty afterwards; no request is unknown to PVE's schema, no answer strays from it", async () => {
    const check = async (stack: string) => {
      const r = await fleet.lifecycle(stack);
      expect(r.failed ?? "").toBe("");
      // Nothing the provider warns about (deprecated arguments, ignored values); our own clone
      // path check (constructs/clone-source.ts) is the one warning an inventory may earn.
      expect(r.apply!.out.replace(/Warning: Check block assertion failed[\s\S]*?check\.clone_path[^\n]*/g, "")).not.toContain("Warning:");
      // -detailed-exitcode: 0 = no changes, 2 = changes
      if (r.replan!.status !== 0) throw new Error(`stack ${stack}: the plan after apply is not empty:\n${r.replan!.out}`);
    };
    const [first, ...rest] = fleet.stacks;
    await check(first);
    await Promise.all(rest.map(check));
    expect(refused(fleet)).toEqual([]);
    // and every answer of the simulator has the shape of the schema's `returns`
    expect(fleet.sim.requests.filter((r) => r.returns).map((r) => `${r.method} ${r.path}: ${r.returns!.join("; ")}`)).toEqual([]);
    const inv = load(rel);
    for (const h of inv.hosts) {
      const vm = fleet.cluster.vms[String(h.vmid)];
      const disk = vm.config.virtio0.split(",");
      expect({ host: h.name, status: vm.status, boot: vm.config.boot, size: disk.find((x) => x.startsWith("size=")), protection: vm.config.protection }).toEqual({
        host: h.name,
        status: "running",
        boot: "order=virtio0",
        size: `size=${h.diskGiB ?? 20}G`,
        protection: h.stateful ? "1" : undefined,
      });
    }
    // The API token is a credential: never in state.
    for (const stack of fleet.stacks) expect(readFileSync(join(fleet.dir, `terraform.${stack}.tfstate`), "utf8")).not.toContain(TOKEN.secret);
  });

  it("synthesizes what the provider needs: full network_device objects, OS disk virtio0 booted, IPv4 wait, migrate, pools, complete PCI mappings", () => {
    const inv = load(rel);
    const pools = new Set(inv.hosts.flatMap((h) => (h.pool ? [h.pool] : [])));
    const cluster = fleet.json("cluster");
    // one resource, for_each over the inventory's pools and the kept ones (constructs/pools.ts)
    const poolRes = Object.values<any>(cluster.resource?.proxmox_virtual_environment_pool ?? {});
    // (also without any: a pool the last host left is kept until it is empty)
    expect(poolRes.length).toBe(1);
    expect(poolRes[0].for_each).toContain(`setunion(${JSON.stringify([...pools].sort())}, `);
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

  it("the second plan and a refresh change no power state (no start, stop, shutdown or reboot task)", async () => {
    const before = fleet.cluster.tasks.length;
    for (const stack of fleet.stacks) expect((await fleet.run(stack, "plan", "-detailed-exitcode", "-input=false")).status).toBe(0);
    expect(fleet.cluster.tasks.slice(before).map((t) => `${t.type}:${t.id}`)).toEqual([]);
  });
});

describe("fleet.json through real Terraform too (where present) with the real provider", () => {
  const tf = tools().tools.terraform;
  (tf ? it : it.skip)(`every stack applies and plans empty with Terraform ${tf?.version ?? "(absent)"}`, async () => {
    const fleet = await SimFleet.create(load("fleet.json"), { binary: "terraform" });
    for (const stack of fleet.stacks) {
      const r = await fleet.lifecycle(stack);
      expect({ stack, failed: r.failed ?? "", replan: r.replan!.status }).toEqual({ stack, failed: "", replan: 0 });
    }
    expect(refused(fleet)).toEqual([]);
  });
});
