/**
 * `npm run discover` against a STAND-IN for the Proxmox API: a local HTTP server answering the
 * one path discover reads with a recorded response (fixtures/pve-cluster-resources.json).
 */
import { readFileSync } from "node:fs";
import { createServer, Server } from "node:http";
import { AddressInfo } from "node:net";
import { join } from "node:path";
import { ROOT, runAsync } from "./helpers";

const TOKEN = "fleet@pve!cdktf=5b1f6c7e-aaaa-bbbb-cccc-0123456789ab";
const recorded = readFileSync(join(__dirname, "fixtures", "pve-cluster-resources.json"), "utf8");
let server: Server;
let endpoint: string;
const seen: string[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    if (req.headers.authorization !== `PVEAPIToken=${TOKEN}`) {
      res.statusCode = 401;
      return res.end('{"data":null}');
    }
    if (req.url === "/api2/json/cluster/resources?type=vm") {
      res.setHeader("Content-Type", "application/json");
      return res.end(recorded);
    }
    res.statusCode = 404;
    res.end();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
});
afterAll(() => server.close());

async function discover(env: Record<string, string | undefined>) {
  const r = await runAsync("node", ["--import", "tsx", join(ROOT, "scripts", "discover.ts")], { env: { ...process.env, PROXMOX_VE_API_TOKEN: undefined, ...env } });
  return { status: r.status, out: r.stdout, err: r.stderr };
}

describe("npm run discover", () => {
  it("lists the VMs the inventory lacks, with an import line each, and never prints the token", async () => {
    const r = await discover({ PROXMOX_VE_ENDPOINT: endpoint, PROXMOX_VE_API_TOKEN: TOKEN });
    expect(r.status).toBe(0);
    expect(seen).toContain("GET /api2/json/cluster/resources?type=vm");
    expect(r.out).toContain("6 guests on the cluster, 2 in the inventory, 2 VMs not in it");
    expect(r.out).toContain("npm run import -- --name old-gitea --node pve2 --vmid 150 --role <role> --cores 2 --memory 4096 --disk 32");
    expect(r.out).toContain("npm run import -- --name win11 --node pve1 --vmid 151");
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
});
