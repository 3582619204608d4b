/**
 * scripts/ci/github.mts (the workflows' GitHub API steps) against the STAND-IN of the GitHub
 * REST API (stand-ins/github-api.ts): which plan run a deploy applies, the follow-up pull
 * request after a failed apply, the drift issue.
 */
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT, runAsync } from "./helpers";
import { FakeGitHub } from "./stand-ins/github-api";

let gh: FakeGitHub;
let api: string;
beforeEach(async () => {
  gh = new FakeGitHub();
  api = await gh.start();
});
afterEach(() => gh.stop());

async function call(args: string[], token = "ghs_test") {
  const out = join(mkdtempSync(join(tmpdir(), "gh-out-")), "output");
  writeFileSync(out, "");
  const r = await runAsync("node", ["--import", "tsx", join(ROOT, "scripts", "ci", "github.mts"), ...args], { cwd: ROOT, env: { ...process.env, GITHUB_TOKEN: token, GITHUB_REPOSITORY: "acme/fleet", GITHUB_API_URL: api, GITHUB_OUTPUT: out } });
  const outputs = Object.fromEntries(readFileSync(out, "utf8").split("\n").filter(Boolean).map((l) => l.split(/=(.*)/s).slice(0, 2)));
  return { status: r.status, out: r.stdout, outputs };
}
const MERGE = "a1".repeat(20);
const HEAD = "b2".repeat(20);
const run = (id: number, conclusion: string | null, minute: number, status = "completed", artifacts = conclusion === "skipped" ? [] : [`plan-${HEAD}`]) => ({ id, head_sha: HEAD, event: "pull_request", status, conclusion, created_at: `2026-12-01T10:${String(minute).padStart(2, "0")}:00Z`, path: ".github/workflows/plan.yml", artifacts });

describe("reviewed-run: the plan a deploy applies", () => {
  beforeEach(() => {
    gh.pulls.push({ number: 7, head: { sha: HEAD, ref: "feature" }, base: { ref: "main" }, merged_at: "2026-12-01T11:00:00Z", merge_commit_sha: MERGE, state: "closed" });
    // an open pull request that also contains the commit (GitHub lists it too)
    gh.pulls.push({ number: 9, head: { sha: "c3".repeat(20), ref: "other" }, base: { ref: "main" }, merged_at: null, merge_commit_sha: null, state: "open" });
  });

  it("takes the newest plan run of the merged pull request's head when it succeeded", async () => {
    gh.runs.push(run(501, "failure", 1), run(502, "success", 5));
    const r = await call(["reviewed-run", MERGE]);
    expect({ status: r.status, out: r.out }).toEqual({ status: 0, out: "" });
    expect(r.outputs).toEqual({ pr: "7", head: HEAD, base: "main", run: "502" });
  });

  it("passes over runs that planned nothing: a label change that skipped every job, the merge's closed event (success, no plan artifact)", async () => {
    gh.runs.push(run(801, "success", 1), run(802, "skipped", 4), run(803, "success", 6, "completed", []));
    const r = await call(["reviewed-run", MERGE]);
    expect({ status: r.status, out: r.out, run: r.outputs.run }).toEqual({ status: 0, out: "", run: "801" });
    gh.runs.push(run(804, "failure", 2));
    expect((await call(["reviewed-run", MERGE])).out).toContain("(run https://github.com/acme/fleet/actions/runs/804) is failure");
  });

  it("refuses when the newest run failed, even though an older one succeeded (a plan made with allow-destroy, then the label removed)", async () => {
    gh.runs.push(run(601, "success", 1), run(602, "failure", 9));
    const r = await call(["reviewed-run", MERGE]);
    expect(r.status).toBe(1);
    expect(r.out).toBe("::error::the newest plan of pull request #7 (run https://github.com/acme/fleet/actions/runs/602) is failure, not a success: its saved plans were not accepted, so nothing is applied\n");
    expect(r.outputs).toEqual({});
  });

  it("refuses a commit that no pull request merged, a run still in progress, and a bad token, each with one line", async () => {
    const direct = await call(["reviewed-run", "d4".repeat(20)]);
    expect(direct.out).toMatch(/^::error::commit d4d4\S+ is not the merge of a pull request: there is no reviewed plan to apply/);
    gh.runs.push(run(701, "success", 1), run(702, null, 3, "in_progress"));
    expect((await call(["reviewed-run", MERGE])).out).toContain("is in_progress, not a success");
    const bad = await call(["reviewed-run", MERGE], "wrong");
    expect({ status: bad.status, out: bad.out }).toEqual({ status: 1, out: "::error::GitHub API: 401 Bad credentials - https://docs.github.com/rest\n" });
  });
});

describe("follow-up after a failed apply", () => {
  it("opens a pull request from an empty commit on main (main's tree, main as parent), named after the failed one", async () => {
    const r = await call(["follow-up", "7", "https://github.com/acme/fleet/actions/runs/900"]);
    expect({ status: r.status, out: r.out, log: r.status ? gh.log : [] }).toEqual({ status: 0, out: "", log: [] });
    const pull = gh.pulls.at(-1) as any;
    expect(r.outputs["follow-up"]).toBe(String(pull.number));
    expect(pull.title).toBe("Follow-up: re-plan and apply main after the failed deploy of #7");
    const commit = gh.commits.get(pull.head.sha)!;
    expect(commit).toMatchObject({ tree: "t".repeat(40), parents: ["1".repeat(40)] });
    expect(pull.body).toContain("https://github.com/acme/fleet/actions/runs/900");
    // a second failure of the same deploy (a re-run) gets its own branch instead of a 422
    expect((await call(["follow-up", "7", "https://github.com/acme/fleet/actions/runs/900"])).status).toBe(0);
    expect(gh.pulls.filter((p) => p.head.ref.startsWith("fleet-follow-up/7-"))).toHaveLength(2);
  });
});

describe("the plan comment", () => {
  it("writes one comment per pull request and rewrites it on the next plan; a person's comment that copies the marker is left alone", async () => {
    gh.pulls.push({ number: 12, head: { sha: HEAD, ref: "f" }, base: { ref: "main" }, merged_at: null, merge_commit_sha: null, state: "open" });
    gh.comments.push({ id: 1, issue: 12, body: "<!-- fleet-plan -->\nI copied it", user: { login: "mallory", type: "User" } });
    const md = join(mkdtempSync(join(tmpdir(), "cm-")), "comment.md");
    writeFileSync(md, "first plan\n");
    expect((await call(["comment", "12", md])).outputs).toEqual({ comment: "created" });
    writeFileSync(md, "second plan\n");
    expect((await call(["comment", "12", md])).outputs).toEqual({ comment: "updated" });
    expect(gh.comments.map((c) => `${c.user.login}: ${c.body}`)).toEqual(["mallory: <!-- fleet-plan -->\nI copied it", "github-actions[bot]: <!-- fleet-plan -->\nsecond plan\n"]);
  });
});

describe("drift issue", () => {
  it("opens one issue, updates it on the next drift instead of opening another, and closes it when main's plan is empty", async () => {
    const md = join(mkdtempSync(join(tmpdir(), "drift-")), "comment.md");
    writeFileSync(md, "### Plan: `ops`\n\n**0 to create · 1 to update**\n");
    // a pull request with the label is not the issue (the issues endpoint lists pull requests too)
    gh.issues.push({ number: 3, title: "a PR", body: "", labels: ["fleet-drift"], state: "open", pull_request: { url: "x" }, comments: [] });
    const first = await call(["drift", md, "ops"]);
    expect(first.outputs.drift).toBe("opened");
    const second = await call(["drift", md, "ai", "ops"]);
    expect(second.outputs).toEqual({ issue: first.outputs.issue, drift: "updated" });
    const issue = gh.issues.find((i) => String(i.number) === first.outputs.issue)!;
    expect(gh.issues.filter((i) => !i.pull_request)).toHaveLength(1);
    expect(issue.title).toBe("Drift: ai, ops differ from the default branch");
    expect(issue.body).toContain("**0 to create · 1 to update**");
    expect(issue.labels).toEqual(["fleet-drift"]);
    const clean = await call(["drift", md]);
    expect(clean.outputs).toEqual({ issue: first.outputs.issue, drift: "closed" });
    expect(issue.state).toBe("closed");
    expect(issue.comments).toEqual(["A plan of the default branch is empty again: no drift."]);
  });
});
