/**
 * `npm run discover` against a STAND-IN for the Proxmox API: a local HTTP server answering the
 * one path discover reads with a recorded response (fixtures/pve-cluster-resources.json).
 */
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { createServer, Server } from "node:http";
import { AddressInfo } from "node:net";
import { join } from "node:path";
import { EXAMPLE_FLEET, ROOT, runAsync } from "./helpers";

const TOKEN = "fleet@pve!cdktf=5b1f6c7e-aaaa-bbbb-cccc-0123456789ab";
const recorded = readFileSync(join(__dirname, "fixtures", "pve-cluster-resources.json"), "utf8");
let server: Server;
let endpoint: string;
const seen: string[] = [];
/** What the stand-in answers: the recording, another body, or a few bytes a second without end. */
let mode: { body?: string; trickle?: boolean } = {};

beforeAll(async () => {
  server = createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    if (req.headers.authorization !== `PVEAPIToken=${TOKEN}`) {
      res.statusCode = 401;
      return res.end('{"data":null}');
    }
    if (req.url === "/api2/json/cluster/resources?type=vm") {
      res.setHeader("Content-Type", "application/json");
      if (mode.trickle) {
        const t = setInterval(() => (res.destroyed ? clearInterval(t) : res.write(" ")), 200);
        return res.write('{"data":[');
      }
      return res.end(mode.body ?? recorded);
    }
    res.statusCode = 404;
    res.end();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
});
afterAll(() => server.close());

async function discover(env: Record<string, string | undefined>, answer: typeof mode = {}) {
  mode = answer;
  const r = await runAsync("node", ["--import", "tsx", join(ROOT, "scripts", "discover.ts")], { env: { ...process.env, PROXMOX_VE_API_TOKEN: undefined, ...env } });
  mode = {};
  return { status: r.status, out: r.stdout, err: r.stderr };
}

describe("npm run discover", () => {
  it("refuses a FLEET_DISCOVER_TIMEOUT that is not a number of seconds with one line, exit 2 (#29 item 10: it was a stack trace)", async () => {
    for (const v of ["abc", "0", "-5"]) {
      const r = await discover({ PROXMOX_VE_ENDPOINT: endpoint, PROXMOX_VE_API_TOKEN: TOKEN, FLEET_DISCOVER_TIMEOUT: v });
      expect({ v, status: r.status, err: r.err }).toEqual({ v, status: 2, err: `discover: FLEET_DISCOVER_TIMEOUT must be a number of seconds (1-86400), got ${JSON.stringify(v)}\n` });
    }
  });

  it("shows a VM name from the API with its control characters escaped: no escape sequence reaches the terminal (#29 item 8)", async () => {
    const data = JSON.parse(recorded);
    const vm = data.data.find((v: any) => v.name === "win11");
    vm.name = "win\u001b]0;owned\u0007\u001b[2J11\u202e";
    const r = await discover({ PROXMOX_VE_ENDPOINT: endpoint, PROXMOX_VE_API_TOKEN: TOKEN }, { body: JSON.stringify(data) });
    expect(r.status).toBe(0);
    expect(r.out).toContain("win\\x1b]0;owned\\x07\\x1b[2J11\\u202e on pve1");
    expect(r.out).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f\u202e]/);
  });

  it("lists the VMs the inventory lacks, with an import line each, and never prints the token", async () => {
    const r = await discover({ PROXMOX_VE_ENDPOINT: endpoint, PROXMOX_VE_API_TOKEN: TOKEN });
    expect(r.status).toBe(0);
    expect(seen).toContain("GET /api2/json/cluster/resources?type=vm");
    expect(r.out).toContain("6 guests on the cluster, 2 in the inventory, 2 VMs not in it");
    expect(r.out).toContain("npm run import -- --name old-gitea --node pve2 --vmid 150 --cores 2 --memory 4096 --disk 32    # add --role <role>");
    expect(r.out).toContain("npm run import -- --name win11 --node pve1 --vmid 151 --cores 4 --memory 8192 --disk 64");
    expect(r.out).not.toMatch(/pihole|ubuntu-template|--vmid 8201/);
    expect(r.out + r.err).not.toContain("5b1f6c7e");
  });

  it("says clearly when the API refuses the token", async () => {
    const r = await discover({ PROXMOX_VE_ENDPOINT: endpoint, PROXMOX_VE_API_TOKEN: "fleet@pve!x=wrong-secret" });
    expect(r.status).toBe(1);
    expect(r.err).toContain("discover: the API refused the credentials (HTTP 401)");
    expect(r.err).not.toContain("wrong-secret");
  });

  it("asks for the endpoint and credentials when they are missing", async () => {
    expect((await discover({ PROXMOX_VE_ENDPOINT: undefined })).err).toContain("PROXMOX_VE_ENDPOINT is not set");
    const r = await discover({ PROXMOX_VE_ENDPOINT: endpoint });
    expect(r.status).toBe(2);
    expect(r.err).toContain("set PROXMOX_VE_API_TOKEN");
  });

  it("prints only suggestions that import as printed; the others say why not", async () => {
    const d = JSON.parse(recorded);
    d.data.push(
      { id: "qemu/152", type: "qemu", vmid: 152, name: "tappaas-iam", node: "pve1", template: 0, status: "stopped", maxcpu: 1, maxmem: 0, maxdisk: 0 },
      { id: "qemu/153", type: "qemu", vmid: 153, name: "7zip box", node: "pve1", template: 0, status: "running", maxcpu: 1, maxmem: 1073741824, maxdisk: 10737418240 },
      { id: "qemu/154", type: "qemu", vmid: 154, name: "elsewhere", node: "pve9", template: 0, status: "running", maxcpu: 1, maxmem: 1073741824, maxdisk: 10737418240 },
    );
    const r = await discover({ PROXMOX_VE_ENDPOINT: endpoint, PROXMOX_VE_API_TOKEN: TOKEN }, { body: JSON.stringify(d) });
    expect(r.status).toBe(0);
    // a name the inventory has, memory 0 (a stopped VM): renamed, sizes left to the defaults
    expect(r.out).toContain("npm run import -- --name tappaas-iam-152 --node pve1 --vmid 152 --cores 1    # add --role <role>");
    expect(r.out).toContain("npm run import -- --name vm-7zip-box --node pve1 --vmid 153");
    expect(r.out).toContain('cannot be imported as it is: node: "pve9" is not one of cluster.nodes (pve1, pve2)');
    // each printed line, run as printed, imports
    const file = join(mkdtempSync(join(tmpdir(), "discover-")), "fleet.json");
    copyFileSync(EXAMPLE_FLEET, file);
    const lines = r.out.split("\n").filter((l) => l.trim().startsWith("npm run import -- "));
    expect(lines).toHaveLength(4);
    for (const l of lines) {
      const args = l.trim().replace("npm run import -- ", "").split("    #")[0].trim().split(" ");
      const imp = spawnSync("node", ["--import", "tsx", join(ROOT, "scripts", "import-vm.ts"), ...args], { cwd: ROOT, encoding: "utf8", env: { ...process.env, FLEET_FILE: file } });
      expect({ l, err: imp.stderr, status: imp.status }).toEqual({ l, err: "", status: 0 });
    }
  });

  it.each([
    ['{"data":null}', 'discover: GET /cluster/resources answered JSON without a "data" list'],
    ["<html>proxy error</html>", "discover: GET /cluster/resources did not answer JSON"],
    ['{"data":[{"vmid":"x"}]}', "discover: GET /cluster/resources answered a guest without vmid, node or type (data[0]:"],
  ])("refuses an unexpected answer %s in one line", async (body, expected) => {
    const r = await discover({ PROXMOX_VE_ENDPOINT: endpoint, PROXMOX_VE_API_TOKEN: TOKEN }, { body });
    expect(r.status).toBe(1);
    expect(r.err).toContain(expected);
    expect(r.err.trim().split("\n")).toHaveLength(1);
  });

  it("gives up at its deadline when the server trickles bytes", async () => {
    const r = await discover({ PROXMOX_VE_ENDPOINT: endpoint, PROXMOX_VE_API_TOKEN: TOKEN, FLEET_DISCOVER_TIMEOUT: "2" }, { trickle: true });
    expect(r.status).toBe(1);
    expect(r.err.trim()).toBe(`discover: cannot reach ${endpoint.replace(/\/$/, "")}: no complete answer within 2s (FLEET_DISCOVER_TIMEOUT)`);
  });
});
