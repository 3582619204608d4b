/**
 * npm run secrets -- generate | set <name> | rotate <name> | rekey | check | list
 *
 * The fleet's secrets, encrypted at rest in secrets/ (agenix layout; docs/adr-0014-secrets.md).
 * Exit codes: 0 ok, 1 check found problems, 2 bad usage or input.
 */
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fleetFilePath, InventoryError, loadInventory } from "../constructs/inventory";
import { SECRETS, SECRET_NAMES } from "../constructs/secrets";
import { checkStore, checkValue, encrypt, lockedStore as locked, newValue, operatorIdentity, planOf, recipientsOf, reencrypt, secretFile, SecretsError, Store, unusedFiles, writeRules } from "./lib/secrets-store";
import { blockingStdio } from "./lib/stdio";

// output reaches a pipe whole before the process exits (scripts/lib/stdio.ts)
blockingStdio();

const ROOT = resolve(__dirname, "..");

const HELP = `Usage:
  npm run secrets -- generate          create every secret the inventory's roles need that is missing
  npm run secrets -- set <name>        store an entered secret (e.g. hf-token), read from stdin
  npm run secrets -- rotate <name>     replace a generated secret with a new value
  npm run secrets -- rekey             re-encrypt every secret to the current operators and pinned host keys
  npm run secrets -- check             every host has every secret its roles need, encrypted to its host key
  npm run secrets -- list              the secrets, who needs them, and whether they exist

Files: secrets/operators.txt (your public keys), secrets/<name>.age, secrets/secrets.nix (agenix rules).
Environment: FLEET_FILE (inventory), FLEET_SECRETS_DIR (default secrets/), FLEET_KNOWN_HOSTS
(pinned host keys; default deploy/known_hosts), FLEET_AGE_IDENTITY (your age identity or SSH
private key, for rekey; default ~/.ssh/id_ed25519).
Exit codes: 0 ok, 1 check found problems, 2 bad usage or input.`;

function usage(message: string): never {
  process.stderr.write(`secrets: ${message}\n`);
  process.exit(2);
}

/** A value from stdin: piped, or typed at a terminal without echo. */
async function readSecretInput(name: string): Promise<string> {
  if (!process.stdin.isTTY) {
    const chunks: Buffer[] = [];
    for await (const c of process.stdin) chunks.push(c as Buffer);
    return Buffer.concat(chunks).toString("utf8");
  }
  process.stderr.write(`${name}: paste the value, then Enter (not shown): `);
  const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true });
  (rl as any)._writeToOutput = () => undefined;
  const line = await new Promise<string>((done) => rl.once("line", done));
  rl.close();
  process.stderr.write("\n");
  return line;
}

async function main() {
  const [cmd, ...rest] = process.argv.slice(2);
  if (!cmd || cmd === "-h" || cmd === "--help") {
    process.stdout.write(`${HELP}\n`);
    return;
  }
  const store: Store = {
    root: ROOT,
    dir: resolve(ROOT, process.env.FLEET_SECRETS_DIR || "secrets"),
    knownHostsFile: resolve(ROOT, process.env.FLEET_KNOWN_HOSTS || join("deploy", "known_hosts")),
  };
  const inv = loadInventory(fleetFilePath());
  const out = (l: string) => process.stdout.write(`${l}\n`);
  const known = (name: string | undefined, verb: string) => {
    if (!name) usage(`${verb} needs a secret name; see npm run secrets -- list`);
    if (!SECRETS[name]) usage(`unknown secret "${name}"; known: ${SECRET_NAMES.join(", ")}`);
    if (rest.length > 1) usage(`${verb} takes one secret name`);
    return name;
  };
  const redeploy = (hosts: string[]) => (hosts.length ? `; deploy to apply: npm run deploy -- ${hosts.join(" ")}` : "");

  switch (cmd) {
    case "list": {
      const p = planOf(store, inv);
      for (const n of SECRET_NAMES) {
        const hosts = p.holders.get(n) ?? [];
        const state = existsSync(secretFile(store, n)) ? "exists" : SECRETS[n].optional ? "not set (optional)" : "MISSING";
        out(`${n.padEnd(26)} ${state.padEnd(20)} ${hosts.length ? hosts.join(", ") : "(no host of the inventory needs it)"}`);
      }
      return;
    }
    case "generate": {
      if (rest.length) usage("generate takes no arguments");
      await locked(store, () => {
        const p = planOf(store, inv);
        let made = 0;
        for (const n of SECRET_NAMES) {
          const hosts = p.holders.get(n) ?? [];
          if (!hosts.length || existsSync(secretFile(store, n))) continue;
          if (SECRETS[n].entered) {
            out(`${n}: entered, not generated${SECRETS[n].optional ? " (optional)" : ""}: npm run secrets -- set ${n}`);
            continue;
          }
          encrypt(secretFile(store, n), newValue(n), recipientsOf(p, n));
          out(`created ${n} for ${hosts.join(", ")}`);
          made++;
        }
        writeRules(store, p);
        const unpinned = [...new Set([...p.holders.values()].flat())].filter((h) => !p.hostKeys.has(h));
        if (unpinned.length) out(`not yet encrypted to ${unpinned.join(", ")}: no pinned host key (deploy each once; it pins the key and stops before switching), then npm run secrets -- rekey`);
        out(made ? `generated ${made} secret(s)` : "nothing to generate: every needed secret exists");
      });
      return;
    }
    case "set": {
      const name = known(rest[0], "set");
      const value = checkValue(name, await readSecretInput(name));
      await locked(store, () => {
        const p = planOf(store, inv);
        encrypt(secretFile(store, name), value, recipientsOf(p, name));
        writeRules(store, p);
        out(`stored ${name}${redeploy(p.holders.get(name) ?? [])}`);
      });
      return;
    }
    case "rotate": {
      const name = known(rest[0], "rotate");
      await locked(store, () => {
        const p = planOf(store, inv);
        encrypt(secretFile(store, name), newValue(name), recipientsOf(p, name));
        writeRules(store, p);
        out(`rotated ${name}${redeploy(p.holders.get(name) ?? [])}`);
      });
      return;
    }
    case "rekey": {
      if (rest.length) usage("rekey takes no arguments");
      const identity = operatorIdentity();
      await locked(store, () => {
        const p = planOf(store, inv);
        const existing = SECRET_NAMES.filter((name) => existsSync(secretFile(store, name)));
        reencrypt(store, inv, existing, identity, p);
        const n = existing.length;
        out(`re-encrypted ${n} secret(s) to ${p.operators.length} operator key(s) and ${[...p.hostKeys.keys()].filter((h) => [...p.holders.values()].some((l) => l.includes(h))).length} host key(s)`);
      });
      return;
    }
    case "check": {
      if (rest.length) usage("check takes no arguments");
      const problems = checkStore(store, inv);
      for (const u of unusedFiles(store, inv)) out(`note: secrets/${u} is not needed by any host of the inventory`);
      for (const pr of problems) process.stderr.write(`secrets: ${pr.host ? `${pr.host}: ` : ""}${pr.secret}: ${pr.message}; fix: ${pr.fix}\n`);
      if (problems.length) process.exit(1);
      out("ok: every host has every secret its roles need, encrypted to its pinned host key");
      return;
    }
    default:
      usage(`unknown command "${cmd}"; see npm run secrets -- --help`);
  }
}

main().catch((e) => {
  if (e instanceof InventoryError) process.stderr.write(`${e.message}\n`);
  else if (e instanceof SecretsError) process.stderr.write(`secrets: ${e.message}; ${e.hint}\n`);
  else process.stderr.write(`secrets: ${(e as Error)?.message ?? e}\n`);
  process.exit(2);
});
