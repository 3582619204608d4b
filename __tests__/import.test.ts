import { ADOPTED_IGNORED } from "../constructs/nixos-vm";
import { spawnSync } from "node:child_process";
import { chmodSync, chownSync, copyFileSync, lstatSync, mkdtempSync, readFileSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EXAMPLE_FLEET, ROOT, runAsync, synthFleet, vmByName } from "./helpers";
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

  it("refuses to write through a read-only (0444) inventory, even as root, and leaves it as it was (#29 item 10)", () => {
    const file = join(mkdtempSync(join(tmpdir(), "import-ro-")), "fleet.json");
    copyFileSync(EXAMPLE_FLEET, file);
    chmodSync(file, 0o444);
    const r = spawnSync("node", ["--import", "tsx", join(ROOT, "scripts", "import-vm.ts"), "--name", "adopted", "--node", "pve1", "--vmid", "151"], { cwd: ROOT, encoding: "utf8", env: { ...process.env, FLEET_FILE: file } });
    expect({ status: r.status, err: r.stderr }).toEqual({ status: 2, err: `import: ${file} is read-only (mode 0444); nothing was written: make it writable (chmod u+w) if you mean to add the host\n` });
    expect(readFileSync(file, "utf8")).toBe(readFileSync(EXAMPLE_FLEET, "utf8"));
    expect(statSync(file).mode & 0o777).toBe(0o444);
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
    expect(importVm(["--name", "x", "--node", "pve1", "--vmid", "153", "--role", "mail"]).err).toContain('host "x": roles: unknown role "mail"; known roles: vllm');
    expect(importVm(["--name", "x", "--vmid", "153"]).err).toContain("missing --node;");
  });

  const run = (file: string, args: string[]) =>
    runAsync("node", ["--import", "tsx", join(ROOT, "scripts", "import-vm.ts"), ...args], { env: { ...process.env, FLEET_FILE: file } });

  it("keeps every entry when several imports run at once (they take turns on a lock)", async () => {
    const file = join(mkdtempSync(join(tmpdir(), "import-")), "fleet.json");
    copyFileSync(EXAMPLE_FLEET, file);
    const results = await Promise.all([0, 1, 2, 3].map((i) => run(file, ["--name", `legacy${i}`, "--node", "pve1", "--vmid", String(170 + i)])));
    expect(results.map((r) => r.status)).toEqual([0, 0, 0, 0]);
    const names = parseInventory(readFileSync(file, "utf8")).hosts.map((h) => h.name);
    expect(names.filter((n) => n.startsWith("legacy")).sort()).toEqual(["legacy0", "legacy1", "legacy2", "legacy3"]);
  });

  it("writes through a symlink, keeps mode 0600, the owner and CRLF line endings, and changes nothing but the new entry", async () => {
    const dir = mkdtempSync(join(tmpdir(), "import-"));
    const target = join(dir, "real-fleet.json");
    const crlf = readFileSync(EXAMPLE_FLEET, "utf8").replace(/\n/g, "\r\n");
    writeFileSync(target, crlf, { mode: 0o600 });
    chmodSync(target, 0o600);
    // another owner (the tests run as root, which may give the file away and must keep it so)
    const root = process.getuid?.() === 0;
    if (root) chownSync(target, 12345, 12346);
    const link = join(dir, "fleet.json");
    symlinkSync(target, link);
    const r = await run(link, ["--name", "legacy-crlf", "--node", "pve1", "--vmid", "180"]);
    expect(r.status).toBe(0);
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    expect((statSync(target).mode & 0o777).toString(8)).toBe("600");
    if (root) expect({ uid: statSync(target).uid, gid: statSync(target).gid }).toEqual({ uid: 12345, gid: 12346 });
    const after = readFileSync(target, "utf8");
    expect(after.replace(/\r\n/g, "")).not.toContain("\n");
    // before the new entry: byte for byte the same; the entry itself uses the file's indentation
    const cut = crlf.lastIndexOf("}\r\n  ]");
    expect(after.slice(0, cut + 1)).toBe(crlf.slice(0, cut + 1));
    expect(after).toContain('\r\n    {\r\n      "name": "legacy-crlf",\r\n');
    expect(parseInventory(after).hosts.at(-1)!.name).toBe("legacy-crlf");
  });

  it("imports a vLLM VM with its GPU flags, and refuses a GPU another VM on that node has", async () => {
    const file = join(mkdtempSync(join(tmpdir(), "import-")), "fleet.json");
    const d = JSON.parse(readFileSync(EXAMPLE_FLEET, "utf8"));
    d.pciMappings.push({ name: "gpu1", map: [{ node: "pve2", id: "10de:2684", path: "0000:41:00.0", subsystemId: "10de:16f1", iommuGroup: 40 }] });
    writeFileSync(file, JSON.stringify(d, null, 2));
    const gpu = (name: string, vmid: number, mapping: string) => ["--name", name, "--node", "pve2", "--vmid", String(vmid), "--role", "vllm", "--cores", "8", "--memory", "32768", "--disk", "80", "--gpu-mapping", mapping, "--cuda", "8.9"];
    const r = await run(file, gpu("gpu3", 190, "gpu1"));
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(parseInventory(readFileSync(file, "utf8")).hosts.find((h) => h.name === "gpu3")).toMatchObject({ roles: ["vllm"], gpu: { mapping: "gpu1", cudaCapabilities: ["8.9"] } });
    const again = await run(file, gpu("gpu4", 191, "gpu1"));
    expect(again.status).toBe(2);
    expect(again.stderr).toContain('host "gpu4": gpu.mapping: "gpu1" maps 1 device on node "pve2", already given to gpu3');
  });

  it.each([
    [["--name", "x", "--node", "pve1", "--vmid", "-5"], 'host "x": vmid: -5 is outside 100-999999999; use a value in that range'],
    [["--name", "x", "--node", "pve1", "--vmid", "abc"], 'host "x": vmid: "abc" must be a whole number (without quotes)'],
    [["--name", "x", "--node", "pve1", "--vmid", "154", "--memory", "1e12"], 'host "x": memoryMiB: "1e12" must be a whole number (without quotes)'],
    [["--name", "x", "--node", "pve1", "--vmid", "154", "--gateway", "10.0.0.1"], "import: --gateway needs --address (the static address in CIDR form, e.g. 10.0.0.5/24); without --address the host uses DHCP"],
    [["--name", "x", "--node", "pve1", "--vmid", "154", "--address", "192.168.10.0/24", "--gateway", "192.168.10.1"], 'host "x": network.address: 192.168.10.0 is the subnet\'s network address of 192.168.10.0/24'],
    [["--name", "1x", "--node", "pve1", "--vmid", "154"], 'host "1x": name: "1x" is not a host name'],
    [["--name", "x", "--node", "pve1", "--vmid", "154", "--colour", "red"], "import: Unknown option '--colour'"],
  ])("validates every flag with the inventory's own messages: %j", (args, expected) => {
    const r = importVm(args);
    expect(r.status).toBe(2);
    expect(r.err).toContain(expected);
    expect(r.err).not.toMatch(/\n\s+at /);
    expect(r.text).toBe(readFileSync(EXAMPLE_FLEET, "utf8"));
  });
});
