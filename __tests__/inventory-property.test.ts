/**
 * Property: whatever one random change does to fleet.json (a value of another type, a value at
 * or past a bound, a key removed, an unknown key added), the inventory is either refused
 * cleanly (an InventoryError, one line per problem naming where and which field, no crash) or
 * accepted, and then it synthesizes, real Terraform validates its stacks (provider double, a
 * STAND-IN for bpg/proxmox) and every host evaluates through the flake with the real nixpkgs lib
 * and modules (when ../shared/nixpkgs-kit is there). fast-check generates the changes (seeded,
 * so a failure reproduces).
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { App } from "cdktn";
import { InventoryError, parseInventory, stackOf } from "../constructs/inventory";
import { buildFleet } from "../stacks/fleet";
import { exampleData, ROOT } from "./helpers";
import { SimFleet } from "./sim-harness";
import { evalFleet, nixosKitAvailable } from "./nix";


/** Every path into the example inventory (objects and lists included), e.g. ["hosts", 3, "network", "address"]. */
function paths(v: unknown, prefix: (string | number)[] = []): (string | number)[][] {
  const here = prefix.length ? [prefix] : [];
  if (Array.isArray(v)) return [...here, ...v.flatMap((x, i) => paths(x, [...prefix, i]))];
  if (v && typeof v === "object") return [...here, ...Object.entries(v).flatMap(([k, x]) => paths(x, [...prefix, k]))];
  return here;
}

const base = exampleData();
const ALL = paths(base).filter((p) => p[0] !== "$schema");

type Mutation = { path: (string | number)[]; op: "set"; value: unknown } | { path: (string | number)[]; op: "delete" } | { path: (string | number)[]; op: "add"; key: string; value: unknown };

const boundary = fc.constantFrom<unknown>(0, -1, 1, 15, 16, 99, 100, 512, 513, 65535, 65536, 4194304, 4194305, 999999999, 1e12, 1.5, "", "x", "../..", "0", "true", true, false, null, [], {}, "ümlaut", "a".repeat(300));
/** Objects and lists (a host, its network, ...): a change there reaches more rules than a change to a leaf. */
const CONTAINERS = ALL.filter((p) => {
  const v = p.reduce((o: any, k) => o?.[k], base);
  return v !== null && typeof v === "object";
});
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ path: fc.constantFrom(...CONTAINERS), op: fc.constant("set" as const), value: boundary }),
  fc.record({ path: fc.constantFrom(...ALL), op: fc.constant("set" as const), value: fc.oneof(boundary, fc.jsonValue({ maxDepth: 2 })) }),
  fc.record({ path: fc.constantFrom(...ALL), op: fc.constant("delete" as const) }),
  fc.record({ path: fc.constantFrom(...ALL.filter((p) => typeof p[p.length - 1] === "string" || typeof p[p.length - 1] === "number")), op: fc.constant("add" as const), key: fc.constantFrom("statefull", "extra", "notes", "memoryMIB", "apiToken", "ports"), value: fc.oneof(boundary, fc.jsonValue({ maxDepth: 1 })) }),
);

function apply(m: Mutation): any {
  const d = JSON.parse(JSON.stringify(base));
  const parent = m.path.slice(0, -1).reduce((o: any, k) => o?.[k], d);
  const last = m.path[m.path.length - 1];
  if (parent === undefined || parent === null) return d;
  if (m.op === "set") parent[last] = m.value;
  else if (m.op === "delete") Array.isArray(parent) ? parent.splice(Number(last), 1) : delete parent[last];
  else {
    const target = parent[last];
    if (target && typeof target === "object" && !Array.isArray(target)) target[m.key] = m.value;
  }
  return d;
}

describe("random changes to fleet.json are refused cleanly or produce a valid fleet", () => {
  const accepted: { data: any; m: Mutation }[] = [];

  it("never crashes, refuses in well-formed lines, and synthesizes whatever it accepts", () => {
    fc.assert(
      fc.property(mutation, (m) => {
        const d = apply(m);
        const text = JSON.stringify(d, null, 2);
        let inv;
        try {
          inv = parseInventory(text, "fleet.json");
        } catch (e) {
          if (!(e instanceof InventoryError)) throw new Error(`${JSON.stringify(m)}: not an InventoryError: ${(e as Error)?.stack ?? e}`);
          expect(e.problems.length).toBeGreaterThan(0);
          for (const line of e.message.split("\n")) {
            expect(line).toMatch(/^fleet\.json: .+?: .+?: \S/);
            expect(line).not.toMatch(/undefined|\[object Object\]|NaN/);
          }
          return;
        }
        if (JSON.stringify(d) === JSON.stringify(base)) return;
        // synthesizing costs ~0.4 s: the first 25 accepted changes are synthesized
        if (accepted.length < 25) {
          const app = new App({ outdir: mkdtempSync(join(tmpdir(), "prop-")), skipValidation: true });
          buildFleet(app, inv, { root: ROOT });
          app.synth();
        }
        accepted.push({ data: d, m });
      }),
      { numRuns: 1500, seed: 20261128 },
    );
    expect(accepted.length).toBeGreaterThan(0);
    if (process.env.PROPERTY_DEBUG) process.stderr.write(`${accepted.length} accepted: ${accepted.map((a) => JSON.stringify(a.m)).join("\n")}\n`);
  });

  it("what it accepted passes real OpenTofu's validate with the real provider and evaluates in the flake", async () => {
    // the first two accepted changes that touch a host (the most consequential ones)
    const picks = [...accepted.filter((a) => a.m.path[0] === "hosts"), ...accepted].slice(0, 2);
    expect(picks.length).toBeGreaterThan(0);
    for (const { data, m } of picks) {
      const inv = parseInventory(JSON.stringify(data), "fleet.json");
      const fleet = await SimFleet.create(inv);
      const host = m.path[0] === "hosts" ? inv.hosts[Number(m.path[1])] : undefined;
      for (const stack of new Set(["cluster", host ? stackOf(host) : "platform"])) {
        for (const args of [["init", "-input=false"], ["validate"]]) {
          const r = await fleet.run(stack, ...args);
          expect({ m, stack, args, status: r.status, out: r.status === 0 ? "" : r.out }).toEqual({ m, stack, args, status: 0, out: "" });
        }
      }
      if (nixosKitAvailable()) {
        const file = join(mkdtempSync(join(tmpdir(), "prop-nix-")), "fleet.json");
        writeFileSync(file, JSON.stringify(data));
        const out = evalFleet(file);
        for (const [name, h] of Object.entries<any>(out)) expect({ m, name, evaluated: h.evaluated, failedAssertions: h.failedAssertions }).toEqual({ m, name, evaluated: true, failedAssertions: [] });
      }
    }
  });
});
