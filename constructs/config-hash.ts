import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { ROLES, SHARED_NIX_FILES, RoleName } from "./roles";
import type { HostSpec } from "./inventory";

/**
 * The files that make up one host's NixOS configuration, relative to nixos/: the shared
 * modules, its role modules and its override file (when present). Changing one role module
 * changes only the hashes of the hosts with that role.
 */
export function hostConfigFiles(host: Pick<HostSpec, "name" | "roles">, nixosDir: string): string[] {
  const files = new Set<string>(SHARED_NIX_FILES);
  for (const role of host.roles) for (const f of ROLES[role as RoleName].files) files.add(f);
  const override = `hosts/${host.name}.nix`;
  if (existsSync(join(nixosDir, override))) files.add(override);
  return [...files].sort();
}

/** Hashes files once per process: a 1000-host synth reads each shared module once. */
export class ConfigHasher {
  private readonly fileHashes = new Map<string, string>();
  private readonly filesText = new Map<string, string>();

  constructor(readonly nixosDir: string) {}

  fileHash(rel: string): string {
    let h = this.fileHashes.get(rel);
    if (h === undefined) {
      const p = join(this.nixosDir, rel);
      // A missing flake.lock (not made yet offline) hashes as "absent", so making it re-deploys.
      h = existsSync(p) ? createHash("sha256").update(readFileSync(p)).digest("hex") : "absent";
      this.fileHashes.set(rel, h);
    }
    return h;
  }

  /**
   * sha256 over (path, file hash) of the host's files, its canonical inventory entry, and the
   * other inventory data its configuration reads (`context`: users, time zone, upstream hosts).
   */
  hostHash(host: HostSpec, context: unknown = null): string {
    const h = createHash("sha256");
    // the same text for every host with the same roles and no override file: made once
    const files = hostConfigFiles(host, this.nixosDir);
    const key = files.join("\0");
    let text = this.filesText.get(key);
    if (text === undefined) {
      text = files.map((rel) => `${rel}\0${this.fileHash(rel)}\n`).join("");
      this.filesText.set(key, text);
    }
    h.update(text);
    h.update(`inventory\0${canonicalJson(host)}\n`);
    h.update(`context\0${canonicalJson(context)}`);
    return h.digest("hex");
  }
}

/** Serializations of objects already seen: every host's hash context shares the same `shared` part. */
const canonicalCache = new WeakMap<object, string>();

/** JSON with sorted keys, so key order in the inventory does not change the hash. */
export function canonicalJson(v: unknown): string {
  if (!v || typeof v !== "object") return JSON.stringify(v);
  const cached = canonicalCache.get(v);
  if (cached !== undefined) return cached;
  const s = Array.isArray(v)
    ? `[${v.map(canonicalJson).join(",")}]`
    : `{${Object.keys(v)
        .sort()
        .map((k) => `${JSON.stringify(k)}:${canonicalJson((v as Record<string, unknown>)[k])}`)
        .join(",")}}`;
  canonicalCache.set(v, s);
  return s;
}
