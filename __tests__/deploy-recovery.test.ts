/**
 * Deploy recovery as the real tools behave (issue #26), on the SSH test bed: real sshd, ssh,
 * sudo; STAND-INS (__tests__/stand-ins) for nixos-rebuild-ng, switch-to-configuration-ng,
 * systemd-run, systemctl, journalctl and nix-env, each as harsh as the tool it stands for and
 * citing its source: switch-to-configuration dies (exit 101) on its next write once the SSH
 * channel carrying its output has closed, the journal keeps every run, a reboot drops every
 * connection. Test addresses 127.0.2.x.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, renameSync, writeFileSync } from "node:fs";
import { execFileSync, spawnSync } from "node:child_process";
import { join } from "node:path";
import { deployBed } from "./deploy-bed";
import { exampleData, ROOT, runAsync } from "./helpers";
import { NIXPKGS_KIT } from "./nix";
import { control, DEPLOY_USER, generationOf, NO_SUDO_USER, runningOf, secretsFor, SSH_PORT, STAND_INS, startHost, startHttp, TestHost } from "./ssh-harness";

const { work, key, hosts, servers, spec, deploy, knownHosts, healthyHost } = deployBed();
/** A host of the example fleet with the litellm role. */
const litellmHost = () => (JSON.parse(readFileSync(join(ROOT, "fleet.json"), "utf8")).hosts as { name: string; roles: string[] }[]).find((h) => h.roles.includes("litellm"))!.name;
const journal = (h: TestHost) => (existsSync(join(h.dir, "journal")) ? readFileSync(join(h.dir, "journal"), "utf8") : "");

describe("an SSH drop during activation (#26 items 1, 2, 9)", () => {
  it("item 1: the connection drops during the activation, switch-to-configuration dies half-way (exit 101, nothing logged): outcome unknown, rolled back, reported as such", async () => {
    const h = await healthyHost("d1", "127.0.2.21");
    control(h, "activate-seconds", "2"); // the drop comes between the activation and "starting the following units"
    const r = await deploy(spec("web-d1", { finalAddress: "127.0.2.21" }), knownHosts(), [], { FLEET_STANDIN_DROP_AFTER_MS: "700" });
    expect(r.status).toBe(1);
    expect(r.out).toContain("the connection dropped during the switch and its outcome is unknown: switch-to-configuration logged neither success nor failure");
    expect(r.out).toContain("; rolled back to system-1-link");
    expect(runningOf(h)).toBe("v0");
    expect(generationOf(h)).toBe("system-1-link");
    // the stand-in really died half-way: it started the switch and never logged its end
    expect(journal(h)).toMatch(/nixos-rebuild-switch-to-configuration\tnixos\tswitching to system configuration \S+-v1\n/);
    expect(journal(h)).not.toMatch(/nixos-rebuild-switch-to-configuration\tnixos\t(finished switching|switching .* failed)/);
  });

  it("a drop while the units start, after switch-to-configuration's last line: it finishes and logs it, the deploy succeeds", async () => {
    const h = await healthyHost("d1b", "127.0.2.22");
    control(h, "start-seconds", "2");
    const r = await deploy(spec("web-d1b", { finalAddress: "127.0.2.22" }), knownHosts(), [], { FLEET_STANDIN_DROP_AFTER_MS: "700" });
    expect(r.out).toContain("the SSH connection dropped during the switch; reconnecting");
    expect(r.out).toContain("activation finished while disconnected: system-2-link runs at 127.0.2.22");
    expect({ status: r.status, out: r.status === 0 ? "" : r.out.slice(-1500) }).toEqual({ status: 0, out: "" });
    expect(runningOf(h)).toBe("v1");
  });

  it("a drop during an activation whose script failed (logged before the drop): the logged failure decides, rolled back", async () => {
    const h = await healthyHost("d1c", "127.0.2.23");
    control(h, "start-seconds", "2");
    control(h, "exit-nixos-system-web-d1c-v1", "2");
    const r = await deploy(spec("web-d1c", { finalAddress: "127.0.2.23" }), knownHosts(), [], { FLEET_STANDIN_DROP_AFTER_MS: "700" });
    expect(r.status).toBe(1);
    expect(r.out).toContain("the connection dropped and the activation failed (switch-to-configuration exited 2); rolled back to system-1-link");
    expect(runningOf(h)).toBe("v0");
  });

  it("item 2: an earlier run's \"finished switching\" to the same system does not pass as this run's (the journal keeps every run)", async () => {
    const h = await healthyHost("d2", "127.0.2.24");
    const kh = knownHosts();
    const s = spec("web-d2", { finalAddress: "127.0.2.24" });
    expect((await deploy(s, kh, [], {}, "v1")).status).toBe(0); // logs "finished switching to ...-v1"
    expect((await deploy(s, kh, [], {}, "v2")).status).toBe(0);
    control(h, "activate-seconds", "2");
    const r = await deploy(s, kh, [], { FLEET_STANDIN_DROP_AFTER_MS: "700" }, "v1"); // back to v1: dies half-way
    expect(journal(h).match(/finished switching to system configuration \S+-v1$/gm)).toHaveLength(1); // the first run's, still there
    expect(r.status).toBe(1);
    expect(r.out).toContain("its outcome is unknown");
    expect(runningOf(h)).toBe("v2");
  });

  it("item 9: SSH errors while waiting for the activation to end are asked again, not taken as its end", async () => {
    const h = await healthyHost("d9", "127.0.2.25");
    control(h, "hold-nixos-system-web-d9-v1", "1"); // the activation waits for standin/release
    const keys = join(h.dir, "authorized_keys");
    const polls = () => (existsSync(join(h.dir, "run", "systemctl.log")) ? readFileSync(join(h.dir, "run", "systemctl.log"), "utf8") : "");
    let phase = 0;
    const step = (out: string) => {
      // 1: the deploy asked once whether the activation still runs -> SSH goes away (every
      //    session of the host killed, the key refused)
      if (phase === 0 && out.includes("reconnecting to see where the host is") && polls().includes("is-active nixos-rebuild-switch-to-configuration")) {
        phase = 1;
        renameSync(keys, `${keys}.off`);
        for (const f of readFileSync(join(h.dir, "standin", "sshd-pidfiles"), "utf8").trim().split("\n")) execFileSync("pkill", ["-KILL", "-P", readFileSync(f, "utf8").trim()]);
      }
      // 2: the deploy met the SSH error (or gave up on it) -> SSH back, activation released
      if (phase === 1 && (out.includes("asking again") || out.includes("nixos-rebuild switch web-d9 failed"))) {
        phase = 2;
        renameSync(`${keys}.off`, keys);
        writeFileSync(join(h.dir, "standin", "release"), "");
      }
    };
    let last = "";
    const timer = setInterval(() => step(last), 200); // the poll log grows without output
    const r = await deploy(spec("web-d9", { finalAddress: "127.0.2.25" }), knownHosts(), [], { FLEET_STANDIN_DROP_AFTER_MS: "700" }, "v1", (out) => step((last = out)));
    clearInterval(timer);
    expect({ phase, out: phase === 2 ? "" : r.out }).toEqual({ phase: 2, out: "" });
    expect(r.out).toMatch(/cannot tell whether nixos-rebuild-switch-to-configuration still runs \(ssh: .*\); asking again/);
    expect({ status: r.status, out: r.status === 0 ? "" : r.out.slice(-1500) }).toEqual({ status: 0, out: "" });
    expect(runningOf(h)).toBe("v1");
  });
});
describe("deploy recovery as the real tools behave (#26)", () => {
  it("item 10: a long TMPDIR (macOS's is ~50 bytes) does not push the SSH control socket past the Unix socket path limit", async () => {
    await healthyHost("l", "127.0.2.10");
    const long = join(mkdtempSync(join(work, "t-")), "a".repeat(60), "b".repeat(30));
    require("node:fs").mkdirSync(long, { recursive: true });
    const r = await deploy(spec("web-l", { finalAddress: "127.0.2.10" }), knownHosts(), [], { TMPDIR: long });
    expect({ status: r.status, out: r.status === 0 ? "" : r.out.slice(-1500) }).toEqual({ status: 0, out: "" });
  });
});

describe("deploy recovery as the real tools behave (#26), continued", () => {
  it("items 11, 13: fixed flags --sudo --no-reexec (no --help probe, which runs man); nixos-rebuild-ng's switches in the operator's environment (NIXOS_REBUILD_*) do not reach it", async () => {
    await healthyHost("m", "127.0.2.13");
    const r = await deploy(spec("web-m", { finalAddress: "127.0.2.13" }), knownHosts(), [], { NIXOS_REBUILD_NO_SYSTEMD_RUN: "1", NIXOS_REBUILD_SSH_DEFAULT_OPTS: "-o ControlMaster=no" });
    expect(r.status).toBe(0);
    expect(r.calls.filter((c) => c.includes("NIXOS_REBUILD_"))).toEqual([]);
    expect(r.calls.map((c) => c.split(" ")[0])).toEqual(["switch"]);
  });
});

describe("deploy recovery: one policy for failed units (#26 items 6, 7)", () => {
  it("item 6: switch-to-configuration exits 4 for a unit outside the host's roles (nix-gc): the switch stands, with a warning naming it", async () => {
    const h = await healthyHost("u6", "127.0.2.6");
    control(h, "exit-nixos-system-web-u6-v1", "4");
    writeFileSync(join(h.dir, "failed-units"), "nix-gc.service loaded failed failed Nix Garbage Collector\n");
    const r = await deploy(spec("web-u6", { finalAddress: "127.0.2.6" }), knownHosts());
    expect({ status: r.status, out: r.status === 0 ? "" : r.out.slice(-1500) }).toEqual({ status: 0, out: "" });
    expect(r.out).toContain("warning: switch-to-configuration exited 4 (units failed to start: nix-gc.service); none of them is a unit of this host's roles, so the switch stands");
    expect(runningOf(h)).toBe("v1");
  });

  it("item 7: a role unit that is activating, inactive or not found is not healthy: rolled back", async () => {
    for (const [i, state] of ["activating", "inactive"].entries()) {
      const h = await healthyHost(`u7${i}`, `127.0.2.${70 + i}`);
      writeFileSync(join(h.dir, "unit-states"), `vllm.service ${state}\n`);
      const r = await deploy(spec(`web-u7${i}`, { finalAddress: `127.0.2.${70 + i}`, timeouts: { sshSeconds: 10, switchSeconds: 60, healthSeconds: 1, healthStableSeconds: 0.5 } }), knownHosts());
      expect(r.status).toBe(5);
      expect(r.out).toContain(`units not active: vllm.service (${state})`);
      expect(runningOf(h)).toBe("v0");
    }
  });
});

describe("deploy recovery: never back onto a known-bad generation (#26 item 5)", () => {
  it("N ok, N+1 fails and is rolled back (and deleted), N+2 ok, then --rollback: the host is on N", async () => {
    const h = await healthyHost("g5", "127.0.2.5");
    const kh = knownHosts();
    const s = spec("web-g5", { finalAddress: "127.0.2.5" });
    expect((await deploy(s, kh, [], {}, "v1")).status).toBe(0); // N = system-2
    control(h, "exit-nixos-system-web-g5-v2", "2");
    const bad = await deploy(s, kh, [], {}, "v2"); // N+1 fails
    expect(bad.status).toBe(1);
    expect(bad.out).toContain("rolled back to system-2-link; the failed generation 3 was deleted");
    expect((await deploy(s, kh, [], {}, "v3")).status).toBe(0); // N+2
    expect(runningOf(h)).toBe("v3");
    const back = await deploy(s, kh, ["--rollback"]);
    expect(back.status).toBe(0);
    expect(runningOf(h)).toBe("v1");
    expect(generationOf(h)).toBe("system-2-link");
  });
});

describe("what a switch's exit status means (#26 item 12), and sudo before anything changes", () => {
  it("item 12: exit 0 while /run/current-system is not the new generation is not a success: rolled back", async () => {
    const h = await healthyHost("e0", "127.0.2.30");
    control(h, "nolink-nixos-system-web-e0-v1", "1");
    const r = await deploy(spec("web-e0", { finalAddress: "127.0.2.30" }), knownHosts());
    expect(r.status).toBe(1);
    expect(r.out).toMatch(/nixos-rebuild switch exited 0 but the host runs \S+-v0, not the new generation \S+-v1; rolled back to system-1-link/);
    expect(generationOf(h)).toBe("system-1-link");
  });

  it("item 12: exit 100 (the new init needs a reboot): the host is rebooted, comes back with a new boot id in the new generation, and is health-checked", async () => {
    const h = await healthyHost("e1", "127.0.2.31");
    control(h, "exit-nixos-system-web-e1-v1", "100");
    const boot = readFileSync(join(h.dir, "run", "boot_id"), "utf8");
    const r = await deploy(spec("web-e1", { finalAddress: "127.0.2.31" }), knownHosts());
    expect({ status: r.status, out: r.status === 0 ? "" : r.out.slice(-1500) }).toEqual({ status: 0, out: "" });
    expect(r.out).toContain("switch-to-configuration exited 100: the new configuration takes effect only after a reboot (its init changed); rebooting the host");
    expect(r.out).toContain("rebooted: system-2-link runs at 127.0.2.31");
    expect(readFileSync(join(h.dir, "run", "boot_id"), "utf8")).not.toBe(boot);
    expect(runningOf(h)).toBe("v1");
    expect(r.out).toMatch(/healthy for 0.5s: vllm.service active/);
  });

  it("a deploy user without passwordless sudo is refused before anything on the host changes", async () => {
    const h = await healthyHost("e2", "127.0.2.32");
    const r = await deploy(spec("web-e2", { finalAddress: "127.0.2.32", user: NO_SUDO_USER }), knownHosts());
    expect(r.status).toBe(1);
    expect(r.out).toContain(`${NO_SUDO_USER} cannot use sudo without a password on web-e2 (sudo: a password is required); nothing was changed`);
    expect(r.calls).toEqual([]); // nixos-rebuild never ran
    expect(generationOf(h)).toBe("system-1-link");
  });
});

describe("secrets across a failed deploy (#26 item 3)", () => {
  it("roles change (litellm -> chainfire) and the new generation fails its health gate: the rollback finds the old role's secret and its env file is back, as it was", async () => {
    const h = await startHost("s3", ["127.0.2.40"], key);
    hosts.push(h);
    servers.push(await startHttp("127.0.2.40", 4000, "/health/liveliness")); // litellm answers; chainfire will not
    const d = exampleData();
    d.deploy = { user: DEPLOY_USER, sshPort: SSH_PORT };
    d.users.push({ name: DEPLOY_USER, admin: true, sshKeys: [readFileSync(`${key}.pub`, "utf8").trim()] });
    d.hosts = [{ name: "sec3", roles: ["litellm"], vmid: 803, node: "pve1", cores: 2, memoryMiB: 2048, diskGiB: 20, network: { address: "127.0.2.40/8", gateway: "127.0.0.1" } }];
    const file = join(mkdtempSync(join(work, "fleet-")), "fleet.json");
    writeFileSync(file, JSON.stringify(d));
    const kh = join(mkdtempSync(join(work, "kh-")), "known_hosts");
    const secretsEnv = secretsFor(file, key, kh);
    const run = (system: string) =>
      runAsync("node", ["--import", "tsx", join(ROOT, "scripts", "deploy.ts"), "sec3", "--health-stable", "0.5", "--health-timeout", "2"], {
        env: { ...process.env, ...secretsEnv, PATH: `${join(STAND_INS, "bin")}:${process.env.PATH}`, FLEET_FILE: file, FLEET_KNOWN_HOSTS: kh, FLEET_SSH_KEY_FILE: key, FLEET_STANDIN_SYSTEM: system, SSH_AUTH_SOCK: "" },
      });
    const first = await run("v1");
    expect({ status: first.status, out: first.status === 0 ? "" : first.out.slice(-1500) }).toEqual({ status: 0, out: "" });
    const envFile = join(h.dir, "run", "fleet-secrets", "litellm.env");
    const before = readFileSync(envFile, "utf8");
    expect(before).toMatch(/^LITELLM_MASTER_KEY=sk-[0-9a-f]{64}\n$/);
    // the activation really ran the module's snippet (the stand-in's activate script holds it)
    expect(readFileSync(join(readlinkSync(join(h.dir, "run", "current-system")), "activate"), "utf8")).toContain("'litellm.env:LITELLM_MASTER_KEY=litellm-master-key*1'");

    d.hosts[0].roles = ["chainfire"];
    writeFileSync(file, JSON.stringify(d));
    secretsFor(file, key, kh); // chainfire's credential
    const second = await run("v2");
    expect({ status: second.status, out: second.status === 5 ? "" : second.out.slice(-2500) }).toEqual({ status: 5, out: "" });
    expect(runningOf(h)).toBe("v1");
    expect(existsSync(envFile) && readFileSync(envFile, "utf8") === before).toBe(true);
    expect(existsSync(join(h.dir, "var", "lib", "fleet-secrets", "litellm-master-key.age"))).toBe(true);
    expect(second.out).toContain("the previous secrets were restored; rolled back to system-2-link");
  });

  it("the secrets snippet fails loudly: a secret the activation cannot decrypt makes the activate script exit 1 (switch-to-configuration 2)", () => {
    // the module's own snippet, evaluated with the real lib, in activation-script.nix's wrapper
    const snippets = JSON.parse(
      execFileSync("nix-instantiate", ["--option", "build-users-group", "", "--eval", "--strict", "--json", "-E", `import ${join(STAND_INS, "activate-snippets.nix")} { kit = ${NIXPKGS_KIT}; nixosDir = ${join(ROOT, "nixos")}; fleetFile = ${join(ROOT, "fleet.json")}; host = ${JSON.stringify(litellmHost())}; }`], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }),
    );
    const dir = mkdtempSync(join(work, "act-"));
    const snippet = String(snippets.fleetSecrets).replace(/\/nix\/store\/[a-z0-9]{32}-fleet-secrets\.sh/, join(ROOT, "nixos", "scripts", "fleet-secrets.sh")).replaceAll("/var/lib/fleet-secrets", join(dir, "store")).replaceAll("/run/fleet-secrets", join(dir, "run")).replaceAll("/etc/ssh/ssh_host_ed25519_key", join(dir, "key"));
    writeFileSync(join(dir, "key"), "");
    const script = `_status=0\ntrap "_status=1 _localstatus=\\$?" ERR\n_localstatus=0\n${snippet}\nif (( _localstatus > 0 )); then printf "Activation script snippet '%s' failed (%s)\\n" fleetSecrets "$_localstatus"; fi\nexit $_status\n`;
    const r = spawnSync("bash", ["-c", script], { encoding: "utf8" });
    expect(r.stdout).toContain("Activation script snippet 'fleetSecrets' failed (1)");
    expect(r.status).toBe(1);
  });
});

describe("a dead-man guard on the target (#26 item 4)", () => {
  it("a configuration that closes the SSH port: no fresh login confirms, the host switches itself back within the guard time, and the deploy reports it", async () => {
    const h = await healthyHost("g4", "127.0.2.44");
    control(h, "closes-ssh-nixos-system-web-g4-v1", "1");
    const r = await deploy(spec("web-g4", { finalAddress: "127.0.2.44", timeouts: { sshSeconds: 10, switchSeconds: 60, healthSeconds: 3, healthStableSeconds: 0.5, guardSeconds: 4 } }), knownHosts());
    expect(runningOf(h)).toBe("v0"); // without the guard the host stays on v1, which refuses every new SSH connection
    expect(r.status).toBe(1);
    expect(r.out).toContain("guard armed: unless a fresh SSH login confirms the switch, the host switches itself back to system-1-link");
    expect(r.out).toMatch(/after the switch a fresh SSH login to 127\.0\.2\.44 fails \(.*\): the new configuration may have cut SSH; the host switched itself back to system-1-link \(its guard, armed before the switch, was not confirmed\)/);
    expect(generationOf(h)).toBe("system-1-link");
    // the guard did it on the host (its unit's run is in the journal), and the bad generation is gone
    expect(journal(h)).toMatch(/fleet-guard\tnixos\tfinished switching to system configuration \S+-v0\n/);
    expect(existsSync(join(h.dir, "nix", "var", "nix", "profiles", "system-2-link"))).toBe(false);
  });

  it("an earlier guard still switching the host back: systemd-run refuses its name, nothing is switched", async () => {
    const h = await healthyHost("g4c", "127.0.2.46");
    // a live fleet-guard.service on the host (as a guard that fired and still activates)
    const env = { ...process.env, FLEET_STANDIN_HOST: h.dir };
    execFileSync(join(STAND_INS, "remote-bin", "systemd-run"), ["--unit=fleet-guard", "--collect", "--quiet", "sleep", "30"], { env });
    const r = await deploy(spec("web-g4c", { finalAddress: "127.0.2.46" }), knownHosts());
    expect(r.status).toBe(1);
    expect(r.out).toContain("cannot arm the guard on web-g4c (Failed to start transient timer unit: Unit fleet-guard.service was already loaded or has a fragment file.); nothing was switched");
    expect(generationOf(h)).toBe("system-1-link");
    expect(r.calls).toEqual([]);
  });

  it("a good deploy disarms the guard after the health gate and a fresh login; it never fires", async () => {
    const h = await healthyHost("g4b", "127.0.2.45");
    const r = await deploy(spec("web-g4b", { finalAddress: "127.0.2.45", timeouts: { sshSeconds: 10, switchSeconds: 60, healthSeconds: 3, healthStableSeconds: 0.5, guardSeconds: 4 } }), knownHosts());
    expect({ status: r.status, out: r.status === 0 ? "" : r.out.slice(-1500) }).toEqual({ status: 0, out: "" });
    expect(r.out).toContain("confirmed: the guard is disarmed");
    const asked = readFileSync(join(h.dir, "run", "systemctl.log"), "utf8");
    expect(asked).toMatch(/stop fleet-guard\.timer\n(.*\n)*stop fleet-guard\.timer\n(.*\n)*stop fleet-guard\.timer\n/); // before arming, re-arming, and the confirmation
    expect(existsSync(join(h.dir, "run", "units", "fleet-guard.timer"))).toBe(false); // no timer left to fire
    expect(runningOf(h)).toBe("v1");
  });
});

describe("a quorum cluster that is down is not a new one (#26 item 8)", () => {
  it("no member answers and this member holds the role's state: refused before touching it; a member without state starts a new cluster", async () => {
    const h = await healthyHost("q8", "127.0.2.48");
    const kh = knownHosts();
    const quorum = [{ role: "chainfire", port: 2379, path: "/cluster/health", expected: 3, members: ["127.0.2.48", "127.0.2.58", "127.0.2.68"] }];
    const s = spec("cf-q8", { finalAddress: "127.0.2.48", quorum, timeouts: { sshSeconds: 10, switchSeconds: 60, healthSeconds: 1, healthStableSeconds: 0.5 } });
    // no state: nobody answers, the cluster is new (the health gate then fails on the cluster and
    // the member is rolled back: what matters here is the pre-flight)
    const fresh = await deploy(s, kh);
    expect(fresh.out).toContain("chainfire: no member answers yet and cf-q8 holds no chainfire state: a new cluster");
    expect(fresh.calls).toHaveLength(1);
    // the member has Raft state (as chainfire writes it to its data directory), nobody answers: down, not new
    mkdirSync(join(h.dir, "var", "lib", "chainfire", "raft"), { recursive: true });
    const down = await deploy(s, kh, [], {}, "v2");
    expect(down.status).toBe(1);
    expect(down.out).toContain(`not touching cf-q8: no member of the chainfire cluster answers (GET :2379/cluster/health), and cf-q8 holds chainfire state (${join(h.dir, "var", "lib", "chainfire")}): the cluster is down, not new`);
    expect(down.calls).toEqual([]);
    expect(generationOf(h)).toBe("system-1-link");
  });
});
