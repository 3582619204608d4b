/**
 * Adopted VMs (import blocks), a template the cluster stack creates, and plans that refuse,
 * through real OpenTofu with the real bpg/proxmox provider against the Proxmox VE API simulator
 * (sandbox/pve, a STAND-IN for a Proxmox VE cluster).
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseInventory } from "../constructs/inventory";
import { ROOT } from "./helpers";
import { SimFleet } from "./sim-harness";
import { addVm } from "../sandbox/pve";
import { asPlan, EXIT_PLAN_FAILED, EXIT_STATEFUL_DESTROY, renderPlans } from "../scripts/lib/plan-comment";
import { spawnSync } from "node:child_process";


describe('template mode "create" through real Terraform', () => {
  const createInventory = () => {
    const data = JSON.parse(readFileSync(join(ROOT, "fleet.json"), "utf8"));
    data.template = { ...data.template, mode: "create", imageUrl: "https://images.example.invalid/nixos.qcow2", diskGiB: 16 };
    delete data.template.bootstrapImage;
    return parseInventory(JSON.stringify(data), "fleet.json");
  };

  it("imports the image into a storage with the `import` content type, and the template plans empty afterwards", async () => {
    const fleet = await SimFleet.create(createInventory());
    const r = await fleet.lifecycle("cluster", { validate: false });
    expect(r.failed ?? "").toBe("");
    expect(r.replan!.status).toBe(0);
    const template = Object.values(fleet.cluster.vms).find((v) => v.config.template === "1" && v.config.name === "nixos-template");
    expect(template?.config.virtio0).toMatch(/,size=16G/);
    expect(template?.config.boot).toBe("order=virtio0");
  });

  it("fails where the image storage lacks the `import` content type (PVE < 8.4 or not enabled)", async () => {
    const fleet = await SimFleet.create(createInventory(), { seed: (c) => {
      for (const s of Object.values(c.storages)) s.content = s.content.filter((x) => x !== "import");
    } });
    const r = await fleet.lifecycle("cluster", { validate: false });
    // pve-storage Status.pm download_url, before the task: the provider reports it as an HTTP 500.
    expect(r.failed!.replace(/\s+/g, " ")).toContain("storage 'local' is not configured for content-type 'import'");
  });
});

describe("adopting an existing VM (import block) through real OpenTofu and the real provider", () => {
  it("imports it, and the first apply changes nothing that reboots it or touches its boot order, disks or NICs", async () => {
    const data = JSON.parse(readFileSync(join(ROOT, "fleet.json"), "utf8"));
    const host = data.hosts.find((h: any) => h.name === "tappaas-litellm");
    host.existing = true;
    // A VM made by hand: SCSI disks, boot from scsi0 then the network, two NICs, 8 cores.
    const existing = {
      name: host.name,
      scsi0: "local-lvm:64",
      scsi1: "local-lvm:100",
      boot: "order=scsi0;net0",
      net0: "virtio=BC:24:11:AA:BB:01,bridge=vmbr0,firewall=1",
      net1: "e1000=BC:24:11:AA:BB:02,bridge=vmbr1",
      cores: "8",
      memory: "16384",
      tags: "legacy",
      agent: "1",
    };
    const fleet = await SimFleet.create(parseInventory(JSON.stringify(data), "fleet.json"), { seed: (c) => addVm(c, host.vmid, host.node, existing) });
    const before = structuredClone(fleet.cluster.vms[String(host.vmid)].config);
    expect((await fleet.lifecycle("cluster", { validate: false })).failed ?? "").toBe("");
    expect((await fleet.run("ai", "init", "-input=false")).status).toBe(0);
    const plan = await fleet.run("ai", "plan", "-input=false");
    expect(plan.status).toBe(0);
    // The same real plan, as `terraform show -json`, rendered for a pull request: the host is named.
    expect((await fleet.run("ai", "plan", "-input=false", "-out=tfplan")).status).toBe(0);
    const shown = await fleet.run("ai", "show", "-json", "tfplan");
    const md = renderPlans([{ label: "ai", plan: asPlan(JSON.parse(shown.out)) }]).markdown;
    expect(md).toMatch(/#### Imports\s+- host `tappaas-litellm`: `proxmox_virtual_environment_vm\.tappaas-litellm_nixos_vm_[0-9A-F]{8}` ← `pve1\/8202`/);
    expect(md).toMatch(/<summary><b>tappaas-litellm<\/b> — <code>proxmox_virtual_environment_vm\./);
    const block = plan.out.slice(plan.out.indexOf("# proxmox_virtual_environment_vm.tappaas-litellm"));
    const vmPlan = block.slice(0, block.indexOf("\n    }\n") + 6);
    expect(vmPlan).toContain('(imported from "pve1/8202")');
    for (const attr of ["boot_order", "disk", "network_device", "bios", "machine", "reboot", "started", "cpu", "memory", "agent", "vga"]) expect(vmPlan).not.toMatch(new RegExp(`^\\s*[~+-] ${attr}\\b`, "m"));
    const apply = await fleet.run("ai", "apply", "-auto-approve", "-input=false");
    expect(apply.status).toBe(0);
    const vm = fleet.cluster.vms[String(host.vmid)];
    const keep = (conf: Record<string, string>) => Object.fromEntries(Object.entries(conf).filter(([k]) => /^(scsi\d+|virtio\d+|net\d+|boot|cores|memory)$/.test(k)));
    expect(keep({ ...vm.config, ...vm.pending })).toEqual(keep(before));
    // Left as it was: no shutdown, stop, start or reboot of the adopted VM.
    expect(fleet.tasks().filter((t) => t.id === String(host.vmid) && /^qm(shutdown|stop|start|reboot)$/.test(t.type)).map((t) => t.type)).toEqual([]);
    expect((await fleet.run("ai", "plan", "-detailed-exitcode", "-input=false")).status).toBe(0);
  });
});

describe("adopting a VM with devices the inventory does not describe (USB, watchdog, TPM, a hook script, ...)", () => {
  it("import + apply + plan: nothing changed on it, no task run on it, and the plan is empty", async () => {
    const data = JSON.parse(readFileSync(join(ROOT, "fleet.json"), "utf8"));
    const host = data.hosts.find((h: any) => h.name === "tappaas-litellm");
    host.existing = true;
    delete host.pool;
    // Name, tags, on-boot and startup order as the inventory has them (those stay managed); everything else as
    // someone made it by hand, with what the provider would reset or remove if it were managed.
    const existing = {
      name: host.name,
      tags: ["ai", "litellm", "nixos"].join(";"),
      onboot: "1",
      startup: "order=21",
      scsi0: "local-lvm:32",
      // set, as the PVE GUI sets it: for a VM without scsihw (lsi) the provider sends
      // scsihw=virtio-scsi-pci with any update of it (docs/adr-0019, "known limits")
      scsihw: "virtio-scsi-single",
      boot: "order=scsi0",
      net0: "virtio=BC:24:11:AA:BB:03,bridge=vmbr0",
      cores: "4",
      memory: "8192",
      agent: "1",
      usb0: "host=1050:0407,usb3=1",
      watchdog: "model=i6300esb,action=reset",
      tpmstate0: "local-lvm:1,version=v2.0",
      hookscript: "local:snippets/backup-hook.pl",
      audio0: "device=ich9-intel-hda,driver=none",
      numa: "1",
      args: "-cpu host,+invtsc",
      tablet: "0",
      keyboard: "de",
      protection: "1",
    };
    const fleet = await SimFleet.create(parseInventory(JSON.stringify(data), "fleet.json"), { seed: (c) => addVm(c, host.vmid, host.node, existing) });
    const vm = fleet.cluster.vms[String(host.vmid)];
    const before = JSON.stringify([vm.config, vm.pending, vm.pendingDelete]);
    expect((await fleet.lifecycle("cluster", { validate: false })).failed ?? "").toBe("");
    expect((await fleet.run("ai", "init", "-input=false")).status).toBe(0);
    const from = fleet.cluster.tasks.length;
    const plan = await fleet.run("ai", "plan", "-input=false");
    const block = plan.out.slice(plan.out.indexOf("# proxmox_virtual_environment_vm.tappaas-litellm"));
    // Only the provider's own settings (kept in the state, never sent to Proxmox) are changed.
    const vmPlan = block.slice(0, block.indexOf("\n    }\n"));
    const changed = [...vmPlan.matchAll(/^\s*[~+-] (\w+)\s+=/gm)].map((m) => m[1]);
    expect(changed.filter((a) => !/^(migrate|reboot_after_update|timeout_\w+|stop_on_destroy|purge_on_destroy|delete_unreferenced_disks_on_destroy)$/.test(a))).toEqual([]);
    const apply = await fleet.run("ai", "apply", "-auto-approve", "-input=false");
    expect(apply.status).toBe(0);
    expect(apply.out).toMatch(/tappaas-litellm_nixos_vm_\w+: Import complete/);
    expect(JSON.stringify([vm.config, vm.pending, vm.pendingDelete])).toBe(before);
    expect(fleet.cluster.tasks.slice(from).filter((t) => t.id === String(host.vmid)).map((t) => t.type)).toEqual([]);
    // the one write request the provider makes (its own settings changed) sets nothing
    expect(fleet.sim.requests.filter((r) => r.method !== "GET" && r.path.includes(`/qemu/${host.vmid}`)).map((r) => `${r.method} ${r.path} ${r.body ?? ""}`)).toEqual([`PUT /api2/json/nodes/pve1/qemu/${host.vmid}/config name=${host.name}`]);
    expect((await fleet.run("ai", "plan", "-detailed-exitcode", "-input=false")).status).toBe(0);
  });
});

/**
 * The walls behind the stateful guard (constructs/retirement.ts), which would stop these plans
 * first: the stack's JSON without the guard's data source.
 */
function withoutGuard(fleet: SimFleet, stack: string) {
  const json = fleet.json(stack);
  delete json.data.proxmox_virtual_environment_vms;
  if (!Object.keys(json.data).length) delete json.data;
  fleet.writeJson(stack, json);
}

describe("removing a stateful host in a pull request without the guard, through real OpenTofu and the real provider", () => {
  it("plans the VM's destruction, plan-comment exits 3 naming the host (from Proxmox's tag and protection), and Proxmox refuses the delete", async () => {
    const data = JSON.parse(readFileSync(join(ROOT, "fleet.json"), "utf8"));
    // a second ops host, so the stack stays when tappaas-cicd leaves it
    data.hosts.push({ name: "bastion", roles: [], vmid: 8190, node: "pve1", cores: 1, memoryMiB: 1024, diskGiB: 20, network: { address: "192.168.10.90/24", gateway: "192.168.10.1" } });
    const fleet = await SimFleet.create(parseInventory(JSON.stringify(data), "fleet.json"));
    for (const s of ["cluster", "ops"]) expect((await fleet.lifecycle(s, { validate: false })).failed ?? "").toBe("");
    // The pull request removes tappaas-cicd: its VM resource, prevent_destroy with it.
    data.hosts = data.hosts.filter((h: any) => h.name !== "tappaas-cicd");
    fleet.resynth(parseInventory(JSON.stringify(data), "fleet.json"));
    withoutGuard(fleet, "ops");
    expect((await fleet.run("ops", "plan", "-input=false", "-out=tfplan")).status).toBe(0);
    const shown = await fleet.run("ops", "show", "-json", "tfplan");
    const r = renderPlans([{ label: "ops", plan: asPlan(JSON.parse(shown.out)) }]);
    expect(r.exitCode).toBe(EXIT_STATEFUL_DESTROY);
    expect(r.markdown).toMatch(/> - \*\*`tappaas-cicd`\*\* \(stateful\): destroyed/);
    // The second wall: Proxmox itself refuses to delete a protected VM.
    const apply = await fleet.run("ops", "apply", "-auto-approve", "-input=false");
    expect(apply.status).not.toBe(0);
    expect(apply.out.replace(/\s+/g, " ")).toContain("can't remove VM 8110 - protection mode enabled");
  });
});

describe("a plan that Terraform itself refuses, through real OpenTofu and the real provider", () => {
  it("prevent_destroy on a VM the change would replace: the comment says the plan failed, names the host, and shows the error", async () => {
    const data = JSON.parse(readFileSync(join(ROOT, "fleet.json"), "utf8"));
    const fleet = await SimFleet.create(parseInventory(JSON.stringify(data), "fleet.json"));
    for (const s of ["cluster", "ops"]) expect((await fleet.lifecycle(s, { validate: false })).failed ?? "").toBe("");
    // A new vmid forces the stateful tappaas-cicd VM to be replaced (bpg: ForceNewIf vm_id).
    data.hosts.find((h: any) => h.name === "tappaas-cicd").vmid = 8111;
    fleet.resynth(parseInventory(JSON.stringify(data), "fleet.json"));
    withoutGuard(fleet, "ops");
    const plan = await fleet.run("ops", "plan", "-input=false");
    expect(plan.status).not.toBe(0);
    const errorFile = join(fleet.dir, "ops.error");
    writeFileSync(errorFile, plan.out);
    const r = spawnSync("node", ["--import", "tsx", join(ROOT, "scripts", "plan-comment.ts"), errorFile], { cwd: ROOT, encoding: "utf8" });
    expect(r.status).toBe(EXIT_PLAN_FAILED);
    expect(r.stdout).toContain("**The plan of stack `ops` failed**; hosts involved: `tappaas-cicd`");
    expect(r.stdout).toContain("Resource instance cannot be destroyed"); // OpenTofu's wording
  });
});
