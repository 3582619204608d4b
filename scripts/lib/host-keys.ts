/**
 * Host-key pinning (docs/adr-0011-deploy-contract.md): the first contact records a
 * host's ed25519 key in deploy/known_hosts with the VM's id; a changed key is refused unless the
 * VM was recreated (a new vmid). A build host is pinned the same way as build-host:<name>.
 */
import { $ } from "zx";
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { createHash } from "node:crypto";
import type { DeploySpecDocument } from "../../constructs/deploy-step";
import { DeployError, EXIT } from "./deploy-errors";
import { withDirLock } from "./dir-lock";

export interface Pin {
  readonly key: string;
  readonly vmid: number;
}

/** The pins: known_hosts lines "<host> <type> <key>" with a "# vmid <host> <n>" line before each. */
export function readPins(file: string): Map<string, Pin> {
  const pins = new Map<string, Pin>();
  if (!existsSync(file)) return pins;
  const vmids = new Map<string, number>();
  for (const line of readFileSync(file, "utf8").split("\n")) {
    const m = /^# vmid (\S+) (\d+)$/.exec(line);
    if (m) vmids.set(m[1], Number(m[2]));
    else if (line.trim() && !line.startsWith("#")) {
      const [host, type, key] = line.trim().split(/\s+/);
      pins.set(host, { key: `${type} ${key}`, vmid: vmids.get(host) ?? -1 });
    }
  }
  return pins;
}

/** Writes the pins (the format readPins reads), written beside and renamed. */
export function writePins(file: string, pins: Map<string, Pin>) {
  const body = [...pins.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([host, p]) => `# vmid ${host} ${p.vmid}\n${host} ${p.key}\n`)
    .join("");
  mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, `# Host keys pinned by scripts/deploy.ts (first contact records, a change is refused).\n${body}`);
  renameSync(tmp, file);
}

/** Runs `fn` holding a lock directory beside `file`; deploy steps run as parallel processes. */
function withLock<T>(file: string, fn: () => T): Promise<T> {
  const lock = `${file}.lock`;
  mkdirSync(dirname(file), { recursive: true });
  return withDirLock(lock, 300, () => new DeployError(`cannot lock ${lock}`, EXIT.failed, `remove ${lock} if no deploy is running`), fn);
}

/** A deploy that may only reach pinned hosts (FLEET_REQUIRE_PINNED=1, as CI sets it) met an unpinned one. */
const notPinned = (name: string, file: string) =>
  new DeployError(`no pinned host key for ${name} in ${file}, and only pinned hosts are deployed to here`, EXIT.hostKey, `deploy ${name} once from a trusted machine (it pins the key) and commit ${file}`);

/** The ed25519 key `ssh-keyscan` gets from address:port, as "<type> <key>". */
async function scanKey(address: string, port: number, what: string, hint: string): Promise<string> {
  const scan = await $({ nothrow: true, quiet: true, timeout: "30s" })`ssh-keyscan -T 10 -p ${port} -t ed25519 ${address}`;
  const line = scan.stdout.split("\n").find((l) => l.trim() && !l.startsWith("#"));
  if (!line) throw new DeployError(`ssh-keyscan got no ed25519 host key from ${what}${address}:${port}`, EXIT.unreachable, hint);
  const [, type, key] = line.trim().split(/\s+/);
  return `${type} ${key}`;
}

/** The build host's key, pinned on first contact like a target's (alias build-host:<name>); a change is refused. */
export async function pinBuildHostKey(build: { host: string; port?: number }, file: string, say: (m: string) => void, requirePinned = false) {
  const scanned = await scanKey(build.host, build.port ?? 22, "build host ", "check that the build host runs sshd and is reachable");
  const name = `build-host:${build.host}`;
  await withLock(file, () => {
    const pins = readPins(file);
    const pin = pins.get(name);
    if (!pin && requirePinned) throw notPinned(name, file);
    if (!pin) {
      pins.set(name, { key: scanned, vmid: 0 });
      writePins(file, pins);
      say(`first contact: pinned the build host's ${scanned.split(" ")[0]} key in ${file}`);
    } else if (pin.key !== scanned)
      throw new DeployError(`host key of build host ${build.host} changed; refusing to build there`, EXIT.hostKey, `if it was reinstalled on purpose, delete the lines for ${name} from ${file}`);
  });
}

/** The target's key: pinned on first contact, replaced when the VM was recreated (new vmid), else a change is refused. */
export async function pinHostKey(spec: DeploySpecDocument, address: string, port: number, file: string, say: (m: string) => void, requirePinned = false) {
  const scanned = await scanKey(address, port, "", "check that sshd runs on the host");
  const type = scanned.split(" ")[0];
  await withLock(file, () => {
    const pins = readPins(file);
    const pin = pins.get(spec.host);
    if (!pin && requirePinned) throw notPinned(spec.host, file);
    if (!pin) {
      pins.set(spec.host, { key: scanned, vmid: spec.vmid });
      writePins(file, pins);
      say(`first contact: pinned ${type} key in ${file}`);
    } else if (pin.key === scanned) {
      if (pin.vmid !== spec.vmid) {
        pins.set(spec.host, { key: scanned, vmid: spec.vmid });
        writePins(file, pins);
      }
      say("host key matches the pinned key");
    } else if (pin.vmid !== spec.vmid) {
      pins.set(spec.host, { key: scanned, vmid: spec.vmid });
      writePins(file, pins);
      say(`VM was recreated (vmid ${pin.vmid} -> ${spec.vmid}): replaced the pinned host key`);
    } else {
      throw new DeployError(
        `host key of ${spec.host} at ${address} changed (pinned ${fingerprint(pin.key)}, got ${fingerprint(scanned)}) while its vmid stayed ${spec.vmid}; refusing to connect`,
        EXIT.hostKey,
        `if the VM was rebuilt on purpose, delete the two lines for ${spec.host} from ${file} and deploy again; otherwise something else answers at ${address}`,
      );
    }
  });
}

/**
 * A public key's fingerprint as `ssh-keygen -l` prints it ("SHA256:" and the unpadded base64 of
 * the SHA-256 of the key blob): the first characters of two ed25519 keys are the same for every
 * key (the type's prefix), so a message that cut the keys showed two equal strings (#29 item 11).
 */
export function fingerprint(key: string): string {
  const blob = key.trim().split(/\s+/)[1] ?? key;
  return `SHA256:${createHash("sha256").update(Buffer.from(blob, "base64")).digest("base64").replace(/=+$/, "")}`;
}
