/**
 * Secrets delivery (docs/adr-0014-secrets.md): the host's encrypted secrets copied to its store
 * and decrypted there with its own host key, before the switch.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { DeploySpecDocument } from "../../constructs/deploy-step";
import { fleetFilePath, loadInventory } from "../../constructs/inventory";
import { secretSpecArg, SecretEnvFile } from "../../constructs/secrets";
import { DeployError, EXIT } from "./deploy-errors";
import { readPins } from "./host-keys";
import { encryptedTo, lockedStore, operatorIdentity, reencrypt } from "./secrets-store";
import { shellQuote, SshResult } from "./ssh-transport";


/** Where the host keeps them; FLEET_VAR_LIB / FLEET_RUN_DIR / FLEET_HOST_KEY move them on test targets only. */
const HOST_STORE = '"${FLEET_VAR_LIB:-/var/lib}/fleet-secrets"';
const HOST_RUN = '"${FLEET_RUN_DIR:-/run}/fleet-secrets"';
const HOST_KEY = '"${FLEET_HOST_KEY:-/etc/ssh/ssh_host_ed25519_key}"';

const secretFile = (dir: string, name: string) => join(dir, `${name}.age`);

/**
 * The secrets the host needs, sorted; throws (EXIT.secrets) when one it may not go without has
 * no file in `dir`.
 */
export function checkSecretsExist(spec: DeploySpecDocument, dir: string): string[] {
  const needed = [...new Set((spec.secrets ?? []).flatMap((f) => f.entries.map((e) => e.secret)))].sort();
  const optional = (name: string) => spec.secrets!.every((f) => f.entries.every((e) => e.secret !== name || e.optional));
  const missing = needed.find((n) => !existsSync(secretFile(dir, n)) && !optional(n));
  if (missing) throw new DeployError(`secret ${missing} for ${spec.host} does not exist (${secretFile(dir, missing)}); nothing was switched`, EXIT.secrets, "run `npm run secrets -- generate`, then deploy again");
  return needed;
}

/**
 * Puts the host's secrets in place before the switch (docs/adr-0014-secrets.md): checks here
 * that each exists and is encrypted to the host's pinned key, copies the encrypted files to
 * /var/lib/fleet-secrets (root, 0600) and runs nixos/scripts/fleet-secrets.sh there as root,
 * which decrypts them with the host's own SSH host key into /run/fleet-secrets/<role>.env
 * (root, 0400). Values are never sent in clear, put in an argument list or written to a log.
 * The previous store and files are kept beside until keep() (the health gate passed) or
 * restore() (the deploy failed).
 */
export async function deliverSecrets(
  spec: DeploySpecDocument,
  opts: { root: string; knownHostsFile: string; secretsDir?: string },
  address: string,
  sshIn: (addr: string, cmd: string, input: string | Buffer) => Promise<SshResult>,
  say: (m: string) => void,
): Promise<DeliveredSecrets> {
  const dir = opts.secretsDir ?? join(opts.root, "secrets");
  const pinned = readPins(opts.knownHostsFile).get(spec.host)?.key;
  if (!pinned) throw new DeployError(`no pinned host key for ${spec.host}`, EXIT.hostKey, "deploy again: the key is pinned on first contact");
  const needed = checkSecretsExist(spec, dir);
  const pathOf = (name: string) => secretFile(dir, name);
  const present = needed.filter((n) => existsSync(pathOf(n)));
  let notTo = present.filter((n) => !encryptedTo(pathOf(n), pinned));
  if (notTo.length) {
    // A host deployed for the first time (or a replaced VM): its key was pinned just now. With
    // an operator identity here, add the host to those secrets' recipients, as `rekey` would.
    const store = { root: opts.root, dir, knownHostsFile: opts.knownHostsFile };
    try {
      const identity = operatorIdentity();
      await lockedStore(store, () => reencrypt(store, loadInventory(fleetFilePath(process.env, opts.root)), notTo, identity));
      say(`encrypted ${notTo.join(", ")} to ${spec.host}'s pinned host key (secrets/ changed: commit it)`);
    } catch (e) {
      say(`cannot re-encrypt here: ${(e as Error).message}`);
    }
    notTo = present.filter((n) => !encryptedTo(pathOf(n), pinned));
    if (notTo.length)
      throw new DeployError(
        `secret ${notTo[0]} is not encrypted to ${spec.host}'s pinned host key (a new host, or a replaced VM); nothing was switched`,
        EXIT.secrets,
        "run `npm run secrets -- rekey` with your operator key (FLEET_AGE_IDENTITY), then deploy again",
      );
  }
  const files = present.map((name) => ({ name, path: pathOf(name) }));
  const names = files.map((f) => `${f.name}.age`);
  const sudoSh = async (what: string, script: string, args: string) => {
    const r = await sshIn(address, `sudo sh -c '${script}' sh ${args}`, "");
    if (r.exitCode !== 0) throw new DeployError(`${what} on ${spec.host} failed: ${r.stderr.trim()}`, EXIT.secrets, "check that the deploy user may use sudo on the host");
  };
  // The store and the decrypted files as they are, kept until the deploy ends (issue #26 item 3):
  // a rollback activates the old generation, whose snippet decrypts the old roles' secrets from
  // the store, so nothing of the old set may be gone before the health gate has passed.
  await sudoSh(
    "keeping the current secrets",
    'set -e; umask 077; mkdir -p "$1"; rm -rf "$1/.previous" "$2.previous"; mkdir "$1/.previous"; for f in "$1"/*.age; do if [ -e "$f" ]; then cp -p "$f" "$1/.previous/"; fi; done; if [ -d "$2" ]; then cp -a "$2" "$2.previous"; else : > "$1/.previous/.no-run"; fi',
    `${HOST_STORE} ${HOST_RUN}`,
  );
  const restore = async () => {
    // the store and /run/fleet-secrets back as they were before this deploy
    await sudoSh(
      "restoring the previous secrets",
      '[ -d "$1/.previous" ] || exit 0; rm -f "$1"/*.age; for f in "$1/.previous"/*.age; do if [ -e "$f" ]; then mv -f "$f" "$1/"; fi; done; if [ -e "$1/.previous/.no-run" ]; then rm -rf "$2"; elif [ -d "$2.previous" ]; then rm -rf "$2"; mv "$2.previous" "$2"; fi; rm -rf "$1/.previous"',
      `${HOST_STORE} ${HOST_RUN}`,
    );
  };
  const keep = async () => {
    // the deploy stands: every file of the store that the new set does not name goes (a role the host no longer has)
    await sudoSh(
      "cleaning the secret store",
      'cd "$1" || exit 0; for f in *.age; do case " $2 " in *" $f "*) ;; *) rm -f -- "$f";; esac; done; rm -rf "$1/.previous" "$3.previous"',
      `${HOST_STORE} '${names.join(" ")}' ${HOST_RUN}`,
    );
  };
  try {
    // Encrypted files in; the old ones stay until keep().
    for (const f of files) {
      const r = await sshIn(address, `sudo sh -c 'umask 077; mkdir -p "$1" && cat > "$1/.$2.tmp" && mv -f "$1/.$2.tmp" "$1/$2"' sh ${HOST_STORE} ${f.name}.age`, readFileSync(f.path));
      if (r.exitCode !== 0) throw new DeployError(`copying ${f.name}.age to ${spec.host} failed: ${r.stderr.trim()}`, EXIT.secrets, "check that the deploy user may use sudo on the host");
    }
    const script = readFileSync(join(opts.root, "nixos", "scripts", "fleet-secrets.sh"));
    const r = await sshIn(address, `sudo bash -s -- ${HOST_STORE} ${HOST_RUN} ${HOST_KEY} ${shellQuote(spec.secrets!.map(secretSpecArg))}`, script);
    r.stderr.split("\n").filter(Boolean).forEach((l) => say(`  | ${l}`));
    if (r.exitCode !== 0) throw new DeployError(`decrypting the secrets on ${spec.host} failed (exit ${r.exitCode}); nothing was switched`, EXIT.secrets, "run `npm run secrets -- check`; if the host key changed, `npm run secrets -- rekey`");
    const changed = r.stdout.split("\n").flatMap((l) => /^changed (\S+)$/.exec(l)?.[1] ?? []);
    say(`${files.length} secret(s) in place: ${spec.secrets!.map((f) => f.file).join(", ")}${changed.length ? ` (changed: ${changed.join(", ")})` : ""}`);
    return { changed: spec.secrets!.filter((f) => changed.includes(f.file)), keep, restore };
  } catch (e) {
    await restore().catch(() => undefined);
    throw e;
  }
}

export interface DeliveredSecrets {
  /** Environment files whose content changed (their services restart after the switch). */
  readonly changed: SecretEnvFile[];
  /** After the health gate: the files of the old set go. */
  keep(): Promise<void>;
  /** On failure: the store and /run/fleet-secrets back as they were, before any rollback activates. */
  restore(): Promise<void>;
}
