import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Testing } from "cdktn";
import { Inventory, parseInventory } from "../constructs/inventory";
import { buildFleet, FleetOptions } from "../stacks/fleet";

export const ROOT = join(__dirname, "..");
export const EXAMPLE_FLEET = join(ROOT, "fleet.json");

/** A deep copy of the example inventory, as plain JSON, for a test to change. */
export function exampleData(): any {
  return JSON.parse(readFileSync(EXAMPLE_FLEET, "utf8"));
}

export function exampleInventory(): Inventory {
  return parseInventory(readFileSync(EXAMPLE_FLEET, "utf8"), EXAMPLE_FLEET);
}

/** Synthesizes every stack of a fleet; returns stack name -> parsed Terraform JSON. */
export function synthFleet(inv: Inventory, opts: FleetOptions = {}): Record<string, any> {
  const app = Testing.app();
  const stacks = buildFleet(app, inv, { root: ROOT, ...opts });
  const out: Record<string, any> = stacks.cluster ? { cluster: JSON.parse(Testing.synth(stacks.cluster)) } : {};
  for (const [name, s] of Object.entries(stacks.hosts)) out[name] = JSON.parse(Testing.synth(s));
  return out;
}

/** All resources of a type across synthesized stacks, keyed by the `name` (or key) attribute. */
export function resourcesOf(stacks: Record<string, any>, type: string): any[] {
  return Object.values(stacks).flatMap((s) => Object.values(s.resource?.[type] ?? {}));
}

export function vmByName(stacks: Record<string, any>, name: string): any {
  const vm = resourcesOf(stacks, "proxmox_virtual_environment_vm").find((v) => v.name === name);
  if (!vm) throw new Error(`no VM named ${name}`);
  return vm;
}

/**
 * Runs a command without blocking the event loop (servers in the test process keep answering);
 * resolves with its exit status and its stdout and stderr, apart and together.
 */
export function runAsync(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; onOutput?: (outSoFar: string) => void } = {}): Promise<{ status: number | null; out: string; stdout: string; stderr: string }> {
  return new Promise((done) => {
    const p = spawn(cmd, args, { cwd: opts.cwd ?? ROOT, env: opts.env ?? process.env });
    let stdout = "";
    let stderr = "";
    let out = "";
    p.stdout.on("data", (d) => ((stdout += d), (out += d), opts.onOutput?.(out)));
    p.stderr.on("data", (d) => ((stderr += d), (out += d), opts.onOutput?.(out)));
    p.on("close", (status) => done({ status, out, stdout, stderr }));
    // a command that cannot start (not installed, a missing cwd) fails at once, not at the test's timeout
    p.on("error", (e) => done({ status: null, out: `${out}${e.message}\n`, stdout, stderr: `${stderr}${e.message}\n` }));
  });
}
