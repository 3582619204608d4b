/**
 * The Proxmox VE API simulator (sandbox/pve, a STAND-IN for a PVE cluster) refuses what PVE
 * refuses, with PVE's status, status line and JSON body (sources cited in sandbox/pve/*.ts).
 */
import { request } from "node:https";
import { seedCluster, simulatorCert, SimServer, startSimulator, SimCluster } from "../sandbox/pve";

const TOKEN = "root@pam!t=11111111-2222-4333-8444-555555555555";
let sim: SimServer;
let c: SimCluster;

function call(method: string, path: string, form?: Record<string, string>, token = TOKEN): Promise<{ status: number; line: string; body: any }> {
  const body = form ? new URLSearchParams(form).toString() : "";
  return new Promise((resolve, reject) => {
    const req = request(`${sim.url}api2/json${path}`, { method, rejectUnauthorized: false, headers: { Authorization: `PVEAPIToken=${token}`, ...(body ? { "Content-Type": "application/x-www-form-urlencoded" } : {}) } }, (res) => {
      let text = "";
      res.on("data", (d) => (text += d));
      res.on("end", () => resolve({ status: res.statusCode!, line: res.statusMessage ?? "", body: text ? JSON.parse(text) : undefined }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

beforeAll(async () => {
  c = seedCluster({ nodes: ["pve1", "pve2"], storage: "local-lvm", template: { vmid: 9000, node: "pve1" }, token: { id: "root@pam!t", secret: "11111111-2222-4333-8444-555555555555" }, timing: { taskMs: 10 } });
  sim = await startSimulator(c, await simulatorCert());
});
afterAll(() => sim.close());

describe("PVE API simulator", () => {
  it("answers an unknown path with pveproxy's 501", async () => {
    const r = await call("GET", "/nodes/pve1/qemu/9000/frobnicate");
    expect([r.status, r.line, r.body]).toEqual([501, "Method 'GET /nodes/pve1/qemu/9000/frobnicate' not implemented", { data: null, message: "Method 'GET /nodes/pve1/qemu/9000/frobnicate' not implemented\n" }]);
  });

  it("refuses an unknown or mistyped parameter with 400 and PVE's errors object", async () => {
    const r = await call("PUT", "/nodes/pve1/qemu/9000/config", { cores: "two", turbo: "1" });
    expect(r.status).toBe(400);
    expect(r.body.errors).toEqual({ cores: "type check ('integer') failed - got 'two'", turbo: "property is not defined in schema and the schema does not allow additional properties" });
    const bad = await call("PUT", "/nodes/pve1/qemu/9000/config", { net0: "virtio,bridge=vmbr0,speed=10" });
    expect(bad.body.errors.net0).toContain("invalid format - invalid key in comma-separated list property: speed");
    const range = await call("PUT", "/nodes/pve1/qemu/9000/config", { virtio16: "local-lvm:1" });
    expect(range.body.errors.virtio16).toBe("property is not defined in schema and the schema does not allow additional properties");
  });

  it("refuses a wrong token with 401 'Authentication failed!' and a missing privilege with 403", async () => {
    const r = await call("GET", "/version", undefined, "root@pam!t=00000000-0000-4000-8000-000000000000");
    expect([r.status, r.line]).toEqual([401, "Authentication failed!"]);
    c.token.privileges.delete("VM.PowerMgmt");
    try {
      const p = await call("POST", "/nodes/pve1/qemu/9000/status/start");
      expect([p.status, p.line]).toEqual([403, "Permission check failed (/vms/9000, VM.PowerMgmt)"]);
    } finally {
      c.token.privileges.add("VM.PowerMgmt");
    }
  });

  it("runs a clone as a qmclone task with the target locked, refuses a template start, and lists every task", async () => {
    // the clone task stays running until released: the lock is seen whatever the machine's load
    let release!: () => void;
    c.taskGate = new Promise((r) => (release = r));
    const upid = (await call("POST", "/nodes/pve1/qemu/9000/clone", { newid: "101", full: "1", name: "a" })).body.data;
    expect(upid).toMatch(/^UPID:pve1:[0-9A-F]{8}:[0-9A-F]{8}:[0-9A-F]{8}:qmclone:9000:root@pam:$/);
    expect((await call("GET", "/nodes/pve1/qemu/101/status/current")).body.data.lock).toBe("clone");
    const locked = await call("PUT", "/nodes/pve1/qemu/101/config", { cores: "2" });
    expect([locked.status, locked.line]).toEqual([500, "VM is locked (clone)"]);
    release();
    c.taskGate = undefined;
    for (let i = 0; i < 1000 && (await call("GET", `/nodes/pve1/tasks/${encodeURIComponent(upid)}/status`)).body.data.status === "running"; i++) await new Promise((r) => setTimeout(r, 10));
    expect((await call("GET", `/nodes/pve1/tasks/${encodeURIComponent(upid)}/status`)).body.data.exitstatus).toBe("OK");
    expect((await call("GET", "/nodes/pve1/qemu/101/config")).body.data.virtio0).toMatch(/^local-lvm:vm-101-disk-\d,/);
    const start = (await call("POST", "/nodes/pve1/qemu/9000/status/start")).body.data;
    for (let i = 0; i < 1000 && c.tasks.find((t) => t.upid === start)!.status === "running"; i++) await new Promise((r) => setTimeout(r, 10));
    expect((await call("GET", `/nodes/pve1/tasks/${encodeURIComponent(start)}/log`)).body.data.pop()).toEqual({ n: 1, t: "TASK ERROR: you can't start a vm if it's a template" });
    expect((await call("GET", "/cluster/tasks")).body.data.map((t: any) => t.type)).toEqual(["qmclone", "qmstart"]);
  });

  it("refuses to destroy or strip a protected VM, and to shrink a disk", async () => {
    c.vms["101"].config.protection = "1";
    const d = await call("DELETE", "/nodes/pve1/qemu/101");
    expect([d.status, d.line]).toEqual([500, "can't remove VM 101 - protection mode enabled"]);
    const drive = await call("PUT", "/nodes/pve1/qemu/101/config", { delete: "virtio0" });
    expect(drive.line).toBe("can't remove drive 'virtio0' - protection mode enabled");
    const shrink = (await call("PUT", "/nodes/pve1/qemu/101/resize", { disk: "virtio0", size: "1G" })).body.data;
    for (let i = 0; i < 100 && c.tasks.find((t) => t.upid === shrink)!.status === "running"; i++) await new Promise((r) => setTimeout(r, 10));
    expect(c.tasks.find((t) => t.upid === shrink)!.exitstatus).toBe("shrinking disks is not supported");
  });
});
