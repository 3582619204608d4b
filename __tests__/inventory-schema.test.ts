/**
 * The inventory schema (constructs/inventory-schema.ts -> fleet.schema.json) and the rules on
 * top of it, with the broken inventories and mistakes a new user makes: each is refused with
 * one line naming the file, the host or section and the field, what is wrong and what to do.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Ajv from "ajv";
import { parseInventory, InventoryError, validateInventory, formatProblem } from "../constructs/inventory";
import { jsonSchema } from "../constructs/inventory-schema";
import { exampleData, ROOT } from "./helpers";

const INVENTORIES = ["fleet.json", ...readdirSync(join(ROOT, "examples")).filter((f) => f.endsWith(".json")).map((f) => `examples/${f}`)];
/** An RSA key of 1024 bits (ssh-keygen -t rsa -b 1024 refuses to make one; built from its wire form). */
const rsa1024 = (() => {
  const u32 = (b: Buffer) => {
    const l = Buffer.alloc(4);
    l.writeUInt32BE(b.length);
    return Buffer.concat([l, b]);
  };
  const modulus = Buffer.concat([Buffer.from([0]), Buffer.alloc(128, 0xc3)]);
  return `ssh-rsa ${Buffer.concat([u32(Buffer.from("ssh-rsa")), u32(Buffer.from([1, 0, 1])), u32(modulus)]).toString("base64")} old@box`;
})();
const host = (d: any, name: string) => d.hosts.find((h: any) => h.name === name);
/** The problems of the example fleet after `change`, as the lines synth prints (without the file). */
const problemsAfter = (change: (d: any) => void): string[] => {
  const d = exampleData();
  change(d);
  return validateInventory(d).map((p) => `${p.where}: ${p.field}: ${p.message}`);
};

describe("fleet.schema.json", () => {
  it("is current (npm run schema writes it from constructs/inventory-schema.ts)", () => {
    expect(JSON.parse(readFileSync(join(ROOT, "fleet.schema.json"), "utf8"))).toEqual(jsonSchema());
    const r = spawnSync(process.execPath, ["--import", "tsx", join(ROOT, "scripts", "schema.ts"), "--check"], { cwd: ROOT, encoding: "utf8" });
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
  });

  it.each(INVENTORIES)("%s names it in $schema and validates against it with ajv alone", (rel) => {
    const data = JSON.parse(readFileSync(join(ROOT, rel), "utf8"));
    expect(data.$schema).toBe(rel.startsWith("examples/") ? "../fleet.schema.json" : "./fleet.schema.json");
    // only the published file and ajv: no code of this project
    const ajv = new Ajv({ allErrors: true, strict: false });
    const validate = ajv.compile(JSON.parse(readFileSync(join(ROOT, "fleet.schema.json"), "utf8")));
    expect(validate(data) ? [] : validate.errors).toEqual([]);
    // and the published schema refuses what the validator refuses
    expect(validate({ ...data, hostz: [] })).toBe(false);
  });
});

describe("what a new user gets wrong, refused with one line each", () => {
  const cases: [string, (d: any) => void, string | RegExp][] = [
    ["a misspelt stateful (it would drop prevent_destroy)", (d) => (host(d, "tappaas-flaredb").statefull = true), 'host "tappaas-flaredb": statefull: unknown field "statefull"; did you mean "stateful"?'],
    ["a misspelt top-level key", (d) => (d.hostz = []), 'hostz: hostz: unknown field "hostz"; did you mean "hosts"?'],
    ["a misspelt size", (d) => (host(d, "tappaas-iam").memoryMIB = 4096), 'host "tappaas-iam": memoryMIB: unknown field "memoryMIB"; did you mean "memoryMiB"?'],
    ["a misspelt port name (a phantom port)", (d) => (host(d, "tappaas-iam").services = { iam: { ports: { apii: 7101 } } }), 'host "tappaas-iam": services.iam.ports.apii: unknown field "apii"; did you mean "api"?'],
    ["a password at the top level", (d) => (d.password = "hunter2"), /^password: password: a credential field; credentials never go in the inventory .*PROXMOX_VE_API_TOKEN.*npm run secrets/],
    ["an API token in a host", (d) => (host(d, "tappaas-iam").apiToken = "x"), /^host "tappaas-iam": apiToken: a credential field; /],
    ["a password in deploy", (d) => (d.deploy = { password: "x" }), /^deploy: password: a credential field; /],
    ["a password in a user", (d) => (d.users[0].password = "x"), /^users\[admin\]: password: a credential field; /],
    ["a secret in a platform service's settings (it would land in the Nix store)", (d) => (host(d, "tappaas-iam").services = { iam: { adminSecret: "s3cret" } }), /^host "tappaas-iam": services\.iam\.adminSecret: a credential field; /],
    ["a token value under an innocent name", (d) => (host(d, "tappaas-iam").services = { iam: { upstream: "hf_abcdefghijklmnopqrstuvwxyz012345" } }), /^host "tappaas-iam": services\.iam\.upstream: looks like a Hugging Face token; /],
    ["onBoot as a string", (d) => (host(d, "tappaas-iam").onBoot = "no"), 'host "tappaas-iam": onBoot: "no" must be true or false (without quotes)'],
    ["stateful as a string", (d) => (host(d, "tappaas-iam").stateful = "yes"), 'host "tappaas-iam": stateful: "yes" must be true or false (without quotes)'],
    ["vmid as a string", (d) => (host(d, "tappaas-iam").vmid = "101"), 'host "tappaas-iam": vmid: "101" must be a whole number (without quotes)'],
    ["dhcp as a string", (d) => (host(d, "tappaas-litellm").network = { dhcp: "true" }), 'host "tappaas-litellm": network.dhcp: "true" must be true or false (without quotes)'],
    ["a vLLM model name with a shell substitution (it reaches the unit and its script)", (d) => (host(d, "tappaas-vllm").services = { vllm: { model: "Qwen/x$(touch /tmp/pwned)" } }), 'host "tappaas-vllm": services.vllm.model: "Qwen/x$(touch /tmp/pwned)" is not a Hugging Face model id (name or owner/name: letters, digits, \'.\', \'_\' and \'-\')'],
    ["a vLLM model name with a newline", (d) => (host(d, "tappaas-vllm").services = { vllm: { model: "Qwen/x\nExecStartPre=/bin/sh" } }), 'host "tappaas-vllm": services.vllm.model: "Qwen/x\\nExecStartPre=/bin/sh" is not a Hugging Face model id (name or owner/name: letters, digits, \'.\', \'_\' and \'-\')'],
    ["an unknown deploy engine", (d) => (d.deploy = { engine: "local_exec" }), 'deploy: engine: "local_exec" is not one of "terraform_data"'],
    ["the null_resource engine (gone with cdktf 0.21)", (d) => (d.deploy = { engine: "null_resource" }), 'deploy: engine: "null_resource" is not one of "terraform_data"'],
    ["a host name of digits", (d) => (host(d, "tappaas-iam").name = "1234"), /^host "1234": name: "1234" is not a host name: .*starting with a letter/],
    ["a host name that is a number", (d) => (host(d, "tappaas-iam").name = 1234), /^hosts\[6\]: name: 1234 is not a host name/],
    ["a host named like the provider construct", (d) => (host(d, "tappaas-iam").name = "proxmox"), /^host "proxmox": name: "proxmox" is a name the stacks use themselves/],
    ["a host named backend", (d) => (host(d, "tappaas-iam").name = "backend"), /^host "backend": name: "backend" is a name the stacks use themselves/],
    ["a host named null", (d) => (host(d, "tappaas-iam").name = "null"), /^host "null": name: "null" is a name the stacks use themselves/],
    ["a stack that leaves the project", (d) => (host(d, "tappaas-cicd").stack = "../../etc"), /^host "tappaas-cicd": stack: "\.\.\/\.\.\/etc" is not a stack name/],
    ["the cluster stack's name", (d) => (host(d, "tappaas-cicd").stack = "cluster"), 'host "tappaas-cicd": stack: "cluster" is the stack of the template and PCI mappings; choose another name'],
    ["a stack that is a number", (d) => (host(d, "tappaas-cicd").stack = 5), 'host "tappaas-cicd": stack: 5 must be text in double quotes'],
    ["the network address as a host address", (d) => (host(d, "tappaas-iam").network.address = "192.168.10.0/24"), 'host "tappaas-iam": network.address: 192.168.10.0 is the subnet\'s network address of 192.168.10.0/24; give the host an address inside the subnet'],
    ["the broadcast address as a host address", (d) => (host(d, "tappaas-iam").network.address = "192.168.10.255/24"), 'host "tappaas-iam": network.address: 192.168.10.255 is the subnet\'s broadcast address of 192.168.10.255/24; give the host an address inside the subnet'],
    ["leading zeros in an address", (d) => (host(d, "tappaas-iam").network.address = "192.168.010.33/24"), 'host "tappaas-iam": network.address: "192.168.010.33/24" is not an IPv4 CIDR such as "10.0.0.5/24"'],
    ["a terabyte-scale memory typo", (d) => (host(d, "tappaas-iam").memoryMiB = 1e12), 'host "tappaas-iam": memoryMiB: 1000000000000 is outside 16-4194304; use a value in that range'],
    ["an exabyte disk", (d) => (host(d, "tappaas-iam").diskGiB = 1e18), 'host "tappaas-iam": diskGiB: 1000000000000000000 is outside 1-65536; use a value in that range'],
    ["100000 cores", (d) => (host(d, "tappaas-iam").cores = 100000), 'host "tappaas-iam": cores: 100000 is outside 1-512; use a value in that range'],
    ["an SSH port beyond 65535", (d) => (d.deploy = { sshPort: 70000 }), "deploy: sshPort: 70000 is outside 1-65535; use a value in that range"],
    ["a service on the SSH port", (d) => (host(d, "tappaas-iam").services = { iam: { ports: { api: 22 } } }), 'host "tappaas-iam": services.iam.ports.api: port 22 is the SSH port the deploy uses (deploy.sshPort 22); give iam another port'],
    [
      "a one-device GPU mapping given to two hosts on one node",
      (d) => d.hosts.push({ ...JSON.parse(JSON.stringify(host(d, "tappaas-vllm"))), name: "tappaas-vllm2", vmid: 8299, network: { dhcp: true } }),
      /^host "tappaas-vllm2": gpu\.mapping: "gpu0" maps 1 device on node "pve1", already given to tappaas-vllm; a passed-through device serves one VM/,
    ],
    ["an SSH key that is only a valid prefix", (d) => (d.users[0].sshKeys = ["ssh-ed25519 notbase64!!! ; rm -rf /"]), /^users\[admin\]: sshKeys\[0\]: "ssh-ed25519 notbase64!!! ; rm -rf \/" is not an OpenSSH public key line/],
    [
      "a truncated ed25519 key",
      (d) => (d.users[0].sshKeys = [`ssh-ed25519 ${Buffer.from("AAAAC3NzaC1lZDI1NTE5AAAAIMBdEQbWhgNDvUkSvdg4aRf6CDzDCIrCGUKcIJmGvsZo", "base64").subarray(0, 40).toString("base64")} user`]),
      "users[admin]: sshKeys[0]: the ssh-ed25519 key is truncated; copy the whole .pub line",
    ],
    ["an RSA key of 1024 bits", (d) => (d.users[0].sshKeys = [rsa1024]), "users[admin]: sshKeys[0]: an ssh-rsa key needs at least 2048 bits (this one has 1024); use ssh-ed25519"],
    ["an unknown time zone", (d) => (d.cluster.timeZone = "Europe/Atlantis"), 'cluster: timeZone: "Europe/Atlantis" is not a time zone; use an IANA name such as "UTC" or "Europe/Oslo" (timedatectl list-timezones)'],
    ["a domain with an underscore", (d) => (d.cluster.domain = "my_lab.lan"), 'cluster: domain: "my_lab.lan" is not a DNS domain such as lab.lan (lower-case labels of letters, digits and \'-\')'],
  ];

  it.each(cases)("%s", (_what, change, expected) => {
    const problems = problemsAfter(change);
    expect(problems).toHaveLength(1);
    if (typeof expected === "string") expect(problems[0]).toBe(expected);
    else expect(problems[0]).toMatch(expected);
  });

  it("a byte order mark, deep nesting and syntax errors: named with line and column, no stack overflow", () => {
    const refusal = (text: string) => {
      try {
        parseInventory(text, "fleet.json");
        return "accepted";
      } catch (e) {
        expect(e).toBeInstanceOf(InventoryError);
        return (e as Error).message;
      }
    };
    const text = readFileSync(join(ROOT, "fleet.json"), "utf8");
    expect(refusal(`\uFEFF${text}`)).toBe("fleet.json: file: json: the file starts with a byte order mark (BOM, U+FEFF), which Nix's JSON reader refuses; save it as UTF-8 without BOM");
    expect(refusal("[".repeat(200000))).toBe("fleet.json: file: json: line 1, column 33: nested more than 32 levels deep; an inventory is a few levels deep, check the brackets");
    expect(refusal(text.replace('"pve1",', '"pve1"'))).toMatch(/^fleet\.json: file: json: malformed JSON at line \d+, column \d+: expected ',' between entries; fix the syntax and run again$/);
    expect(refusal(text.replace("{", "{ // note\n"))).toMatch(/^fleet\.json: file: json: malformed JSON at line 1, column 3: comments are not allowed in JSON/);
    expect(refusal(text)).toBe("accepted");
  });

  it("synth refuses each with exit 1, one line per problem, no stack trace, and writes nothing", () => {
    const dir = mkdtempSync(join(tmpdir(), "schema-cli-"));
    const d = exampleData();
    host(d, "tappaas-flaredb").statefull = true;
    host(d, "tappaas-iam").vmid = "101";
    writeFileSync(join(dir, "fleet.json"), JSON.stringify(d, null, 2));
    const out = join(dir, "out");
    const r = spawnSync("node", [join(ROOT, "scripts", "app.mjs")], { cwd: ROOT, encoding: "utf8", env: { ...process.env, FLEET_FILE: join(dir, "fleet.json"), CDKTF_OUTDIR: out, FLEET_SKIP_VALIDATION: "1" } });
    expect(r.status).toBe(1);
    const lines = r.stderr.trim().split("\n");
    expect(lines).toEqual([
      `${join(dir, "fleet.json")}: host "tappaas-flaredb": statefull: unknown field "statefull"; did you mean "stateful"?`,
      `${join(dir, "fleet.json")}: host "tappaas-iam": vmid: "101" must be a whole number (without quotes)`,
      "2 problem(s) in the inventory; nothing was synthesized.",
    ]);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(existsSync(out)).toBe(false);
  });

  it("formats a problem as file: where: field: message", () => {
    expect(formatProblem("fleet.json", { where: 'host "a"', field: "vmid", message: "x" })).toBe('fleet.json: host "a": vmid: x');
  });
});
