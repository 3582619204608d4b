/**
 * Evaluates nixos/flake.nix's outputs with the real nix-instantiate. nixpkgs cannot be fetched
 * offline, so its `lib` is a STAND-IN (__tests__/nix/stub-lib.nix) whose nixosSystem returns its
 * arguments: the test sees, per host, the modules and specialArgs the flake would build with.
 */
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { ROOT } from "./helpers";

const NIXOS = join(ROOT, "nixos");

function evalFlake(fleetFile?: string): any {
  const expr = `
    let
      lib = import ${__dirname}/nix/stub-lib.nix;
      flake = import ${NIXOS}/flake.nix;
      out = flake.outputs { self = out; nixpkgs = { inherit lib; }; platform = { }; };
      show = m: if builtins.isPath m then builtins.replaceStrings [ "${NIXOS}/" ] [ "" ] (toString m) else "<host-module>";
      glue = name: ((import ${NIXOS}/lib/host-module.nix { host = out.lib.fleet.hosts.\${name}; }) { inherit lib; config.fleet.secrets.runDir = "/run/fleet-secrets"; config.services.resolved.enable = true; }).config;
    in {
      hosts = builtins.attrNames out.nixosConfigurations;
      modules = builtins.mapAttrs (n: c: map show c.modules) out.nixosConfigurations;
      hostArg = builtins.mapAttrs (n: c: if c.specialArgs.host == null then null else c.specialArgs.host.name) out.nixosConfigurations;
      glue = builtins.listToAttrs (map (n: { name = n; value = glue n; }) out.lib.fleet.hostNames);
    }`;
  const env = { ...process.env };
  delete env.FLEET_FILE;
  if (fleetFile) env.FLEET_FILE = fleetFile;
  return JSON.parse(execFileSync("nix-instantiate", ["--eval", "--strict", "--json", "-E", expr], { encoding: "utf8", env, stdio: ["ignore", "pipe", "pipe"] }));
}

describe("nixos/flake.nix outputs", () => {
  const v = evalFlake();

  it("has a configuration for every inventory host, plus the template, with no per-host file required", () => {
    const fleet = require(join(ROOT, "fleet.json"));
    expect(v.hosts.sort()).toEqual([...fleet.hosts.map((h: any) => h.name), "nixos-template"].sort());
    expect(v.hostArg["tappaas-iam"]).toBe("tappaas-iam");
    expect(v.hostArg["nixos-template"]).toBeNull();
  });

  it("builds each host from the shared modules, its own role modules and the glue only", () => {
    const shared = ["modules/base.nix", "modules/users.nix", "modules/proxmox-guest.nix", "modules/registration.nix", "modules/secrets.nix"];
    expect(v.modules["tappaas-iam"]).toEqual([...shared, "modules/platform/iam.nix", "<host-module>"]);
    expect(v.modules["tappaas-litellm"]).toEqual([...shared, "modules/roles/litellm.nix", "<host-module>"]);
    expect(v.modules["nixos-template"]).toEqual([...shared, "template.nix"]);
  });

  it("picks up a per-host override file when one exists", () => {
    expect(v.modules["tappaas-vllm"]).toEqual(expect.arrayContaining(["modules/roles/vllm.nix", "hosts/tappaas-vllm.nix"]));
    expect(v.modules["tappaas-vllm"].at(-1)).toBe("hosts/tappaas-vllm.nix");
  });

  it("sets role options from the inventory: ports, model, upstreams and platform peers", () => {
    const envFile = (role: string) => ({ _type: "override", priority: 1000, content: `/run/fleet-secrets/${role}.env` });
    expect(v.glue["tappaas-vllm"]).toEqual({ fleet: { vllm: { enable: true, port: 8000, model: "Qwen/Qwen2.5-7B-Instruct", environmentFile: envFile("vllm") } } }); // no clients: the LiteLLM host is on DHCP, so vLLM stays open
    expect(v.glue["tappaas-litellm"].fleet.litellm.upstreams).toEqual([{ name: "tappaas-vllm", url: "http://192.168.10.21:8000/v1", model: "Qwen/Qwen2.5-7B-Instruct" }]);
    expect(v.glue["tappaas-flaredb"]).toEqual({
      services: {
        flaredb: {
          enable: true,
          port: 2479,
          raftPort: 2480,
          gossipPort: 2481,
          settings: {
            peers: { chainfire: ["192.168.10.31:2379"] },
            // a one-member Raft cluster: itself, forming it
            cluster: { node_id: 8302, node_name: "tappaas-flaredb", bind_address: "192.168.10.32", advertise_address: "192.168.10.32", initial_cluster_state: "new", members: [{ id: 8302, name: "tappaas-flaredb", address: "192.168.10.32", api_port: 2479, raft_port: 2480, gossip_port: 2481 }] },
          },
        },
      },
      // the credentials reach the unit itself (the platform flake's own module has no option for them)
      systemd: { services: { flaredb: { serviceConfig: { EnvironmentFile: envFile("flaredb") } } } },
    });
    expect(v.glue["tappaas-flashdns"].services.flashdns).toMatchObject({ port: 7400, dnsPort: 53 });
    expect(v.glue["tappaas-cicd"]).toEqual({ fleet: { cicd: { enable: true } } });
  });

  it("reads another inventory through FLEET_FILE: all eight services on one host", () => {
    const one = evalFlake(join(ROOT, "examples", "single-node-platform.json"));
    expect(one.hosts).toEqual(["nixos-template", "platform1"]);
    // the eight services, and resolved's stub listener moved aside for flashdns on :53 (#27 M7)
    expect(Object.keys(one.glue.platform1.services).sort()).toEqual(["chainfire", "fiberlb", "flaredb", "flashdns", "iam", "lightningstor", "novanet", "plasmavmc", "resolved"]);
    expect(one.glue.platform1.services.flashdns.settings).toEqual({ peers: { iam: ["10.20.0.10:7100"], flaredb: ["10.20.0.10:2479"] }, zone: "lab.lan" });
  });
});
