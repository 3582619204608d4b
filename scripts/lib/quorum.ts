/**
 * A quorum role's cluster as its members see it (docs/adr-0013-rolling-updates.md): every member
 * of the inventory is asked for its membership view ({ members, healthy }), not only the member
 * being deployed, whose own view after a restart may say it is alone (issue #26 item 8).
 */

export interface QuorumSpec {
  readonly role: string;
  readonly port: number;
  readonly path: string;
  /** Members in the inventory. */
  readonly expected: number;
  /** Every member's address (static, else its DNS name), this host's included. @default only this host */
  readonly members?: readonly string[];
}

export interface ClusterState {
  /** One line for messages. */
  readonly text: string;
  /** The cluster is whole (or forming with every present member healthy). */
  readonly ok: boolean;
  /** Nothing answers at all: a cluster not made yet. */
  readonly none: boolean;
}

/** GET http://<address>:<port><path>, parsed; undefined when it does not answer with the contract. */
async function view(address: string, q: QuorumSpec): Promise<{ members: number; healthy: number } | string> {
  const url = `http://${address}:${q.port}${q.path}`;
  try {
    const r = await fetch(url, { signal: AbortSignal.timeout(5000) });
    const body: any = r.ok ? await r.json().catch(() => undefined) : undefined;
    const members = Number(body?.members);
    const healthy = Number(body?.healthy);
    if (!Number.isInteger(members) || !Number.isInteger(healthy)) return `GET ${url} answered ${r.status}${r.ok ? " without members/healthy counts" : ""}`;
    return { members, healthy };
  } catch (e) {
    return `GET ${url} failed (${(e as any)?.cause?.code ?? (e as Error).message})`;
  }
}

/**
 * The cluster from all its members' views. Whole: some member counts at least `expected`
 * members, every member answers, and every view has all `expected` healthy. Forming (a new
 * cluster, members added one at a time): no view counts `expected` members yet and every view
 * that answers has all its members healthy; the members that do not answer are the ones not
 * made yet.
 */
export async function clusterState(q: QuorumSpec, self: string): Promise<ClusterState> {
  const addresses = [...new Set([self, ...(q.members ?? [])])];
  const views = await Promise.all(addresses.map(async (a) => ({ a, v: await view(a, q) })));
  const answered = views.filter((x): x is { a: string; v: { members: number; healthy: number } } => typeof x.v !== "string");
  const silent = views.filter((x) => typeof x.v === "string").map((x) => `${x.a}: ${x.v as string}`);
  if (!answered.length) return { ok: false, none: true, text: `${q.role}: no member answers (${silent.join("; ")})` };
  const members = Math.max(...answered.map((x) => x.v.members));
  const healthy = Math.min(...answered.map((x) => x.v.healthy));
  if (members >= q.expected) {
    const ok = !silent.length && healthy >= q.expected;
    return {
      ok,
      none: false,
      text: ok
        ? `${q.role} cluster ${healthy}/${members} healthy (all ${answered.length} members agree)`
        : `${q.role}: the cluster has ${healthy} of ${members} members healthy${silent.length ? `; not answering: ${silent.join("; ")}` : ""}; all ${q.expected} must be healthy`,
    };
  }
  const ok = answered.every((x) => x.v.healthy >= x.v.members);
  return {
    ok,
    none: false,
    text: ok ? `${q.role} cluster forming: ${members} of ${q.expected} members, all healthy` : `${q.role}: the forming cluster has ${healthy} of ${members} members healthy`,
  };
}
