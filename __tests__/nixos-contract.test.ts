/**
 * NixOS contract: every host (and the template) of every inventory evaluates through the flake's
 * own `nixosConfigurations`, with the real nixpkgs lib and the real nixpkgs modules copied in
 * ../shared/nixpkgs-kit (or, with NIXPKGS=<path to nixpkgs>, full nixpkgs and its nixosSystem).
 * STAND-INS (named in __tests__/nix/eval-fleet.nix and the README): typed declarations for the
 * nixpkgs options outside the kit, stub packages (nothing is built), stub platform packages.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT } from "./helpers";
import { evalFleet, NIXPKGS, NIXPKGS_KIT, nixosKitAvailable } from "./nix";
import { parseInventory } from "../constructs/inventory";
import { HOST_SECRET_RUN, HOST_SECRET_STORE, secretEnvFiles, secretSpecArg } from "../constructs/secrets";

const available = nixosKitAvailable();
if (!available) process.stderr.write(`NixOS contract: SKIPPED: neither the nixpkgs kit (${NIXPKGS_KIT}; set NIXPKGS_KIT) nor NIXPKGS (a nixpkgs checkout) is present\n`);
const maybe = available ? describe : describe.skip;

const INVENTORIES = ["fleet.json", ...readdirSync(join(ROOT, "examples")).filter((f) => f.endsWith(".json")).map((f) => `examples/${f}`)];

maybe.each(INVENTORIES)("%s: every host evaluates with the real nixpkgs lib and modules", (rel) => {
  const inv = JSON.parse(readFileSync(join(ROOT, rel), "utf8"));
  let r: Record<string, any>;
  beforeAll(() => {
    r = evalFleet(join(ROOT, rel));
  });

  it("evaluates every host and the template, with no failed assertion", () => {
    expect(Object.keys(r).sort()).toEqual([...inv.hosts.map((h: any) => h.name), "nixos-template"].sort());
    for (const [name, h] of Object.entries(r)) expect({ name, evaluated: h.evaluated, failedAssertions: h.failedAssertions }).toEqual({ name, evaluated: true, failedAssertions: [] });
    if (NIXPKGS) for (const h of Object.values(r)) expect(h.drvPath).toMatch(/^\/nix\/store\/.*\.drv$/);
  });

  it("names every host as the inventory does and gives static hosts their inventory address, gateway and DNS", () => {
    for (const h of inv.hosts) {
      const e = r[h.name];
      expect({ host: h.name, hostName: e.hostName }).toEqual({ host: h.name, hostName: h.name });
      if (h.network?.dhcp) {
        expect({ host: h.name, cloudInitNetwork: e.cloudInitNetwork, networks: e.networks, cfgNetwork: e.cloudInitSettingsNetwork }).toEqual({ host: h.name, cloudInitNetwork: true, networks: {}, cfgNetwork: null });
      } else {
        expect({ host: h.name, cloudInitNetwork: e.cloudInitNetwork }).toEqual({ host: h.name, cloudInitNetwork: false });
        // cloud-init renders no network file (cloud.cfg), and one it rendered before goes (#27 M4)
        expect({ host: h.name, cfgNetwork: e.cloudInitSettingsNetwork, fromSettings: e.cloudCfgFromSettings }).toEqual({ host: h.name, cfgNetwork: { config: "disabled" }, fromSettings: true });
        expect(e.tmpfiles).toContain("r /etc/systemd/network/10-cloud-init-*.network");
        expect(Object.keys(e.networks).sort()[0]).toBe("05-fleet-static"); // sorts before any 10-cloud-init-<if>
        expect(e.networks["05-fleet-static"]).toEqual(
          expect.objectContaining({ address: [h.network.address], gateway: h.network.gateway ? [h.network.gateway] : [], dns: h.network.dns ?? inv.cluster.dns ?? [] }),
        );
      }
    }
    expect(r["nixos-template"].hostName).toBe(""); // cloud-init names each clone at first boot
    // sshd listens where the deploy connects
    for (const h of inv.hosts) expect({ host: h.name, ports: r[h.name].sshPorts }).toEqual({ host: h.name, ports: [inv.deploy?.sshPort ?? 22] });
  });

  it("routes LiteLLM to exactly the models the vLLM hosts serve, and Open WebUI to every LiteLLM host on every start", () => {
    const vllmHosts = inv.hosts.filter((h: any) => h.roles.includes("vllm"));
    for (const h of vllmHosts) {
      const v = r[h.name].vllm;
      // vLLM serves the model under the name LiteLLM routes to, and is ready only when it answers.
      expect(v.execStart).toContain(` --served-model-name ${v.model} `);
      expect(v.ready).toBe(true);
      expect(v.cuda).toEqual(h.gpu?.cudaCapabilities ?? null); // null: nixpkgs' default list, what public CUDA caches build (#27 M8)
    }
    const served = vllmHosts.map((h: any) => r[h.name].vllm.model).sort();
    for (const h of inv.hosts.filter((x: any) => x.roles.includes("litellm"))) expect(r[h.name].litellmModels.map((m: any) => m.name).sort()).toEqual(served);
    const litellm = inv.hosts.filter((h: any) => h.roles.includes("litellm"));
    for (const h of inv.hosts.filter((x: any) => x.roles.includes("openwebui"))) {
      const env = r[h.name].openwebuiEnv;
      expect(env.OPENAI_API_BASE_URLS.split(";")).toHaveLength(litellm.length);
      for (const l of litellm) expect(env.OPENAI_API_BASE_URLS).toContain(l.name);
      expect(env.ENABLE_PERSISTENT_CONFIG).toBe("False");
    }
  });

  it("decrypts each host's secrets at activation with the deploy's own command, and every consuming service reads its file", () => {
    const parsed = parseInventory(readFileSync(join(ROOT, rel), "utf8"), rel);
    for (const h of parsed.hosts) {
      const e = r[h.name].secrets;
      const files = secretEnvFiles(parsed, h);
      // the same arguments the deploy passes to nixos/scripts/fleet-secrets.sh (scripts/lib/deploy-host.ts)
      expect({ host: h.name, command: e.command }).toEqual({ host: h.name, command: [HOST_SECRET_STORE, HOST_SECRET_RUN, "/etc/ssh/ssh_host_ed25519_key", ...files.map(secretSpecArg)] });
      expect(e.systemPackages).toContain("age");
      if (files.length) expect(e.activation).toContain("fleet-secrets.sh");
      else expect(e.activation).toBeNull();
      // each consuming role's service reads exactly its file; no other role gets one
      expect({ host: h.name, files: e.environmentFiles }).toEqual({ host: h.name, files: Object.fromEntries(files.map((f) => [f.role, [`${HOST_SECRET_RUN}/${f.file}`]])) });
    }
    expect(r["nixos-template"].secrets.activation).toBeNull();
    expect(r["nixos-template"].secrets.systemPackages).toContain("age");
  });
});

maybe("the NixOS contract fails on what nixpkgs refuses", () => {
  /** A copy of nixos/ and fleet.json with one file edited. */
  function edited(file: string, from: string, to: string): { nixos: string; fleet: string } {
    const dir = mkdtempSync(join(tmpdir(), "nixos-contract-"));
    cpSync(join(ROOT, "nixos"), join(dir, "nixos"), { recursive: true });
    cpSync(join(ROOT, "fleet.json"), join(dir, "fleet.json"));
    const p = join(dir, "nixos", file);
    const text = readFileSync(p, "utf8");
    expect(text).toContain(from);
    writeFileSync(p, text.replace(from, to));
    return { nixos: join(dir, "nixos"), fleet: join(dir, "fleet.json") };
  }

  it("a platform service with a dataDir of its own gets that directory made, owned by the service (#27 M9)", () => {
    const dir = mkdtempSync(join(tmpdir(), "nixos-datadir-"));
    cpSync(join(ROOT, "nixos"), join(dir, "nixos"), { recursive: true });
    writeFileSync(join(dir, "nixos", "hosts", "tappaas-iam.nix"), '{ services.iam.dataDir = "/srv/iam"; }\n');
    const r = evalFleet(join(ROOT, "fleet.json"), join(dir, "nixos"), { hosts: ["tappaas-iam"] })["tappaas-iam"];
    expect(r.tmpfiles).toContain("d /srv/iam 0750 iam iam -");
    const def = evalFleet(join(ROOT, "fleet.json"), undefined, { hosts: ["tappaas-iam"] })["tappaas-iam"];
    expect(def.tmpfiles.filter((t: string) => t.includes("iam"))).toEqual([]); // the default is systemd's StateDirectory
  });

  /** A copy of nixos/ with `hosts/<host>.nix` holding `text` (what an operator's override does). */
  function overridden(host: string, text: string): string {
    const dir = mkdtempSync(join(tmpdir(), "nixos-override-"));
    cpSync(join(ROOT, "nixos"), join(dir, "nixos"), { recursive: true });
    writeFileSync(join(dir, "nixos", "hosts", `${host}.nix`), text);
    return join(dir, "nixos");
  }
  const evalWith = (host: string, text: string) => () => evalFleet(join(ROOT, "fleet.json"), overridden(host, text), { hosts: [host] });

  it("as strict as nixpkgs (#27 M5): a unit option defined twice differently conflicts instead of being glued together", () => {
    // attrsOf unspecified merged "vllm" and "root" into "vllmroot"; nixpkgs' unitOption refuses it
    expect(evalWith("tappaas-vllm", '{ systemd.services.vllm.serviceConfig.User = "root"; }\n')).toThrow("has conflicting definition values");
  });

  it("as strict as nixpkgs (#27 M5): Restart and Type take systemd's values only", () => {
    expect(evalWith("tappaas-iam", '{ systemd.services.iam.serviceConfig.Restart = "sometimes"; }\n')).toThrow("Systemd Service field `Restart' cannot have value `sometimes'");
    expect(evalWith("tappaas-iam", '{ systemd.services.iam.serviceConfig.Type = "daemon"; }\n')).toThrow("Systemd Service field `Type' cannot have value `daemon'");
  });

  it("as strict as nixpkgs (#27 M5): a user needs a group and exactly one of isSystemUser/isNormalUser; a kernel parameter has no bare spaces", () => {
    const r = evalWith("tappaas-iam", '{ users.users.helper = { isSystemUser = true; }; }\n')()["tappaas-iam"];
    expect(r.failedAssertions.join("\n")).toContain("users.users.helper.group is unset. This used to default to");
    const both = evalWith("tappaas-iam", '{ users.users.helper = { isSystemUser = true; isNormalUser = true; group = "x"; }; }\n')()["tappaas-iam"];
    expect(both.failedAssertions.join("\n")).toContain("Exactly one of users.users.helper.isSystemUser and users.users.helper.isNormalUser must be set.");
    expect(evalWith("tappaas-iam", '{ boot.kernelParams = [ "quiet splash" ]; }\n')).toThrow("is not of type `string, with spaces inside double quotes'");
    expect(evalWith("tappaas-iam", '{ boot.kernelParams = [ "opt=\\"a b\\"" ]; }\n')).not.toThrow();
  });

  it("as permissive as nixpkgs (#27 M5): valid options an override may set (resolved's settings, the NVIDIA container toolkit) evaluate", () => {
    const r = evalWith("tappaas-vllm", '{ services.resolved.settings.Resolve.DNSStubListener = "no"; hardware.nvidia-container-toolkit.enable = true; }\n')()["tappaas-vllm"];
    expect({ evaluated: r.evaluated, failed: r.failedAssertions }).toEqual({ evaluated: true, failed: [] });
  });

  it("a misspelled option name in a role module", () => {
    const c = edited("modules/roles/litellm.nix", '      host = "0.0.0.0";', '      hosts = "0.0.0.0";');
    expect(() => evalFleet(c.fleet, c.nixos, { hosts: ["tappaas-litellm"] })).toThrow("The option `services.litellm.hosts' does not exist");
  });

  it("a definition that conflicts with nixpkgs' proxmox-image module (version one's cloud-init bug)", () => {
    const c = edited("modules/proxmox-guest.nix", "services.cloud-init.network.enable = lib.mkIf static (lib.mkForce false);", "services.cloud-init.network.enable = !static;");
    expect(() => evalFleet(c.fleet, c.nixos, { hosts: ["tappaas-iam"] })).toThrow("The option `services.cloud-init.network.enable' has conflicting definition values");
  });

  it("a value of the wrong type", () => {
    const c = edited("modules/roles/openwebui.nix", "      port = cfg.port;", '      port = "8080";');
    expect(() => evalFleet(c.fleet, c.nixos, { hosts: ["tappaas-openwebui"] })).toThrow(/services\.open-webui\.port' is not of type `16 bit unsigned integer/);
  });

  it("with the flake's default (placeholder) platform input every host evaluates (nix flake check passes as shipped, #27 M3); a platform host's build stops with one line saying what to do", () => {
    const r = evalFleet(join(ROOT, "fleet.json"), join(ROOT, "nixos"), { platformStub: false });
    for (const [name, h] of Object.entries<any>(r)) expect({ name, evaluated: h.evaluated, failed: h.failedAssertions }).toEqual({ name, evaluated: true, failed: [] });
    expect(r["tappaas-iam"].platformUnits.iam.ExecStart).toMatch(/-iam-server-platform-flake-not-set\/bin\/iam-server /);
    const build = spawnSync("nix-build", ["--option", "build-users-group", "", "--option", "sandbox", "false", "--no-out-link", "-E", `((import ${join(ROOT, "nixos", "platform-unset", "flake.nix")}).outputs { self = { }; }).packages.x86_64-linux.iam-server`], { encoding: "utf8" });
    expect(build.status).not.toBe(0);
    expect(build.stderr).toContain("the platform flake is not set, so iam-server cannot be built: run nix flake lock ./nixos --override-input platform <your platform flake> (README, NixOS)");
  });
});

maybe("one role table for both languages", () => {
  it("a port changed in nixos/lib/roles.json changes the synthesized stacks and the evaluated NixOS configuration, with no other edit", () => {
    const copy = mkdtempSync(join(tmpdir(), "project-"));
    for (const d of ["constructs", "stacks", "nixos", "scripts", "providers"]) cpSync(join(ROOT, d), join(copy, d), { recursive: true });
    for (const f of ["fleet.json", "tsconfig.json", "package.json"]) cpSync(join(ROOT, f), join(copy, f));
    for (const l of ["node_modules", ".gen"]) symlinkSync(join(ROOT, l), join(copy, l));
    const table = join(copy, "nixos", "lib", "roles.json");
    const roles = JSON.parse(readFileSync(table, "utf8"));
    expect(roles.roles.iam.ports.api).toBe(7100);
    roles.roles.iam.ports.api = 7101;
    writeFileSync(table, JSON.stringify(roles, null, 2));

    // TypeScript: synthesize the copy's stacks
    writeFileSync(join(copy, "synth.ts"), 'import { App } from "cdktn"; import { buildFleet } from "./stacks/fleet"; import { loadInventory } from "./constructs/inventory";\nconst app = new App({ outdir: process.argv[2], skipValidation: true }); buildFleet(app, loadInventory("fleet.json"), { root: process.cwd() }); app.synth();\n');
    execFileSync("node", ["--import", "tsx", "synth.ts", join(copy, "out")], { cwd: copy, stdio: "pipe", env: { ...process.env, FLEET_FILE: "" } });
    const platform = JSON.parse(readFileSync(join(copy, "out", "stacks", "platform", "cdk.tf.json"), "utf8"));
    const specs = Object.values<any>(platform.resource.terraform_data).filter((r) => r.provisioner).map((r) => JSON.parse(r.provisioner[0]["local-exec"].environment.FLEET_DEPLOY_SPEC.replace(/"agentAddress":"\$\{.*\}"/, '"agentAddress":""')));
    expect(specs.find((s) => s.host === "tappaas-iam").health).toEqual([{ role: "iam", kind: "tcp", port: 7101 }]);

    // NixOS: the copy's flake, evaluated
    const r = evalFleet(join(copy, "fleet.json"), join(copy, "nixos"), { hosts: ["tappaas-iam", "tappaas-plasmavmc"] });
    expect(r["tappaas-iam"].firewallTCP).toContain(7101);
    expect(r["tappaas-iam"].firewallTCP).not.toContain(7100);
    expect(r["tappaas-plasmavmc"].evaluated).toBe(true);
  });
});
