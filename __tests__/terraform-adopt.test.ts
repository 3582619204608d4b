/**
 * Terraform contract for adopted VMs (import blocks) and a template the cluster stack creates,
 * through real Terraform with the provider double (a STAND-IN for the provider's behaviour).
 * The provider binary is the project's provider double, a STAND-IN for the provider's behaviour
 * and the Proxmox API (__tests__/provider-double/); Terraform core's own checks are real.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseInventory } from "../constructs/inventory";
import { ROOT } from "./helpers";
import { DoubleFleet } from "./provider-double/harness";
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
    const fleet = await DoubleFleet.create(createInventory());
    const r = await fleet.lifecycle("cluster", { validate: false });
    expect(r.failed ?? "").toBe("");
    expect(r.replan!.status).toBe(0);
    const template = Object.values(fleet.cluster().vms).find((v) => v.template && v.name === "nixos-template" && v.disks.virtio0?.size === 16);
    expect(template?.boot).toEqual(["virtio0"]);
  });

  it("fails where the image storage lacks the `import` content type (PVE < 8.4 or not enabled)", async () => {
    const fleet = await DoubleFleet.create(createInventory(), (c) => {
      for (const s of Object.values(c.storages)) s.content = s.content.filter((x) => x !== "import");
    });
    const r = await fleet.lifecycle("cluster", { validate: false });
    expect(r.failed).toContain("does not support content type 'import'");
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
    expect((await fleet.lifecycle("cluster", { validate: false })).failed ?? "").toBe("");
    expect((await fleet.tf("ai", "init", "-input=false")).status).toBe(0);
    const plan = await fleet.tf("ai", "plan", "-input=false");
    expect(plan.status).toBe(0);
    // The same real plan, as `terraform show -json`, rendered for a pull request: the host is named.
    expect((await fleet.tf("ai", "plan", "-input=false", "-out=tfplan")).status).toBe(0);
    const shown = await fleet.tf("ai", "show", "-json", "tfplan");
    const md = renderPlans([{ label: "ai", plan: asPlan(JSON.parse(shown.out)) }]).markdown;
    expect(md).toMatch(/#### Imports\s+- host `tappaas-litellm`: `proxmox_virtual_environment_vm\.tappaas-litellm_nixos_vm_[0-9A-F]{8}` ← `pve1\/8202`/);
    expect(md).toMatch(/<summary><b>tappaas-litellm<\/b> — <code>proxmox_virtual_environment_vm\./);
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

describe("removing a stateful host in a pull request, through real Terraform", () => {
  it("plans the VM's destruction, plan-comment exits 3 naming the host (from Proxmox's tag and protection), and Proxmox refuses the delete", async () => {
    const data = JSON.parse(readFileSync(join(ROOT, "fleet.json"), "utf8"));
    // a second ops host, so the stack stays when tappaas-cicd leaves it
    data.hosts.push({ name: "bastion", roles: [], vmid: 8190, node: "pve1", cores: 1, memoryMiB: 1024, diskGiB: 20, network: { address: "192.168.10.90/24", gateway: "192.168.10.1" } });
    const fleet = await DoubleFleet.create(parseInventory(JSON.stringify(data), "fleet.json"));
    for (const s of ["cluster", "ops"]) expect((await fleet.lifecycle(s, { validate: false })).failed ?? "").toBe("");
    // The pull request removes tappaas-cicd: its VM resource, prevent_destroy with it.
    data.hosts = data.hosts.filter((h: any) => h.name !== "tappaas-cicd");
    const next = await DoubleFleet.create(parseInventory(JSON.stringify(data), "fleet.json"));
    const ops = next.json("ops");
    fleet.writeJson("ops", ops);
    expect((await fleet.tf("ops", "plan", "-input=false", "-out=tfplan")).status).toBe(0);
    const shown = await fleet.tf("ops", "show", "-json", "tfplan");
    const r = renderPlans([{ label: "ops", plan: asPlan(JSON.parse(shown.out)) }]);
    expect(r.exitCode).toBe(EXIT_STATEFUL_DESTROY);
    expect(r.markdown).toMatch(/> - \*\*`tappaas-cicd`\*\* \(stateful\): destroyed/);
    // The second wall: Proxmox itself refuses to delete a protected VM.
    const apply = await fleet.tf("ops", "apply", "-auto-approve", "-input=false");
    expect(apply.status).not.toBe(0);
    expect(apply.out).toContain("VM is protected");
  });
});

describe("a plan that Terraform itself refuses, through real Terraform", () => {
  it("prevent_destroy on a VM the change would replace: the comment says the plan failed, names the host, and shows the error", async () => {
    const data = JSON.parse(readFileSync(join(ROOT, "fleet.json"), "utf8"));
    const fleet = await DoubleFleet.create(parseInventory(JSON.stringify(data), "fleet.json"));
    for (const s of ["cluster", "ops"]) expect((await fleet.lifecycle(s, { validate: false })).failed ?? "").toBe("");
    // A new vmid forces the stateful tappaas-cicd VM to be replaced (bpg: ForceNewIf vm_id).
    data.hosts.find((h: any) => h.name === "tappaas-cicd").vmid = 8111;
    const next = await DoubleFleet.create(parseInventory(JSON.stringify(data), "fleet.json"));
    fleet.writeJson("ops", next.json("ops"));
    const plan = await fleet.tf("ops", "plan", "-input=false");
    expect(plan.status).not.toBe(0);
    const errorFile = join(fleet.dir, "ops.error");
    writeFileSync(errorFile, plan.out);
    const r = spawnSync("node", ["--import", "tsx", join(ROOT, "scripts", "plan-comment.ts"), errorFile], { cwd: ROOT, encoding: "utf8" });
    expect(r.status).toBe(EXIT_PLAN_FAILED);
    expect(r.stdout).toContain("**The plan of stack `ops` failed**; hosts involved: `tappaas-cicd`");
    expect(r.stdout).toContain("Instance cannot be destroyed");
  });
});
