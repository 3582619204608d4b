import { ADOPTED_IGNORED } from "../constructs/nixos-vm";
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EXAMPLE_FLEET, ROOT, synthFleet, vmByName } from "./helpers";
import { parseInventory } from "../constructs/inventory";

function importVm(args: string[]) {
  const file = join(mkdtempSync(join(tmpdir(), "import-")), "fleet.json");
  copyFileSync(EXAMPLE_FLEET, file);
  const r = spawnSync("node", ["--import", "tsx", join(ROOT, "scripts", "import-vm.ts"), ...args], { cwd: ROOT, encoding: "utf8", env: { ...process.env, FLEET_FILE: file } });
  return { status: r.status, out: r.stdout, err: r.stderr, file, text: readFileSync(file, "utf8") };
}

describe("npm run import", () => {
  it("adds a validated existing host and prints the next steps", () => {
    const r = importVm(["--name", "legacy-git", "--node", "pve2", "--vmid", "150", "--role", "cicd", "--cores", "2", "--memory", "4096", "--disk", "32", "--stateful"]);
    expect(r.status).toBe(0);
    expect(r.out).toContain(`added host "legacy-git" (existing VM 150 on pve2)`);
    expect(r.out).toContain("npx cdktf diff ops");
    const inv = parseInventory(r.text);
    const host = inv.hosts.find((h) => h.name === "legacy-git")!;
    expect(host).toMatchObject({ vmid: 150, node: "pve2", roles: ["cicd"], cores: 2, memoryMiB: 4096, diskGiB: 32, existing: true, stateful: true, network: { dhcp: true } });
    // ...and the synthesized VM imports it with the provider's ID, without a clone block.
    const stacks = synthFleet(inv);
    expect(stacks.ops.import).toEqual([{ id: "pve2/150", to: expect.stringMatching(/^proxmox_virtual_environment_vm\.legacy-git_nixos_vm_/) }]);
    const vm = vmByName(stacks, "legacy-git");
    expect(vm.clone).toBeUndefined();
    expect(vm.lifecycle).toEqual({ prevent_destroy: true, ignore_changes: [...ADOPTED_IGNORED] });
    expect(vm.reboot_after_update).toBe(false);
  });

  it("imports a VM without roles as a plain NixOS host", () => {
    const r = importVm(["--name", "plain1", "--node", "pve1", "--vmid", "160"]);
    expect(r.status).toBe(0);
    expect(r.out).toContain("npx cdktf diff ops");
    expect(parseInventory(r.text).hosts.find((h) => h.name === "plain1")).toMatchObject({ roles: [], cores: 1, memoryMiB: 1024, diskGiB: 10 });
  });

  it("refuses a host name that is already in the inventory, writing nothing", () => {
    const r = importVm(["--name", "tappaas-iam", "--node", "pve1", "--vmid", "151", "--role", "iam"]);
    expect(r.status).toBe(2);
    expect(r.err).toContain('import: host "tappaas-iam" is already in');
    expect(r.text).toBe(readFileSync(EXAMPLE_FLEET, "utf8"));
  });

  it("refuses a vmid that is already in the inventory", () => {
    const r = importVm(["--name", "other", "--node", "pve1", "--vmid", "8201", "--role", "iam"]);
    expect(r.status).toBe(2);
    expect(r.err).toContain('vmid 8201 is already in');
    expect(r.err).toContain('as host "tappaas-vllm"');
  });

  it("refuses an entry that does not validate, naming host and field", () => {
    const r = importVm(["--name", "gpu2", "--node", "pve1", "--vmid", "152", "--role", "vllm", "--memory", "8192"]);
    expect(r.status).toBe(2);
    expect(r.err).toContain('host "gpu2": memoryMiB: 8192 MiB is below the vllm role\'s minimum of 16384 MiB');
    expect(r.err).toContain('host "gpu2": gpu: the vllm role needs a GPU');
    expect(r.text).toBe(readFileSync(EXAMPLE_FLEET, "utf8"));
  });

  it("refuses unknown roles and missing options", () => {
    expect(importVm(["--name", "x", "--node", "pve1", "--vmid", "153", "--role", "mail"]).err).toContain("unknown role mail");
    expect(importVm(["--name", "x", "--vmid", "153"]).err).toContain("missing --node;");
  });
});
