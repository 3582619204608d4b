#!/usr/bin/env node
// STAND-IN deploy command for Terraform orchestration tests and the benchmark: instead of
// deploying, it records which host ran and when (one JSON line in $STEP_LOG), sleeps
// $STEP_SLEEP_MS, and fails once for hosts listed in $STEP_FAIL_ONCE (comma-separated),
// remembering the failure in $STEP_LOG.failed-<host>. The real deploy script is tested
// against real sshd in deploy-ssh.test.ts.
import { appendFileSync, existsSync, writeFileSync } from "node:fs";
const spec = JSON.parse(process.env.FLEET_DEPLOY_SPEC);
const t0 = Date.now();
await new Promise((r) => setTimeout(r, Number(process.env.STEP_SLEEP_MS ?? 0)));
const failOnce = (process.env.STEP_FAIL_ONCE ?? "").split(",").includes(spec.host);
const marker = `${process.env.STEP_LOG}.failed-${spec.host}`;
const fail = failOnce && !existsSync(marker);
if (process.env.STEP_LOG) appendFileSync(process.env.STEP_LOG, JSON.stringify({ host: spec.host, t0, t1: Date.now(), ok: !fail }) + "\n");
if (fail) {
  writeFileSync(marker, "");
  console.error(`[${spec.host}] stand-in failure (first attempt)`);
  process.exit(1);
}
console.log(`[${spec.host}] stand-in deploy done`);
