/** Exit codes and the error of a host's deploy (scripts/deploy.ts, scripts/lib/deploy-host.ts). */
/** Exit codes of scripts/deploy.ts (documented in the README). */
export const EXIT = {
  ok: 0,
  failed: 1,
  usage: 2,
  unreachable: 3,
  hostKey: 4,
  healthRolledBack: 5,
  rollbackFailed: 6,
  secrets: 7,
} as const;

export class DeployError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
    /** What to do next. */
    readonly hint: string,
  ) {
    super(message);
  }
}
