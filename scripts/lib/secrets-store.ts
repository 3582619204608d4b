/**
 * The secrets store (docs/adr-0014-secrets.md): agenix's layout, so operators can keep using
 * agenix (`agenix -e`, `agenix -r`) on the same files.
 *
 *   secrets/operators.txt   operators' public keys (age "age1..." or "ssh-ed25519 ..."), one per line
 *   secrets/<name>.age      one secret, ASCII-armored age, encrypted to the operators and to the
 *                           pinned SSH host key (deploy/known_hosts) of every host that needs it
 *   secrets/secrets.nix     agenix's rules file (who each file is encrypted to), written from the above
 *
 * Encryption and decryption run the real `age` (Debian's package, or any age >= 1.0) with the
 * value on stdin/stdout: never in an argument list, a temp file or a log.
 */
import { spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { join, relative } from "node:path";
import { sshKeyProblem } from "../../constructs/inventory";
import type { Inventory } from "../../constructs/inventory";
import { SECRETS, SECRET_NAMES, secretHolders } from "../../constructs/secrets";
import { readPins } from "./host-keys";
import { withDirLock } from "./dir-lock";

export class SecretsError extends Error {
  constructor(message: string, readonly hint: string) {
    super(message);
  }
}

export interface Store {
  readonly dir: string;
  /** Project root (messages name files relative to it). */
  readonly root: string;
  /** Pinned host keys (known_hosts of the deploy). */
  readonly knownHostsFile: string;
}

export const secretFile = (s: Store, name: string) => join(s.dir, `${name}.age`);
/** A path as messages show it: relative to the project when inside it, else absolute. */
const rel = (s: Store, f: string) => {
  const r = relative(s.root, f);
  return r && !r.startsWith("..") ? r : f;
};

// ------------------------------------------------------------------ keys and headers

/**
 * A recipient line is an age X25519 key or an SSH ed25519/RSA public key (what age -R accepts),
 * checked as the inventory checks users' keys (constructs/inventory.ts sshKeyProblem).
 */
export function parseRecipient(line: string): string | undefined {
  const t = line.trim();
  if (/^age1[02-9ac-hj-np-z]{58}$/.test(t)) return t;
  const m = /^(ssh-ed25519|ssh-rsa) (\S+)/.exec(t);
  return m && sshKeyProblem(t) === undefined ? `${m[1]} ${m[2]}` : undefined;
}

/**
 * The tag age writes in an SSH recipient's stanza: the first 4 bytes of SHA-256 of the key's
 * wire form, base64 without padding (FiloSottile/age agessh/agessh.go, sshFingerprint).
 */
export function sshTag(recipient: string): string | undefined {
  const m = /^(ssh-ed25519|ssh-rsa) (\S+)/.exec(recipient);
  if (!m) return undefined;
  return createHash("sha256").update(Buffer.from(m[2], "base64")).digest().subarray(0, 4).toString("base64").replace(/=+$/, "");
}

/**
 * The recipient stanzas of an age file's header ("-> ssh-ed25519 <tag> ..." lines; age spec,
 * age-encryption.org/v1), armored or binary. Undefined when the file is not age.
 */
export function stanzas(file: string): { type: string; tag?: string }[] | undefined {
  let data = readFileSync(file);
  const text = data.toString("latin1");
  if (text.startsWith("-----BEGIN AGE ENCRYPTED FILE-----")) {
    const body = text.split(/\r?\n/).filter((l) => l && !l.startsWith("-----")).join("");
    data = Buffer.from(body, "base64");
  }
  const lines = data.toString("latin1").split("\n");
  if (lines[0] !== "age-encryption.org/v1") return undefined;
  const out: { type: string; tag?: string }[] = [];
  for (const l of lines.slice(1)) {
    if (l.startsWith("---")) return out;
    const m = /^-> (\S+)(?: (\S+))?/.exec(l);
    if (m) out.push({ type: m[1], tag: m[1].startsWith("ssh-") ? m[2] : undefined });
  }
  return undefined;
}

/** Whether `file` is encrypted to the SSH public key `recipient` (its stanza is there). */
export function encryptedTo(file: string, recipient: string): boolean {
  const tag = sshTag(recipient);
  return !!tag && (stanzas(file) ?? []).some((s) => s.type === recipient.split(" ")[0] && s.tag === tag);
}

// ------------------------------------------------------------------ age

/** Largest decrypted or encrypted output read back from age. */
const AGE_MAX_BYTES = 64 << 20;

function age(args: string[], input: Buffer | string): Buffer {
  const r = spawnSync("age", args, { input, maxBuffer: AGE_MAX_BYTES });
  const code = (r.error as NodeJS.ErrnoException | undefined)?.code;
  if (code === "ENOENT") throw new SecretsError("cannot run age: it is not installed", "install age (Debian/Ubuntu: apt-get install age; macOS: brew install age)");
  if (code === "ENOBUFS") throw new SecretsError(`age ${args[0]}: the output is larger than ${AGE_MAX_BYTES >> 20} MiB`, "a secret this large does not belong in secrets/ (it is copied to every host that needs it on each deploy): keep the file elsewhere and store only its key here");
  if (r.error) throw new SecretsError(`cannot run age: ${code ?? r.error.message}`, "check that age runs (age --version)");
  if (r.status !== 0) {
    // age ends every error with a fixed "report unexpected or unhelpful errors" line: the
    // message is the "age: error:" line(s) before it
    const lines = r.stderr.toString().trim().split("\n").filter((l) => l && !/report unexpected or unhelpful errors/.test(l));
    const errorLines = lines.filter((l) => /^age: error:/.test(l));
    throw new SecretsError(`age ${args[0]} failed: ${(errorLines.length ? errorLines : lines.slice(-1)).join(" ").replace(/^age: error: /, "")}`, "see the message above");
  }
  return r.stdout;
}

/** Writes `value` to `file` encrypted to `recipients` (written beside and renamed: never half a file). */
export function encrypt(file: string, value: string, recipients: readonly string[]): void {
  const tmpDir = mkdtempSync(join(tmpdir(), "fleet-recipients-"));
  try {
    const list = join(tmpDir, "recipients");
    writeFileSync(list, `${recipients.join("\n")}\n`);
    const out = `${file}.tmp-${process.pid}`;
    age(["-e", "-a", "-R", list, "-o", out], value);
    chmodSync(out, 0o644);
    renameSync(out, file);
  } finally {
    rmSync(tmpDir, { recursive: true, force: true });
  }
}

/** The value of `file`, decrypted with the operator's identity (an age identity file or an SSH private key). */
export function decrypt(file: string, identity: string): string {
  return age(["-d", "-i", identity, file], Buffer.alloc(0)).toString("utf8");
}

/** The operator's identity: FLEET_AGE_IDENTITY, else ~/.ssh/id_ed25519. */
export function operatorIdentity(env: NodeJS.ProcessEnv = process.env): string {
  const f = env.FLEET_AGE_IDENTITY || join(homedir(), ".ssh", "id_ed25519");
  if (!existsSync(f)) throw new SecretsError(`no operator identity to decrypt with (${f} does not exist)`, "set FLEET_AGE_IDENTITY to your age identity file or SSH private key (one of secrets/operators.txt)");
  return f;
}

// ------------------------------------------------------------------ who gets what

export function readOperators(s: Store): string[] {
  const f = join(s.dir, "operators.txt");
  if (!existsSync(f)) throw new SecretsError(`${rel(s, f)} does not exist`, `put your public key in it (one per line: an age key "age1..." or "ssh-ed25519 ..."; e.g. cat ~/.ssh/id_ed25519.pub > ${rel(s, f)})`);
  const out: string[] = [];
  readFileSync(f, "utf8").split(/\r?\n/).forEach((line, i) => {
    if (!line.trim() || line.trim().startsWith("#")) return;
    const r = parseRecipient(line);
    if (!r) throw new SecretsError(`${rel(s, f)} line ${i + 1}: not an age or ssh-ed25519/ssh-rsa public key`, "one public key per line (age1... or ssh-ed25519 AAAA...)");
    out.push(r);
  });
  if (!out.length) throw new SecretsError(`${rel(s, f)} names no operator key`, "add your public key: secrets are encrypted to the operators too, or nobody could re-encrypt them");
  return out;
}

export interface Plan {
  readonly operators: string[];
  /** secret -> hosts that need it */
  readonly holders: Map<string, string[]>;
  /** host -> pinned SSH host key (hosts that were never deployed have none yet) */
  readonly hostKeys: Map<string, string>;
}

export function planOf(s: Store, inv: Inventory): Plan {
  const pins = readPins(s.knownHostsFile);
  const hostKeys = new Map<string, string>();
  for (const h of inv.hosts) {
    const p = pins.get(h.name);
    if (p) hostKeys.set(h.name, p.key);
  }
  return { operators: readOperators(s), holders: secretHolders(inv), hostKeys };
}

/** Operators and the pinned keys of the secret's hosts. */
export function recipientsOf(p: Plan, secret: string): string[] {
  return [...p.operators, ...(p.holders.get(secret) ?? []).flatMap((h) => (p.hostKeys.has(h) ? [p.hostKeys.get(h)!] : []))];
}

/** agenix's rules file: the same recipients, so `agenix -e <name>.age` and `agenix -r` work here too. */
export function writeRules(s: Store, p: Plan): void {
  const q = (v: string) => JSON.stringify(v);
  const hostNames = [...new Set([...p.holders.values()].flat())].filter((h) => p.hostKeys.has(h)).sort();
  const existing = SECRET_NAMES.filter((n) => existsSync(secretFile(s, n)));
  const text = [
    "# agenix rules file, written by `npm run secrets` (scripts/secrets.ts) from fleet.json,",
    "# secrets/operators.txt and the pinned host keys in deploy/known_hosts. Do not edit: change those",
    "# and run `npm run secrets -- rekey`.",
    "let",
    `  operators = [ ${p.operators.map(q).join(" ")} ];`,
    "  hosts = {",
    ...hostNames.map((h) => `    ${q(h)} = ${q(p.hostKeys.get(h)!)};`),
    "  };",
    "in",
    "{",
    ...existing.map((n) => `  ${q(`${n}.age`)}.publicKeys = operators ++ [ ${(p.holders.get(n) ?? []).filter((h) => p.hostKeys.has(h)).map((h) => `hosts.${q(h)}`).join(" ")} ];`),
    "}",
    "",
  ].join("\n");
  const f = join(s.dir, "secrets.nix");
  writeFileSync(`${f}.tmp-${process.pid}`, text);
  renameSync(`${f}.tmp-${process.pid}`, f);
}

/** A new value for a generated secret. */
export function newValue(name: string): string {
  const g = SECRETS[name].generate;
  if (!g) throw new SecretsError(`${name} is entered, not generated`, `run: npm run secrets -- set ${name} (the value is read from stdin)`);
  return `${g === "sk-hex32" ? "sk-" : ""}${randomBytes(32).toString("hex")}`;
}

/** An entered value is one line of printable characters (it becomes VAR=value in an environment file). */
export function checkValue(name: string, value: string): string {
  const v = value.replace(/\r?\n$/, "");
  if (!v) throw new SecretsError(`${name}: the value is empty`, "pipe or paste the value");
  if (/[\r\n]/.test(v)) throw new SecretsError(`${name}: the value has more than one line`, "a secret is one line");
  if (/[^\x21-\x7e]/.test(v)) throw new SecretsError(`${name}: the value has spaces or non-printable characters`, "secrets are tokens: printable ASCII without spaces");
  return v;
}

export interface Problem {
  readonly host?: string;
  readonly secret: string;
  readonly message: string;
  readonly fix: string;
}

/**
 * Every host has every secret its roles need, encrypted to its pinned host key; optional
 * secrets that do not exist are not problems. Reads headers only: no identity needed.
 */
export function checkStore(s: Store, inv: Inventory, p: Plan = planOf(s, inv)): Problem[] {
  const problems: Problem[] = [];
  for (const name of SECRET_NAMES) {
    const hosts = p.holders.get(name) ?? [];
    if (!hosts.length) continue;
    const f = secretFile(s, name);
    if (!existsSync(f)) {
      if (!SECRETS[name].optional)
        problems.push({ secret: name, message: `${rel(s, f)} does not exist (needed by ${hosts.join(", ")})`, fix: SECRETS[name].entered ? `npm run secrets -- set ${name}` : "npm run secrets -- generate" });
      continue;
    }
    if (!stanzas(f)) {
      problems.push({ secret: name, message: `${rel(s, f)} is not an age file`, fix: `npm run secrets -- rotate ${name}` });
      continue;
    }
    for (const h of hosts) {
      const key = p.hostKeys.get(h);
      if (!key) problems.push({ host: h, secret: name, message: `no pinned host key for ${h} in ${rel(s, s.knownHostsFile)} (never deployed)`, fix: `deploy ${h} once (it pins the key and stops before switching), then npm run secrets -- rekey` });
      else if (!encryptedTo(f, key)) problems.push({ host: h, secret: name, message: `${rel(s, f)} is not encrypted to ${h}'s pinned host key (a replaced VM has a new key)`, fix: "npm run secrets -- rekey" });
    }
    for (const op of p.operators)
      if (op.startsWith("ssh-") && !encryptedTo(f, op)) problems.push({ secret: name, message: `${rel(s, f)} is not encrypted to operator key ${op.slice(0, 30)}...`, fix: "npm run secrets -- rekey" });
  }
  return problems;
}

/** Secret files in the store that no role of the inventory needs. */
export function unusedFiles(s: Store, inv: Inventory): string[] {
  if (!existsSync(s.dir)) return [];
  const holders = secretHolders(inv);
  return readdirSync(s.dir).filter((f) => f.endsWith(".age") && !holders.has(f.slice(0, -4)));
}

export function ensureDir(s: Store): void {
  mkdirSync(s.dir, { recursive: true });
}

/** One writer at a time (the CLI, parallel deploy steps): a lock directory in the store. */
export function lockedStore<T>(s: Store, fn: () => Promise<T> | T): Promise<T> {
  ensureDir(s);
  const lock = join(s.dir, ".lock");
  return withDirLock(lock, 1200, () => new SecretsError(`cannot lock ${lock}`, `remove ${lock} if no npm run secrets or deploy is running`), fn);
}

/**
 * Re-encrypts `names` to their current recipients (operators and every pinned host that needs
 * them), decrypting with the operator's identity. What `rekey` does, for some files only.
 */
export function reencrypt(s: Store, inv: Inventory, names: readonly string[], identity: string, p: Plan = planOf(s, inv)): void {
  for (const name of names) {
    const f = secretFile(s, name);
    if (existsSync(f)) encrypt(f, decrypt(f, identity), recipientsOf(p, name));
  }
  writeRules(s, p);
}
