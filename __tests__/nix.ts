import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { hostPorts, parseInventory } from "../constructs/inventory";
import { ROLES } from "../constructs/roles";
import { hostConfigFiles } from "../constructs/config-hash";

/** Evaluates a pure Nix expression with the real nix-instantiate (Debian's nix-bin). */
export function nixEval(expr: string): any {
  const out = execFileSync("nix-instantiate", ["--eval", "--strict", "--json", "-E", expr], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  return JSON.parse(out);
}

/** What the flake's pure inventory logic makes of a fleet file. */
export function nixView(fleetFile: string, nixosDir: string) {
  return nixEval(`
    let v = import ${nixosDir}/lib/inventory.nix { raw = builtins.fromJSON (builtins.readFile ${fleetFile}); };
    in {
      hostNames = v.hostNames;
      hosts = builtins.mapAttrs (n: h: { inherit (h) roles ports files; }) v.hosts;
    }`);
}

/** The same view from the TypeScript side. */
export function tsView(fleetFile: string, nixosDir: string) {
  const inv = parseInventory(readFileSync(fleetFile, "utf8"), fleetFile);
  const roleFiles = (roles: string[]) => [...new Set(roles.flatMap((r) => ROLES[r as keyof typeof ROLES].files))];
  return {
    hostNames: inv.hosts.map((h) => h.name),
    hosts: Object.fromEntries(inv.hosts.map((h) => [h.name, { roles: h.roles, ports: hostPorts(h), files: roleFiles(h.roles) }])),
    // every file a host's hash covers must exist (flake.lock is made on a connected machine)
    missingFiles: inv.hosts.flatMap((h) => hostConfigFiles(h, nixosDir)).filter((f) => f !== "flake.lock" && !existsIn(nixosDir, f)),
  };
}

function existsIn(dir: string, rel: string): boolean {
  try {
    readFileSync(join(dir, rel));
    return true;
  } catch {
    return false;
  }
}

/** Every place where the two views disagree, as readable lines. */
export function disagreements(ts: ReturnType<typeof tsView>, nix: ReturnType<typeof nixView>): string[] {
  const out: string[] = [];
  const canon = (v: unknown): string => JSON.stringify(v, (_k, x) => (x && typeof x === "object" && !Array.isArray(x) ? Object.fromEntries(Object.entries(x).sort()) : x));
  if (canon(ts.hostNames) !== canon(nix.hostNames)) out.push(`host names: TypeScript ${canon(ts.hostNames)} vs Nix ${canon(nix.hostNames)}`);
  for (const name of new Set([...Object.keys(ts.hosts), ...Object.keys(nix.hosts)]))
    for (const field of ["roles", "ports", "files"] as const) {
      const a = canon((ts.hosts as any)[name]?.[field]);
      const b = canon(nix.hosts[name]?.[field]);
      if (a !== b) out.push(`host ${name}: ${field}: TypeScript ${a} vs Nix ${b}`);
    }
  for (const f of ts.missingFiles) out.push(`file ${f} is named in the role table but missing under nixos/`);
  return [...new Set(out)];
}

/** The nixpkgs kit for the NixOS contract (../shared/nixpkgs-kit unless NIXPKGS_KIT names one). */
export const NIXPKGS_KIT = process.env.NIXPKGS_KIT ?? join(__dirname, "..", "..", "shared", "nixpkgs-kit");
/** A full nixpkgs checkout, if given: then nixpkgs' own nixosSystem is used. */
export const NIXPKGS = process.env.NIXPKGS;
export const nixosKitAvailable = () => !!((NIXPKGS && existsSync(join(NIXPKGS, "lib"))) || existsSync(join(NIXPKGS_KIT, "lib", "default.nix")));

/** Evaluates hosts of `fleetFile` with the flake under `nixosDir`; throws with Nix's message on failure. */
export function evalFleet(fleetFile: string, nixosDir = join(__dirname, "..", "nixos"), opts: { hosts?: string[]; platformStub?: boolean; platform?: "stub" | "seed004" | "placeholder" } = {}): Record<string, any> {
  const args = [
    NIXPKGS ? `nixpkgs = ${NIXPKGS};` : `kit = ${NIXPKGS_KIT};`,
    `nixosDir = ${nixosDir};`,
    opts.hosts ? `hosts = [ ${opts.hosts.map((h) => JSON.stringify(h)).join(" ")} ];` : "",
    opts.platformStub === false ? "platformStub = false;" : "",
    opts.platform ? `platform = "${opts.platform}";` : "",
  ].join(" ");
  const env = { ...process.env, FLEET_FILE: fleetFile };
  try {
    const out = execFileSync("nix-instantiate", ["--option", "build-users-group", "", "--eval", "--strict", "--json", "-E", `import ${join(__dirname, "nix", "eval-fleet.nix")} { ${args} }`], { encoding: "utf8", env, stdio: ["ignore", "pipe", "pipe"], maxBuffer: 64 << 20 });
    return JSON.parse(out);
  } catch (e: any) {
    throw new Error(String(e.stderr ?? e.message).split("\n").filter((l) => !l.startsWith("warning:")).slice(0, 12).join("\n"));
  }
}

