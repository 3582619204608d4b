/**
 * The platform as a cluster (issue #27), through the flake's own nixosConfigurations with the
 * real nixpkgs lib and modules (__tests__/nix/eval-fleet.nix; its STAND-INS are named there):
 *  - each Raft member (chainfire, flaredb) is told its identity and every member of its cluster;
 *  - the platform flake as seed 004 defines it (packages <name>-server, nixosModules.default,
 *    overlays.default: __tests__/nix/platform-seed004.nix, a STAND-IN) takes the same settings
 *    through its own modules, and every platform host evaluates with it.
 */
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { App } from "cdktn";
import { parseInventory } from "../constructs/inventory";
import { buildFleet } from "../stacks/fleet";
import { ROOT } from "./helpers";
import { evalFleet, nixosKitAvailable } from "./nix";

const maybe = nixosKitAvailable() ? describe : describe.skip;
const RAFT_INVENTORIES = ["examples/raft-platform.json", "examples/ha-3-node-platform.json"];
const PLATFORM_ROLES = ["chainfire", "flaredb", "iam", "plasmavmc", "novanet", "flashdns", "fiberlb", "lightningstor"];

interface Host {
  name: string;
  vmid: number;
  roles: string[];
  network: { address?: string; dhcp?: boolean };
}
const inventory = (rel: string) => JSON.parse(readFileSync(join(ROOT, rel), "utf8")) as { hosts: Host[]; cluster: { domain?: string } };
const addressOf = (h: Host, domain?: string) => (h.network.address ? h.network.address.split("/")[0] : domain ? `${h.name}.${domain}` : h.name);

maybe.each(RAFT_INVENTORIES)("%s: Raft members know their cluster", (rel) => {
  const inv = inventory(rel);
  let r: Record<string, any>;
  beforeAll(() => {
    r = evalFleet(join(ROOT, rel));
  });

  it.each(["chainfire", "flaredb"])("each %s member names every member by address, with a distinct identity, and opens its peer ports to the members only", (role) => {
    const holders = inv.hosts.filter((h) => h.roles.includes(role));
    expect(holders.length).toBeGreaterThan(0);
    const want = holders.map((h) => addressOf(h, inv.cluster.domain)).sort();
    const ids = new Set<number>();
    for (const h of holders) {
      const c = r[h.name].raft[role];
      expect({ host: h.name, members: c.members.map((m: any) => m.address).sort() }).toEqual({ host: h.name, members: want });
      expect(c.node_id).toBe(h.vmid);
      expect(c.advertise_address).toBe(addressOf(h, inv.cluster.domain));
      expect(c.initial_cluster_state).toBe("new");
      ids.add(c.node_id);
      // every member sees the same member list with the same identities
      expect(c.members).toEqual(r[holders[0].name].raft[role].members);
      if (holders.length > 1 && holders.every((m) => m.network.address)) {
        const raftPort = c.members[0].raft_port;
        for (const m of holders.filter((m) => m !== h)) expect(r[h.name].firewallExtra).toContain(`-p tcp -s ${addressOf(m)} --dport ${raftPort} -j nixos-fw-accept`);
        expect(r[h.name].firewallTCP).not.toContain(raftPort);
      }
    }
    expect(ids.size).toBe(holders.length);
  });
});

maybe("a member that joins a running cluster", () => {
  it("services.<role>.join (valid in the inventory) makes that member's initial_cluster_state \"existing\"; the others keep \"new\"; join is not a config.toml setting", () => {
    const data = inventory("examples/raft-platform.json") as any;
    const joining = data.hosts.find((h: Host) => h.roles.includes("chainfire"));
    joining.services = { ...(joining.services ?? {}), chainfire: { ...(joining.services?.chainfire ?? {}), join: true } };
    const file = join(mkdtempSync(join(tmpdir(), "raft-join-")), "fleet.json");
    writeFileSync(file, JSON.stringify(data));
    expect(() => parseInventory(JSON.stringify(data), file)).not.toThrow();
    const r = evalFleet(file, undefined, { hosts: data.hosts.filter((h: Host) => h.roles.includes("chainfire")).map((h: Host) => h.name) });
    for (const h of data.hosts.filter((h: Host) => h.roles.includes("chainfire"))) {
      expect({ host: h.name, state: r[h.name].raft.chainfire.initial_cluster_state }).toEqual({ host: h.name, state: h === joining ? "existing" : "new" });
      expect(r[h.name].platformSettingsKeys.chainfire).toEqual(["cluster", "peers"]);
    }
  });
});

maybe("the platform flake as seed 004 defines it", () => {
  const files = ["fleet.json", ...readdirSync(join(ROOT, "examples")).filter((f) => f.endsWith(".json")).map((f) => `examples/${f}`)];
  it("evaluates every platform host of every inventory through the platform's own modules and packages (<name>-server), with the fleet's settings", () => {
    let checked = 0;
    for (const rel of files) {
      const platformHosts = inventory(rel).hosts.filter((h) => h.roles.some((x) => PLATFORM_ROLES.includes(x))).map((h) => h.name);
      if (!platformHosts.length) continue;
      const r = evalFleet(join(ROOT, rel), undefined, { hosts: platformHosts, platform: "seed004" });
      for (const name of platformHosts) {
        expect({ rel, name, evaluated: r[name].evaluated, failed: r[name].failedAssertions }).toEqual({ rel, name, evaluated: true, failed: [] });
        for (const [role, unit] of Object.entries(r[name].platformUnits as Record<string, any>)) {
          expect(unit.ExecStart).toContain(`${role}-server`); // the platform's package, from its overlay
          checked++;
        }
      }
    }
    expect(checked).toBeGreaterThan(10);
  });
});

maybe("LiteLLM and Open WebUI on one host (#27 M6)", () => {
  it("evaluates, with LiteLLM routed to the vLLM hosts and Open WebUI pointed at LiteLLM (itself included), and synthesizes", () => {
    const data = JSON.parse(readFileSync(join(ROOT, "fleet.json"), "utf8"));
    const gw = data.hosts.find((h: Host) => h.roles.includes("litellm"));
    gw.roles = [...gw.roles, "openwebui"];
    gw.memoryMiB = Math.max(gw.memoryMiB ?? 0, 8192);
    const file = join(mkdtempSync(join(tmpdir(), "gw-")), "fleet.json");
    writeFileSync(file, JSON.stringify(data));
    const inv = parseInventory(JSON.stringify(data), file);
    const app = new App({ outdir: join(mkdtempSync(join(tmpdir(), "gw-synth-")), "out"), skipValidation: true });
    buildFleet(app, inv, { root: ROOT });
    app.synth();
    const r = evalFleet(file, undefined, { hosts: [gw.name] })[gw.name];
    expect({ evaluated: r.evaluated, failed: r.failedAssertions }).toEqual({ evaluated: true, failed: [] });
    const litellmUrls = data.hosts.filter((h: Host) => h.roles.includes("litellm")).map((h: Host) => `http://${addressOf(h, data.cluster.domain)}:4000/v1`);
    expect(r.openwebuiEnv.OPENAI_API_BASE_URLS.split(";")).toEqual(litellmUrls);
    expect(r.litellmModels.map((m: any) => m.api_base)).toEqual(data.hosts.filter((h: Host) => h.roles.includes("vllm")).map((h: Host) => `http://${addressOf(h)}:8000/v1`));
  });
});

maybe("flashdns on port 53 (#27 M7)", () => {
  it("moves systemd-resolved's stub listener (on with networkd) off :53 and points resolv.conf at resolved's upstream list; hosts without flashdns keep the stub", () => {
    const r = evalFleet(join(ROOT, "fleet.json"), undefined, { hosts: ["tappaas-flashdns", "tappaas-iam"] });
    expect(r["tappaas-flashdns"].resolved).toEqual({ enable: true, stubListener: "no", resolvConf: "/run/systemd/resolve/resolv.conf" });
    expect(r["tappaas-iam"].resolved).toEqual({ enable: true, stubListener: null, resolvConf: null });
  });
});

maybe("vLLM reachable from LiteLLM only (#27 M11)", () => {
  it("with every LiteLLM host on a static address, the vLLM port is open to them alone; with one on DHCP it stays open (a rule needs an address)", () => {
    const data = JSON.parse(readFileSync(join(ROOT, "fleet.json"), "utf8"));
    const gw = data.hosts.find((h: Host) => h.roles.includes("litellm"));
    gw.network = { address: "192.168.10.22/24", gateway: "192.168.10.1" };
    const file = join(mkdtempSync(join(tmpdir(), "vllm-fw-")), "fleet.json");
    writeFileSync(file, JSON.stringify(data));
    const vllmHosts = data.hosts.filter((h: Host) => h.roles.includes("vllm")).map((h: Host) => h.name);
    const r = evalFleet(file, undefined, { hosts: vllmHosts });
    for (const name of vllmHosts) {
      expect({ name, open: r[name].firewallTCP.includes(8000) }).toEqual({ name, open: false });
      expect(r[name].firewallExtra).toContain("iptables -A nixos-fw -p tcp -s 192.168.10.22 --dport 8000 -j nixos-fw-accept");
    }
    const open = evalFleet(join(ROOT, "fleet.json"), undefined, { hosts: vllmHosts });
    for (const name of vllmHosts) expect({ name, open: open[name].firewallTCP.includes(8000) }).toEqual({ name, open: true });
  });
});
