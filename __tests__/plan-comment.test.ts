import { spawnSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { App } from "cdktf";
import { buildFleet } from "../stacks/fleet";
import { parseInventory } from "../constructs/inventory";
import { renderPlans, asPlan, EXIT_STATEFUL_DESTROY } from "../scripts/lib/plan-comment";
import { ROOT } from "./helpers";

const FIXTURES = join(__dirname, "fixtures", "plans");
const fixture = (name: string) => asPlan(JSON.parse(readFileSync(join(FIXTURES, name), "utf8")));
const STATEFUL = new Set(["tappaas-flaredb", "tappaas-chainfire", "tappaas-cicd"]);

function cli(args: string[], input?: { file: string; text: string }) {
  if (input) writeFileSync(input.file, input.text);
  const r = spawnSync("node", ["--import", "tsx", join(ROOT, "scripts", "plan-comment.ts"), ...args], { cwd: ROOT, encoding: "utf8" });
  return { status: r.status, out: r.stdout, err: r.stderr };
}

describe("plan comment from hand-written Proxmox plan fixtures", () => {
  const r = renderPlans([{ label: "platform", plan: fixture("proxmox-mixed.json") }], { statefulHosts: STATEFUL });

  it("counts creates, updates, replaces, destroys, imports and no-ops", () => {
    expect(r.counts).toMatchObject({ create: 1, update: 1, replace: 3, destroy: 1, import: 1, "no-op": 2 });
    expect(r.markdown).toContain("**1 to create · 1 to update · 3 to replace · 1 to destroy · 1 to import · 2 unchanged**");
  });

  it("puts a loud banner on VMs destroyed or replaced, stateful hosts first", () => {
    const banner = r.markdown.split("\n").filter((l) => l.startsWith(">"));
    expect(banner[0]).toBe("> [!CAUTION]");
    expect(banner[1]).toBe("> **2 VMs would be destroyed or replaced, 1 of them stateful:**");
    expect(banner[2]).toMatch(/^> - \*\*tappaas-flaredb\*\* \(stateful\): replaced/);
    expect(banner[3]).toMatch(/^> - tappaas-novanet: destroyed/);
  });

  it("exits non-zero for a stateful VM unless destruction is allowed", () => {
    expect(r.exitCode).toBe(EXIT_STATEFUL_DESTROY);
    expect(renderPlans([{ label: "platform", plan: fixture("proxmox-mixed.json") }], { statefulHosts: STATEFUL, allowDestroy: true }).exitCode).toBe(0);
    expect(renderPlans([{ label: "ai", plan: fixture("proxmox-create.json") }], { statefulHosts: STATEFUL }).exitCode).toBe(0);
  });

  it("names the hosts whose NixOS is re-applied and which trigger changed", () => {
    expect(r.markdown).toContain("| tappaas-iam | config_hash |");
    expect(r.markdown).toContain("| tappaas-flaredb | its VM is recreated |");
  });

  it("lists imports and drift", () => {
    expect(r.markdown).toContain("- host `legacy-git`: `proxmox_virtual_environment_vm.legacy-git_nixos_vm_0A1B2C3D` ← `pve2/150` (platform)");
    expect(r.markdown).toMatch(/#### Drift\n\n- host `tappaas-chainfire`: `proxmox_virtual_environment_vm\.tappaas-chainfire_nixos_vm_11111111` \(platform\): changed outside Terraform: `tags\[1\]`/);
  });

  it("shows attribute changes per resource and masks sensitive values", () => {
    expect(r.markdown).toContain("<details><summary><b>tappaas-openwebui</b> — <code>proxmox_virtual_environment_vm.tappaas-openwebui_nixos_vm_3EE858B4</code> — update (platform)</summary>");
    expect(r.markdown).toContain("| memory[0].dedicated | 8192 | 16384 |");
    expect(r.markdown).toContain("| node_name | \"pve1\" | \"pve2\" |");
    expect(r.markdown).toContain("| ipv4_addresses | — | (known after apply) |");
    const created = r.markdown.slice(r.markdown.indexOf("tappaas-newhost_nixos_vm"));
    expect(created).toContain("| initialization[0].user_account[0].password | — | (sensitive) |");
    expect(r.markdown).not.toMatch(/password \| [^(|]*"[^"]+"/);
  });

  it("renders the same comment whatever the order of the plan's entries", () => {
    const plan = fixture("proxmox-mixed.json");
    const shuffled = { ...plan, resource_changes: [...plan.resource_changes!].reverse() };
    expect(renderPlans([{ label: "platform", plan: shuffled }], { statefulHosts: STATEFUL }).markdown).toBe(r.markdown);
  });

  it("treats every VM as stateful when the inventory is unknown", () => {
    const u = renderPlans([{ label: "platform", plan: fixture("proxmox-mixed.json") }]);
    expect(u.markdown).toContain("> **2 VMs would be destroyed or replaced, 2 of them stateful:**");
    expect(u.markdown).toContain("every VM is treated as stateful");
  });
});

describe("npm run plan-comment", () => {
  const dir = mkdtempSync(join(tmpdir(), "plancomment-"));

  it("prints Markdown and exits 3 for a stateful VM replacement, 0 with --allow-destroy", () => {
    const a = cli([join(FIXTURES, "proxmox-mixed.json"), "--inventory", join(ROOT, "fleet.json")]);
    expect(a.status).toBe(3);
    expect(a.out).toContain("### Plan: proxmox-mixed");
    expect(cli([join(FIXTURES, "proxmox-mixed.json"), "--allow-destroy", "--inventory", join(ROOT, "fleet.json")]).status).toBe(0);
  });

  it("refuses input that is not JSON, or not a plan, with one line and status 2", () => {
    const notJson = cli([join(dir, "x.json")], { file: join(dir, "x.json"), text: "Plan: 1 to add" });
    expect(notJson.status).toBe(2);
    expect(notJson.err.trim().split("\n")).toHaveLength(1);
    expect(notJson.err).toContain("not JSON");
    const notPlan = cli([join(dir, "y.json")], { file: join(dir, "y.json"), text: '{"hello": "world"}' });
    expect(notPlan.status).toBe(2);
    expect(notPlan.err).toMatch(/^plan-comment: .*y\.json: not a Terraform\/OpenTofu plan/);
  });
});

describe("plan comment from real `terraform show -json` of deploy-step stacks", () => {
  it("reports creates, replacements with their trigger, and destroys", () => {
    const root = mkdtempSync(join(tmpdir(), "realplan-"));
    cpSync(join(ROOT, "nixos"), join(root, "nixos"), { recursive: true });
    const data = JSON.parse(readFileSync(join(ROOT, "examples", "ha-3-node-platform.json"), "utf8"));
    const synth = (d: any) => {
      const app = new App({ outdir: join(root, "cdktf.out"), skipValidation: true });
      buildFleet(app, parseInventory(JSON.stringify(d)), { root, manageVms: false, deployCommand: "true", deployWorkingDir: root });
      app.synth();
    };
    const dir = join(root, "cdktf.out", "stacks", "platform");
    const tf = (...args: string[]) => {
      const r = spawnSync("terraform", args, { cwd: dir, encoding: "utf8" });
      if (r.status !== 0) throw new Error(r.stdout + r.stderr);
      return r.stdout;
    };
    synth(data);
    tf("init", "-input=false", "-no-color");
    tf("apply", "-auto-approve", "-input=false", "-no-color");

    // One role module changes, one host goes away, one host is added.
    writeFileSync(join(root, "nixos", "modules", "platform", "fiberlb.nix"), readFileSync(join(root, "nixos", "modules", "platform", "fiberlb.nix"), "utf8") + "# changed\n");
    data.hosts = data.hosts.filter((h: any) => h.name !== "edge3");
    data.hosts.push({ name: "edge4", roles: ["lightningstor"], vmid: 9124, node: "pve1", cores: 2, memoryMiB: 4096, diskGiB: 30, network: { dhcp: true } });
    synth(data);
    tf("plan", "-out", "plan.bin", "-input=false", "-no-color");
    const json = asPlan(JSON.parse(tf("show", "-json", "plan.bin")));

    const r = renderPlans([{ label: "platform", plan: json }], { statefulHosts: new Set() });
    expect(r.counts).toMatchObject({ create: 1, replace: 1, destroy: 1 });
    expect(r.markdown).toContain("| edge2 | config_hash |");
    expect(r.markdown).toContain("| edge4 | new host |");
    expect(r.markdown).toMatch(/<code>terraform_data\.edge3_deploy_step_[0-9A-F]{8}<\/code> — destroy/);
    expect(r.exitCode).toBe(0);
  });
});
