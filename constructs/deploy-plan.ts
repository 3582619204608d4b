import type { DeploySpecDocument } from "./deploy-step";
import { hostPorts, HostSpec, Inventory } from "./inventory";
import { PLATFORM_ROLES, ROLES, RoleName } from "./roles";
import { createHash } from "node:crypto";
import { canonicalJson } from "./config-hash";
import { secretEnvFiles } from "./secrets";

/** What one host's deploy needs; shared by the deploy steps (stacks/) and `npm run deploy`. */
export interface HostDeployPlan {
  readonly host: HostSpec;
  /** The deploy script's input, without the agent address (Terraform fills that in). */
  readonly spec: Omit<DeploySpecDocument, "agentAddress">;
  /** Hosts whose deploy must finish first (platform dependency order). */
  readonly waitFor: string[];
  /**
   * The same as roles: the host waits for every holder of each of these roles. The deploy steps
   * wait on one barrier per role instead of on every holder (edges stay linear in hosts).
   * Roles the host holds itself are not here: those holders are in waitForHosts.
   */
  readonly waitForRoles: RoleName[];
  /** Holders it waits for directly (a needed role it also holds: a barrier would include itself). */
  readonly waitForHosts: string[];
  /** Inventory data outside the host's own entry that its configuration reads (for the hash). */
  readonly hashContext: unknown;
}

export interface DeployPlanOptions {
  /** Hosts have no VM managed here: a DHCP host is reached by its DNS name. @default true */
  readonly manageVms?: boolean;
}

/** Deployment level: the highest platform level among the host's roles (0 chainfire, 1 flaredb, 2 iam, 3 the rest; -1 for none). */
export function levelOf(h: Pick<HostSpec, "roles">): number {
  return Math.max(-1, ...h.roles.map((r) => Math.min((PLATFORM_ROLES as readonly string[]).indexOf(r), 3)));
}

export function fqdnOf(inv: Inventory, h: HostSpec): string {
  return inv.cluster.domain ? `${h.name}.${inv.cluster.domain}` : h.name;
}

export function staticAddressOf(h: HostSpec): string | undefined {
  return h.network.dhcp ? undefined : h.network.address?.split("/")[0];
}

/**
 * Host names in code-unit order. Host names are lower-case letters, digits and "-", where this is
 * the order localeCompare gave; localeCompare's first call loads ICU's collator, ~10 ms of a small
 * synth (issue #30).
 */
const byName = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** Hosts holding each role, in inventory order. */
function byRole(hosts: HostSpec[]): Map<RoleName, HostSpec[]> {
  const m = new Map<RoleName, HostSpec[]>();
  for (const h of hosts)
    for (const r of h.roles) {
      if (!m.has(r)) m.set(r, []);
      m.get(r)!.push(h);
    }
  return m;
}

/** Every role a role needs, directly or through the roles it needs (the table is fixed: computed once). */
const CLOSURE = new Map<RoleName, Set<RoleName>>(
  (Object.keys(ROLES) as RoleName[]).map((role) => {
    const out = new Set<RoleName>();
    const visit = (r: RoleName) => ROLES[r].requires.forEach((n) => out.has(n) || (out.add(n), visit(n)));
    visit(role);
    return [role, out];
  }),
);
const closure = (role: RoleName) => CLOSURE.get(role)!;

/**
 * The roles a host must wait for, without those already implied: plasmavmc needs iam and
 * flaredb, but the iam hosts wait for flaredb, so waiting for iam is enough (when iam hosts
 * exist here). Keeps the dependency edges of a large platform linear-ish.
 */
function directNeeds(roles: readonly RoleName[], present: (r: RoleName) => boolean): RoleName[] {
  const needs = new Set<RoleName>();
  for (const r of roles) for (const n of ROLES[r].requires) needs.add(n);
  return [...needs].filter((n) => ![...needs].some((m) => m !== n && present(m) && closure(m).has(n)));
}

/**
 * Deploy plans for `hosts` (default: all), in an order where every host comes after the hosts
 * it waits for. Dependencies are looked up among `hosts` only, so a plan per stack stays inside
 * its stack.
 */
export function planDeploys(inv: Inventory, hosts: HostSpec[] = inv.hosts, opts: DeployPlanOptions = {}): HostDeployPlan[] {
  const user = inv.deploy?.user ?? (inv.users.find((u) => u.admin !== false) ?? inv.users[0]).name;
  const shared = { cluster: inv.cluster, users: inv.users, registration: inv.template.registration ?? false };
  const holders = byRole(hosts);
  // Upstreams are read from the whole inventory (as the flake does), even across stacks.
  const fleetHolders = hosts === inv.hosts ? holders : byRole(inv.hosts);
  const held = (r: RoleName) => holders.get(r) ?? [];
  // What a LiteLLM (OpenWebUI) host's configuration reads of its upstreams, as one digest per
  // role computed once: every such host's hash covers every upstream, without each host
  // serializing all of them again (that was quadratic in a large fleet).
  const digests = new Map<RoleName, string>();
  const upstreamDigest = (role: RoleName) => {
    let d = digests.get(role);
    if (d === undefined) {
      const view = (fleetHolders.get(role) ?? []).map((u) => ({ name: u.name, network: u.network, ports: hostPorts(u), services: u.services ?? {} }));
      d = createHash("sha256").update(canonicalJson(view)).digest("hex");
      digests.set(role, d);
    }
    return d;
  };
  // Rolling updates (docs/adr-0013-rolling-updates.md): members of a quorum role one at a time
  // in name order; hosts of another role with several members at most `maxUnavailable` at a
  // time. A host waits for the member `k` places before it in each of its roles.
  const maxUnavailable = inv.deploy?.maxUnavailable ?? 1;
  // each role's members in name order with their places, sorted once per role
  const ordered = new Map<RoleName, { members: HostSpec[]; place: Map<HostSpec, number> }>();
  const orderOf = (r: RoleName) => {
    let o = ordered.get(r);
    if (!o) {
      const members = [...held(r)].sort((a, b) => byName(a.name, b.name));
      o = { members, place: new Map(members.map((m, i) => [m, i])) };
      ordered.set(r, o);
    }
    return o;
  };
  const rollAfter = (h: HostSpec): string[] => {
    const after = new Set<string>();
    for (const r of h.roles) {
      const { members, place } = orderOf(r);
      const i = place.get(h) ?? -1;
      const k = ROLES[r].quorum ? 1 : maxUnavailable;
      if (i - k >= 0) after.add(members[i - k].name);
    }
    return [...after];
  };
  return hosts
    .map((h) => ({ h, level: levelOf(h) }))
    // by level, then by name: every host after the hosts it waits for
    .sort((a, b) => a.level - b.level || byName(a.h.name, b.h.name))
    .map(({ h }) => {
      const ports = hostPorts(h);
      const secrets = secretEnvFiles(inv, h);
      const quorum = h.roles.flatMap((role) => {
        const m = ROLES[role].quorum ? ROLES[role].membership : undefined;
        // every member in the inventory, whichever stack is planned
        const all = fleetHolders.get(role) ?? [];
        // every member's address (static, else its DNS name): the gates ask them all (scripts/lib/quorum.ts)
        return m ? [{ role, port: ports[role][m.port], path: m.path, expected: all.length, members: all.map((x) => staticAddressOf(x) ?? fqdnOf(inv, x)) }] : [];
      });
      const waitFor = new Set<string>();
      const waitForRoles: RoleName[] = [];
      const waitForHosts = new Set<string>();
      for (const need of directNeeds(h.roles, (r) => held(r).some((x) => x !== h))) {
        for (const dep of held(need)) if (dep !== h) waitFor.add(dep.name);
        // a role it holds too: the members before it (the others roll after it)
        if (h.roles.includes(need)) for (const dep of held(need)) dep !== h && dep.name < h.name && waitForHosts.add(dep.name);
        else if (held(need).length) waitForRoles.push(need);
      }
      for (const prev of rollAfter(h)) {
        waitFor.add(prev);
        waitForHosts.add(prev);
      }
      // Whose inventory entries the host's configuration reads (its hash must follow them):
      // LiteLLM the vLLM hosts, OpenWebUI the LiteLLM hosts, vLLM the LiteLLM hosts (its
      // firewall), a Raft member every member of its role (docs/adr-0020-raft-membership.md).
      const reads = new Set<RoleName>();
      if (h.roles.includes("litellm")) reads.add("vllm");
      if (h.roles.includes("openwebui") || h.roles.includes("vllm")) reads.add("litellm");
      for (const r of h.roles) if (ROLES[r].quorum) reads.add(r);
      const upstreamRoles = [...reads];
      const finalAddress = staticAddressOf(h) ?? (opts.manageVms === false ? fqdnOf(inv, h) : undefined);
      return {
        host: h,
        waitFor: [...waitFor],
        waitForRoles,
        waitForHosts: [...waitForHosts],
        // (one role: its digest alone, as before, so existing hosts keep their hash)
        hashContext: { shared, upstreams: upstreamRoles.length === 0 ? [] : upstreamRoles.length === 1 ? upstreamDigest(upstreamRoles[0]) : upstreamRoles.map(upstreamDigest) },
        spec: {
          host: h.name,
          vmid: h.vmid,
          node: h.node,
          roles: h.roles,
          finalAddress,
          fqdn: fqdnOf(inv, h),
          flake: inv.deploy?.flake ?? "./nixos",
          user,
          sshPort: inv.deploy?.sshPort ?? 22,
          ...(opts.manageVms === false ? {} : { managedVm: true }),
          buildHost: inv.deploy?.buildHost,
          ...(inv.nix?.substituters?.length ? { substituters: inv.nix.substituters, trustedPublicKeys: inv.nix.trustedPublicKeys ?? [] } : {}),
          health: h.roles.flatMap((role) =>
            ROLES[role].health.map((c) => ({ role, kind: c.kind, port: ports[role][c.port], path: c.kind === "http" ? c.path : undefined })),
          ),
          units: [...new Set(h.roles.flatMap((role) => ROLES[role].units))],
          ...(secrets.length ? { secrets } : {}),
          ...(quorum.length ? { quorum } : {}),
          timeouts: { sshSeconds: 600, switchSeconds: 3600, healthSeconds: 300, healthStableSeconds: inv.deploy?.healthStableSeconds ?? 10 },
        },
      };
    });
}
