/**
 * Generates valid inventories of any size with mixed roles, for the benchmark (and its test).
 * Every fleet has the platform chain (chainfire, flaredb, iam), the rest rotates through the
 * roles; vLLM hosts get the GPU mapping of their node, which has a device for each of them.
 */
import { ROLE_NAMES, RoleName } from "../../constructs/roles";

const KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMBdEQbWhgNDvUkSvdg4aRf6CDzDCIrCGUKcIJmGvsZo bench@laptop";

export function generateInventory(hosts: number, opts: { nodes?: number; roles?: RoleName[] } = {}): any {
  const nodes = Array.from({ length: opts.nodes ?? 4 }, (_, i) => `pve${i + 1}`);
  const rotation: RoleName[] = opts.roles ?? [...ROLE_NAMES];
  const list: any[] = [];
  for (let i = 0; i < hosts; i++) {
    const role: RoleName = opts.roles ? rotation[i % rotation.length] : i < 3 ? (["chainfire", "flaredb", "iam"] as RoleName[])[i] : rotation[i % rotation.length];
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
