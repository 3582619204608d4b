/**
 * Secrets (docs/adr-0014-secrets.md) with the real `age` and `ssh-keygen` (Debian packages),
 * the real CLI (`npm run secrets`), and real OpenSSH targets logged into as an unprivileged user
 * with real sudo. nixos-rebuild and the target's systemd are the STAND-INS of the deploy tests
 * (__tests__/stand-ins); the decryption on the target is the real nixos/scripts/fleet-secrets.sh
 * run as root by real sudo with the target's own SSH host key.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { App } from "cdktn";
import { buildFleet } from "../stacks/fleet";
import { parseInventory } from "../constructs/inventory";
import { secretHolders, SECRETS } from "../constructs/secrets";
import { exampleData, ROOT, runAsync } from "./helpers";
import { DEPLOY_USER, generationOf, secretsFor, sshTestBed, startHost, startHttp, STAND_INS, SSH_PORT } from "./ssh-harness";
import { SimFleet } from "./sim-harness";
import { writePins } from "../scripts/lib/host-keys";

const work = mkdtempSync(join(tmpdir(), "secrets-"));
const keygen = (file: string) => {
  execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "", "-f", file]);
  return readFileSync(`${file}.pub`, "utf8").trim().split(" ").slice(0, 2).join(" ");
};
const ageDecrypt = (file: string, identity: string) => spawnSync("age", ["-d", "-i", identity, file], { encoding: "utf8" });
const cli = (args: string[], env: NodeJS.ProcessEnv, input?: string) =>
  spawnSync("node", ["--import", "tsx", join(ROOT, "scripts", "secrets.ts"), ...args], { cwd: ROOT, env: { ...process.env, ...env }, encoding: "utf8", input });
/** known_hosts as the deploy pins it (its own writer). */
const pinsFile = (file: string, pins: { host: string; vmid: number; key: string }[]) => writePins(file, new Map(pins.map((p) => [p.host, { key: p.key, vmid: p.vmid }])));

describe("npm run secrets (real age and ssh-keygen, the example fleet)", () => {
  const dir = join(work, "example");
  const store = join(dir, "secrets");
  const kh = join(dir, "known_hosts");
  const operator = join(dir, "operator_ed25519");
  const inv = parseInventory(readFileSync(join(ROOT, "fleet.json"), "utf8"), "fleet.json");
  const hostKey = (h: string) => join(dir, `host-${h}`);
  const env = { FLEET_FILE: join(ROOT, "fleet.json"), FLEET_SECRETS_DIR: store, FLEET_KNOWN_HOSTS: kh, FLEET_AGE_IDENTITY: operator };
  const holders = secretHolders(inv);

  beforeAll(() => {
    mkdirSync(store, { recursive: true });
    writeFileSync(join(store, "operators.txt"), `# the team\n${keygen(operator)}\n`);
    pinsFile(kh, inv.hosts.map((h) => ({ host: h.name, vmid: h.vmid, key: keygen(hostKey(h.name)) })));
  });

  it("generate then check pass, and secrets.nix is agenix's rules file for the same recipients", () => {
    const g = cli(["generate"], env);
    expect(g.stderr).toBe("");
    expect(g.status).toBe(0);
    expect(g.stdout).toContain("created litellm-master-key for tappaas-litellm, tappaas-openwebui");
    expect(g.stdout).toContain("hf-token: entered, not generated (optional): npm run secrets -- set hf-token");
    for (const [name, hosts] of holders) expect({ name, exists: existsSync(join(store, `${name}.age`)) }).toEqual({ name, exists: !SECRETS[name].entered && hosts.length > 0 });
    const c = cli(["check"], env);
    expect(c.stderr).toBe("");
    expect(c.status).toBe(0);
    // a second generate changes nothing
    const before = readFileSync(join(store, "litellm-master-key.age"), "utf8");
    expect(cli(["generate"], env).stdout).toContain("nothing to generate");
    expect(readFileSync(join(store, "litellm-master-key.age"), "utf8")).toBe(before);
    // agenix reads secrets.nix with nix-instantiate: the same recipients
    const rules = JSON.parse(execFileSync("nix-instantiate", ["--eval", "--strict", "--json", join(store, "secrets.nix")], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }));
    const pub = (f: string) => readFileSync(`${f}.pub`, "utf8").trim().split(" ").slice(0, 2).join(" ");
    expect(rules["litellm-master-key.age"].publicKeys).toEqual([pub(operator), pub(hostKey("tappaas-litellm")), pub(hostKey("tappaas-openwebui"))]);
  });

  it("each host decrypts exactly the secrets its roles need, with its own host key", () => {
    for (const [name, hosts] of holders) {
      const file = join(store, `${name}.age`);
      if (!existsSync(file)) continue;
      for (const h of inv.hosts) {
        const r = ageDecrypt(file, hostKey(h.name));
        expect({ name, host: h.name, decrypts: r.status === 0 }).toEqual({ name, host: h.name, decrypts: hosts.includes(h.name) });
      }
    }
    const key = ageDecrypt(join(store, "litellm-master-key.age"), hostKey("tappaas-openwebui")).stdout;
    expect(key).toMatch(/^sk-[0-9a-f]{64}$/);
    expect(ageDecrypt(join(store, "litellm-master-key.age"), operator).stdout).toBe(key);
  });

  it("set stores an entered secret read from stdin, and refuses a value that is not one token", () => {
    const s = cli(["set", "hf-token"], env, "hf_abcdefghijklmnop\n");
    expect(s.status).toBe(0);
    expect(s.stdout).toContain("stored hf-token; deploy to apply: npm run deploy -- tappaas-vllm");
    expect(ageDecrypt(join(store, "hf-token.age"), hostKey("tappaas-vllm")).stdout).toBe("hf_abcdefghijklmnop");
    const bad = cli(["set", "hf-token"], env, "two\nlines\n");
    expect(bad.status).toBe(2);
    expect(bad.stderr.trim()).toBe("secrets: hf-token: the value has more than one line; a secret is one line");
    expect(ageDecrypt(join(store, "hf-token.age"), hostKey("tappaas-vllm")).stdout).toBe("hf_abcdefghijklmnop");
    expect(cli(["rotate", "hf-token"], env).stderr.trim()).toBe("secrets: hf-token is entered, not generated; run: npm run secrets -- set hf-token (the value is read from stdin)");
    expect(cli(["rotate", "nope"], env).stderr.trim()).toMatch(/^secrets: unknown secret "nope"; known: /);
    expect(cli(["frobnicate"], env).status).toBe(2);
  });

  it("after a VM's host key changes, check names the host and rekey fixes it", () => {
    const old = hostKey("tappaas-litellm");
    const replaced = join(dir, "host-tappaas-litellm-new");
    const pins = inv.hosts.map((h) => ({ host: h.name, vmid: h.vmid, key: readFileSync(`${hostKey(h.name)}.pub`, "utf8").trim().split(" ").slice(0, 2).join(" ") }));
    pins.find((p) => p.host === "tappaas-litellm")!.key = keygen(replaced);
    pinsFile(kh, pins);
    const c = cli(["check"], env);
    expect(c.status).toBe(1);
    expect(c.stderr.trim()).toBe(`secrets: tappaas-litellm: litellm-master-key: ${join(store, "litellm-master-key.age")} is not encrypted to tappaas-litellm's pinned host key (a replaced VM has a new key); fix: npm run secrets -- rekey`);
    const value = ageDecrypt(join(store, "litellm-master-key.age"), operator).stdout;
    const r = cli(["rekey"], env);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(cli(["check"], env).status).toBe(0);
    expect(ageDecrypt(join(store, "litellm-master-key.age"), replaced).stdout).toBe(value);
    expect(ageDecrypt(join(store, "litellm-master-key.age"), old).status).not.toBe(0);
  });

  it("rotate replaces a generated value; without operators.txt nothing is written", () => {
    const file = join(store, "openwebui-secret-key.age");
    const before = ageDecrypt(file, operator).stdout;
    const r = cli(["rotate", "openwebui-secret-key"], env);
    expect(r.stdout.trim()).toBe("rotated openwebui-secret-key; deploy to apply: npm run deploy -- tappaas-openwebui");
    expect(ageDecrypt(file, operator).stdout).not.toBe(before);
    const empty = join(work, "no-operators");
    const n = cli(["generate"], { ...env, FLEET_SECRETS_DIR: empty });
    expect(n.status).toBe(2);
    expect(n.stderr.trim().split("\n")).toHaveLength(1);
    expect(n.stderr).toContain("operators.txt does not exist; put your public key in it");
    expect(existsSync(empty) ? readdirSync(empty).filter((f) => f.endsWith(".age")) : []).toEqual([]);
    // an operator line that is not a whole public key (checked as users' keys are)
    mkdirSync(empty, { recursive: true });
    writeFileSync(join(empty, "operators.txt"), "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMBdEQbWhgN\n");
    const bad = cli(["generate"], { ...env, FLEET_SECRETS_DIR: empty });
    expect(bad.status).toBe(2);
    expect(bad.stderr.trim()).toMatch(/operators\.txt line 1: not an age or ssh-ed25519\/ssh-rsa public key; one public key per line/);
    expect(readdirSync(empty).filter((f) => f.endsWith(".age"))).toEqual([]);
  });
});

describe("deploy puts the secrets on a real sshd target, and the value is nowhere else", () => {
  const bed = sshTestBed();
  const { key } = bed;
  /** argv of every local ssh and age the deploy runs (a PATH shim that logs, then runs the real one). */
  const shim = join(bed.work, "shim");
  const argvLog = join(bed.work, "argv.log");
  beforeAll(() => {
    mkdirSync(shim);
    for (const tool of ["ssh", "age"]) {
      const real = execFileSync("sh", ["-c", `command -v ${tool}`], { encoding: "utf8" }).trim();
      writeFileSync(join(shim, tool), `#!/bin/sh\nprintf '%s\\n' "${tool} $*" >> '${argvLog}'\nexec '${real}' "$@"\n`);
      chmodSync(join(shim, tool), 0o755);
    }
  });

  it("decrypts on the host into /run/fleet-secrets (root, 0400), restarts on rotation, and stops before switching when a secret is missing", async () => {
    const target = await startHost("sec1", ["127.0.3.81"], key);
    bed.hosts.push(target);
    bed.servers.push(await startHttp("127.0.3.81", 4000, "/health/liveliness"));
    const d = exampleData();
    d.deploy = { user: DEPLOY_USER, sshPort: SSH_PORT };
    d.users.push({ name: DEPLOY_USER, admin: true, sshKeys: [readFileSync(`${key}.pub`, "utf8").trim()] });
    d.hosts = [{ name: "sec1", roles: ["litellm"], vmid: 801, node: "pve1", cores: 2, memoryMiB: 2048, diskGiB: 20, network: { address: "127.0.3.81/8", gateway: "127.0.0.1" } }];
    const file = join(mkdtempSync(join(bed.work, "fleet-")), "fleet.json");
    writeFileSync(file, JSON.stringify(d));
    const kh = join(dirname(file), "known_hosts");
    const secretsEnv = secretsFor(file, key, kh);
    const stateLog = join(bed.work, "standin.log");
    const deploy = () =>
      runAsync("node", ["--import", "tsx", join(ROOT, "scripts", "deploy.ts"), "sec1", "--health-stable", "0.5"], {
        env: { ...process.env, ...secretsEnv, PATH: `${shim}:${join(STAND_INS, "bin")}:${process.env.PATH}`, FLEET_FILE: file, FLEET_KNOWN_HOSTS: kh, FLEET_SSH_KEY_FILE: key, FLEET_STANDIN_LOG: stateLog, SSH_AUTH_SOCK: "" },
      });
    const store = secretsEnv.FLEET_SECRETS_DIR!;
    const valueOf = () => ageDecrypt(join(store, "litellm-master-key.age"), key).stdout;

    const r = await deploy();
    expect(r.out).toContain("[sec1] encrypted litellm-master-key to sec1's pinned host key");
    expect(r.status).toBe(0);
    const env = join(target.dir, "run", "fleet-secrets", "litellm.env");
    const st = statSync(env);
    expect({ uid: st.uid, gid: st.gid, mode: (st.mode & 0o777).toString(8) }).toEqual({ uid: 0, gid: 0, mode: "400" });
    expect((statSync(dirname(env)).mode & 0o777).toString(8)).toBe("700");
    const value = valueOf();
    expect(readFileSync(env, "utf8")).toBe(`LITELLM_MASTER_KEY=${value}\n`);
    const enc = statSync(join(target.dir, "var", "lib", "fleet-secrets", "litellm-master-key.age"));
    expect({ uid: enc.uid, mode: (enc.mode & 0o777).toString(8) }).toEqual({ uid: 0, mode: "600" });

    // nowhere else: the deploy's output, the argv of every ssh/age it ran, nixos-rebuild's
    // arguments, the target's Nix store and profiles, and what Terraform gets (the synthesized
    // stacks with FLEET_DEPLOY_SPEC)
    const app = new App({ outdir: join(bed.work, "synth"), skipValidation: true });
    buildFleet(app, parseInventory(JSON.stringify(d), file), { root: ROOT });
    app.synth();
    const files = (p: string): string[] => (statSync(p).isDirectory() ? readdirSync(p).flatMap((f) => files(join(p, f))) : [p]);
    const scanned = [argvLog, stateLog, ...files(join(target.dir, "nix")), ...files(join(bed.work, "synth")), kh];
    expect(readFileSync(argvLog, "utf8")).toContain("ssh -F");
    expect(readFileSync(join(bed.work, "synth", "stacks", "ai", "cdk.tf.json"), "utf8")).toContain("litellm.env");
    for (const f of scanned) expect({ f, leaks: readFileSync(f, "latin1").includes(value) }).toEqual({ f, leaks: false });
    expect(r.out.includes(value)).toBe(false);

    // a rotated value reaches the service: the file changes and the unit is restarted
    expect(cli(["rotate", "litellm-master-key"], { FLEET_FILE: file, ...secretsEnv, FLEET_KNOWN_HOSTS: kh }).status).toBe(0);
    const again = await deploy();
    expect(again.status).toBe(0);
    expect(readFileSync(env, "utf8")).toBe(`LITELLM_MASTER_KEY=${valueOf()}\n`);
    expect(valueOf()).not.toBe(value);
    expect(readFileSync(join(target.dir, "restarted"), "utf8")).toBe("litellm.service\n");

    // a missing secret: stopped before switching, secret and host named
    const generation = generationOf(target);
    rmSync(join(store, "litellm-master-key.age"));
    const missing = await deploy();
    expect(missing.status).toBe(7);
    expect(missing.out).toContain(`[sec1] FAILED: secret litellm-master-key for sec1 does not exist (${join(store, "litellm-master-key.age")}); nothing was switched`);
    expect(generationOf(target)).toBe(generation);
  });
});

describe("Terraform state and plans hold no secret value (real Terraform, provider double)", () => {
  it("apply and plan of a stack whose hosts consume secrets", async () => {
    const d = exampleData();
    const file = join(mkdtempSync(join(work, "tf-")), "fleet.json");
    writeFileSync(file, JSON.stringify(d));
    const kh = join(dirname(file), "known_hosts");
    const operator = join(dirname(file), "operator");
    keygen(operator);
    const env = secretsFor(file, operator, kh);
    const values = readdirSync(env.FLEET_SECRETS_DIR!).filter((f) => f.endsWith(".age")).map((f) => ageDecrypt(join(env.FLEET_SECRETS_DIR!, f), operator).stdout);
    expect(values.length).toBeGreaterThan(5);
    const fleet = await SimFleet.create(parseInventory(JSON.stringify(d), file));
    for (const stack of ["cluster", "ai"]) {
      const r = await fleet.lifecycle(stack, { validate: false });
      expect(r.failed).toBeUndefined();
      const plan = await fleet.run(stack, "plan", "-out", "p.plan", "-input=false");
      expect(plan.status).toBe(0);
      const show = await fleet.run(stack, "show", "-json", "p.plan");
      // the stacks' local backend: ../../../terraform.<stack>.tfstate (stacks/fleet.ts)
      const state = readFileSync(join(fleet.stackDir(stack), "..", "..", "..", `terraform.${stack}.tfstate`), "utf8");
      expect(state).toContain('"resources"');
      for (const v of values) for (const [what, text] of Object.entries({ state, plan: show.out, apply: r.apply!.out, json: JSON.stringify(fleet.json(stack)) })) expect({ stack, what, leaks: text.includes(v) }).toEqual({ stack, what, leaks: false });
    }
  });
});
