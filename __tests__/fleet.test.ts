import { readFileSync } from "node:fs";
import { join } from "node:path";
import { exampleData, exampleInventory, resourcesOf, ROOT, synthFleet, vmByName } from "./helpers";
import { parseInventory } from "../constructs/inventory";

describe("example fleet", () => {
  const stacks = synthFleet(exampleInventory());

  it("splits state into cluster, ai, platform and ops stacks", () => {
    expect(Object.keys(stacks).sort()).toEqual(["ai", "cluster", "ops", "platform"]);
  });

  it("pins bpg/proxmox to exactly 0.112.0 in every stack", () => {
    for (const s of Object.values(stacks)) expect(s.terraform.required_providers.proxmox).toEqual({ source: "bpg/proxmox", version: "0.112.0" });
  });

  it("gives a VM per host with the guide's sizes", () => {
    const sizes = Object.fromEntries(
      resourcesOf(stacks, "proxmox_virtual_environment_vm").map((v) => [v.name, [v.cpu.cores, v.memory.dedicated, v.disk[0].size]]),
    );
    expect(Object.keys(sizes)).toHaveLength(12);
    expect(sizes["tappaas-cicd"]).toEqual([2, 4096, 20]);
    expect(sizes["tappaas-vllm"]).toEqual([8, 32768, 80]);
    expect(sizes["tappaas-litellm"]).toEqual([4, 8192, 40]);
    expect(sizes["tappaas-openwebui"]).toEqual([4, 8192, 40]);
    for (const p of ["chainfire", "flaredb", "iam", "plasmavmc", "novanet", "flashdns", "fiberlb", "lightningstor"]) expect(sizes[`tappaas-${p}`]).toBeDefined();
  });

  it("clones every VM from template 8100", () => {
    for (const v of resourcesOf(stacks, "proxmox_virtual_environment_vm")) expect(v.clone.vm_id).toBe(8100);
  });

  it("passes the GPU to the vLLM VM by mapping, and defines the mapping", () => {
    expect(vmByName(stacks, "tappaas-vllm").hostpci).toEqual([{ device: "hostpci0", mapping: "gpu0", pcie: true, rombar: true, xvga: false }]);
    expect(vmByName(stacks, "tappaas-litellm").hostpci).toBeUndefined();
    expect(resourcesOf(stacks, "proxmox_hardware_mapping_pci").map((m) => m.name)).toEqual(["gpu0"]);
  });

  it("gives every VM cloud-init with the admin user's key", () => {
    for (const v of resourcesOf(stacks, "proxmox_virtual_environment_vm")) expect(v.initialization.user_account.username).toBe("admin");
    expect(vmByName(stacks, "tappaas-litellm").initialization.ip_config).toEqual([{ ipv4: { address: "dhcp" } }]);
  });

  it("sets prevent_destroy on stateful hosts only", () => {
    const guarded = resourcesOf(stacks, "proxmox_virtual_environment_vm")
      .filter((v) => v.lifecycle?.prevent_destroy)
      .map((v) => v.name)
      .sort();
    expect(guarded).toEqual(["tappaas-chainfire", "tappaas-cicd", "tappaas-flaredb", "tappaas-lightningstor", "tappaas-openwebui"]);
  });

  it("lets a stateful host opt out of prevent_destroy explicitly", () => {
    const d = exampleData();
    d.hosts.find((h: any) => h.name === "tappaas-cicd").preventDestroy = false;
    expect(vmByName(synthFleet(parseInventory(JSON.stringify(d))), "tappaas-cicd").lifecycle).toEqual({ ignore_changes: ["clone", "initialization", "started"] });
  });

  it("writes outputs per host: vmid, address and service URLs", () => {
    const out = stacks.ai.output;
    const key = (suffix: string) => Object.keys(out).find((k) => k.startsWith(`tappaas-vllm_${suffix}`))!;
    expect(out[key("vmid")].value).toBe(8201);
    expect(out[key("ip")].value).toBe("192.168.10.21");
    expect(out[key("urls")].value).toEqual({ "vllm.api": "http://192.168.10.21:8000" });
  });

  it("wires LiteLLM to the vLLM hosts and OpenWebUI to LiteLLM in the outputs", () => {
    const out = stacks.ai.output;
    const val = (prefix: string) => out[Object.keys(out).find((k) => k.startsWith(prefix))!].value;
    // one list per role in `locals`, each gateway's output refers to it (linear JSON)
    expect(val("tappaas-litellm_upstreams")).toBe("${local.vllm_upstreams}");
    expect(val("tappaas-openwebui_upstreams")).toBe("${local.litellm_upstreams}");
    expect(stacks.ai.locals.vllm_upstreams).toEqual(["http://192.168.10.21:8000/v1"]);
    expect(stacks.ai.locals.litellm_upstreams).toEqual([expect.stringMatching(/^http:\/\/\$\{try\(flatten\(.*\}:4000\/v1$/)]);
  });

  it("matches the snapshot of the whole example fleet", () => {
    // Config hashes follow every edit under nixos/; their behaviour has tests of its own.
    const masked = JSON.parse(JSON.stringify(stacks).replace(/"config_hash":"[0-9a-f]{64}"/g, '"config_hash":"<sha256>"'));
    expect(masked).toMatchSnapshot();
  });
});

describe("deploy step triggers", () => {
  // The spec in the environment holds a Terraform expression until apply, so the host is read
  // from the resource name ("<host>_deploy_step_<hash>").
  const hostOf = (key: string) => key.split("_deploy_step_")[0];
  const hashes = (data: any) =>
    Object.fromEntries(
      Object.values(synthFleet(parseInventory(JSON.stringify(data))))
        .flatMap((s: any) => Object.entries<any>(s.resource?.terraform_data ?? {}))
        .filter(([key]) => key.includes("_deploy_step_"))
        .map(([key, r]) => [hostOf(key), r.triggers_replace.config_hash]),
    );

  it("re-deploys LiteLLM, not OpenWebUI, when the vLLM host's model changes", () => {
    const before = hashes(exampleData());
    const d = exampleData();
    d.hosts.find((h: any) => h.name === "tappaas-vllm").services.vllm.model = "meta-llama/Llama-3.1-8B-Instruct";
    const after = hashes(d);
    const changed = Object.keys(before).filter((h) => before[h] !== after[h]).sort();
    expect(changed).toEqual(["tappaas-litellm", "tappaas-vllm"]);
  });

  it("re-deploys every Raft member when one is added (its member list changes), and the vLLM host when the LiteLLM host moves (its firewall)", () => {
    const raft = JSON.parse(readFileSync(join(ROOT, "examples", "raft-platform.json"), "utf8"));
    const before = hashes(raft);
    const cf = raft.hosts.find((h: any) => h.name === "raft-cf3");
    raft.hosts.push({ ...cf, name: "raft-cf4", vmid: cf.vmid + 100, network: { ...cf.network, address: "10.30.0.14/24" }, services: { chainfire: { join: true } } });
    const after = hashes(raft);
    for (const m of ["raft-cf1", "raft-cf2", "raft-cf3"]) expect({ m, changed: before[m] !== after[m] }).toEqual({ m, changed: true });
    expect(before["raft-db1"]).toBe(after["raft-db1"]); // flaredb's members are not chainfire's
    const d = exampleData();
    const moved = exampleData();
    moved.hosts.find((h: any) => h.name === "tappaas-litellm").network = { address: "192.168.10.22/24", gateway: "192.168.10.1" };
    expect(hashes(d)["tappaas-vllm"]).not.toBe(hashes(moved)["tappaas-vllm"]);
  });

  it("re-deploys every host when the users' keys change", () => {
    const before = hashes(exampleData());
    const d = exampleData();
    d.users[0].sshKeys.push("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIx0mJ0nBJ0qvX6Tt0a3K1l0Vq7p1Zb3h9yDqY2s8N4c second@laptop");
    const after = hashes(d);
    expect(Object.keys(before).filter((h) => before[h] === after[h])).toEqual([]);
  });

  it("waits for the platform dependencies in the deploy order, through one barrier per role", () => {
    const resources = synthFleet(exampleInventory()).platform.resource.terraform_data;
    const steps = Object.entries<any>(resources).filter(([key]) => key.includes("_deploy_step_"));
    const byHost = Object.fromEntries(steps.map(([key, s]) => [hostOf(key), s.depends_on]));
    expect(byHost["tappaas-chainfire"]).toEqual([expect.stringMatching(/^proxmox_virtual_environment_vm\.tappaas-chainfire/)]);
    expect(byHost["tappaas-flaredb"]).toEqual([expect.stringMatching(/^proxmox_virtual_environment_vm\.tappaas-flaredb/), "terraform_data.role-barrier-chainfire"]);
    expect(byHost["tappaas-iam"]).toEqual([expect.stringMatching(/^proxmox_virtual_environment_vm\.tappaas-iam/), "terraform_data.role-barrier-flaredb"]);
    // novanet needs iam and flaredb; the iam step already waits for flaredb, so iam is enough.
    expect(byHost["tappaas-novanet"]).toEqual([expect.stringMatching(/^proxmox_virtual_environment_vm\.tappaas-novanet/), "terraform_data.role-barrier-iam"]);
    // each barrier waits for every holder of its role
    expect(resources["role-barrier-flaredb"].depends_on).toEqual([expect.stringMatching(/^terraform_data\.tappaas-flaredb_deploy_step_/)]);
  });
});
