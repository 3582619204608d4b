/**
 * The promises of docs/adr-0019-provider-hands-off.md under the real provider's behaviour: real
 * OpenTofu with the real bpg/proxmox provider against the Proxmox VE API simulator (sandbox/pve, a
 * STAND-IN for a Proxmox VE cluster), read back from the simulator's tasks (PVE's /cluster/tasks).
 * What the provider does without them (reboots every VM of a stack at once, re-clones every
 * host, shuts a stateful VM down before Proxmox refuses to delete it) is shown where it matters
 * by the same edit with the lifecycle taken out of the synthesized JSON.
 */
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Inventory, parseInventory } from "../constructs/inventory";
import { asPlan, EXIT_PLAN_FAILED, renderPlans } from "../scripts/lib/plan-comment";
import { ROOT } from "./helpers";
import { SimFleet, vmsOf } from "./sim-harness";
import { ALL_PRIVILEGES } from "../sandbox/pve";

const RAFT = "examples/raft-platform.json";
const raw = () => JSON.parse(readFileSync(join(ROOT, RAFT), "utf8"));
const inv = (data: unknown): Inventory => parseInventory(JSON.stringify(data), RAFT);
const POWER = /^qm(shutdown|stop|start|reboot|destroy)$/;
/** Power and destroy tasks since `from`, as "type:vmid". */
const powerSince = (f: SimFleet, from: number) => f.cluster.tasks.slice(from).filter((t) => POWER.test(t.type)).map((t) => `${t.type}:${t.id}`);

async function applied(data = raw()): Promise<SimFleet> {
  const fleet = await SimFleet.create(inv(data));
  for (const s of ["cluster", "platform"]) expect((await fleet.lifecycle(s, { validate: false })).failed ?? "").toBe("");
  return fleet;
}

describe("no reboot, re-clone or lost stateful host as a side effect of an apply (examples/raft-platform.json)", () => {
  let fleet: SimFleet;
  /** The inventory last applied to this fleet. */
  let current = raw();
  beforeAll(async () => {
    fleet = await applied();
  });
  afterAll(() => fleet.close());

  it("rotating the admin key changes no VM: no task on any VM, no pending change, and the plan is empty afterwards", async () => {
    const data = raw();
    const key = join(fleet.dir, "new_admin");
    spawnSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "admin@new", "-f", key]);
    data.users[0].sshKeys = [readFileSync(`${key}.pub`, "utf8").trim()];
    fleet.resynth(inv(data));
    current = data;
    const configs = JSON.stringify(Object.values(fleet.cluster.vms).map((v) => [v.config, v.pending]));
    const from = fleet.cluster.tasks.length;
    const r = await fleet.run("platform", "apply", "-auto-approve", "-input=false");
    expect(r.status).toBe(0);
    expect(powerSince(fleet, from)).toEqual([]);
    expect(fleet.cluster.tasks.slice(from).filter((t) => t.type !== "vncproxy").map((t) => t.type)).toEqual([]);
    expect(JSON.stringify(Object.values(fleet.cluster.vms).map((v) => [v.config, v.pending]))).toBe(configs);
    // NixOS takes the new key: every host's deploy step ran again
    expect(r.out).toMatch(/raft-cf1_deploy_step_\w+: Creation complete/);
    expect((await fleet.run("platform", "plan", "-detailed-exitcode", "-input=false")).status).toBe(0);
  });

  it("a new template VMID, or the template on another node: the plan changes no VM (nothing replaced, nothing deleted)", async () => {
    for (const edit of [(d: any) => (d.template.vmid = 9001), (d: any) => (d.template.node = "pve2")]) {
      const data = structuredClone(current);
      edit(data);
      fleet.resynth(inv(data));
      const plan = await fleet.run("platform", "plan", "-detailed-exitcode", "-input=false");
      expect({ status: plan.status, replaced: plan.out.match(/must be replaced|will be destroyed/g) ?? [] }).toEqual({ status: 0, replaced: [] });
    }
    fleet.resynth(inv(current));
  });

  it("without the lifecycle the provider does (the same edit): every VM is replaced, or shut down and started again", async () => {
    const json = fleet.json("platform");
    for (const vm of vmsOf(json)) {
      delete vm.lifecycle.ignore_changes;
      delete vm.reboot_after_update;
      vm.clone.vm_id = 9001;
    }
    fleet.writeJson("platform", json);
    const plan = await fleet.run("platform", "plan", "-input=false");
    expect(plan.out.match(/_nixos_vm_\w+ must be replaced/g)?.length).toBe(12);
    // a new admin key in the cloud-init drive: every running VM is shut down and started again
    for (const vm of vmsOf(json)) {
      vm.clone.vm_id = 9000;
      vm.initialization.user_account.keys = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGu9hU1Y3a6RNKLo2WbcAVuUj8m4g3Qwk0xGJtHPv2yK admin@new"];
    }
    fleet.writeJson("platform", json);
    const from = fleet.cluster.tasks.length;
    expect((await fleet.run("platform", "apply", "-auto-approve", "-input=false")).status).toBe(0);
    const power = powerSince(fleet, from);
    for (const vmid of Object.keys(fleet.cluster.vms).filter((v) => v !== "9000")) expect(power.filter((p) => p.endsWith(`:${vmid}`)).length).toBeGreaterThan(0);
    fleet.resynth(inv(raw()));
  });
});

describe("the comment's impact per host, against what the real provider leaves in Proxmox", () => {
  it("cores +2 on the Raft members: the comment says reboot (cpu) for each member and nothing for the rest; the apply leaves the new value pending on each and stops none", async () => {
    const fleet = await applied();
    const data = raw();
    const members = data.hosts.filter((h: any) => h.stateful);
    for (const h of members) h.cores += 2;
    data.hosts.find((h: any) => h.name === "raft-iam").tags = ["edge"];
    fleet.resynth(inv(data));
    expect((await fleet.run("platform", "plan", "-input=false", "-out=tfplan")).status).toBe(0);
    const md = renderPlans([{ label: "platform", plan: asPlan(JSON.parse((await fleet.run("platform", "show", "-json", "tfplan")).out)) }]).markdown;
    const rows = md.split("\n").filter((l) => /^\| `raft-[a-z0-9-]+ \(platform\)`/.test(l));
    expect(rows.sort()).toEqual([
      ...members.map((h: any) => `| \`${h.name} (platform)\` | \`reboot by its deploy step, in the rolling order (cpu)\` |`),
      "| `raft-iam (platform)` | `changed in place, no reboot (tags)` |",
    ].sort());
    const from = fleet.cluster.tasks.length;
    expect((await fleet.run("platform", "apply", "-auto-approve", "-input=false", "tfplan")).status).toBe(0);
    expect(powerSince(fleet, from)).toEqual([]);
    for (const h of members) expect(fleet.cluster.vms[String(h.vmid)].pending).toEqual({ cores: String(h.cores) });
    expect(fleet.cluster.vms["9306"]).toMatchObject({ pending: {}, config: expect.objectContaining({ tags: "edge;iam;nixos" }) });
  });
});

describe("removing a stateful host from the inventory (examples/raft-platform.json)", () => {
  it("the plan stops before any change: the VM keeps running, no task touches it, and the comment says it is kept", async () => {
    const fleet = await applied();
    const data = raw();
    const gone = data.hosts.find((h: any) => h.name === "raft-db3");
    data.hosts = data.hosts.filter((h: any) => h !== gone);
    fleet.resynth(inv(data));
    const from = fleet.cluster.tasks.length;
    const r = await fleet.run("platform", "apply", "-auto-approve", "-input=false");
    expect(r.status).not.toBe(0);
    expect(r.out.replace(/[│\s]+/g, " ")).toContain("stateful VM(s) raft-db3 (VMID 9305 on pve3) are in Proxmox but not in the inventory: nothing was changed.");
    expect(fleet.cluster.vms["9305"].status).toBe("running");
    expect(fleet.cluster.tasks.slice(from).map((t) => `${t.type}:${t.id}`)).toEqual([]);
    // what the pull request shows: the failed plan, and that the VM is kept
    const errorFile = join(fleet.dir, "platform.error");
    writeFileSync(errorFile, (await fleet.run("platform", "plan", "-input=false")).out);
    const c = spawnSync("node", ["--import", "tsx", join(ROOT, "scripts", "plan-comment.ts"), errorFile], { cwd: ROOT, encoding: "utf8" });
    expect(c.status).toBe(EXIT_PLAN_FAILED);
    expect(c.stdout).toContain("stateful VM `raft-db3 (VMID 9305 on pve3)` is no longer in the inventory: **it is kept as it is (running, protected); nothing was changed.**");

    // retired: Terraform forgets it, the VM stays as it is, running and protected
    data.retired = [{ name: "raft-db3", vmid: 9305 }];
    fleet.resynth(inv(data));
    expect((await fleet.run("platform", "plan", "-input=false", "-out=tfplan")).status).toBe(0);
    const md = renderPlans([{ label: "platform", plan: asPlan(JSON.parse((await fleet.run("platform", "show", "-json", "tfplan")).out)) }]).markdown;
    expect(md).toMatch(/#### Retired \(kept, no longer managed\)\s+- host `raft-db3`: `proxmox_virtual_environment_vm\.raft-db3_nixos_vm_[0-9A-F]{8}` \(`platform`\) — the VM keeps running/);
    expect(md).not.toMatch(/would be destroyed or replaced/);
    const apply = await fleet.run("platform", "apply", "-auto-approve", "-input=false", "tfplan");
    expect(apply.status).toBe(0);
    expect(fleet.cluster.tasks.slice(from).filter((t) => t.id === "9305").map((t) => t.type)).toEqual([]);
    expect(fleet.cluster.vms["9305"]).toMatchObject({ status: "running", config: expect.objectContaining({ protection: "1" }) });
    expect((await fleet.run("platform", "state", "list")).out).not.toContain("raft-db3");
    expect((await fleet.run("platform", "plan", "-detailed-exitcode", "-input=false")).status).toBe(0);
  });

  it("without the guard the provider shuts the VM down first, then Proxmox refuses: it is left stopped", async () => {
    const fleet = await applied();
    const data = raw();
    data.hosts = data.hosts.filter((h: any) => h.name !== "raft-db3");
    fleet.resynth(inv(data));
    const json = fleet.json("platform");
    delete json.data;
    fleet.writeJson("platform", json);
    const r = await fleet.run("platform", "apply", "-auto-approve", "-input=false");
    expect(r.status).not.toBe(0);
    expect(r.out.replace(/\s+/g, " ")).toContain("can't remove VM 9305 - protection mode enabled");
    expect(fleet.cluster.vms["9305"].status).toBe("stopped");
  });
});

describe("a VM that HA or an operator moved to another node (fleet.json)", () => {
  it("a host with a mapped GPU is left where it is (an online migrate back is refused by Proxmox); a host without one is migrated back online", async () => {
    const data = JSON.parse(readFileSync(join(ROOT, "fleet.json"), "utf8"));
    const fleet = await SimFleet.create(parseInventory(JSON.stringify(data), "fleet.json"), {
      // the GPU's mapping has an entry on pve2 too, as a cluster with the same card in two nodes
      seed: (c) => (c.pci.pve2 = { ...(c.pci.pve2 ?? {}), "0000:01:00.0": { ...c.pci.pve1["0000:01:00.0"] } }),
    });
    data.pciMappings[0].map.push({ ...data.pciMappings[0].map[0], node: "pve2" });
    fleet.resynth(parseInventory(JSON.stringify(data), "fleet.json"));
    for (const s of ["cluster", "ai"]) expect((await fleet.lifecycle(s, { validate: false })).failed ?? "").toBe("");
    const vllm = data.hosts.find((h: any) => h.name === "tappaas-vllm");
    const litellm = data.hosts.find((h: any) => h.name === "tappaas-litellm");
    fleet.cluster.vms[String(vllm.vmid)].node = "pve2";
    fleet.cluster.vms[String(litellm.vmid)].node = "pve2";
    const from = fleet.cluster.tasks.length;
    const r = await fleet.run("ai", "apply", "-auto-approve", "-input=false");
    expect({ status: r.status, out: r.status === 0 ? "" : r.out.slice(-2000) }).toEqual({ status: 0, out: "" });
    expect(fleet.cluster.tasks.slice(from).filter((t) => t.type === "qmigrate").map((t) => `${t.id}:${t.exitstatus}`)).toEqual([`${litellm.vmid}:OK`]);
    expect([fleet.cluster.vms[String(vllm.vmid)].node, fleet.cluster.vms[String(litellm.vmid)].node]).toEqual(["pve2", "pve1"]);
    expect((await fleet.run("ai", "plan", "-detailed-exitcode", "-input=false")).status).toBe(0);
  });
});

describe("renaming a PCI mapping (fleet.json: gpu0 -> gpu-a)", () => {
  it("the cluster stack makes the new mapping and deletes the old one, the GPU host's change waits for its deploy's reboot, and nothing fails", async () => {
    const data = JSON.parse(readFileSync(join(ROOT, "fleet.json"), "utf8"));
    const fleet = await SimFleet.create(parseInventory(JSON.stringify(data), "fleet.json"));
    for (const s of ["cluster", "ai"]) expect((await fleet.lifecycle(s, { validate: false })).failed ?? "").toBe("");
    data.pciMappings[0].name = "gpu-a";
    data.hosts.find((h: any) => h.name === "tappaas-vllm").gpu.mapping = "gpu-a";
    fleet.resynth(parseInventory(JSON.stringify(data), "fleet.json"));
    const from = fleet.cluster.tasks.length;
    for (const s of ["cluster", "ai"]) {
      const r = await fleet.run(s, "apply", "-auto-approve", "-input=false");
      expect({ s, status: r.status, out: r.status === 0 ? "" : r.out.slice(-1500) }).toEqual({ s, status: 0, out: "" });
    }
    expect(Object.keys(fleet.cluster.mappings)).toEqual(["gpu-a"]);
    expect(powerSince(fleet, from)).toEqual([]);
    expect(fleet.cluster.vms["8201"].pending.hostpci0).toMatch(/^mapping=gpu-a,/);
    for (const s of ["cluster", "ai"]) expect((await fleet.run(s, "plan", "-detailed-exitcode", "-input=false")).status).toBe(0);
  });
});

describe("removing a data disk of a stateful host (examples/raft-platform.json + a data disk on raft-db1)", () => {
  it("the comment names the disk as detached and exits 3; applied anyway, Proxmox refuses on the protected VM and the disk stays", async () => {
    const data = raw();
    const db1 = data.hosts.find((h: any) => h.name === "raft-db1");
    db1.dataDisks = [{ sizeGiB: 50 }];
    const fleet = await applied(data);
    expect(fleet.cluster.vms["9303"].config.scsi1).toMatch(/^local-lvm:vm-9303-disk-\d+,/);
    delete db1.dataDisks;
    fleet.resynth(inv(data));
    expect((await fleet.run("platform", "plan", "-input=false", "-out=tfplan")).status).toBe(0);
    const r = renderPlans([{ label: "platform", plan: asPlan(JSON.parse((await fleet.run("platform", "show", "-json", "tfplan")).out)) }]);
    expect(r.exitCode).toBe(3);
    expect(r.markdown).toContain("> - **`raft-db1`** (stateful): `scsi1` (`platform`)");
    expect(r.markdown).toMatch(/\| `raft-db1 \(platform\)` \| `data disk scsi1 DETACHED/);
    const apply = await fleet.run("platform", "apply", "-auto-approve", "-input=false", "tfplan");
    expect(apply.status).not.toBe(0);
    expect(apply.out.replace(/[│\s]+/g, " ")).toContain("can't remove drive 'scsi1' - protection mode enabled");
    expect(fleet.cluster.vms["9303"].config.scsi1).toMatch(/^local-lvm:vm-9303-disk-\d+,/);
  });
});

describe("a host's pool removed (fleet.json: the ai hosts in pool ai)", () => {
  const FLEET = () => JSON.parse(readFileSync(join(ROOT, "fleet.json"), "utf8"));
  const parse = (d: unknown) => parseInventory(JSON.stringify(d), "fleet.json");
  const members = (f: SimFleet, pool: string) => f.cluster.pools[pool]?.members.map((m) => Number(m.split("/")[1])).sort();
  const apply = async (f: SimFleet, s: string) => {
    const r = await f.run(s, "apply", "-auto-approve", "-input=false");
    return { s, status: r.status, out: r.status === 0 ? "" : r.out.replace(/\s+/g, " ").slice(-1500) };
  };

  it("the VM leaves the pool, the pool is deleted by the first apply after its last VM left, no VM is touched, and the plans are empty afterwards", async () => {
    const data = FLEET();
    const fleet = await SimFleet.create(parse(data));
    // the cluster stack as the previous release wrote it (one resource per pool): its state moves
    const old = fleet.json("cluster");
    const ours = Object.values<any>(old.resource.proxmox_virtual_environment_pool)[0];
    old.resource.proxmox_virtual_environment_pool = Object.fromEntries(["ai", "platform"].map((p) => [`pool-${p}`, { pool_id: p, comment: ours.comment }]));
    delete old.moved;
    delete old.data;
    delete old.check;
    fleet.writeJson("cluster", old);
    for (const s of ["cluster", "ai"]) expect((await fleet.lifecycle(s, { validate: false })).failed ?? "").toBe("");
    fleet.resynth(parse(data));
    const moved = await fleet.run("cluster", "apply", "-auto-approve", "-input=false");
    expect(moved.out).toMatch(/0 added, 0 changed, 0 destroyed/);
    expect(Object.keys(fleet.cluster.pools).sort()).toEqual(["ai", "platform"]);
    expect(members(fleet, "ai")).toEqual([8201, 8202, 8203]);

    const from = fleet.cluster.tasks.length;
    delete data.hosts.find((h: any) => h.name === "tappaas-litellm").pool;
    fleet.resynth(parse(data));
    // the comment says it (the VM itself shows no change: bpg suppresses a cleared pool_id)
    expect((await fleet.run("ai", "plan", "-input=false", "-out=tfplan")).status).toBe(0);
    const md = renderPlans([{ label: "ai", plan: asPlan(JSON.parse((await fleet.run("ai", "show", "-json", "tfplan")).out)) }]).markdown;
    // (the inventory entry is in the deploy step's hash: its NixOS is re-applied, the same generation)
    expect(md.split("\n").filter((l) => l.startsWith("| `tappaas-"))).toEqual(["| `tappaas-litellm (ai)` | `leaves pool ai (the provider never takes a VM out of a pool)` |", "| `tappaas-litellm` | `config_hash` |"]);
    expect(md).not.toMatch(/new host/i);
    for (const s of ["cluster", "ai"]) expect(await apply(fleet, s)).toEqual({ s, status: 0, out: "" });
    expect(members(fleet, "ai")).toEqual([8201, 8203]);
    for (const s of ["cluster", "ai"]) expect((await fleet.run(s, "plan", "-detailed-exitcode", "-input=false")).status).toBe(0);

    // the last two: the cluster stack runs first and keeps the pool while it has a member
    for (const h of data.hosts) if (h.pool === "ai") delete h.pool;
    fleet.resynth(parse(data));
    for (const s of ["cluster", "ai"]) expect(await apply(fleet, s)).toEqual({ s, status: 0, out: "" });
    expect(members(fleet, "ai")).toEqual([]);
    expect((await fleet.run("ai", "plan", "-detailed-exitcode", "-input=false")).status).toBe(0);
    expect((await fleet.run("cluster", "plan", "-detailed-exitcode", "-input=false")).status).toBe(2);
    expect(await apply(fleet, "cluster")).toEqual({ s: "cluster", status: 0, out: "" });
    expect(Object.keys(fleet.cluster.pools)).toEqual(["platform"]);
    expect((await fleet.run("cluster", "plan", "-detailed-exitcode", "-input=false")).status).toBe(0);
    // only pool changes: no task on any VM
    expect(fleet.cluster.tasks.slice(from).filter((t) => t.type !== "vncproxy").map((t) => `${t.type}:${t.id}`)).toEqual([]);

    // a pool named again: the VMs join it (bpg's own update), nothing runs for the leave
    data.hosts.find((h: any) => h.name === "tappaas-vllm").pool = "ai";
    fleet.resynth(parse(data));
    for (const s of ["cluster", "ai"]) expect(await apply(fleet, s)).toEqual({ s, status: 0, out: "" });
    expect(members(fleet, "ai")).toEqual([8201]);
    for (const s of ["cluster", "ai"]) expect((await fleet.run(s, "plan", "-detailed-exitcode", "-input=false")).status).toBe(0);
  });

  it("what the provider does on its own (the leave and the kept pools taken out of the JSON): the VMs stay in the pool and Proxmox refuses to delete it", async () => {
    const data = FLEET();
    const fleet = await SimFleet.create(parse(data));
    for (const s of ["cluster", "ai"]) expect((await fleet.lifecycle(s, { validate: false })).failed ?? "").toBe("");
    for (const h of data.hosts) if (h.pool === "ai") delete h.pool;
    fleet.resynth(parse(data));
    const cluster = fleet.json("cluster");
    const pool = Object.values<any>(cluster.resource.proxmox_virtual_environment_pool)[0];
    pool.for_each = pool.for_each.replace(/^\$\{setunion\((\[[^\]]*\]), .*\)\}$/, "$${toset($1)}");
    fleet.writeJson("cluster", cluster);
    const ai = fleet.json("ai");
    delete ai.resource.terraform_data.pool_leave;
    fleet.writeJson("ai", ai);
    const r = await apply(fleet, "cluster");
    expect(r.status).not.toBe(0);
    expect(r.out).toContain("delete pool failed: pool 'ai' is not empty (contains VM 8201)");
    expect(await apply(fleet, "ai")).toEqual({ s: "ai", status: 0, out: "" });
    expect(members(fleet, "ai")).toEqual([8201, 8202, 8203]);
    expect((await fleet.run("ai", "plan", "-detailed-exitcode", "-input=false")).status).toBe(0);
  });
});

describe("hosts cloned to other nodes than the template's (examples/ha-3-node-platform.json: template on pve1, local-lvm not shared)", () => {
  const HA = "examples/ha-3-node-platform.json";
  const ha = () => parseInventory(readFileSync(join(ROOT, HA), "utf8"), HA);
  const AWAY = { core2: 9112, core3: 9113, edge2: 9122, edge3: 9123 };
  const WARNING = "hosts core2, core3, edge2, edge3 (on pve2, pve3) are cloned on pve1 and then migrated, because datastore \"local-lvm\" is not shared";

  it("every plan warns, naming them; the apply clones each on pve1 and migrates it to its node; the plans are empty afterwards", async () => {
    const fleet = await SimFleet.create(ha());
    expect((await fleet.run("cluster", "init", "-input=false")).status).toBe(0);
    const plan = await fleet.run("cluster", "plan", "-input=false", "-out=tfplan");
    expect(plan.status).toBe(0);
    expect(plan.out.replace(/\s+/g, " ")).toContain(WARNING);
    const md = renderPlans([{ label: "cluster", plan: asPlan(JSON.parse((await fleet.run("cluster", "show", "-json", "tfplan")).out)) }]).markdown;
    expect(md).toContain(`> **Checks that failed** (the plan goes on):\n> - \`check.clone_path\` (\`cluster\`): ${WARNING}`);
    for (const s of fleet.stacks) {
      const r = await fleet.lifecycle(s, { validate: false });
      expect({ s, failed: r.failed ?? "", replan: r.replan?.status }).toEqual({ s, failed: "", replan: 0 });
    }
    for (const [host, vmid] of Object.entries(AWAY)) {
      // PVE's clone task carries the source VMID; the migrate task the new VM's (bpg vm.go 2420-2466)
      const migrate = fleet.tasks("qmigrate", vmid);
      expect({ host, migrated: migrate.map((t) => `${t.node}:${t.exitstatus}`), node: fleet.cluster.vms[String(vmid)].node }).toEqual({ host, migrated: ["pve1:OK"], node: host.endsWith("2") ? "pve2" : "pve3" });
    }
    expect(fleet.tasks("qmigrate").length).toBe(4);
  });

  it("with the datastore shared: no warning, and every host is cloned straight to its node (no migrate)", async () => {
    const fleet = await SimFleet.create(ha(), { seed: (c) => (c.storages["local-lvm"].shared = true) });
    expect((await fleet.run("cluster", "init", "-input=false")).status).toBe(0);
    const plan = await fleet.run("cluster", "plan", "-input=false");
    expect(plan.status).toBe(0);
    expect(plan.out).not.toMatch(/Check block assertion failed|cloned on pve1/);
    for (const s of fleet.stacks) expect((await fleet.lifecycle(s, { validate: false })).failed ?? "").toBe("");
    expect(fleet.tasks("qmigrate")).toEqual([]);
    for (const [host, vmid] of Object.entries(AWAY)) expect([host, fleet.cluster.vms[String(vmid)].node]).toEqual([host, host.endsWith("2") ? "pve2" : "pve3"]);
  });

  it("a token without VM.Migrate: the apply fails with Proxmox's refusal and the clone stays on pve1 outside the state; every apply fails the same way until the token has it, then the next one migrates that clone (docs/troubleshooting.md)", async () => {
    const fleet = await SimFleet.create(ha(), { seed: (c) => (c.token.privileges = new Set(ALL_PRIVILEGES.filter((p) => p !== "VM.Migrate"))) });
    expect((await fleet.lifecycle("cluster", { validate: false })).failed ?? "").toBe("");
    const stack = fleet.stacks.find((s) => s !== "cluster" && JSON.stringify(fleet.json(s)).includes("core2"))!;
    const first = await fleet.lifecycle(stack, { validate: false });
    expect((first.failed ?? "").replace(/\s+/g, " ")).toContain("error migrating VM: received an HTTP 403 response - Reason: Permission check failed (/vms/9112, VM.Migrate)");
    expect(fleet.cluster.vms["9112"].node).toBe("pve1");
    expect((await fleet.run(stack, "state", "list")).out).not.toMatch(/core2_nixos_vm/);
    // bpg retries a clone refused as "already exists" and takes it as done (v0.112.0
    // proxmox/nodes/vms/vms.go 35-40, proxmox/retry/retry.go 106-160), then migrates again
    const again = await fleet.run(stack, "apply", "-auto-approve", "-input=false");
    expect(again.out.replace(/\s+/g, " ")).toContain("Permission check failed (/vms/9112, VM.Migrate)");
    const clones = fleet.tasks("qmclone").length;
    fleet.cluster.token.privileges.add("VM.Migrate");
    const fixed = await fleet.run(stack, "apply", "-auto-approve", "-input=false");
    expect({ status: fixed.status, out: fixed.status === 0 ? "" : fixed.out.slice(-1500) }).toEqual({ status: 0, out: "" });
    expect(fleet.tasks("qmclone").length).toBe(clones);
    for (const [host, vmid] of Object.entries(AWAY)) expect([host, fleet.cluster.vms[String(vmid)].node]).toEqual([host, host.endsWith("2") ? "pve2" : "pve3"]);
    expect((await fleet.run(stack, "plan", "-detailed-exitcode", "-input=false")).status).toBe(0);
  });

  it("cluster.storage not available on a host's node: the cluster stack's plan fails before anything is made, naming the node, the datastore and the hosts", async () => {
    const fleet = await SimFleet.create(ha(), { seed: (c) => (c.storages["local-lvm"].nodes = ["pve1", "pve2"]) });
    expect((await fleet.run("cluster", "init", "-input=false")).status).toBe(0);
    const from = fleet.cluster.tasks.length;
    const plan = await fleet.run("cluster", "apply", "-auto-approve", "-input=false");
    expect(plan.status).not.toBe(0);
    expect(plan.out.replace(/\s+/g, " ")).toContain('datastore "local-lvm" (cluster.storage) is not enabled on node "pve3", where hosts core3, edge3 are cloned: nothing was changed.');
    expect(fleet.cluster.tasks.length).toBe(from);
    expect(Object.keys(fleet.cluster.pools)).toEqual([]);
  });
});
