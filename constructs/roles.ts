/**
 * The role table: one place (for TypeScript) that says what each role needs and offers.
 * Its Nix twin is nixos/lib/roles.nix; __tests__/nix-agreement.test.ts compares the two.
 */

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
  /** Files (relative to nixos/) that make up this role's NixOS configuration. */
  readonly files: readonly string[];
}

const platform = (ports: Record<string, number>, requires: RoleName[], name: RoleName, quorum = false): RoleSpec => ({
  quorum,
  group: "platform",
  ports,
  min: { cores: 1, memoryMiB: 1024, diskGiB: 10 },
  requires,
  health: Object.keys(ports).map((port) => ({ kind: "tcp" as const, port })),
  units: [`${name}.service`],
  files: ["modules/platform/lib.nix", `modules/platform/${name}.nix`],
});

export const ROLES: Readonly<Record<RoleName, RoleSpec>> = {
  vllm: {
    group: "ai",
    ports: { api: 8000 },
    min: { cores: 4, memoryMiB: 16384, diskGiB: 40 },
    gpu: true,
    requires: [],
    health: [{ kind: "http", port: "api", path: "/health" }],
    units: ["vllm.service"],
    files: ["modules/roles/vllm.nix"],
  },
  litellm: {
    group: "ai",
    ports: { api: 4000 },
    min: { cores: 1, memoryMiB: 2048, diskGiB: 10 },
    requires: [],
    health: [{ kind: "http", port: "api", path: "/health/liveliness" }],
    units: ["litellm.service"],
    files: ["modules/roles/litellm.nix"],
  },
  openwebui: {
    group: "ai",
    ports: { http: 8080 },
    min: { cores: 1, memoryMiB: 2048, diskGiB: 10 },
    requires: [],
    health: [{ kind: "http", port: "http", path: "/health" }],
    units: ["open-webui.service"],
    files: ["modules/roles/openwebui.nix"],
  },
  cicd: {
    group: "ops",
    ports: {},
    min: { cores: 1, memoryMiB: 1024, diskGiB: 10 },
    requires: [],
    health: [],
    units: ["fleet-git-repositories.service"],
    files: ["modules/roles/cicd.nix", "scripts/git-update-hook.sh"],
  },
  chainfire: platform({ api: 2379, raft: 2380, gossip: 2381 }, [], "chainfire", true),
  flaredb: platform({ api: 2479, raft: 2480 }, ["chainfire"], "flaredb", true),
  iam: platform({ api: 7100 }, ["flaredb"], "iam"),
  plasmavmc: platform({ api: 7200 }, ["iam", "flaredb"], "plasmavmc"),
  novanet: platform({ api: 7300 }, ["iam", "flaredb"], "novanet"),
  flashdns: platform({ api: 7400, dns: 53 }, ["iam", "flaredb"], "flashdns"),
  fiberlb: platform({ api: 7500 }, ["iam", "flaredb"], "fiberlb"),
  lightningstor: platform({ api: 7600 }, ["iam", "flaredb"], "lightningstor"),
};

/** Files (relative to nixos/) in every host's configuration. */
export const SHARED_NIX_FILES = [
  "flake.nix",
  "flake.lock",
  "lib/inventory.nix",
  "lib/roles.nix",
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
