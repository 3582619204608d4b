/**
 * Generates valid inventories of any size with mixed roles, for the benchmark (and its test).
 * Every fleet starts with the platform chain as a real one is built: Raft clusters of three
 * (chainfire, flaredb), then iam and two LiteLLM gateways; the rest rotates through the other
 * roles. (Rotating the Raft roles and LiteLLM too made clusters of hundreds of members and
 * gateways listing hundreds of upstreams: every member lists every other, so the output grew
 * with the square of the fleet, which no fleet does.) vLLM hosts get the GPU mapping of their
 * node, which has a device for each of them.
 */
import { ROLE_NAMES, RoleName } from "../../constructs/roles";

const KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMBdEQbWhgNDvUkSvdg4aRf6CDzDCIrCGUKcIJmGvsZo bench@laptop";

export function generateInventory(hosts: number, opts: { nodes?: number; roles?: RoleName[] } = {}): any {
  // more nodes past 16,000 hosts: a node maps at most 1024 GPUs (the schema's limit)
  const nodes = Array.from({ length: opts.nodes ?? Math.max(4, Math.ceil(hosts / 4000)) }, (_, i) => `pve${i + 1}`);
  const head: RoleName[] = ["chainfire", "chainfire", "chainfire", "flaredb", "flaredb", "flaredb", "iam", "litellm", "litellm"];
  const rotation: RoleName[] = opts.roles ?? ROLE_NAMES.filter((r) => !["chainfire", "flaredb", "litellm"].includes(r));
  const list: any[] = [];
  for (let i = 0; i < hosts; i++) {
    const role: RoleName = opts.roles ? rotation[i % rotation.length] : i < head.length ? head[i] : rotation[i % rotation.length];
    const node = nodes[i % nodes.length];
    const gpu = role === "vllm";
    list.push({
      name: `h${String(i).padStart(4, "0")}-${role}`,
      roles: [role],
      vmid: 1000 + i,
      node,
      cores: gpu ? 8 : 2,
      memoryMiB: gpu ? 32768 : 4096,
      diskGiB: gpu ? 80 : 20,
      network: i % 5 === 4 ? { dhcp: true } : { address: `10.${20 + Math.floor(i / 250)}.${(i % 250) + 1}.10/16`, gateway: `10.${20 + Math.floor(i / 250)}.0.1` },
      ...(gpu ? { gpu: { mapping: `gpu-${node}` } } : {}),
      tags: ["bench"],
      stateful: ["chainfire", "flaredb", "lightningstor", "cicd"].includes(role),
    });
  }
  return {
    cluster: { nodes, storage: "local-lvm", bridge: "vmbr0", domain: "bench.lan", dns: ["10.20.0.1"] },
    template: { vmid: 900, node: nodes[0] },
    // one device per vLLM host on each node: a passed-through GPU serves one VM
    pciMappings: nodes.map((n) => {
      const gpus = Math.max(1, list.filter((h) => h.node === n && h.gpu).length);
      return { name: `gpu-${n}`, map: Array.from({ length: gpus }, (_, i) => ({ node: n, id: "10de:2204", path: `0000:${(Math.floor(i / 32) + 1).toString(16).padStart(2, "0")}:${(i % 32).toString(16).padStart(2, "0")}.0`, subsystemId: "10de:147d", iommuGroup: 14 + i })) };
    }),
    users: [{ name: "admin", sshKeys: [KEY] }],
    hosts: list,
  };
}
