import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseInventory, InventoryError, validateInventory } from "../constructs/inventory";
import { exampleData, ROOT } from "./helpers";

/** Problems reported for the example inventory after `change` is applied to it. */
function problemsAfter(change: (d: any) => void): string[] {
  const d = exampleData();
  change(d);
  return validateInventory(d).map((p) => `${p.where}: ${p.field}: ${p.message}`);
}
const host = (d: any, name: string) => d.hosts.find((h: any) => h.name === name);

describe("inventory validation", () => {
  it("accepts the example inventory", () => {
    expect(problemsAfter(() => {})).toEqual([]);
  });

  it("refuses what was valid at synth and broke at deploy (#29 item 7): null in a platform setting, root or a service's account as a user, a user listed twice", () => {
    expect(problemsAfter((d) => (host(d, "tappaas-iam").services = { iam: { auth: { issuer: null } } }))).toEqual([
      'host "tappaas-iam": services.iam.auth.issuer: null has no form in the service\'s config.toml (TOML has no null); remove the setting or give it a value',
    ]);
    expect(problemsAfter((d) => (d.users[0].name = "root"))).toContainEqual('users[root]: name: "root" is an account NixOS or a fleet service owns (and root cannot log in over SSH on fleet hosts); give the user another name');
    for (const name of ["sshd", "vllm", "chainfire", "systemd-network", "nixbld1"])
      expect(problemsAfter((d) => d.users.push({ name, sshKeys: d.users[0].sshKeys }))).toEqual([`users[${name}]: name: "${name}" is an account NixOS or a fleet service owns; give the user another name`]);
    expect(problemsAfter((d) => d.users.push({ ...d.users[0] }))).toEqual([`users[${exampleData().users[0].name}]: name: "${exampleData().users[0].name}" is listed twice (the second entry's keys would be lost); merge the two entries into one`]);
  });

  it("refuses credentials inside URLs and free text, not only as whole values (#29 item 5)", () => {
    const cases: [string, (d: any) => void, string][] = [
      ["nix: substituters[0]", (d) => (d.nix = { substituters: ["https://user:pass@cache.example.org"], trustedPublicKeys: ["cache.example.org-1:AAAA"] }), "a URL with a password in it"],
      ["deploy: flake", (d) => (d.deploy.flake = "git+https://x-access-token:ghs_abc@github.com/o/r"), "a URL with a password in it"],
      ["template: imageUrl", (d) => (d.template.imageUrl = "https://images.example.org/nixos.qcow2?token=abcdef0123456789"), "a credential in a URL's query"],
      ['host "tappaas-iam": services.iam.database.url', (d) => (host(d, "tappaas-iam").services = { iam: { database: { url: "postgres://iam:hunter2@db.lan/iam" } } }), "a URL with a password in it"],
      ["pciMappings[gpu0]: comment", (d) => (d.pciMappings[0].comment = "token: PVEAPIToken=root@pam!ci=0b5c3a8e-1111-2222-3333-444455556666"), "a Proxmox API token"],
      ["pciMappings[gpu0]: comment", (d) => (d.pciMappings[0].comment = "curl -H 'Authorization: Bearer abcdefghijklmnop0123'"), "a bearer token"],
      ["pciMappings[gpu0]: comment", (d) => (d.pciMappings[0].comment = "the HF token is hf_abcdefghijklmnopqrstuvwxyz0123456789"), "a Hugging Face token"],
    ];
    for (const [at, change, what] of cases) expect({ at, problems: problemsAfter(change).filter((p) => p.includes("looks like")) }).toEqual({ at, problems: [`${at}: looks like ${what}; credentials never go in the inventory (it is committed, and read into the Nix store): the Proxmox token goes in PROXMOX_VE_API_TOKEN, service keys in secrets/ (npm run secrets), SSH private keys stay in ssh-agent`] });
    // what is not a credential stays accepted
    expect(problemsAfter((d) => (d.nix = { substituters: ["https://cuda-maintainers.cachix.org"], trustedPublicKeys: ["cuda-maintainers.cachix.org-1:0dq3bujKpuEPMCX6U4WylrUDZ9JyUG0VpVZa7CNfq5E="] }))).toEqual([]);
  });

  it("closes the validator's gaps (#29 item 9): wrong-case time zone, a locale glibc cannot build, a port out of range, buildHost read as an option", () => {
    expect(problemsAfter((d) => (d.cluster.timeZone = "europe/copenhagen"))).toEqual(['cluster: timeZone: "europe/copenhagen" has the wrong case: zoneinfo names are case-sensitive (the host would run in UTC); write "Europe/Copenhagen"']);
    expect(problemsAfter((d) => (d.cluster.timeZone = "US/Eastern"))).toEqual([]); // a link name is a real zoneinfo file
    expect(problemsAfter((d) => (d.cluster.locale = "en_ZZ.UTF-8"))).toEqual(['cluster: locale: "en_ZZ.UTF-8" is not a locale glibc can build (its localedata/SUPPORTED has no "en_ZZ"); use one such as "en_US.UTF-8", "de_DE.UTF-8" or "C.UTF-8"']);
    expect(problemsAfter((d) => (d.cluster.locale = "de_DE.ISO-8859-1"))).toEqual(['cluster: locale: "de_DE.ISO-8859-1": NixOS builds the default locale with the UTF-8 charset only; write "de_DE.UTF-8"']);
    for (const ok of ["C.UTF-8", "nb_NO.UTF-8", "ca_ES.UTF-8@valencia", "de_DE.utf8"]) expect({ ok, p: problemsAfter((d) => (d.cluster.locale = ok)) }).toEqual({ ok, p: [] });
    expect(problemsAfter((d) => (d.externalServices = { chainfire: ["db.lan:99999", "db.lan:2379"] }))).toEqual(['externalServices: chainfire[0]: port 99999 in "db.lan:99999" is not a TCP port (1-65535)']);
    expect(problemsAfter((d) => (d.deploy.buildHost = "-oProxyCommand=touch /tmp/x"))).toEqual([expect.stringMatching(/^deploy: buildHost: .* must be \[user@\]host\[:port\], not starting with - \(ssh would read it as an option\)$/)]);
  });

  it("reports what JSON.parse changes silently (#29 item 9): a key given twice, 1e400, a whole number beyond 2^53, each with its place", () => {
    const text = JSON.stringify(exampleData(), null, 2);
    const err = (t: string) => {
      try {
        parseInventory(t, "fleet.json");
        return "accepted";
      } catch (e) {
        return (e as Error).message;
      }
    };
    expect(err(text.replace('"storage": "local-lvm",', '"storage": "local-lvm",\n    "storage": "ceph",'))).toMatch(/^fleet\.json: cluster: storage: is given twice in the same object \(line \d+\); JSON keeps only the last one silently: keep one$/);
    expect(err(text.replace('"cores": 4', '"cores": 1e400'))).toMatch(/^fleet\.json: template: cores: 1e400 is too large for a number \(line \d+\); give a value in range$/);
    expect(err(text.replace('"vmid": 8100', '"vmid": 18446744073709551616'))).toMatch(/^fleet\.json: template: vmid: 18446744073709551616 is beyond the whole numbers JSON readers keep exactly \(2\^53\); it would silently become 18446744073709552000 \(line \d+\): give a value in range$/);
    const h = exampleData().hosts[0].name;
    expect(err(text.replace(`"name": "${h}",`, `"name": "${h}",\n      "cores": 2,\n      "cores": 4,`))).toMatch(new RegExp(`^fleet\\.json: host "${h}": cores: is given twice`));
  });

  it("names a bad entry once and briefly: a 100 kB name is not echoed (twice), control characters are escaped (#29 item 8)", () => {
    const long = exampleData();
    long.hosts[0].name = "a".repeat(100_000);
    const msg = (d: any) => {
      try {
        parseInventory(JSON.stringify(d), "fleet.json");
        return "accepted";
      } catch (e) {
        return (e as Error).message;
      }
    };
    const m = msg(long);
    expect(m.length).toBeLessThan(1000);
    expect(m.split("\n")).toEqual([expect.stringMatching(/^fleet\.json: hosts\[0\]: name: "a{99}… \(100002 characters\) is not a host name/)]);
    const ctl = exampleData();
    ctl.hosts[0].name = "x\u001b]0;pwned\u0007";
    ctl.pciMappings[0].comment = "a\u0000b";
    expect(msg(ctl)).not.toMatch(/[\u0000-\u0008\u000b-\u001f]/);
    expect(msg(ctl)).toContain("x\\u001b]0;pwned\\u0007");
  });

  it("refuses an inventory path that is a device, a FIFO or a directory at once, without reading it (#29 item 10: /dev/zero and a FIFO hung)", () => {
    const fifo = join(mkdtempSync(join(tmpdir(), "fifo-")), "fleet.json");
    execFileSync("mkfifo", [fifo]);
    for (const [f, what] of [["/dev/zero", "a device or socket"], [fifo, "a FIFO"], [tmpdir(), "a directory"]]) {
      const r = spawnSync("node", ["--import", "tsx", "-e", `try { require("./constructs/inventory").loadInventory(${JSON.stringify(f)}) } catch (e) { console.log(e.message) }`], { cwd: ROOT, encoding: "utf8", timeout: 30_000 });
      expect({ f, out: r.stdout, signal: r.signal }).toEqual({ f, out: `${f}: file: path: is not a regular file (${what}); set FLEET_FILE to an inventory JSON file\n`, signal: null });
    }
  });

  it("reports malformed JSON with line and column", () => {
    const text = '{\n  "cluster": {\n    "nodes": ["pve1",]\n  }\n}';
    try {
      parseInventory(text, "broken.json");
      throw new Error("no error");
    } catch (e) {
      expect(e).toBeInstanceOf(InventoryError);
      expect((e as InventoryError).message).toMatch(/^broken\.json: file: json: malformed JSON at line 3, column \d+/);
    }
  });

  it("refuses a PCI mapping without iommuGroup or subsystemId (Proxmox would not start the VM)", () => {
    const problems = problemsAfter((d) => {
      delete d.pciMappings[0].map[0].iommuGroup;
      d.pciMappings[0].map[0].subsystemId = "nvidia";
    });
    expect(problems).toContainEqual(expect.stringMatching(/^pciMappings\[gpu0\]: map\.iommuGroup: missing; Proxmox will not start a VM with this mapping/));
    expect(problems).toContainEqual(expect.stringMatching(/^pciMappings\[gpu0\]: map\.subsystemId: "nvidia" is not a vendor:device id/));
  });

  it("refuses gpu.rawId while an API token is configured (Proxmox accepts raw ids only from root@pam with a password)", () => {
    const change = (d: any) => (host(d, "tappaas-vllm").gpu = { rawId: "0000:01:00" });
    expect(problemsAfter(change)).toEqual([]);
    process.env.PROXMOX_VE_API_TOKEN = "x@pve!t=secret";
    try {
      expect(problemsAfter(change)).toContainEqual(expect.stringMatching(/^host "tappaas-vllm": gpu\.rawId: a raw PCI id needs root@pam with a password, and PROXMOX_VE_API_TOKEN is set/));
    } finally {
      delete process.env.PROXMOX_VE_API_TOKEN;
    }
  });

  it("refuses a host disk smaller than a created template's disk", () => {
    const problems = problemsAfter((d) => {
      d.template = { ...d.template, mode: "create", imageUrl: "https://x.invalid/n.qcow2", diskGiB: 64, bootstrapImage: false };
      delete d.template.bootstrapImage;
    });
    expect(problems).toContainEqual(expect.stringMatching(/^host "tappaas-cicd": diskGiB: \d+ GiB is smaller than the template's disk \(template.diskGiB = 64\)/));
  });

  it("refuses a duplicate host name", () => {
    expect(problemsAfter((d) => (host(d, "tappaas-iam").name = "tappaas-flaredb"))).toContainEqual(
      expect.stringMatching(/^host "tappaas-flaredb": name: duplicate host name/),
    );
  });

  it("refuses a VM whose vmid is already used", () => {
    expect(problemsAfter((d) => (host(d, "tappaas-iam").vmid = 8201))).toContainEqual(
      'host "tappaas-iam": vmid: 8201 is already used by host "tappaas-vllm"',
    );
  });

  it("refuses a vmid equal to the template's", () => {
    expect(problemsAfter((d) => (host(d, "tappaas-iam").vmid = 8100))).toContainEqual('host "tappaas-iam": vmid: 8100 is already used by the template');
  });

  it("refuses a duplicate static IP", () => {
    expect(problemsAfter((d) => (host(d, "tappaas-iam").network.address = "192.168.10.21/24"))).toContainEqual(
      expect.stringMatching(/^host "tappaas-iam": network.address: 192.168.10.21 is already used by host "tappaas-vllm"/),
    );
  });

  it.each([99, 1000000000, 12.5, "8200"])("refuses vmid %p outside 100-999999999", (vmid) => {
    expect(problemsAfter((d) => (host(d, "tappaas-iam").vmid = vmid))).toContainEqual(expect.stringMatching(/^host "tappaas-iam": vmid: .* (is outside 100-999999999|must be a whole number)/));
  });

  it.each(["Tappaas_IAM", "-iam", "iam-", "a".repeat(64), "iam.lan"])("refuses host name %p that is not RFC 1123", (name) => {
    expect(problemsAfter((d) => (host(d, "tappaas-iam").name = name))).toContainEqual(expect.stringMatching(/name: .* is not a host name: .*RFC 1123/));
  });

  it("refuses a bad CIDR", () => {
    expect(problemsAfter((d) => (host(d, "tappaas-iam").network.address = "192.168.10.300/24"))).toContainEqual(
      expect.stringMatching(/^host "tappaas-iam": network.address: "192.168.10.300\/24" is not an IPv4 CIDR/),
    );
  });

  it("refuses a gateway outside the subnet", () => {
    expect(problemsAfter((d) => (host(d, "tappaas-iam").network.gateway = "192.168.11.1"))).toContainEqual(
      'host "tappaas-iam": network.gateway: 192.168.11.1 is outside the subnet of 192.168.10.33/24',
    );
  });

  it("accepts a host without roles (a plain NixOS host) but not a missing roles list", () => {
    expect(problemsAfter((d) => (host(d, "tappaas-cicd").roles = []))).toEqual([]);
    expect(problemsAfter((d) => delete host(d, "tappaas-cicd").roles)).toContainEqual(expect.stringMatching(/^host "tappaas-cicd": roles: missing; .*\[\] is a plain NixOS host/));
  });

  it("refuses an unknown role", () => {
    expect(problemsAfter((d) => host(d, "tappaas-iam").roles.push("postgres"))).toContainEqual(expect.stringMatching(/^host "tappaas-iam": roles: unknown role "postgres"/));
  });

  it("refuses a vLLM host below 16 GB", () => {
    expect(problemsAfter((d) => (host(d, "tappaas-vllm").memoryMiB = 8192))).toContainEqual(
      'host "tappaas-vllm": memoryMiB: 8192 MiB is below the vllm role\'s minimum of 16384 MiB; raise memoryMiB',
    );
  });

  it("refuses a vLLM host without a GPU", () => {
    expect(problemsAfter((d) => delete host(d, "tappaas-vllm").gpu)).toContainEqual(expect.stringMatching(/^host "tappaas-vllm": gpu: the vllm role needs a GPU/));
  });

  it("refuses a GPU mapping that is not defined", () => {
    expect(problemsAfter((d) => (host(d, "tappaas-vllm").gpu.mapping = "gpu9"))).toContainEqual('host "tappaas-vllm": gpu.mapping: "gpu9" is not defined in pciMappings; did you mean "gpu0"?');
  });

  it("refuses a GPU mapping that has no device on the host's node", () => {
    expect(problemsAfter((d) => (host(d, "tappaas-vllm").node = "pve2"))).toContainEqual(expect.stringMatching(/^host "tappaas-vllm": gpu.mapping: "gpu0" has no device on node "pve2"/));
  });

  it("refuses an unknown node", () => {
    expect(problemsAfter((d) => (host(d, "tappaas-iam").node = "pve9"))).toContainEqual('host "tappaas-iam": node: "pve9" is not one of cluster.nodes (pve1, pve2)');
  });

  it("refuses two services on one host wanting the same port", () => {
    expect(
      problemsAfter((d) => {
        const h = host(d, "tappaas-iam");
        h.roles.push("novanet");
        h.services = { novanet: { ports: { api: 7100 } } };
      }),
    ).toContainEqual('host "tappaas-iam": services.novanet.ports.api: port 7100 is also wanted by iam.api on this host; give one of them another port');
  });

  it.each([
    ["tappaas-chainfire", "flaredb needs chainfire"],
    ["tappaas-flaredb", "iam needs flaredb"],
    ["tappaas-iam", "plasmavmc needs iam"],
  ])("refuses a fleet without %s's role (%s)", (name, message) => {
    expect(problemsAfter((d) => (d.hosts = d.hosts.filter((h: any) => h.name !== name)))).toContainEqual(expect.stringContaining(message));
  });

  it("reports every problem at once, each naming host and field", () => {
    const problems = problemsAfter((d) => {
      host(d, "tappaas-iam").vmid = 5;
      host(d, "tappaas-vllm").memoryMiB = 1024;
      host(d, "tappaas-cicd").node = "nowhere";
    });
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^host "tappaas-iam": vmid:/),
        expect.stringMatching(/^host "tappaas-vllm": memoryMiB:/),
        expect.stringMatching(/^host "tappaas-cicd": node:/),
      ]),
    );
  });

  it("refuses a template made both by VMA bootstrap and by Terraform", () => {
    expect(
      problemsAfter((d) => {
        d.template.mode = "create";
        d.template.bootstrapImage = true;
      }),
    ).toEqual(expect.arrayContaining([expect.stringMatching(/^template: bootstrapImage: /), expect.stringMatching(/^template: imageUrl: mode "create" needs/)]));
  });

  it("refuses platform hosts split across stacks", () => {
    expect(problemsAfter((d) => (host(d, "tappaas-iam").stack = "core"))).toContainEqual(
      'host "tappaas-iam": stack: platform hosts must share one stack (their deploy order is kept inside a stack): this one is in "core", others in "platform"',
    );
  });

  it("refuses credentials in the cluster section", () => {
    expect(problemsAfter((d) => (d.cluster.apiToken = "x"))).toContainEqual(expect.stringMatching(/^cluster: apiToken: a credential field; credentials never go in the inventory .*PROXMOX_VE_API_TOKEN/));
  });

  it("refuses a private key in place of a public key", () => {
    expect(problemsAfter((d) => (d.users[0].sshKeys = ["-----BEGIN OPENSSH PRIVATE KEY-----"]))).toContainEqual(expect.stringMatching(/^users\[admin\]: sshKeys\[0\]: looks like private key material; credentials never go in the inventory/));
  });
});
