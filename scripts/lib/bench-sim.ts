/**
 * Benchmark part: first apply of an inventory's stacks with real OpenTofu and the real bpg
 * provider (built by scripts/tools.mjs) against the Proxmox VE API simulator, running in this
 * process (its peak memory is this process's). Deploy steps are a no-op (`true`): this measures
 * provisioning. The cluster stack first, then the host stacks side by side, as `cdktf deploy '*'`.
 */
import { spawn } from "node:child_process";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { App } from "cdktn";
import { buildFleet } from "../../stacks/fleet";
import { Inventory } from "../../constructs/inventory";
import { providerEnv, seedFromInventory, simulatorCert, startSimulator } from "../../sandbox/pve";

const TOKEN = { id: "bench@pve!fleet", secret: "0b3c1a2d-4e5f-4a6b-8c7d-9e0f1a2b3c4d" };

function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv): Promise<{ status: number | null; out: string }> {
  return new Promise((done) => {
    const p = spawn(cmd, args, { cwd, env });
    let out = "";
    p.stdout.on("data", (d) => (out += d));
    p.stderr.on("data", (d) => (out += d));
    p.on("close", (status) => done({ status, out }));
  });
}

export interface SimApplyResult {
  seconds: number;
  requests: number;
  requestsPerSecond: number;
  peakMiB: number;
  vms: number;
}

export async function simApply(work: string, name: string, inv: Inventory, parallelism: number, root: string): Promise<SimApplyResult> {
  const { ensureTools } = await import("../tools.mjs" as string);
  const manifest = await ensureTools();
  const dir = join(work, `sim-${name}-${parallelism}`);
  mkdirSync(dir, { recursive: true });
  const app = new App({ outdir: join(dir, "out"), skipValidation: true });
  const stacks = buildFleet(app, inv, { root, deployCommand: "true", deployWorkingDir: dir, backend: "local" });
  app.synth();
  const cluster = seedFromInventory(inv, { token: TOKEN });
  const sim = await startSimulator(cluster, await simulatorCert());
  const env = { ...process.env, ...providerEnv({ url: sim.url, token: TOKEN, cliConfig: manifest.cliConfig }), TF_IN_AUTOMATION: "1" };
  const tofu = manifest.tools.tofu.path;
  const stackDir = (s: string) => join(dir, "out", "stacks", s);
  const names = [...(stacks.cluster ? ["cluster"] : []), ...Object.keys(stacks.hosts)];
  for (const s of names) {
    const r = await run(tofu, ["init", "-input=false", "-no-color"], stackDir(s), env);
    if (r.status !== 0) throw new Error(`init ${s}: ${r.out}`);
  }
  let peak = process.memoryUsage().rss;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 100);
  const before = cluster.requests;
  const t0 = process.hrtime.bigint();
  try {
    const apply = async (s: string) => {
      const r = await run(tofu, ["apply", "-auto-approve", "-input=false", "-no-color", `-parallelism=${parallelism}`], stackDir(s), env);
      if (r.status !== 0) throw new Error(`apply ${s}: ${r.out.slice(-2000)}`);
    };
    if (stacks.cluster) await apply("cluster");
    await Promise.all(Object.keys(stacks.hosts).map(apply));
  } finally {
    clearInterval(sampler);
    await sim.close();
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const requests = cluster.requests - before;
  return { seconds, requests, requestsPerSecond: requests / seconds, peakMiB: peak / 2 ** 20, vms: Object.keys(cluster.vms).length };
}
