import { readFileSync } from "node:fs";
import { join } from "node:path";
import { YAML } from "zx";
import { ROOT } from "./helpers";

const wf = (name: string) => YAML.parse(readFileSync(join(ROOT, ".github", "workflows", name), "utf8"));
const uses = (job: any) => job.steps.map((s: any) => s.uses).filter(Boolean);
const runs = (job: any) => job.steps.map((s: any) => s.run ?? "").join("\n");

describe("GitHub workflows", () => {
  it("plan.yml previews every stack with OpenTofu and one sticky comment, secrets from the repository", () => {
    const w = wf("plan.yml");
    expect(Object.keys(w.on)).toEqual(["pull_request"]);
    const plan = w.jobs.plan;
    expect(uses(plan)).toEqual(expect.arrayContaining(["opentofu/setup-opentofu@v1", "marocchino/sticky-pull-request-comment@v2"]));
    expect(runs(plan)).toContain("npm run synth");
    expect(runs(plan)).toContain("tofu -chdir=\"$dir\" show -json plan.bin");
    expect(runs(plan)).toContain("npm run -s plan-comment -- plans/*.json");
    expect(plan.env.PROXMOX_VE_API_TOKEN).toBe("${{ secrets.PROXMOX_VE_API_TOKEN }}");
  });

  it("plan.yml runs the project's tests and nix flake check on nixos/", () => {
    const w = wf("plan.yml");
    expect(runs(w.jobs.test)).toContain(".ci/run");
    expect(uses(w.jobs.flake)).toContain("cachix/install-nix-action@v31");
    expect(runs(w.jobs.flake)).toContain("nix flake check ./nixos");
    // a missing lock is made, not a failure; every host's toplevel is evaluated
    expect(runs(w.jobs.flake)).toContain("nix flake lock ./nixos");
    expect(runs(w.jobs.flake)).toContain("c.config.system.build.toplevel.drvPath");
  });

  it("deploy.yml deploys main behind the production environment's approval", () => {
    const w = wf("deploy.yml");
    expect(w.on.push.branches).toEqual(["main"]);
    expect(w.jobs.deploy.environment).toBe("production");
    expect(runs(w.jobs.deploy)).toContain("npx cdktf deploy '*' --auto-approve");
  });
});
