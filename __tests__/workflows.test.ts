import { spawnSync } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { YAML } from "zx";
import { ROOT } from "./helpers";

const DIR = join(ROOT, ".github", "workflows");
const wf = (name: string) => YAML.parse(readFileSync(join(DIR, name), "utf8"));
const uses = (job: any) => job.steps.map((s: any) => s.uses).filter(Boolean);
const runs = (job: any) => job.steps.map((s: any) => s.run ?? "").join("\n");
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
    const bad = lint(["-"], "on: push\njobs:\n  a:\n    runs-on: [self-hosted, fleet-plan]\n    steps:\n      - run: echo ${{ github.nope }}\n      - run: cp $1 /tmp\n");
    const kinds = JSON.parse(bad.stdout).map((p: any) => p.kind).sort();
    expect(kinds).toEqual(["expression", "shellcheck"]);
  });

  it("the workflows' scripts (scripts/ci/*.sh) are clean for shellcheck, and shellcheck does catch a bug there", () => {
    const ci = join(ROOT, "scripts", "ci");
    const files = readdirSync(ci).filter((f) => f.endsWith(".sh")).map((f) => join(ci, f));
    expect(files.length).toBeGreaterThanOrEqual(5);
    const r = spawnSync("shellcheck", ["--format=gcc", ...files], { encoding: "utf8" });
    expect({ status: r.status, out: r.stdout }).toEqual({ status: 0, out: "" });
    const bad = spawnSync("shellcheck", ["--format=gcc", "-s", "bash", "-"], { encoding: "utf8", input: "#!/bin/bash\nrm -rf $1/plans\n" });
    expect(bad.stdout).toContain("SC2086");
  });

  it("plan.yml: tests and flake evaluation on hosted runners, the plan on the ephemeral plan runner; only the allow-destroy label re-plans", () => {
    const w = wf("plan.yml");
    expect(w.on.pull_request.types).toEqual(expect.arrayContaining(["opened", "synchronize", "reopened", "labeled", "unlabeled", "closed"]));
    expect(hosted(w.jobs.test)).toBe(true);
    expect(hosted(w.jobs.flake)).toBe(true);
    expect(w.jobs.plan["runs-on"]).toEqual(["self-hosted", "fleet-plan"]);
    expect(w.jobs.plan.if).toContain("github.event.pull_request.head.repo.full_name == github.repository");
    for (const job of ["test", "plan"]) expect(w.jobs[job].if).toContain("github.event.action != 'labeled' && github.event.action != 'unlabeled' || github.event.label.name == 'allow-destroy'");
    expect(runs(w.jobs.test)).toContain(".ci/run");
    expect(runs(w.jobs.flake)).toContain("nixos/flake.lock is not committed");
    expect(runs(w.jobs.flake)).toContain("c.config.system.build.toplevel.drvPath");
    expect(runs(w.jobs.flake)).toContain("nix flake check ./nixos"); // #27 M3: the flake's own checks
  });

  it("plan.yml: the job's scripts, read-only credentials, the comment tied to the head commit and run, the sealed plans uploaded for the deploy", () => {
    const plan = wf("plan.yml").jobs.plan;
    expect(runs(plan)).toContain('bash scripts/ci/plan-stacks.sh "$PR" "$HEAD_SHA" "$RUN_URL"');
    expect(runs(plan)).toContain('--commit "$HEAD_SHA" --run-url "$RUN_URL"');
    expect(runs(plan)).toContain("bash scripts/ci/seal-plans.sh deploy/plan-recipients.txt artifact");
    expect(plan.env.PROXMOX_VE_API_TOKEN).toBe("${{ secrets.PROXMOX_VE_API_TOKEN_READONLY }}");
    expect(plan.env.PG_CONN_STR).toBe("${{ secrets.PG_CONN_STR_READONLY }}");
    const upload = plan.steps.find((s: any) => s.uses?.startsWith("actions/upload-artifact@"));
    expect(upload.with).toMatchObject({ name: "plan-${{ github.event.pull_request.head.sha }}", path: "artifact/", overwrite: true });
    // the job that writes the comment fails the run after writing it, from the base branch's scripts
    const comment = wf("plan.yml").jobs.comment;
    expect(comment.needs).toBe("plan");
    expect(comment.steps[0].with.ref).toBe("${{ github.event.pull_request.base.sha }}");
    expect(runs(comment)).toMatch(/github\.mts comment "\$PR" artifact\/comment\.md[\s\S]*3\) echo "::error::a VM that Proxmox marks stateful/);
  });

  it("deploy.yml: main only, after the tests, on the deploy runner behind the production environment, applies the newest reviewed plan run, no concurrency group that cancels a pending deploy", () => {
    const w = wf("deploy.yml");
    expect(w.on).toEqual({ push: { branches: ["main"] } });
    expect(w.concurrency).toBeUndefined();
    const d = w.jobs.deploy;
    expect(d.needs).toEqual(["test", "find"]);
    expect(d.environment).toBe("${{ needs.find.outputs.destroys == 'true' && 'production-destroy' || 'production' }}");
    expect(d["runs-on"]).toEqual(["self-hosted", "fleet-deploy"]);
    expect(d.env.FLEET_REQUIRE_PINNED).toBe("1");
    expect(runs(w.jobs.find)).toContain('github.mts reviewed-run "$GITHUB_SHA"');
    const download = d.steps.find((s: any) => s.uses?.startsWith("actions/download-artifact@"));
    expect(download.with).toMatchObject({ name: "plan-${{ needs.find.outputs.head }}", "run-id": "${{ needs.find.outputs.run }}" });
    expect(runs(d)).toContain('bash scripts/ci/apply-reviewed.sh reviewed-artifact "$PR" "$BASE_REF"');
    expect(runs(d)).toContain("nix build --inputs-from ./nixos nixpkgs#nixos-rebuild");
    expect(runs(d)).not.toContain("nix profile install");
    expect(runs(d)).not.toMatch(/\bgh /);
    // a failed apply: a follow-up pull request behind the same environment takes over the locks
    const recover = w.jobs.recover;
    expect(recover).toMatchObject({ if: "failure() && needs.deploy.result == 'failure'", environment: "production", "runs-on": ["self-hosted", "fleet-deploy"] });
    expect(runs(recover)).toContain('npm run -s stack-lock -- move --from "$PR" --to "$FOLLOW_UP"');
  });

  it("drift.yml: a scheduled read-only plan of main on the plan runner; the issue written from a hosted job", () => {
    const w = wf("drift.yml");
    expect(w.on.schedule[0].cron).toMatch(/^\d+ \d+ \* \* \*$/);
    expect(w.jobs.plan["runs-on"]).toEqual(["self-hosted", "fleet-plan"]);
    expect(runs(w.jobs.plan)).toContain("bash scripts/ci/drift-stacks.sh");
    expect(w.jobs.report.permissions).toEqual({ contents: "read", issues: "write" });
    expect(runs(w.jobs.report)).toContain('github.mts drift drift/comment.md "${stacks[@]}"');
  });

  // #28 item 1: the security model, read from the workflows themselves
  describe("security model", () => {
    const all = () => readdirSync(DIR).filter((f) => f.endsWith(".yml")).map((f) => ({ file: f, w: wf(f) }));
    const jobs = () => all().flatMap(({ file, w }) => Object.entries<any>(w.jobs).map(([name, job]) => ({ file, name, job, w })));
    const secretsOf = (job: any) => [...JSON.stringify(job).matchAll(/secrets\.([A-Z0-9_]+)/g)].map((m) => m[1]);
    const WRITE = ["PG_CONN_STR", "PROXMOX_VE_API_TOKEN", "DEPLOY_SSH_KEY", "PLAN_AGE_IDENTITY", "FLEET_BOT_TOKEN"];

    it("no workflow runs on pull_request_target or workflow_run (a pull request's code with the base's secrets); every workflow starts with no permissions", () => {
      for (const { file, w } of all()) {
        expect({ file, on: Object.keys(w.on) }).toEqual({ file, on: expect.not.arrayContaining(["pull_request_target", "workflow_run"]) });
        expect({ file, permissions: w.permissions }).toEqual({ file, permissions: {} });
      }
    });

    it("every job names its permissions; write permissions only where a job writes (comment, issue, follow-up), never on the plan runner", () => {
      const writes: string[] = [];
      for (const { file, name, job } of jobs()) {
        expect({ file, name, has: typeof job.permissions }).toEqual({ file, name, has: "object" });
        for (const [scope, level] of Object.entries(job.permissions)) if (level === "write") writes.push(`${file}:${name}:${scope}`);
        if (job["runs-on"]?.includes?.("fleet-plan")) expect({ file, name, permissions: job.permissions }).toEqual({ file, name, permissions: { contents: "read" } });
      }
      expect(writes.sort()).toEqual(["deploy.yml:recover:contents", "deploy.yml:recover:pull-requests", "drift.yml:report:issues", "plan.yml:comment:pull-requests"]);
    });

    it("write credentials only in jobs behind a production environment on the deploy runner; the plan runner sees read-only ones", () => {
      for (const { file, name, job } of jobs()) {
        const used = secretsOf(job);
        const writes = used.filter((s) => WRITE.includes(s));
        if (writes.length) {
          expect({ file, name, env: String(job.environment) }).toEqual({ file, name, env: expect.stringContaining("production") });
          expect({ file, name, runner: job["runs-on"] }).toEqual({ file, name, runner: ["self-hosted", "fleet-deploy"] });
          expect(file).toBe("deploy.yml");
        }
        if (job["runs-on"]?.includes?.("fleet-plan")) expect({ file, name, used: used.filter((s) => !/_READONLY$/.test(s) && s !== "PROXMOX_VE_ENDPOINT") }).toEqual({ file, name, used: [] });
      }
    });

    it("what a fork's pull request can do: hosted jobs without secrets; every job on our runners is skipped for it; no job of a pull request uses the deploy runner", () => {
      const plan = wf("plan.yml");
      for (const [name, job] of Object.entries<any>(plan.jobs)) {
        const selfHosted = Array.isArray(job["runs-on"]) && job["runs-on"].includes("self-hosted");
        if (selfHosted) {
          expect({ name, guarded: String(job.if).includes("github.event.pull_request.head.repo.full_name == github.repository") }).toEqual({ name, guarded: true });
          expect(job["runs-on"]).not.toContain("fleet-deploy");
        } else if (name === "comment") expect(job.needs).toBe("plan"); // skipped with the plan
        else expect({ name, secrets: secretsOf(job) }).toEqual({ name, secrets: [] });
      }
    });

    it("no checkout leaves the token in .git/config; the jobs that hold a write token run no install scripts of the pull request", () => {
      for (const { file, name, job } of jobs())
        for (const st of job.steps.filter((x: any) => String(x.uses ?? "").startsWith("actions/checkout@"))) expect({ file, name, persist: st.with?.["persist-credentials"] }).toEqual({ file, name, persist: false });
      for (const { file, name, job } of jobs().filter(({ job }) => Object.values(job.permissions).includes("write"))) expect({ file, name, npm: runs(job).match(/npm ci.*/g) }).toEqual({ file, name, npm: ["npm ci --ignore-scripts"] });
    });

    it("the deploy key and the plans' identity reach only the step that uses them, no third-party action in a job with write credentials", () => {
      const d = wf("deploy.yml").jobs.deploy;
      expect(d.env.DEPLOY_SSH_KEY).toBeUndefined();
      expect(d.env.PLAN_AGE_IDENTITY).toBeUndefined();
      for (const { file, name, job } of jobs().filter(({ job }) => secretsOf(job).some((s) => WRITE.includes(s))))
        for (const u of uses(job)) expect({ file, name, u }).toEqual({ file, name, u: expect.stringMatching(/^actions\//) });
    });
  });

  it("pins every action to a full commit SHA with its tag in a comment (#28 item 7: a tag can move)", () => {
    for (const name of readdirSync(DIR).filter((f) => f.endsWith(".yml"))) {
      const lines = readFileSync(join(DIR, name), "utf8").split("\n").filter((l) => /^\s*(- )?uses:/.test(l));
      expect(lines.length).toBeGreaterThan(0);
      for (const l of lines) expect({ name, l }).toEqual({ name, l: expect.stringMatching(/^\s*(- )?uses: [\w.-]+\/[\w.-]+@[0-9a-f]{40} # v\d+(\.\d+){0,2}$/) });
    }
  });

  it("pins its tools: Node 22 LTS, OpenTofu and the provider built by scripts/tools.mjs (Go checksum database) instead of an unverified download", () => {
    for (const { w } of readdirSync(DIR).filter((f) => f.endsWith(".yml")).map((f) => ({ w: wf(f) })))
      for (const job of Object.values<any>(w.jobs)) {
        for (const st of job.steps.filter((x: any) => String(x.uses ?? "").startsWith("actions/setup-node@"))) expect(st.with["node-version"]).toBe(22);
        expect(uses(job).filter((u: string) => u.startsWith("opentofu/setup-opentofu"))).toEqual([]);
        if (/scripts\/ci\/(plan-stacks|apply-reviewed|drift-stacks)\.sh/.test(runs(job))) expect(runs(job)).toContain("bash scripts/ci/tools-path.sh");
      }
  });
});
