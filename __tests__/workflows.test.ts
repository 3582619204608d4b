import { spawnSync } from "node:child_process";
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
  it("are clean for actionlint (the real linter built from source, with shellcheck on every run: step)", () => {
    // scripts/tools.mjs builds actionlint; .github/actionlint.yaml names our self-hosted runner
    // label. Nothing is filtered: every finding counts.
    const lint = (args: string[], input?: string) => spawnSync("actionlint", ["-config-file", ".github/actionlint.yaml", "-format", "{{json .}}", ...args], { cwd: ROOT, encoding: "utf8", input, env: process.env });
    expect(spawnSync("shellcheck", ["--version"], { env: process.env }).status).toBe(0);
    const files = readdirSync(DIR).filter((f) => f.endsWith(".yml")).map((f) => `.github/workflows/${f}`);
    const r = lint(files);
    const problems = JSON.parse(r.stdout || "[]").map((p: any) => `${p.filepath}:${p.line}:${p.column}: ${p.message} [${p.kind}]`);
    expect(problems).toEqual([]);
    expect(r.status).toBe(0);
    // and it does find real mistakes: an undefined context, and a shell bug through shellcheck
    const bad = lint(["-"], "on: push\njobs:\n  a:\n    runs-on: [self-hosted, fleet-lan]\n    steps:\n      - run: echo ${{ github.nope }}\n      - run: cp $1 /tmp\n");
    const kinds = JSON.parse(bad.stdout).map((p: any) => p.kind).sort();
    expect(kinds).toEqual(["expression", "shellcheck"]);
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
    expect(runs(w.jobs.flake)).toContain("nix flake check ./nixos"); // #27 M3: the flake's own checks
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

  it("pins every action to a full commit SHA with its tag in a comment (#28 item 7: a tag can move)", () => {
    for (const name of readdirSync(DIR).filter((f) => f.endsWith(".yml"))) {
      const lines = readFileSync(join(DIR, name), "utf8").split("\n").filter((l) => /^\s*(- )?uses:/.test(l));
      expect(lines.length).toBeGreaterThan(0);
      for (const l of lines) expect({ name, l }).toEqual({ name, l: expect.stringMatching(/^\s*(- )?uses: [\w.-]+\/[\w.-]+@[0-9a-f]{40} # v\d+(\.\d+){0,2}$/) });
    }
  });

  it("pins its tools: OpenTofu and Terraform versions, action versions (no floating @main)", () => {
    // Node 22 LTS (the CDK Terrain CLI needs >= 22.19) in every job that sets up Node
    for (const f of ["plan.yml", "deploy.yml"]) for (const job of Object.values<any>(wf(f).jobs)) for (const st of job.steps.filter((x: any) => String(x.uses ?? "").startsWith("actions/setup-node@"))) expect(st.with["node-version"]).toBe(22);
    for (const name of ["plan.yml", "deploy.yml"]) {
      const w = wf(name);
      expect(w.env.OPENTOFU_VERSION).toMatch(/^\d+\.\d+\.\d+$/);
      for (const job of Object.values<any>(w.jobs)) {
        for (const u of uses(job)) expect(u).toMatch(/@[0-9a-f]{40}$/);
        const tofu = job.steps.find((s: any) => s.uses?.startsWith("opentofu/setup-opentofu"));
        if (tofu) expect(tofu.with.tofu_version).toBe("${{ env.OPENTOFU_VERSION }}");
      }
    }
  });
});
