/**
 * The role table's types. The data is nixos/lib/roles.json, which the flake reads too
 * (nixos/lib/roles.nix): one table for both languages; __tests__/nix-agreement.test.ts checks
 * that both sides use it the same way.
 */
import * as roleTable from "../nixos/lib/roles.json";

/** Every role a host can carry. */
export const ROLE_NAMES = [
  "vllm",
  "litellm",
  "openwebui",
  "cicd",
  "chainfire",
  "flaredb",
  "iam",
  "plasmavmc",
  "novanet",
  "flashdns",
  "fiberlb",
  "lightningstor",
] as const;
export type RoleName = (typeof ROLE_NAMES)[number];

/** The eight platform services, in dependency order. */
export const PLATFORM_ROLES = [
  "chainfire",
  "flaredb",
  "iam",
  "plasmavmc",
  "novanet",
  "flashdns",
  "fiberlb",
  "lightningstor",
] as const satisfies readonly RoleName[];

/** How a deploy step checks that a role's service answers after activation. */
export type HealthCheck =
  | { readonly kind: "http"; readonly port: string; readonly path: string }
  | { readonly kind: "tcp"; readonly port: string };

export interface RoleSpec {
  /** Stack the role's hosts belong to unless the host names one. */
  readonly group: "ai" | "platform" | "ops";
  /** Named TCP/UDP ports the role listens on (name -> number); the first is the service's main port. */
  readonly ports: Readonly<Record<string, number>>;
  /** Smallest VM that can run the role. */
  readonly min: { readonly cores: number; readonly memoryMiB: number; readonly diskGiB: number };
  /** The role needs a passed-through GPU. */
  readonly gpu?: boolean;
  /** Roles that must exist somewhere in the fleet (and are deployed first). */
  readonly requires: readonly RoleName[];
  /** Health checks run after `nixos-rebuild switch`. */
  readonly health: readonly HealthCheck[];
  /** systemd units of the role (as its NixOS module names them): a failed one fails the deploy. */
  readonly units: readonly string[];
  /**
   * The role's members form a quorum (Raft): they are updated one at a time, in name order, each
   * after the previous one's health gate (docs/adr-0013-rolling-updates.md).
   */
  readonly quorum?: boolean;
  /**
   * Quorum roles: where a member reports its cluster's membership. GET http://<member>:<port><path>
   * answers JSON { "members": <members the cluster knows>, "healthy": <members that are healthy> }
   * (the platform services' contract; docs/adr-0013-rolling-updates.md).
   */
  readonly membership?: { readonly port: string; readonly path: string };
  /** Files (relative to nixos/) that make up this role's NixOS configuration. */
  readonly files: readonly string[];
}

/**
 * The roles, from the one role table nixos/lib/roles.json (the flake reads the same file:
 * nixos/lib/roles.nix). A role missing from the file, or a file role this list does not know,
 * stops at load with the role named.
 */
export const ROLES: Readonly<Record<RoleName, RoleSpec>> = (() => {
  const table = roleTable.roles as unknown as Record<string, RoleSpec>;
  const extra = Object.keys(table).filter((r) => !(ROLE_NAMES as readonly string[]).includes(r));
  const missing = ROLE_NAMES.filter((r) => !table[r]);
  if (extra.length || missing.length) throw new Error(`nixos/lib/roles.json: ${missing.length ? `missing role(s) ${missing.join(", ")}` : ""}${extra.length ? `unknown role(s) ${extra.join(", ")} (add them to ROLE_NAMES in constructs/roles.ts)` : ""}`);
  return Object.fromEntries(ROLE_NAMES.map((r) => [r, table[r]])) as Record<RoleName, RoleSpec>;
})();

/** Files (relative to nixos/) in every host's configuration. */
export const SHARED_NIX_FILES = [
  "flake.nix",
  "flake.lock",
  "lib/inventory.nix",
  "lib/roles.nix",
  "lib/roles.json",
  "lib/defaults.nix",
  "lib/secrets.json",
  "lib/host-module.nix",
  "modules/base.nix",
  "modules/users.nix",
  "modules/proxmox-guest.nix",
  "modules/registration.nix",
  "modules/secrets.nix",
  "scripts/register-host.sh",
  "scripts/fleet-secrets.sh",
] as const;

export function isRole(name: string): name is RoleName {
  return (ROLE_NAMES as readonly string[]).includes(name);
}

/** Dependency level of a platform role (chainfire 0, flaredb 1, iam 2, the rest 3); undefined otherwise. */
export function platformLevel(role: RoleName): number | undefined {
  const i = (PLATFORM_ROLES as readonly string[]).indexOf(role);
  return i < 0 ? undefined : Math.min(i, 3);
}
