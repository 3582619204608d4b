/**
 * Which secrets a host needs, from the one secret table nixos/lib/secrets.json (the flake reads
 * the same file with builtins.fromJSON: nixos/lib/inventory.nix, `secretEnvFiles`). Names only:
 * values live encrypted in secrets/<name>.age (scripts/lib/secrets-store.ts, ADR 0014).
 *
 * On the host every role that consumes secrets gets one environment file,
 * /run/fleet-secrets/<role>.env, which its systemd unit reads (EnvironmentFile=).
 */
import * as table from "../nixos/lib/secrets.json";
import type { Inventory } from "./inventory";
import { RoleName } from "./roles";

export interface SecretConsumer {
  /** Environment variable the role's service reads. */
  readonly var: string;
  /** One copy per upstream, joined with ";" (Open WebUI's OPENAI_API_KEYS has one key per OPENAI_API_BASE_URLS entry). */
  readonly perUpstream?: boolean;
}

export interface SecretSpec {
  readonly description: string;
  /** How `npm run secrets -- generate` makes a value: 32 random bytes as hex, "sk-" + hex for LiteLLM (its keys must start with sk-). */
  readonly generate?: "hex32" | "sk-hex32";
  /** Typed in by an operator (`npm run secrets -- set <name>`), never generated. */
  readonly entered?: boolean;
  /** Hosts work without it (the entry is left out of the environment file). */
  readonly optional?: boolean;
  readonly consumers: Readonly<Partial<Record<RoleName, SecretConsumer>>>;
}

export const SECRETS: Readonly<Record<string, SecretSpec>> = table.secrets as Record<string, SecretSpec>;
export const SECRET_NAMES: readonly string[] = Object.keys(SECRETS).sort();

/** Where the host keeps the encrypted files (persistent) and the decrypted environment files (tmpfs). */
export const HOST_SECRET_STORE = "/var/lib/fleet-secrets";
export const HOST_SECRET_RUN = "/run/fleet-secrets";

export interface SecretEnvEntry {
  readonly var: string;
  readonly secret: string;
  /** How many copies of the value, joined with ";". */
  readonly times: number;
  readonly optional: boolean;
}

export interface SecretEnvFile {
  readonly role: RoleName;
  /** File name below /run/fleet-secrets. */
  readonly file: string;
  readonly entries: readonly SecretEnvEntry[];
}

const litellmCount = new WeakMap<object, number>();

/** The environment files a host gets, one per role that consumes a secret (roles in the host's order, entries by secret name). */
export function secretEnvFiles(inv: Pick<Inventory, "hosts">, host: { readonly roles: readonly RoleName[] }): SecretEnvFile[] {
  // Open WebUI's upstreams are the LiteLLM hosts (nixos/lib/inventory.nix, `upstreams`).
  let upstreams = litellmCount.get(inv.hosts);
  if (upstreams === undefined) litellmCount.set(inv.hosts, (upstreams = inv.hosts.filter((h) => h.roles.includes("litellm")).length));
  const files: SecretEnvFile[] = [];
  for (const role of host.roles) {
    const entries = SECRET_NAMES.flatMap((secret) => {
      const c = SECRETS[secret].consumers[role];
      if (!c) return [];
      const times = c.perUpstream ? upstreams : 1;
      return times > 0 ? [{ var: c.var, secret, times, optional: !!SECRETS[secret].optional }] : [];
    });
    if (entries.length) files.push({ role, file: `${role}.env`, entries });
  }
  return files;
}

/**
 * One environment file as an argument of nixos/scripts/fleet-secrets.sh:
 * "<file>:<VAR>=<secret>*<times>[?],..." ("?" marks an optional secret). The NixOS module
 * builds the same string (nixos/modules/secrets.nix); the agreement test compares them.
 */
export function secretSpecArg(f: SecretEnvFile): string {
  return `${f.file}:${f.entries.map((e) => `${e.var}=${e.secret}*${e.times}${e.optional ? "?" : ""}`).join(",")}`;
}

/** Secret name -> hosts that need it (optional ones included: they get it when it exists). */
export function secretHolders(inv: Pick<Inventory, "hosts">): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const h of inv.hosts)
    for (const f of secretEnvFiles(inv, h))
      for (const e of f.entries) {
        const list = out.get(e.secret) ?? [];
        if (!list.includes(h.name)) list.push(h.name);
        out.set(e.secret, list);
      }
  return out;
}
