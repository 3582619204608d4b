/**
 * `npm run sandbox -- up --inventory FILE --dir DIR` / `down --dir DIR`: the whole product on one
 * machine without a cluster. `up` starts, in one background process group:
 *  - the Proxmox VE API simulator (sandbox/pve, a STAND-IN for a PVE cluster) seeded from the
 *    inventory (nodes, storages, the template), which the real bpg provider talks to;
 *  - one SSH target per host (real sshd on a loopback address, the deploy user with real sudo,
 *    the nixos-rebuild and Nix/systemd STAND-INS of __tests__/stand-ins), the address the
 *    simulated guest agent reports for that VM;
 *  - per host, STAND-INS of its roles' services on their ports, up while its simulated VM runs
 *    (health paths answer 200, a Raft role's membership endpoint counts the members whose VMs
 *    run); every power change of a VM is a line of DIR/power.log;
 * then writes DIR/env (`export NAME=value` lines) so that
 *   source DIR/env && npx cdktf deploy '*' --auto-approve
 * creates the VMs with the real provider and runs every deploy step to its target. The sandbox's
 * copy of the inventory (DIR/fleet.json) has the hosts on 198.18.0.x (RFC 2544's benchmarking
 * range, added to `lo`: the provider waits for a global-unicast address from the guest agent, so
 * 127.x will not do), the deploy user and key; its state files go to DIR/state. Needs root (the
 * addresses, a system user and a sudoers drop-in, as the deploy tests). Exit: 0 ok; 1 bad input,
 * already running, or a part that did not start.
 */
import { spawn, spawnSync } from "node:child_process";
import { appendFileSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { randomUUID } from "node:crypto";
import { dirname, join, resolve } from "node:path";
import { InventoryError, parseInventory } from "../constructs/inventory";
import { ROLES } from "../constructs/roles";
import { providerEnv, seedFromInventory, simulatorCert, startSimulator } from "../sandbox/pve";
import { clientKey, DEPLOY_USER, secretsFor, SSH_PORT, STAND_INS, startHost } from "../sandbox/targets";

const ROOT = join(__dirname, "..");
const USAGE = "usage: npm run sandbox -- up --inventory FILE --dir DIR | down --dir DIR";

function fail(msg: string): never {
  process.stderr.write(`sandbox: ${msg}\n`);
  process.exit(1);
}

function args(argv: string[]) {
  const [cmd, ...rest] = argv;
  const o: Record<string, string> = {};
  for (let i = 0; i < rest.length; i++) {
    const m = /^--(inventory|dir)$/.exec(rest[i]);
    if (!m || rest[i + 1] === undefined) fail(`unexpected argument ${JSON.stringify(rest[i])}; ${USAGE}`);
    o[m![1]] = rest[++i];
  }
  return { cmd, ...o } as { cmd: string; inventory?: string; dir?: string };
}

/** The pid of a running sandbox in `dir`, if any. */
function runningPid(dir: string): number | undefined {
  const f = join(dir, "sandbox.pid");
  if (!existsSync(f)) return undefined;
  const pid = Number(readFileSync(f, "utf8"));
  try {
    process.kill(pid, 0);
    return pid;
  } catch {
    return undefined;
  }
}

/** The hosts' addresses: on `lo`, global unicast (bpg's agent wait skips loopback addresses, vms.go 670-699). */
const SUBNET = "198.18.0";

function loAddress(op: "add" | "del", ip: string) {
  const r = spawnSync("ip", ["addr", op, `${ip}/32`, "dev", "lo"], { encoding: "utf8" });
  if (op === "add" && r.status !== 0 && !/File exists/.test(r.stderr)) throw new Error(`ip addr add ${ip}/32 dev lo: ${r.stderr.trim()}`);
}

const shq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

async function up(inventory: string, dir: string) {
  const text = existsSync(inventory) ? readFileSync(inventory, "utf8") : fail(`${inventory}: no such file`);
  let inv;
  try {
    inv = parseInventory(text, inventory);
  } catch (e) {
    if (e instanceof InventoryError) fail(`${e.message}\n${e.problems.length} problem(s) in the inventory; nothing was started.`);
    throw e;
  }
  const pid = runningPid(dir);
  if (pid) fail(`a sandbox is already running in ${dir} (pid ${pid}); stop it with: npm run sandbox -- down --dir ${dir}`);
  if (process.getuid?.() !== 0) fail("the sandbox's SSH targets need root (a system user and a sudoers drop-in, as the deploy tests); run it as root");
  if (inv.hosts.length > 250) fail(`${inventory}: ${inv.hosts.length} hosts; the sandbox gives each an address 198.18.0.1-250`);
  // A new simulated cluster holds none of an earlier run's resources, and its hosts have new host
  // keys: the state, the pinned keys and the secrets (encrypted to the old keys) go with it.
  for (const old of ["state", "known_hosts", "secrets", "power.log"]) rmSync(join(dir, old), { recursive: true, force: true });
  mkdirSync(join(dir, "state"), { recursive: true });
  const key = existsSync(join(dir, "client_ed25519")) ? join(dir, "client_ed25519") : clientKey(dir);
  // The sandbox's inventory: every host on its own loopback address, deployed as the test user.
  const data = JSON.parse(text);
  data.deploy = { ...(data.deploy ?? {}), user: DEPLOY_USER, sshPort: SSH_PORT };
  data.users = [...(data.users ?? []).filter((u: any) => u.name !== DEPLOY_USER), { name: DEPLOY_USER, admin: true, sshKeys: [readFileSync(`${key}.pub`, "utf8").trim()] }];
  data.hosts.forEach((h: any, i: number) => {
    h.network = { ...(h.network ?? {}), address: `${SUBNET}.${i + 1}/24`, gateway: `${SUBNET}.254` };
    delete h.network.dhcp;
  });
  const fleetFile = join(dir, "fleet.json");
  writeFileSync(fleetFile, JSON.stringify(data, null, 2));
  parseInventory(JSON.stringify(data), fleetFile);
  const knownHosts = join(dir, "known_hosts");
  const secrets = secretsFor(fleetFile, key, knownHosts);
  const token = { id: "sandbox@pve!fleet", secret: randomUUID() };
  writeFileSync(join(dir, "token.json"), JSON.stringify(token), { mode: 0o600 });
  rmSync(join(dir, "ready.json"), { force: true });
  const log = openSync(join(dir, "sandbox.log"), "a");
  const child = spawn(process.execPath, ["--import", "tsx", __filename, "serve", "--dir", dir], { cwd: ROOT, detached: true, stdio: ["ignore", log, log] });
  closeSync(log);
  writeFileSync(join(dir, "sandbox.pid"), String(child.pid));
  let exited = false;
  child.on("exit", () => (exited = true));
  for (let i = 0; i < 1200 && !existsSync(join(dir, "ready.json")) && !exited; i++) await new Promise((r) => setTimeout(r, 100));
  if (!existsSync(join(dir, "ready.json"))) {
    try {
      process.kill(-child.pid!, "SIGTERM");
    } catch {}
    rmSync(join(dir, "sandbox.pid"), { force: true });
    fail(`the sandbox did not start; its log: ${join(dir, "sandbox.log")}\n${readFileSync(join(dir, "sandbox.log"), "utf8").trim().split("\n").slice(-5).join("\n")}`);
  }
  child.unref();
  const ready = JSON.parse(readFileSync(join(dir, "ready.json"), "utf8"));
  const { tools, cliConfig, mirror } = JSON.parse(readFileSync(join(dir, "tools.json"), "utf8"));
  const env: Record<string, string> = {
    ...providerEnv({ url: ready.url, token, cliConfig }),
    // `cdktf deploy` runs `tofu providers lock`, which asks the registry unless told the mirror.
    TF_CLI_ARGS_providers_lock: `-fs-mirror=${mirror}`,
    TERRAFORM_BINARY_NAME: "tofu",
    // Each stack's working data apart from a real cluster's (.terraform), and a new sandbox's
    // state location taken without a migration prompt: the sandbox never touches real state.
    TF_DATA_DIR: ".terraform-sandbox",
    TF_CLI_ARGS_init: "-reconfigure",
    FLEET_FILE: fleetFile,
    FLEET_STATE_DIR: join(dir, "state"),
    FLEET_KNOWN_HOSTS: knownHosts,
    FLEET_SSH_KEY_FILE: key,
    FLEET_SECRETS_DIR: secrets.FLEET_SECRETS_DIR!,
    FLEET_AGE_IDENTITY: secrets.FLEET_AGE_IDENTITY!,
    SSH_AUTH_SOCK: "",
  };
  // The built OpenTofu, the nixos-rebuild stand-in, and a Node >= 22.19 for `npx cdktn` (its CLI's
  // engines) where this machine's Node is older.
  const path = [dirname(tools.tofu.path), join(STAND_INS, "bin"), ...(tools.node && tools.node.path !== process.execPath ? [dirname(tools.node.path)] : [])].map(shq).join(":");
  writeFileSync(join(dir, "env"), Object.entries(env).map(([k, v]) => `export ${k}=${shq(v)}`).join("\n") + `\nexport PATH=${path}:"$PATH"\n`);
  console.log(`sandbox: up in ${dir}: PVE simulator ${ready.url}, ${ready.hosts} SSH targets`);
  console.log(`sandbox: next: source ${join(dir, "env")} && npx cdktf deploy '*' --auto-approve`);
}

/** The background part: simulator, SSH targets and service stand-ins, until SIGTERM. */
async function serve(dir: string) {
  const inv = parseInventory(readFileSync(join(dir, "fleet.json"), "utf8"), join(dir, "fleet.json"));
  const token = JSON.parse(readFileSync(join(dir, "token.json"), "utf8"));
  const { ensureTools } = await import("./tools.mjs" as string);
  writeFileSync(join(dir, "tools.json"), JSON.stringify(await ensureTools()));
  const address = new Map(inv.hosts.map((h) => [h.vmid, h.network!.address!.split("/")[0]]));
  const cluster = seedFromInventory(inv, { token, dhcp: (vm) => address.get(vm.vmid) ?? `${SUBNET}.253` });
  // Every power change, one JSON line each in the order they happen (DIR/power.log): what was
  // down when, for the rolling-reboot checks.
  // A member joins its cluster when its VM first runs (a new cluster forms as its VMs come up).
  const joined = new Set<number>();
  cluster.onPower = (vm, status) => {
    if (status === "running") joined.add(vm.vmid);
    appendFileSync(join(dir, "power.log"), `${JSON.stringify({ vmid: vm.vmid, status })}\n`);
  };
  const sim = await startSimulator(cluster, await simulatorCert());
  const stops: (() => void)[] = [() => sim.server.close()];
  for (const h of inv.hosts) {
    const ip = address.get(h.vmid)!;
    loAddress("add", ip);
    stops.push(() => loAddress("del", ip));
    const target = await startHost(h.name, [ip], join(dir, "client_ed25519"));
    stops.push(() => target.stop());
    for (const role of h.roles) {
      const spec = ROLES[role as keyof typeof ROLES];
      const members = inv.hosts.filter((x) => x.roles.includes(role));
      const running = (vmid: number) => cluster.vms[String(vmid)]?.status === "running";
      for (const port of Object.values<number>(spec.ports ?? {})) {
        // STAND-IN for the role's service, tied to its simulated VM: while the VM is not running
        // the connection is dropped; health paths answer 200; the membership endpoint
        // (docs/adr-0013) counts as members the VMs that have run, as healthy those that run.
        const srv = createServer((req, res) => {
          if (!running(h.vmid)) return req.socket.destroy();
          res.setHeader("Content-Type", "application/json");
          res.end(req.url === "/cluster/health" ? JSON.stringify({ members: members.filter((m) => joined.has(m.vmid)).length, healthy: members.filter((m) => running(m.vmid)).length }) : "{}");
        });
        await new Promise<void>((ok, ko) => srv.once("error", ko).listen(port, ip, () => ok()));
        stops.push(() => srv.close());
      }
    }
  }
  const stop = () => {
    stops.forEach((s) => s());
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  writeFileSync(join(dir, "ready.json"), JSON.stringify({ url: sim.url, hosts: inv.hosts.length }));
}

function down(dir: string) {
  const pid = runningPid(dir);
  if (!pid) {
    console.log(`sandbox: nothing runs in ${dir}`);
    return;
  }
  const alive = () => {
    try {
      process.kill(-pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  try {
    process.kill(-pid, "SIGTERM");
  } catch {}
  // The whole process group (simulator, sshd targets, service stand-ins) is gone before we return.
  const until = Date.now() + 10_000;
  while (alive() && Date.now() < until) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50);
  if (alive()) process.kill(-pid, "SIGKILL");
  rmSync(join(dir, "sandbox.pid"), { force: true });
  rmSync(join(dir, "ready.json"), { force: true });
  console.log(`sandbox: stopped (pid ${pid})`);
}

async function main() {
  const a = args(process.argv.slice(2));
  if (!a.dir) fail(USAGE);
  const dir = resolve(a.dir!);
  if (a.cmd === "up") {
    if (!a.inventory) fail(USAGE);
    await up(resolve(a.inventory!), dir);
  } else if (a.cmd === "serve") await serve(dir);
  else if (a.cmd === "down") down(dir);
  else fail(USAGE);
}

main().catch((e) => fail(String(e?.message ?? e)));
