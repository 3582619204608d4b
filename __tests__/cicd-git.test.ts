import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT } from "./helpers";

// The CI/CD host's update hook and the first-boot registration script, run with real git.
const HOOK = join(ROOT, "nixos", "scripts", "git-update-hook.sh");
const REGISTER = join(ROOT, "nixos", "scripts", "register-host.sh");
const git = (cwd: string, ...args: string[]) => execFileSync("git", ["-c", "user.name=t", "-c", "user.email=t@t", ...args], { cwd, encoding: "utf8", stdio: "pipe" });

function setup() {
  const dir = mkdtempSync(join(tmpdir(), "cicd-"));
  const bare = join(dir, "fleet.git");
  execFileSync("git", ["init", "-q", "--bare", "--initial-branch=main", bare]);
  git(bare, "config", "fleet.protectedBranch", "main");
  symlinkSync(HOOK, join(bare, "hooks", "update"));
  const work = join(dir, "work");
  execFileSync("git", ["clone", "-q", bare, work], { stdio: "pipe" });
  writeFileSync(join(work, "a"), "1");
  git(work, "add", "a");
  git(work, "commit", "-qm", "one");
  git(work, "push", "-q", "origin", "HEAD:main");
  return { dir, bare, work };
}

const push = (cwd: string, env: Record<string, string> = {}, ...args: string[]) =>
  spawnSync("git", ["push", ...args], { cwd, encoding: "utf8", env: { ...process.env, ...env } });

describe("CI/CD git host hook", () => {
  it("accepts a fast-forward push to the protected branch", () => {
    const { work } = setup();
    writeFileSync(join(work, "a"), "2");
    git(work, "commit", "-qam", "two");
    expect(push(work, {}, "origin", "HEAD:main").status).toBe(0);
  });

  it("refuses a non-fast-forward push to the protected branch", () => {
    const { work } = setup();
    git(work, "commit", "-q", "--amend", "-m", "rewritten");
    const r = push(work, {}, "--force", "origin", "HEAD:main");
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain("refused: non-fast-forward push to protected branch refs/heads/main");
  });

  it("refuses deleting the protected branch but allows rewriting other branches", () => {
    const { work, bare } = setup();
    git(bare, "config", "receive.denyDeleteCurrent", "ignore"); // so the hook, not git's default, decides
    expect(push(work, {}, "origin", ":main").stderr).toContain("refused: refs/heads/main is protected and cannot be deleted");
    expect(push(work, {}, "origin", "HEAD:feature").status).toBe(0);
    git(work, "commit", "-q", "--amend", "-m", "x");
    expect(push(work, {}, "--force", "origin", "HEAD:feature").status).toBe(0);
  });

  it("lets anonymous (git daemon) pushes write registration branches only", () => {
    const { work } = setup();
    const anon = { REMOTE_ADDR: "192.0.2.7" };
    expect(push(work, anon, "origin", "HEAD:refs/heads/registration/web1").status).toBe(0);
    const r = push(work, anon, "origin", "HEAD:refs/heads/other");
    expect(r.stderr).toContain("anonymous pushes may only write refs/heads/registration/<hostname>");
  });
});

describe("first-boot registration script", () => {
  it("commits the host's facts to registration/<hostname>", () => {
    const { bare } = setup();
    const r = spawnSync("sh", [REGISTER, bare], { encoding: "utf8" });
    expect(r.status).toBe(0);
    const name = execFileSync("sh", ["-c", "hostname -s 2>/dev/null || cat /proc/sys/kernel/hostname"], { encoding: "utf8" }).trim();
    const facts = JSON.parse(git(bare, "show", `registration/${name}:hosts/${name}.json`));
    expect(facts.hostname).toBe(name);
    expect(Object.keys(facts).sort()).toEqual(["hostname", "ipv4", "machineId", "macs", "os", "registeredAt"]);
  });
});
