#!/usr/bin/env node
// STAND-IN deploy command for Terraform orchestration tests: instead of deploying, it appends
// a `start` and an `end` event line to $STEP_LOG (O_APPEND: the file's line order is the order
// the events happened in, so tests prove ordering from positions, never from clocks).
//   STEP_BARRIER=h1,h2,...  a listed host waits after its start event until every listed host
//                           has started (proves they ran at the same time); gives up after
//                           $STEP_BARRIER_TIMEOUT_MS (default 120000) and fails the step.
//   STEP_HOLD=path          every step waits after its start event until `path` exists (lets a
//                           test act while a step is running, e.g. while it holds a state lock).
//   STEP_FAIL_ONCE=h1,...   a listed host fails its first attempt (remembered in
//                           $STEP_LOG.failed-<host>).
// The real deploy script is tested against real sshd in deploy-ssh.test.ts.
import { appendFileSync, existsSync, readFileSync, writeFileSync } from "node:fs";

const spec = JSON.parse(process.env.FLEET_DEPLOY_SPEC);
const log = process.env.STEP_LOG;
const event = (e) => log && appendFileSync(log, JSON.stringify({ host: spec.host, ...e }) + "\n");
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls until `ready()` holds; false when `timeoutMs` passed first. */
async function waitFor(ready, timeoutMs) {
  for (const end = Date.now() + timeoutMs; Date.now() < end; await sleep(20)) if (ready()) return true;
  return ready();
}

function finish(ok, message) {
  event({ event: "end", ok });
  if (ok) {
    console.log(`[${spec.host}] stand-in deploy done`);
    process.exit(0);
  }
  console.error(`[${spec.host}] ${message}`);
  process.exit(1);
}

event({ event: "start" });

const barrier = (process.env.STEP_BARRIER ?? "").split(",").filter(Boolean);
if (barrier.includes(spec.host)) {
  const started = () => {
    const lines = existsSync(log) ? readFileSync(log, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l)) : [];
    return new Set(lines.filter((l) => l.event === "start" && barrier.includes(l.host)).map((l) => l.host));
  };
  const ok = await waitFor(() => started().size === barrier.length, Number(process.env.STEP_BARRIER_TIMEOUT_MS ?? 120000));
  if (!ok) finish(false, `stand-in barrier timeout: only ${[...started()].join(",")} of ${barrier.join(",")} started`);
}

const hold = process.env.STEP_HOLD;
if (hold && !(await waitFor(() => existsSync(hold), 300000))) finish(false, `stand-in hold timeout: ${hold} never appeared`);

const marker = `${log}.failed-${spec.host}`;
if ((process.env.STEP_FAIL_ONCE ?? "").split(",").includes(spec.host) && !existsSync(marker)) {
  writeFileSync(marker, "");
  finish(false, "stand-in failure (first attempt)");
}
finish(true);
