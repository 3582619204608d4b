/**
 * The package as a consumer gets it: `npm pack` (which builds dist/ with tsc), the tarball
 * installed into a new CDK Terrain (cdktn) project in a temp directory outside the repository (npm install
 * --prefer-offline: from the npm cache that `npm ci` filled, the registry for what is not there), a stack written against the package name
 * and type-checked against its .d.ts, synthesized, then real OpenTofu init/validate/apply/plan
 * with the real bpg/proxmox provider against the Proxmox VE API simulator (sandbox/pve, a
 * STAND-IN for a PVE cluster), with the deploy step's command pointed at the recording STAND-IN.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT, runAsync } from "./helpers";
import { seedCluster } from "../sandbox/pve";
import { RECORD, simEnv, startSim, tools, TOKEN } from "./sim-harness";

const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"));

const CONSUMER = `import { App, TerraformStack } from "cdktn";
import { NixosDeployStep, NixosVm, PciMapping, ProxmoxProvider, gpuHostpci, validateInventory, ROLES } from "${pkg.name}";

const app = new App({ outdir: "cdktf.out" });
const stack = new TerraformStack(app, "ml");
new ProxmoxProvider(stack, "proxmox", {});
const gpu = new PciMapping(stack, "gpu", { name: "rtx3090", map: [{ node: "pve1", id: "10de:2204", path: "0000:01:00.0", subsystemId: "10de:147d", iommuGroup: 14 }] });
const vm = new NixosVm(stack, "ml-box", {
  name: "ml-box", node: "pve1", vmid: 420, templateVmid: 8100, datastore: "local-zfs",
  cores: 8, memoryMiB: 32768, diskGiB: 100,
  network: { address: "10.0.0.42/24", gateway: "10.0.0.1" },
  user: { name: "ops", sshKeys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMBdEQbWhgNDvUkSvdg4aRf6CDzDCIrCGUKcIJmGvsZo ops@laptop"] },
  hostpci: gpuHostpci({ mapping: gpu.resource.name }),
});
new NixosDeployStep(stack, "deploy", {
  spec: {
    host: "ml-box", vmid: 420, node: "pve1", roles: ["vllm"], finalAddress: "10.0.0.42", flake: "./nixos", user: "ops", sshPort: 22,
    health: [{ role: "vllm", kind: "http", port: ROLES.vllm.ports.api, path: "/health" }],
    timeouts: { sshSeconds: 600, switchSeconds: 3600, healthSeconds: 600 },
  },
  agentAddress: vm.ipv4,
  vmAddress: vm.address,
  configHash: "consumer-test",
  dependsOn: [vm.vm],
  command: process.env.DEPLOY_COMMAND!,
  workingDir: ".",
});
// the validator is part of the API: an empty document has problems
if (validateInventory({}).length === 0) throw new Error("validateInventory accepted {}");
app.synth();
`;

describe("the package, installed from its tarball into a cdktn project outside the repository", () => {
  it("synthesizes a VM, a GPU mapping and a deploy step by package name, and real Terraform validates, applies and re-plans it empty", async () => {
    // npm pack runs prepack: the bindings and tsc's dist/
    const dest = mkdtempSync(join(tmpdir(), "pack-"));
    const pack = spawnSync("npm", ["pack", "--pack-destination", dest, "--json", "--ignore-scripts=false"], { cwd: ROOT, encoding: "utf8" });
    expect(pack.status).toBe(0);
    // npm prints the lifecycle scripts' output before its JSON report
    const report = JSON.parse(pack.stdout.slice(pack.stdout.search(/^\[/m)))[0];
    const tarball = join(dest, report.filename);
    const files: string[] = report.files.map((f: any) => f.path);
    expect(files).toEqual(expect.arrayContaining(["dist/index.js", "dist/index.d.ts", "dist/.gen/providers/proxmox/virtual-environment-vm/index.d.ts", "dist/nixos/lib/roles.json", "dist/nixos/lib/secrets.json"]));
    // the sources stay home
    expect(files.filter((f) => /\.ts$/.test(f) && !f.endsWith(".d.ts"))).toEqual([]);

    const proj = mkdtempSync(join(tmpdir(), "consumer-"));
    writeFileSync(join(proj, "package.json"), JSON.stringify({ name: "consumer", private: true, dependencies: { cdktn: pkg.devDependencies.cdktn, constructs: pkg.devDependencies.constructs, [pkg.name]: `file:${tarball}` } }));
    const install = spawnSync("npm", ["install", "--prefer-offline", "--no-audit", "--no-fund", "--ignore-scripts"], { cwd: proj, encoding: "utf8" });
    expect({ status: install.status, err: install.status === 0 ? "" : install.stderr }).toEqual({ status: 0, err: "" });
    expect(statSync(join(proj, "node_modules", pkg.name)).isSymbolicLink()).toBe(false);
    expect(existsSync(join(proj, "node_modules", pkg.name, "constructs"))).toBe(false);

    // type-checked against the package's declarations, then compiled
    writeFileSync(join(proj, "main.ts"), CONSUMER);
    const tsc = spawnSync(process.execPath, [join(ROOT, "node_modules", "typescript", "bin", "tsc"), "--strict", "--module", "commonjs", "--target", "es2022", "--esModuleInterop", "--types", "node", "--typeRoots", join(ROOT, "node_modules", "@types"), "main.ts"], { cwd: proj, encoding: "utf8" });
    expect(tsc.stdout + tsc.stderr).toBe("");
    const env = { ...process.env, DEPLOY_COMMAND: `node ${RECORD}` };
    const synth = spawnSync(process.execPath, ["main.js"], { cwd: proj, encoding: "utf8", env });
    expect(synth.stderr).toBe("");
    expect(synth.status).toBe(0);
    const stackDir = join(proj, "cdktf.out", "stacks", "ml");
    const json = readFileSync(join(stackDir, "cdk.tf.json"), "utf8");
    expect(json).not.toContain(ROOT.replace(/\/$/, "") + "/constructs");

    // the Terraform contract: init, validate, apply, plan again (empty), with real OpenTofu and the
    // real provider against the PVE simulator
    const sim = await startSim(seedCluster({ nodes: ["pve1"], storage: "local-zfs", template: { vmid: 8100, node: "pve1" }, token: TOKEN }));
    const tf = (...args: string[]) => runAsync(tools().tools.tofu.path, [...args, "-no-color"], { cwd: stackDir, env: { ...process.env, ...simEnv(sim), STEP_LOG: join(proj, "steps.log") } });
    for (const args of [["init", "-input=false"], ["validate"], ["apply", "-auto-approve", "-input=false"]]) {
      const r = await tf(...args);
      expect({ args, status: r.status, out: r.status === 0 ? "" : r.out }).toEqual({ args, status: 0, out: "" });
    }
    const replan = await tf("plan", "-detailed-exitcode", "-input=false");
    expect({ status: replan.status, out: replan.status === 0 ? "" : replan.out }).toEqual({ status: 0, out: "" });
    expect(readFileSync(join(proj, "steps.log"), "utf8")).toContain('"host":"ml-box"');
    expect(readdirSync(proj)).not.toContain("constructs");
    // the package takes over neither CLI in its consumer: no `cdktf` or `cdktn` bin comes with it,
    // only its own deploy command, which runs without tsx or the repository (#29 item 4)
    expect(JSON.parse(readFileSync(join(proj, "node_modules", pkg.name, "package.json"), "utf8")).bin).toEqual({ "proxmox-nixos-fleet-deploy": "dist/scripts/deploy.js" });
    const help = spawnSync(join(proj, "node_modules", ".bin", "proxmox-nixos-fleet-deploy"), ["--help"], { cwd: proj, encoding: "utf8" });
    expect({ status: help.status, usage: help.stdout.startsWith("Usage:"), err: help.stderr }).toEqual({ status: 0, usage: true, err: "" });
    // the defaults point into the consumer's project, not into node_modules: the inventory, the
    // deploy steps' command, and a flake that is not there is said at synth
    writeFileSync(join(proj, "defaults.js"), `const p = require(${JSON.stringify(pkg.name)}); const { App } = require("cdktn");
let flake; try { p.buildFleet(new App({ outdir: "out2" }), p.parseInventory(require("fs").readFileSync(${JSON.stringify(join(ROOT, "fleet.json"))}, "utf8"))); } catch (e) { flake = e.message; }
console.log(JSON.stringify({ file: p.fleetFilePath(), root: p.PROJECT_ROOT, command: p.DEFAULT_DEPLOY_COMMAND, flake }));`);
    const defaults = JSON.parse(spawnSync(process.execPath, ["defaults.js"], { cwd: proj, encoding: "utf8" }).stdout);
    expect(defaults).toEqual({ file: join(proj, "fleet.json"), root: proj, command: "node_modules/.bin/proxmox-nixos-fleet-deploy --from-env", flake: expect.stringMatching(/nixos\/flake\.nix does not exist: the deploy steps apply the NixOS flake of deploy\.flake \("\.\/nixos"\) relative to the project root/) });
    for (const bin of ["cdktf", "cdktn"]) expect(existsSync(join(proj, "node_modules", ".bin", bin))).toBe(false);
    expect(existsSync(join(proj, "node_modules", pkg.name, "config", "terraformrc"))).toBe(true);
  });
});
