/**
 * Real OpenSSH servers for deploy tests (sandbox/targets.ts), and what the tests add around them:
 * a test bed stopped after the file, HTTP services, and readers of a target's state.
 */
import { mkdtempSync, readlinkSync, writeFileSync } from "node:fs";
import { createServer, Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { clientKey, TestHost } from "../sandbox/targets";

export { clientKey, DEPLOY_USER, NO_SUDO_USER, secretsFor, SSH_PORT, STAND_INS, startHost } from "../sandbox/targets";
export type { TestHost } from "../sandbox/targets";

/**
 * What a test file of SSH deploys needs: a work directory, a client key, and lists of the hosts
 * and servers it starts, stopped after the file's tests.
 */
export function sshTestBed(): { work: string; key: string; hosts: TestHost[]; servers: { close(): unknown }[] } {
  const work = mkdtempSync(join(tmpdir(), "deploy-"));
  const bed = { work, key: clientKey(work), hosts: [] as TestHost[], servers: [] as { close(): unknown }[] };
  afterAll(() => {
    bed.hosts.forEach((h) => h.stop());
    bed.servers.forEach((s) => s.close());
  });
  return bed;
}

/** A service answering GET <path> with 200 on address:port (what a healthy role would serve). */
export function startHttp(address: string, port: number, path: string): Promise<Server> {
  const server = createServer((req, res) => {
    res.statusCode = req.url === path ? 200 : 404;
    res.end(req.url === path ? "ok" : "no");
  });
  return new Promise((done) => server.listen(port, address, () => done(server)));
}

/** Current generation link of a test host's system profile ("system-3-link"). */
export function generationOf(host: TestHost): string | undefined {
  try {
    return readlinkSync(join(host.dir, "nix/var/nix/profiles/system"));
  } catch {
    return undefined;
  }
}

/** The system the test host runs now (its /run/current-system), by label ("v2"), if any. */
export function runningOf(host: TestHost): string | undefined {
  try {
    return readlinkSync(join(host.dir, "run/current-system")).split("-").pop();
  } catch {
    return undefined;
  }
}

/** Test controls of the target-side stand-ins: activation time, failing systems. */
export function control(host: TestHost, file: string, value: string): void {
  writeFileSync(join(host.dir, "standin", file), value);
}

