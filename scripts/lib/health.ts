/**
 * The health gate of a host's deploy (docs/adr-0011-deploy-contract.md): the host's role units
 * active, its role ports answering, its quorum clusters whole, continuously for a stable window.
 */
import type { DeploySpecDocument } from "../../constructs/deploy-step";
import { DeployError, EXIT } from "./deploy-errors";
import { clusterState } from "./quorum";
import { sleep, Ssh, tcpOpen } from "./ssh-transport";

/**
 * The host is healthy when none of its role units has failed (units of other roles or of the
 * system do not count) and every role port answers, continuously for the stable window (a
 * service that comes up and crashes a second later is not healthy). Gives up after
 * healthSeconds plus that window.
 */
/**
 * Each unit's ActiveState as `systemctl is-active` prints it (one line per unit: active,
 * activating, inactive (also for a unit that does not exist), failed, ...; issue #26 item 7),
 * trimmed and in the order given; undefined where it printed nothing. `sshFailed`: ssh itself
 * failed (exit 255), so the states say nothing.
 */
export async function unitStates(ssh: Ssh, address: string, units: readonly string[]): Promise<{ states: (string | undefined)[]; sshFailed: boolean; stderr: string }> {
  const r = await ssh(address, `systemctl is-active ${units.map((u) => `'${u}'`).join(" ")}`);
  const lines = r.stdout.trim().split("\n");
  return { states: units.map((_, i) => lines[i]?.trim() || undefined), sshFailed: r.exitCode === 255, stderr: r.stderr.trim() };
}

export async function healthCheck(spec: DeploySpecDocument, address: string, ssh: Ssh, say: (m: string) => void) {
  const stable = spec.timeouts.healthStableSeconds ?? 10;
  const units = spec.units ?? [];
  const probe = async (): Promise<string[]> => {
    const failures: string[] = [];
    if (units.length) {
      // every role unit must be `active`
      const { states, sshFailed, stderr } = await unitStates(ssh, address, units);
      const failed = units.filter((_, i) => states[i] === "failed");
      const notActive = units.filter((u, i) => !failed.includes(u) && states[i] !== "active");
      if (sshFailed) failures.push(`ssh to ${address} failed: ${stderr}`);
      else {
        if (failed.length) failures.push(`failed units: ${failed.join(", ")}`);
        if (notActive.length) failures.push(`units not active: ${notActive.map((u) => `${u} (${states[units.indexOf(u)] ?? "no answer"})`).join(", ")}`);
      }
    }
    for (const h of spec.health) {
      if (h.kind === "http") {
        const url = `http://${address}:${h.port}${h.path}`;
        try {
          const r = await fetch(url, { signal: AbortSignal.timeout(5000) });
          if (!r.ok) failures.push(`${h.role}: GET ${url} answered ${r.status}`);
        } catch (e) {
          failures.push(`${h.role}: GET ${url} failed (${(e as any)?.cause?.code ?? (e as Error).message})`);
        }
      } else if (!(await tcpOpen(address, h.port))) failures.push(`${h.role}: nothing listens on ${address}:${h.port}`);
    }
    // Quorum roles (docs/adr-0013-rolling-updates.md): the cluster as all its members see it
    // (scripts/lib/quorum.ts). All expected members healthy, so that updating the next member
    // still leaves a quorum; while fewer members exist (a new cluster forming) the present ones.
    clusterLines = [];
    for (const q of spec.quorum ?? []) {
      const st = await clusterState(q, address);
      if (st.ok) clusterLines.push(st.text);
      else failures.push(st.text);
    }
    return failures;
  };
  let clusterLines: string[] = [];
  let failures: string[] = [];
  let healthySince: number | undefined;
  const deadline = Date.now() + (spec.timeouts.healthSeconds + stable) * 1000;
  while (true) {
    failures = await probe();
    const now = Date.now();
    if (failures.length) healthySince = undefined;
    else if (healthySince === undefined) healthySince = now;
    if (healthySince !== undefined && now - healthySince >= stable * 1000) break;
    if (now >= deadline) break;
    if (healthySince === undefined && now - (deadline - (spec.timeouts.healthSeconds + stable) * 1000) >= spec.timeouts.healthSeconds * 1000) break;
    await sleep(Math.min(1000, Math.max(100, (stable * 1000) / 2), Math.max(0, deadline - now)));
  }
  if (healthySince === undefined || Date.now() - healthySince < stable * 1000)
    throw new DeployError(
      failures.length ? `health check failed after ${spec.timeouts.healthSeconds}s: ${failures.join("; ")}` : `health check was not stable for ${stable}s within ${spec.timeouts.healthSeconds + stable}s`,
      EXIT.healthRolledBack,
      `see \`journalctl -u <unit>\` on ${spec.host}; fix and deploy again`,
    );
  say(`healthy for ${stable}s: ${units.length ? `${units.join(", ")} active` : "no role units"}${spec.health.length ? `; ${spec.health.map((h) => `${h.role}:${h.port}`).join(", ")} answer` : ""}${clusterLines.length ? `; ${clusterLines.join("; ")}` : ""}`);
}

