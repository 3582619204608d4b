import { App, DataResource, LocalBackend, PgBackend, S3Backend, TerraformLocal, TerraformStack } from "cdktn";
import { Construct } from "constructs";
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { ProxmoxProvider } from "../.gen/providers/proxmox/provider";
import { Inventory, HostSpec, PROJECT_ROOT, stackOf } from "../constructs/inventory";
import type { RoleName } from "../constructs/roles";
import { NixosTemplate } from "../constructs/nixos-template";
import { PciMapping } from "../constructs/gpu";
import { FleetHost } from "../constructs/fleet-host";
import { NixosDeployStep } from "../constructs/deploy-step";
import { ConfigHasher } from "../constructs/config-hash";
import { planDeploys } from "../constructs/deploy-plan";
import { FleetPools } from "../constructs/pools";
import { checkCloneSource } from "../constructs/clone-source";
import { forgetRetired, StatefulGuard } from "../constructs/retirement";
import { poolLeave } from "../constructs/pool-leave";

export interface FleetOptions {
  /** Project root (holds nixos/). @default the repository root */
  readonly root?: string;
  /** Override of the deploy steps' command (tests and the benchmark use a stand-in). */
  readonly deployCommand?: string;
  /** Working directory of the deploy command, relative to the stack directory. @default "../../.." */
  readonly deployWorkingDir?: string;
  /** Create Proxmox VMs. false: only the deploy steps, for machines made elsewhere. @default true */
  readonly manageVms?: boolean;
  /** Override of the command a host stack runs when a host loses its pool (constructs/pool-leave.ts). */
  readonly leavePoolCommand?: string;
  /** State backend; FLEET_BACKEND or the inventory's `backend` choose it. @default "local" */
  readonly backend?: "local" | "pg" | "s3";
}

/** Every stack of a fleet, by name. */
export interface FleetStacks {
  /** Absent when manageVms is false. */
  readonly cluster?: ClusterStack;
  readonly hosts: Record<string, HostsStack>;
}

/** Proxmox provider configured only from its environment variables (PROXMOX_VE_*). */
function proxmoxProvider(scope: Construct) {
  new ProxmoxProvider(scope, "proxmox", {});
}

function configureBackend(stack: TerraformStack, name: string, backend: FleetOptions["backend"]) {
  if (backend === "local") {
    // Relative to cdktf.out/stacks/<name>: the state file lands in the project root, and the
    // synthesized JSON holds no machine-specific absolute path. FLEET_STATE_DIR (the sandbox sets
    // it) puts the state files of a separate cluster elsewhere.
    const dir = process.env.FLEET_STATE_DIR;
    new LocalBackend(stack, { path: dir ? join(dir, `terraform.${name}.tfstate`) : `../../../terraform.${name}.tfstate` });
  } else if (backend === "pg") {
    // The connection string comes from PG_CONN_STR at init time; it never enters the JSON.
    new PgBackend(stack, { connStr: "", schemaName: `fleet_${name}` });
    stack.addOverride("terraform.backend.pg.conn_str", undefined);
  } else if (backend === "s3") {
    // Bucket, region and endpoint (not secrets) from FLEET_S3_*; keys only from AWS_* at init.
    // main.ts refuses to synth without them, so `init` never stops at an interactive prompt.
    const endpoint = process.env.FLEET_S3_ENDPOINT;
    new S3Backend(stack, { bucket: process.env.FLEET_S3_BUCKET ?? "", key: `fleet/${name}.tfstate`, region: process.env.FLEET_S3_REGION || "us-east-1" });
    stack.addOverride("terraform.backend.s3.use_lockfile", true);
    if (endpoint) {
      // an S3-compatible store (MinIO, Ceph RGW, Garage): path-style, no AWS account checks
      stack.addOverride("terraform.backend.s3.endpoints", { s3: endpoint });
      stack.addOverride("terraform.backend.s3.use_path_style", true);
      stack.addOverride("terraform.backend.s3.skip_credentials_validation", true);
      stack.addOverride("terraform.backend.s3.skip_region_validation", true);
      stack.addOverride("terraform.backend.s3.skip_requesting_account_id", true);
    }
  }
}

/** Cluster-level resources: the NixOS template, the PCI mappings and the resource pools. */
export class ClusterStack extends TerraformStack {
  readonly template: NixosTemplate;
  readonly mappings: PciMapping[];
  readonly pools: FleetPools;

  constructor(scope: Construct, id: string, inv: Inventory, opts: FleetOptions) {
    super(scope, id);
    proxmoxProvider(this);
    configureBackend(this, id, opts.backend);
    const t = inv.template;
    this.template = new NixosTemplate(this, "template", {
      vmid: t.vmid,
      node: t.node,
      mode: t.mode,
      name: t.name,
      datastore: inv.cluster.storage,
      imageStorage: inv.cluster.imageStorage,
      cores: t.cores,
      memoryMiB: t.memoryMiB,
      diskGiB: t.diskGiB,
      bridge: inv.cluster.bridge,
      bootstrapImage: t.bootstrapImage,
      imageUrl: t.imageUrl,
      imageSha256: t.imageSha256,
    });
    this.mappings = inv.pciMappings.map((m) => new PciMapping(this, `pci-${m.name}`, m));
    this.pools = new FleetPools(this, "pools", inv);
    checkCloneSource(this, inv);
  }
}

/** A group of hosts (ai, platform, ops, or a host's own `stack`): VMs, deploy steps, outputs. */
export class HostsStack extends TerraformStack {
  readonly hosts: FleetHost[] = [];
  readonly steps = new Map<string, NixosDeployStep>();

  constructor(scope: Construct, id: string, inv: Inventory, hosts: HostSpec[], hasher: ConfigHasher, opts: FleetOptions) {
    super(scope, id);
    const manageVm = opts.manageVms !== false;
    if (manageVm) proxmoxProvider(this);
    configureBackend(this, id, opts.backend);
    for (const h of hosts) this.hosts.push(new FleetHost(this, h.name, { inventory: inv, host: h, manageVm }));
    if (manageVm) {
      // A stateful VM is never lost by leaving the inventory (constructs/retirement.ts). The id is
      // no host name (those are lower-case).
      new StatefulGuard(this, "StatefulGuard", inv);
      forgetRetired(this, inv);
      const poolless = this.hosts.filter((x) => x.vm && !x.spec.pool && !x.spec.existing);
      poolLeave(this, { vms: poolless.map((x) => [x.spec.name, x.vm!.address]), command: opts.leavePoolCommand, workingDir: opts.deployWorkingDir });
    }

    const byName = new Map(this.hosts.map((x) => [x.spec.name, x]));
    // LiteLLM is wired to the vLLM hosts, OpenWebUI to LiteLLM (the flake does the same from the
    // inventory). The list is one local per role, referenced by each host's output: the JSON
    // stays linear in hosts however many gateways there are.
    const lists = new Map<string, TerraformLocal>();
    const urlsOf = (role: "vllm" | "litellm") => {
      let l = lists.get(role);
      if (!l) {
        l = new TerraformLocal(this, `${role}_upstreams`, this.hosts.filter((x) => x.hasRole(role)).map((x) => `http://${x.address}:${x.ports[role].api}/v1`));
        lists.set(role, l);
      }
      return l.asList;
    };
    for (const h of this.hosts) {
      if (h.hasRole("litellm")) h.setUpstreams(urlsOf("vllm"));
      if (h.hasRole("openwebui")) h.setUpstreams(urlsOf("litellm"), h.hasRole("litellm") ? "openwebui_upstreams" : "upstreams");
    }
    const plans = planDeploys(inv, hosts, { manageVms: manageVm });
    // One barrier per needed role: it waits for every deploy step of the role's holders, and the
    // hosts that need the role wait for it. The same order as waiting for each holder, with a
    // number of edges linear in hosts (docs/adr-0012-deploy-graph.md). Made on first use; plans
    // come in level order, so every holder's step exists by then.
    const barriers = new Map<RoleName, DataResource>();
    const barrier = (role: RoleName) => {
      let b = barriers.get(role);
      if (!b) {
        const holders = plans.filter((p) => p.host.roles.includes(role)).map((p) => this.steps.get(p.host.name)!.resource);
        b = new DataResource(this, `role-barrier-${role}`, { input: { role }, dependsOn: holders });
        barriers.set(role, b);
      }
      return b;
    };
    for (const plan of plans) {
      const host = byName.get(plan.host.name)!;
      const step = new NixosDeployStep(host, "deploy", {
        spec: plan.spec,
        agentAddress: host.vm?.ipv4,
        vmAddress: host.vm?.address,
        configHash: hasher.hostHash(plan.host, plan.hashContext),
        dependsOn: [
          ...(host.vm ? [host.vm.vm] : []),
          ...plan.waitForRoles.map(barrier),
          ...plan.waitForHosts.map((d) => {
            const step = this.steps.get(d);
            // plans come in (level, name) order, so a host's predecessors are made first
            if (!step) throw new Error(`internal: the deploy step of ${d} (waited for by ${plan.host.name}) is not made yet`);
            return step.resource;
          }),
        ],
        movedFromNullResource: inv.deploy?.movedFromNullResource,
        command: opts.deployCommand,
        workingDir: opts.deployWorkingDir,
      });
      this.steps.set(plan.host.name, step);
    }
  }
}

/**
 * What a state backend needs from the environment and lacks, as one line (undefined: nothing
 * missing). Checked before synth so that `cdktf diff/deploy` never waits at Terraform's
 * interactive prompt or ends in "connection refused" without a hint.
 */
export function backendProblem(backend: FleetOptions["backend"], env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (backend === "pg" && !env.PG_CONN_STR)
    return "FLEET_BACKEND=pg needs PG_CONN_STR (e.g. postgres://user@db.lan/terraform_backend?sslmode=require; the password in ~/.pgpass or PGPASSWORD)";
  if (backend === "s3") {
    if (!env.FLEET_S3_BUCKET) return "FLEET_BACKEND=s3 needs FLEET_S3_BUCKET (and FLEET_S3_ENDPOINT for an S3-compatible store, FLEET_S3_REGION if not us-east-1)";
    if (!(env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY) && !env.AWS_PROFILE)
      return "FLEET_BACKEND=s3 needs credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE";
  }
  return undefined;
}

/** Builds every stack of the fleet into `app`. */
export function buildFleet(app: App, inv: Inventory, opts: FleetOptions = {}): FleetStacks {
  const root = opts.root ?? PROJECT_ROOT;
  const backend = opts.backend ?? (process.env.FLEET_BACKEND as FleetOptions["backend"]) ?? inv.backend ?? "local";
  const o = { ...opts, backend };
  // The deploy steps apply this flake and re-deploy when its files change: a local flake that is
  // not there would hash as empty, and no change would ever re-deploy (#29 item 4)
  const flake = inv.deploy?.flake ?? "./nixos";
  const local = /^(\.{0,2}\/|path:)/.test(flake);
  const flakeDir = local ? resolve(root, flake.replace(/^path:/, "")) : join(root, "nixos");
  if (local && !existsSync(join(flakeDir, "flake.nix")))
    throw new Error(`${join(flakeDir, "flake.nix")} does not exist: the deploy steps apply the NixOS flake of deploy.flake (${JSON.stringify(flake)}) relative to the project root ${root}; run synth in the project, or pass { root } to buildFleet`);
  const hasher = new ConfigHasher(flakeDir);
  // Configuration-only fleets need no template or PCI mappings.
  const cluster = opts.manageVms === false ? undefined : new ClusterStack(app, "cluster", inv, o);
  const groups = new Map<string, HostSpec[]>();
  for (const h of inv.hosts) {
    const name = stackOf(h);
    if (!groups.has(name)) groups.set(name, []);
    groups.get(name)!.push(h);
  }
  const hosts: Record<string, HostsStack> = {};
  for (const [name, list] of [...groups.entries()].sort()) {
    hosts[name] = new HostsStack(app, name, inv, list, hasher, o);
    if (cluster) hosts[name].addDependency(cluster);
  }
  return { cluster, hosts };
}
