import { execFileSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT } from "./helpers";
import { disagreements, nixEval, nixView, tsView } from "./nix";

const NIXOS = join(ROOT, "nixos");
const FLEETS = [join(ROOT, "fleet.json"), ...readdirSync(join(ROOT, "examples")).filter((f) => f.endsWith(".json")).map((f) => join(ROOT, "examples", f))];

function nixFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? nixFiles(p) : f.endsWith(".nix") ? [p] : [];
  });
}

describe("nixos/ with the real nix-instantiate", () => {
  it.each(nixFiles(NIXOS).map((f) => [f.slice(ROOT.length + 1)]))("parses %s", (file) => {
    expect(() => execFileSync("nix-instantiate", ["--parse", join(ROOT, file)], { stdio: "pipe" })).not.toThrow();
  });

  it.each(FLEETS.map((f) => [f.slice(ROOT.length + 1)]))("agrees with the TypeScript reading of %s (hosts, roles, ports, files)", (file) => {
    const fleet = join(ROOT, file);
    expect(disagreements(tsView(fleet, NIXOS), nixView(fleet, NIXOS))).toEqual([]);
  });

  it("reports a port that the two sides read differently", () => {
    // the Nix side reading a port override that the TypeScript side does not see
    const dir = mkdtempSync(join(tmpdir(), "fleet-"));
    const d = JSON.parse(readFileSync(FLEETS[0], "utf8"));
    d.hosts.find((h: any) => h.name === "tappaas-iam").services = { iam: { ports: { api: 7101 } } };
    writeFileSync(join(dir, "fleet.json"), JSON.stringify(d));
    const diff = disagreements(tsView(FLEETS[0], NIXOS), nixView(join(dir, "fleet.json"), NIXOS));
    expect(diff).toContain('host tappaas-iam: ports: TypeScript {"iam":{"api":7100}} vs Nix {"iam":{"api":7101}}');
  });

  it("has one role table: roles.nix reads roles.json, which constructs/roles.ts imports", () => {
    expect(nixEval(`import ${NIXOS}/lib/roles.nix`)).toEqual(JSON.parse(readFileSync(join(NIXOS, "lib", "roles.json"), "utf8")).roles);
    expect(readFileSync(join(ROOT, "constructs", "roles.ts"), "utf8")).toContain('from "../nixos/lib/roles.json"');
  });

  it("reports a host present on one side only", () => {
    const dir = mkdtempSync(join(tmpdir(), "fleet-"));
    const d = JSON.parse(readFileSync(FLEETS[0], "utf8"));
    d.hosts.find((h: any) => h.name === "tappaas-novanet").name = "tappaas-novanet2";
    writeFileSync(join(dir, "fleet.json"), JSON.stringify(d));
    const diff = disagreements(tsView(FLEETS[0], NIXOS), nixView(join(dir, "fleet.json"), NIXOS));
    expect(diff).toEqual(expect.arrayContaining([expect.stringMatching(/^host names:/), expect.stringMatching(/^host tappaas-novanet2: roles: TypeScript undefined/)]));
  });

  it("wires LiteLLM to the vLLM hosts and platform services to their peers", () => {
    const v = nixEval(`import ${NIXOS}/lib/inventory.nix { raw = builtins.fromJSON (builtins.readFile ${FLEETS[0]}); }`);
    expect(v.hosts["tappaas-litellm"].upstreams.litellm).toEqual([{ name: "tappaas-vllm", url: "http://192.168.10.21:8000/v1", model: "Qwen/Qwen2.5-7B-Instruct" }]);
    expect(v.hosts["tappaas-openwebui"].upstreams.openwebui).toEqual([{ name: "tappaas-litellm", url: "http://tappaas-litellm.tappaas.lan:4000/v1" }]);
    expect(v.hosts["tappaas-flaredb"].peers).toEqual({ chainfire: ["192.168.10.31:2379"] });
    expect(v.hosts["tappaas-fiberlb"].peers).toEqual({ iam: ["192.168.10.33:7100"], flaredb: ["192.168.10.32:2479"] });
  });

  it("takes an external chainfire endpoint for the minimal iam + flaredb layout", () => {
    const v = nixEval(`import ${NIXOS}/lib/inventory.nix { raw = builtins.fromJSON (builtins.readFile ${ROOT}/examples/minimal-iam-flaredb.json); }`);
    expect(v.hosts.db1.peers).toEqual({ chainfire: ["chainfire.lab.lan:2379"] });
    expect(v.hosts.iam1.ports).toEqual({ iam: { api: 8443 } });
  });

  it("refuses an unknown role with a message naming the host", () => {
    const dir = mkdtempSync(join(tmpdir(), "fleet-"));
    const d = JSON.parse(readFileSync(FLEETS[0], "utf8"));
    d.hosts[0].roles = ["gitlab"];
    writeFileSync(join(dir, "fleet.json"), JSON.stringify(d));
    expect(() => nixView(join(dir, "fleet.json"), NIXOS)).toThrow(/host "tappaas-cicd": roles: unknown role "gitlab"/);
  });
});
