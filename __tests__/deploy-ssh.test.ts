/**
 * The deploy script against real OpenSSH servers on loopback addresses, logged into as an
 * unprivileged user with real sudo (root login refused, as on the real hosts). nixos-rebuild and
 * the target's Nix/systemd tools are STAND-INS (__tests__/stand-ins): nixos-rebuild-ng needs
 * nixpkgs, and the test container has no Nix or systemd. Their behaviour is copied from
 * nixos-rebuild-ng, switch-to-configuration-ng and Nix's profiles (see each file). Everything
 * else (sshd, ssh, ssh-keyscan, sudo, known_hosts pinning, HTTP health checks) is real.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync, existsSync } from "node:fs";
import { createServer } from "node:http";
import { join } from "node:path";
import { App } from "cdktn";
import { buildFleet } from "../stacks/fleet";
import { parseInventory } from "../constructs/inventory";
import { exampleData, ROOT, runAsync } from "./helpers";
import { control, DEPLOY_USER, generationOf, runningOf, startHost, startHttp, STAND_INS, SSH_PORT } from "./ssh-harness";
import { deployBed } from "./deploy-bed";

const { work, key, hosts, servers, spec, deploy, knownHosts, healthyHost } = deployBed();

describe("deploy over real SSH", () => {
  it("deploys as an unprivileged user with sudo: pins the key on first contact, sets the profile, activates, checks health", async () => {
    const h = await healthyHost("a", "127.0.0.31");
    const kh = knownHosts();
    const r = await deploy(spec("web-a", { finalAddress: "127.0.0.31" }), kh);
    expect(r.status).toBe(0);
    expect(r.calls).toHaveLength(1); // the switch (no flag detection: issue #26 item 11)
    expect(r.calls[0]).toContain(`switch --flake ${ROOT}/nixos#web-a --target-host ${DEPLOY_USER}@fleet--web-a--127.0.0.31 --sudo --no-reexec`);
    expect(r.calls[0]).toMatch(/NIX_SSHOPTS=-F \/\S+\/config$/);
    expect(r.out).not.toContain("deprecated");
    expect(generationOf(h)).toBe("system-2-link");
    expect(runningOf(h)).toBe("v1");
    const pinned = readFileSync(kh, "utf8");
    expect(pinned).toContain("# vmid web-a 501");
    expect(pinned).toContain(`web-a ${readFileSync(`${h.hostKey}.pub`, "utf8").split(" ").slice(0, 2).join(" ")}`);
    expect(r.out).toMatch(/^\[web-a\] wait for ssh done \(\d+\.\ds\)$/m);
    expect(r.out).toMatch(/^\[web-a\] first contact: pinned ssh-ed25519 key/m);
    expect(r.out).toMatch(/^\[web-a\] healthy for 0.5s: vllm.service active; vllm:8000 answer$/m);
    expect(r.out).not.toContain("PRIVATE KEY");

    // The same configuration again: Nix makes no new generation for the same store path.
    expect((await deploy(spec("web-a", { finalAddress: "127.0.0.31" }), kh)).status).toBe(0);
    expect(generationOf(h)).toBe("system-2-link");
    // A new one is the next number.
    const again = await deploy(spec("web-a", { finalAddress: "127.0.0.31" }), kh, [], {}, "v2");
    expect(again.status).toBe(0);
    expect(again.out).toContain("host key matches the pinned key");
    expect(generationOf(h)).toBe("system-3-link");
  });

  it("the targets refuse root logins, as nixos/modules/base.nix does", async () => {
    const h = await healthyHost("root", "127.0.0.30");
    const r = await runAsync("ssh", ["-i", key, "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-p", String(SSH_PORT), "root@127.0.0.30", "true"]);
    expect(r.status).toBe(255);
    expect(r.stderr).toContain("Permission denied");
    expect(generationOf(h)).toBe("system-1-link");
  });

  it("with FLEET_REQUIRE_PINNED=1 (CI) refuses a host whose key is not pinned instead of trusting first use", async () => {
    const h = await healthyHost("q", "127.0.0.66");
    const r = await deploy(spec("web-q", { finalAddress: "127.0.0.66" }), knownHosts(), [], { FLEET_REQUIRE_PINNED: "1" });
    expect(r.status).toBe(4);
    expect(r.out).toMatch(/FAILED: no pinned host key for web-q in \S+known_hosts, and only pinned hosts are deployed to here/);
    expect(generationOf(h)).toBe("system-1-link");
  });

  it("gives up on an unreachable target within its deadline, with a clear message", async () => {
    const r = await deploy(spec("ghost", { finalAddress: "127.0.0.99", timeouts: { sshSeconds: 1, switchSeconds: 5, healthSeconds: 1 } }), knownHosts());
    expect(r.status).toBe(3);
    expect(r.out).toContain("[ghost] FAILED: SSH did not answer on 127.0.0.99 port 2222 within 1s");
    expect(r.out).toContain("[ghost] next: check that VM 501 on pve1 runs");
    expect(r.calls.filter((c) => c.startsWith("switch"))).toEqual([]);
  });

  it("refuses a changed host key while the vmid is the same, and accepts it when the VM was recreated", async () => {
    const h = await healthyHost("b", "127.0.0.32");
    const kh = knownHosts();
    writeFileSync(kh, "# vmid web-b 501\nweb-b ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMBdEQbWhgNDvUkSvdg4aRf6CDzDCIrCGUKcIJmGvsZo\n");
    const refused = await deploy(spec("web-b", { finalAddress: "127.0.0.32" }), kh);
    expect(refused.status).toBe(4);
    expect(refused.out).toMatch(/host key of web-b at 127\.0\.0\.32 changed \(pinned SHA256:\S+, got SHA256:\S+\) while its vmid stayed 501; refusing to connect/);
    // the fingerprints are ssh-keygen's own (#29 item 11: the cut keys were equal for every ed25519 key)
    const kg = spawnSync("ssh-keygen", ["-lf", "-"], { input: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMBdEQbWhgNDvUkSvdg4aRf6CDzDCIrCGUKcIJmGvsZo\n", encoding: "utf8" }).stdout.split(" ")[1];
    expect(refused.out).toContain(`pinned ${kg}, got SHA256:`);
    expect(refused.calls.filter((c) => c.startsWith("switch"))).toEqual([]);
    expect(generationOf(h)).toBe("system-1-link");

    const recreated = await deploy(spec("web-b", { finalAddress: "127.0.0.32", vmid: 777 }), kh);
    expect(recreated.status).toBe(0);
    expect(recreated.out).toContain("VM was recreated (vmid 501 -> 777): replaced the pinned host key");
    expect(readFileSync(kh, "utf8")).toContain("# vmid web-b 777");
  });

  it("follows the host to its new static address after activation", async () => {
    const oldAddr = await startHost("c", ["127.0.0.41"], key);
    const newAddr = await startHost("c2", ["127.0.0.42"], key, oldAddr); // same machine, same key
    hosts.push(oldAddr, newAddr);
    servers.push(await startHttp("127.0.0.42", 8000, "/health"));
    const r = await deploy(spec("web-c", { agentAddress: "127.0.0.41", finalAddress: "127.0.0.42" }), knownHosts());
    expect(r.status).toBe(0);
    expect(r.calls[0]).toContain(`--target-host ${DEPLOY_USER}@fleet--web-c--127.0.0.41`);
    expect(r.out).toContain("[web-c] address moved 127.0.0.41 -> 127.0.0.42");
    expect(r.out).toMatch(/\[web-c\] healthy for 0.5s: vllm.service active; vllm:8000 answer/);
  });

  it("rolls back to the generation it ran before and exits 5 when a role unit fails", async () => {
    const h = await startHost("d", ["127.0.0.51"], key);
    hosts.push(h);
    writeFileSync(join(h.dir, "failed-units"), "vllm.service loaded failed failed vLLM OpenAI-compatible server\n");
    const r = await deploy(spec("web-d", { finalAddress: "127.0.0.51", timeouts: { sshSeconds: 10, switchSeconds: 60, healthSeconds: 1, healthStableSeconds: 0.5 } }), knownHosts());
    expect(r.status).toBe(5);
    expect(generationOf(h)).toBe("system-1-link");
    expect(runningOf(h)).toBe("v0");
    expect(r.out).toContain("failed units: vllm.service");
    expect(r.out).toContain("vllm: GET http://127.0.0.51:8000/health failed (ECONNREFUSED)");
    expect(r.out).toMatch(/FAILED: health check failed after 1s: .*; rolled back to system-1-link/);
    expect(r.out).toContain("Terraform marks the step tainted, so the next `cdktf deploy` retries it");
  });

  it("ignores failed units that are not the host's roles', and wants the checks to stay green for the stable window", async () => {
    const h = await healthyHost("s", "127.0.0.56");
    writeFileSync(join(h.dir, "failed-units"), "fwupd-refresh.service loaded failed failed Refresh fwupd metadata\n");
    const ok = await deploy(spec("web-s", { finalAddress: "127.0.0.56" }), knownHosts());
    expect(ok.status).toBe(0);
    // A service that answers once and then dies is not healthy.
    const h2 = await startHost("s2", ["127.0.0.57"], key);
    hosts.push(h2);
    let answered = 0;
    const flaky = createServer((_req, res) => {
      res.statusCode = answered++ === 0 ? 200 : 503;
      res.end();
    });
    await new Promise<void>((d) => flaky.listen(8000, "127.0.0.57", () => d()));
    servers.push(flaky);
    const r = await deploy(spec("web-s2", { finalAddress: "127.0.0.57", timeouts: { sshSeconds: 10, switchSeconds: 60, healthSeconds: 2, healthStableSeconds: 2 } }), knownHosts());
    expect(r.status).toBe(5);
    expect(r.out).toContain("vllm: GET http://127.0.0.57:8000/health answered 503");
    expect(runningOf(h2)).toBe("v0");
  });

  it("does not roll back when the build failed before activation (nothing changed on the host)", async () => {
    const h = await healthyHost("e", "127.0.0.52");
    const kh = knownHosts();
    expect((await deploy(spec("web-e", { finalAddress: "127.0.0.52" }), kh)).status).toBe(0);
    const r = await deploy(spec("web-e", { finalAddress: "127.0.0.52" }), kh, [], { FLEET_STANDIN_FAIL_BUILD: "1" }, "v2");
    expect(r.status).toBe(1);
    expect(r.out).toContain("[web-e]   | error: builder for");
    expect(r.out).toContain("FAILED: nixos-rebuild switch exited 1; the host still runs its previous generation system-2-link");
    expect(generationOf(h)).toBe("system-2-link");
  });

  it("fail N+1, roll back, retry fails as N+2: the host ends on N, never on the known-bad N+1", async () => {
    const h = await healthyHost("n", "127.0.0.58");
    const kh = knownHosts();
    expect((await deploy(spec("web-n", { finalAddress: "127.0.0.58" }), kh, [], {}, "v1")).status).toBe(0);
    expect(generationOf(h)).toBe("system-2-link"); // N
    control(h, "exit-nixos-system-web-n-v2", "4");
    writeFileSync(join(h.dir, "failed-units"), "vllm.service loaded failed failed vLLM\n"); // a role unit: the switch fails
    const first = await deploy(spec("web-n", { finalAddress: "127.0.0.58" }), kh, [], {}, "v2"); // N+1 = 3
    writeFileSync(join(h.dir, "failed-units"), "");
    expect(first.status).toBe(1);
    expect(first.out).toContain("nixos-rebuild switch exited 4 (units failed to start); rolled back to system-2-link");
    control(h, "exit-nixos-system-web-n-v3", "2");
    const retry = await deploy(spec("web-n", { finalAddress: "127.0.0.58" }), kh, [], {}, "v3"); // N+2 = 4
    expect(retry.status).toBe(1);
    expect(retry.out).toContain("nixos-rebuild switch exited 2 (the activation script failed); rolled back to system-2-link");
    expect(generationOf(h)).toBe("system-2-link");
    expect(runningOf(h)).toBe("v1");
  });

  it("does not roll back when the generation before the deploy is unknown, and says so", async () => {
    const h = await healthyHost("u", "127.0.0.62", SSH_PORT, { fresh: true });
    control(h, "exit-nixos-system-web-u-v1", "2");
    const r = await deploy(spec("web-u", { finalAddress: "127.0.0.62" }), knownHosts());
    expect(r.status).toBe(1);
    expect(r.out).toContain("could not read the current generation");
    expect(r.out).toContain("the generation it ran before is unknown, so it was not rolled back");
  });

  it("a non-root deploy on a non-22 SSH port with a build host of its own, both keys pinned, passes end to end", async () => {
    const h = await healthyHost("p", "127.0.0.63", 2223);
    const builder = await startHost("builder", ["127.0.0.64"], key, undefined, 2224);
    hosts.push(builder);
    const kh = knownHosts();
    const r = await deploy(spec("web-p", { finalAddress: "127.0.0.63", sshPort: 2223, buildHost: `${DEPLOY_USER}@127.0.0.64:2224` }), kh);
    expect(r.status).toBe(0);
    expect(r.calls[0]).toContain(`--build-host ${DEPLOY_USER}@fleet-build--127.0.0.64`);
    const pins = readFileSync(kh, "utf8");
    expect(pins).toContain(`build-host:127.0.0.64 ${readFileSync(`${builder.hostKey}.pub`, "utf8").split(" ").slice(0, 2).join(" ")}`);
    expect(pins).toContain(`web-p ${readFileSync(`${h.hostKey}.pub`, "utf8").split(" ").slice(0, 2).join(" ")}`);
    expect(runningOf(h)).toBe("v1");
  });

  it("prints exactly what would run with --dry-run and touches nothing", async () => {
    const kh = knownHosts();
    const caches = { substituters: ["https://cuda.cache.example"], trustedPublicKeys: ["cuda.cache.example-1:AAAA"] };
    const r = await deploy(spec("web-f", { finalAddress: "127.0.0.53", buildHost: "builder.lan", ...caches }), kh, ["--dry-run"]);
    expect(r.status).toBe(0);
    expect(r.out).toMatch(/would run: NIX_SSHOPTS="-F \S+\/config" nixos-rebuild switch --flake \S+\/nixos#web-f --target-host fleetdeploy@fleet--web-f--<address> --sudo --build-host fleet-build--builder.lan --option extra-substituters https:\/\/cuda.cache.example --option extra-trusted-public-keys cuda.cache.example-1:AAAA/);
    expect(r.calls).toEqual([]);
    expect(existsSync(kh)).toBe(false);
  });

  it("returns a host to its previous generation with --rollback, without re-exec (works when the flake does not)", async () => {
    const h = await healthyHost("g", "127.0.0.54");
    const kh = knownHosts();
    expect((await deploy(spec("web-g", { finalAddress: "127.0.0.54" }), kh, [], {}, "v1")).status).toBe(0);
    expect((await deploy(spec("web-g", { finalAddress: "127.0.0.54" }), kh, [], {}, "v2")).status).toBe(0);
    expect(generationOf(h)).toBe("system-3-link");
    const r = await deploy(spec("web-g", { finalAddress: "127.0.0.54" }), kh, ["--rollback"], { FLEET_STANDIN_REEXEC_FAIL: "1" });
    expect(r.status).toBe(0);
    expect(r.calls[0]).toContain("switch --rollback --no-reexec");
    expect(generationOf(h)).toBe("system-2-link");
    expect(runningOf(h)).toBe("v1");
    expect(r.out).toContain("now at system-2-link");
  });

  it("an old nixos-rebuild flag is accepted with nixos-rebuild-ng's deprecation warning; an unknown one is refused", async () => {
    await healthyHost("w", "127.0.0.65");
    const old = await deploy(spec("web-w", { finalAddress: "127.0.0.65" }), knownHosts(), [], { FLEET_REMOTE_SUDO_FLAG: "--use-remote-sudo" });
    expect(old.status).toBe(0);
    expect(old.out).toContain("nixos-rebuild: warning: --use-remote-sudo is deprecated, use --sudo instead");
    const bad = await deploy(spec("web-w", { finalAddress: "127.0.0.65" }), knownHosts(), [], { FLEET_REMOTE_SUDO_FLAG: "--elevate-all" }, "v2");
    expect(bad.status).toBe(1);
    expect(bad.out).toContain("nixos-rebuild: error: unrecognized arguments: --elevate-all");
  });

  it("stops before touching the host when nixos-rebuild is not installed", async () => {
    const kh = knownHosts();
    const r = await deploy(spec("web-h", { finalAddress: "127.0.0.31" }), kh, [], { PATH: "/usr/local/bin:/usr/bin:/bin" });
    expect(r.status).toBe(2);
    expect(r.out).toContain("[web-h] FAILED: nixos-rebuild is not on PATH; install Nix, then `nix profile install nixpkgs#nixos-rebuild`");
    expect(existsSync(kh)).toBe(false);
  });

  it("runs as a Terraform deploy step: terraform apply -> local-exec -> deploy.ts -> sshd", async () => {
    const h = await startHost("t", ["127.0.0.61"], key);
    hosts.push(h);
    const d = exampleData();
    d.deploy = { user: DEPLOY_USER, sshPort: SSH_PORT, healthStableSeconds: 0.5 };
    d.users.push({ name: DEPLOY_USER, admin: true, sshKeys: [readFileSync(`${key}.pub`, "utf8").trim()] });
    d.hosts = [{ name: "git1", roles: ["cicd"], vmid: 610, node: "pve1", cores: 2, memoryMiB: 2048, diskGiB: 20, network: { address: "127.0.0.61/8", gateway: "127.0.0.1" } }];
    const root = mkdtempSync(join(work, "tf-"));
    const app = new App({ outdir: join(root, "cdktf.out"), skipValidation: true });
    buildFleet(app, parseInventory(JSON.stringify(d)), { root: ROOT, manageVms: false, deployWorkingDir: ROOT });
    app.synth();
    const dir = join(root, "cdktf.out", "stacks", "ops");
    const kh = join(root, "known_hosts");
    const log = join(root, "nixos-rebuild.log");
    const env = { ...process.env, PATH: `${join(STAND_INS, "bin")}:${process.env.PATH}`, FLEET_SSH_KEY_FILE: key, FLEET_KNOWN_HOSTS: kh, FLEET_STANDIN_LOG: log, SSH_AUTH_SOCK: "" };
    const run = (args: string[]) => runAsync("terraform", args, { cwd: dir, env });
    expect((await run(["init", "-input=false", "-no-color"])).status).toBe(0);
    const r = await run(["apply", "-auto-approve", "-input=false", "-no-color"]);
    expect(r.status).toBe(0);
    expect(r.out).toMatch(/\[git1\] deployed system-2-link in \d+\.\ds/);
    expect(readFileSync(log, "utf8")).toContain(`--target-host ${DEPLOY_USER}@fleet--git1--127.0.0.61 --sudo`);
    expect(readFileSync(kh, "utf8")).toContain("# vmid git1 610");
    expect(generationOf(h)).toBe("system-2-link");
  });
});
