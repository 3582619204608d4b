/**
 * Real OpenTofu (and Terraform where present) with the real bpg/proxmox provider, built by
 * scripts/tools.mjs, against the Proxmox VE API simulator (sandbox/pve: a STAND-IN for a
 * Proxmox VE cluster), running in this test process so a test can read and bend its state.
 */
import { App } from "cdktn";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Inventory, parseInventory } from "../constructs/inventory";
import { buildFleet } from "../stacks/fleet";
import { ROOT, runAsync } from "./helpers";
import { providerEnv, seedFromInventory, simulatorCert, SimCluster, SimServer, startSimulator } from "../sandbox/pve";

export const RECORD = join(ROOT, "__tests__", "stand-ins", "record-step.mjs");
/** The real `deploy --leave-pool`, from any working directory. */
export const LEAVE_POOL = `${join(ROOT, "node_modules", ".bin", "tsx")} ${join(ROOT, "scripts", "deploy.ts")} --leave-pool`;
export const TOKEN = { id: "terraform@pve!fleet", secret: "5a0d1c3e-2b4f-4a6d-8e9f-0123456789ab" };

/** The toolchain that scripts/tools.mjs built (setup-env.ts put it in the environment). */
export const tools = (): { tools: Record<string, { path: string; version: string }>; cliConfig: string } => JSON.parse(process.env.FLEET_TOOLS_MANIFEST!);

export const load = (rel: string): Inventory => parseInventory(readFileSync(join(ROOT, rel), "utf8"), join(ROOT, rel));
export const vmsOf = (json: any): any[] => Object.values(json.resource?.proxmox_virtual_environment_vm ?? {});
export const one = (b: any): any => (Array.isArray(b) ? b[0] : b);

export interface TfResult {
  status: number | null;
  out: string;
}

/** Every simulator a test file started; closed when the file is done (an open server keeps jest alive). */
const open = new Set<SimServer>();
afterAll(async () => {
  await Promise.all([...open].map((s) => s.close()));
  open.clear();
});

/** A simulator for `cluster`, closed with the test file. */
export async function startSim(cluster: SimCluster): Promise<SimServer> {
  const sim = await startSimulator(cluster, await simulatorCert());
  open.add(sim);
  return sim;
}

/** What OpenTofu and the provider need to reach a simulator: the built mirror's CLI config and the PVE credentials. */
export function simEnv(sim: SimServer): Record<string, string> {
  return { ...providerEnv({ url: sim.url, token: TOKEN, cliConfig: tools().cliConfig }), TF_IN_AUTOMATION: "1" };
}

function synthInto(dir: string, inv: Inventory) {
  const app = new App({ outdir: join(dir, "out"), skipValidation: true });
  // the deploy steps run a stand-in; a VM leaving a pool runs the real script against the simulator
  const stacks = buildFleet(app, inv, { root: ROOT, deployCommand: `node ${RECORD}`, deployWorkingDir: dir, leavePoolCommand: LEAVE_POOL });
  app.synth();
  return stacks;
}

export class SimFleet {
  private constructor(
    readonly dir: string,
    readonly stacks: string[],
    readonly cluster: SimCluster,
    readonly sim: SimServer,
    readonly tf: "tofu" | "terraform",
  ) {}

  /** Synthesizes every stack of `inv` (deploy steps run the record-step stand-in) and starts a simulator seeded from it. */
  static async create(inv: Inventory, opts: { seed?: (c: SimCluster) => void; binary?: "tofu" | "terraform" } = {}): Promise<SimFleet> {
    const dir = mkdtempSync(join(tmpdir(), "tf-sim-"));
    const stacks = synthInto(dir, inv);
    const cluster = seedFromInventory(inv, { token: TOKEN });
    opts.seed?.(cluster);
    const sim = await startSim(cluster);
    return new SimFleet(dir, [...(stacks.cluster ? ["cluster"] : []), ...Object.keys(stacks.hosts)], cluster, sim, opts.binary ?? "tofu");
  }

  /** Synthesizes an edited inventory over the same stacks (what `cdktf synth` does after an edit). */
  resynth(inv: Inventory): void {
    synthInto(this.dir, inv);
  }

  get env(): Record<string, string> {
    return { ...simEnv(this.sim), STEP_LOG: join(this.dir, "steps.log") };
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

  run(stack: string, ...args: string[]): Promise<TfResult> {
    return runAsync(tools().tools[this.tf].path, [...args, "-no-color"], { cwd: this.stackDir(stack), env: { ...process.env, ...this.env } });
  }

  /** init, validate, apply, then plan again: the first failure or the re-plan. */
  async lifecycle(stack: string, opts: { validate?: boolean } = {}): Promise<{ failed?: string; replan?: TfResult; apply?: TfResult }> {
    const init = await this.run(stack, "init", "-input=false");
    if (init.status !== 0) return { failed: `init: ${init.out}` };
    if (opts.validate !== false) {
      const v = await this.run(stack, "validate");
      if (v.status !== 0) return { failed: `validate: ${v.out}` };
    }
    const apply = await this.run(stack, "apply", "-auto-approve", "-input=false");
    if (apply.status !== 0) return { failed: `apply: ${apply.out}`, apply };
    const replan = await this.run(stack, "plan", "-detailed-exitcode", "-input=false");
    return { replan, apply };
  }

  /** Tasks of a type on a VM, in the order they ran (PVE's /cluster/tasks). */
  tasks(type?: string, vmid?: number) {
    return this.cluster.tasks.filter((t) => (!type || t.type === type) && (vmid === undefined || t.id === String(vmid)));
  }

  close(): Promise<void> {
    open.delete(this.sim);
    return this.sim.close();
  }
}
