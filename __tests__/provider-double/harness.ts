/**
 * Real Terraform against synthesized stacks, with the provider double (a STAND-IN for the
 * bpg/proxmox provider's behaviour and the Proxmox API; Terraform core's checks are real).
 */
import { App } from "cdktf";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Inventory, parseInventory } from "../../constructs/inventory";
import { buildFleet } from "../../stacks/fleet";
import { ROOT, runAsync } from "../helpers";
import { Cluster, readCluster, seedCluster } from "./cluster";
import { DoubleInstall, installProviderDouble } from "./install";

export const RECORD = join(ROOT, "__tests__", "stand-ins", "record-step.mjs");

/** An inventory of the repository by relative path (fleet.json, examples/...). */
export const load = (rel: string): Inventory => parseInventory(readFileSync(join(ROOT, rel), "utf8"), join(ROOT, rel));
/** The VM resources of a synthesized stack. */
export const vmsOf = (json: any): any[] => Object.values(json.resource?.proxmox_virtual_environment_vm ?? {});
/** A nested block of at most one item: cdktf writes it as an object, Terraform also takes a list. */
export const one = (b: any): any => (Array.isArray(b) ? b[0] : b);

export interface TfResult {
  status: number | null;
  out: string;
}

export class DoubleFleet {
  private constructor(
    readonly dir: string,
    readonly stacks: string[],
    readonly double: DoubleInstall,
  ) {}

  /** Synthesizes every stack of `inv` (deploy steps run the record-step stand-in) and installs the double. */
  static async create(inv: Inventory, seed?: (c: Cluster) => void): Promise<DoubleFleet> {
    const dir = mkdtempSync(join(tmpdir(), "tf-contract-"));
    const app = new App({ outdir: join(dir, "out"), skipValidation: true });
    const stacks = buildFleet(app, inv, { root: ROOT, deployCommand: `node ${RECORD}`, deployWorkingDir: dir });
    app.synth();
    const cluster = seedCluster({ nodes: inv.cluster.nodes, templateVmid: inv.template.vmid, templateNode: inv.template.node, storage: inv.cluster.storage, imageStorage: inv.cluster.imageStorage });
    // In "create" mode the cluster stack makes the template itself.
    if (inv.template.mode === "create") delete cluster.vms[String(inv.template.vmid)];
    seed?.(cluster);
    const double = await installProviderDouble(dir, cluster);
    // The order `cdktf deploy '*'` uses: the cluster stack first (every host stack depends on it).
    return new DoubleFleet(dir, [...(stacks.cluster ? ["cluster"] : []), ...Object.keys(stacks.hosts)], double);
  }

  stackDir(stack: string): string {
    return join(this.dir, "out", "stacks", stack);
  }

  json(stack: string): any {
    return JSON.parse(readFileSync(join(this.stackDir(stack), "cdk.tf.json"), "utf8"));
  }

  writeJson(stack: string, json: any): void {
    writeFileSync(join(this.stackDir(stack), "cdk.tf.json"), JSON.stringify(json, null, 2));
  }

  cluster(): Cluster {
    return readCluster(this.double.clusterFile);
  }

  tf(stack: string, ...args: string[]): Promise<TfResult> {
    return runAsync("terraform", [...args, "-no-color"], { cwd: this.stackDir(stack), env: { ...process.env, ...this.double.env, STEP_LOG: join(this.dir, "steps.log") } });
  }

  /** init, validate, apply, then plan again: returns the first failure or the re-plan. (`validate: false` where a test is about apply, which validates too.) */
  async lifecycle(stack: string, opts: { validate?: boolean } = {}): Promise<{ failed?: string; replan?: TfResult; apply?: TfResult }> {
    const init = await this.tf(stack, "init", "-input=false");
    if (init.status !== 0) return { failed: `init: ${init.out}` };
    const validate = opts.validate === false ? { status: 0, out: "" } : await this.tf(stack, "validate");
    if (validate.status !== 0) return { failed: `validate: ${validate.out}` };
    const apply = await this.tf(stack, "apply", "-auto-approve", "-input=false");
    if (apply.status !== 0) return { failed: `apply: ${apply.out}`, apply };
    const replan = await this.tf(stack, "plan", "-detailed-exitcode", "-input=false");
    return { replan, apply };
  }
}
