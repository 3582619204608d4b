/**
 * The Proxmox VE API simulator (a STAND-IN for a Proxmox VE cluster, which cannot exist here):
 * the real bpg/proxmox provider talks to it exactly as to PVE. Seeded from an inventory.
 */
import type { Inventory } from "../../constructs/inventory";
import { seedCluster, SeedOptions, SimCluster } from "./state";

export { startSimulator } from "./server";
export type { SimServer, RequestRecord } from "./server";
export { seedCluster, ALL_PRIVILEGES } from "./state";
export { addVm } from "./qemu";
export type { SimCluster, SimVm, SimTask } from "./state";
export { SCHEMA_SOURCE } from "./schema";

/** The cluster an inventory expects before the first apply: its nodes and storages, and the template in mode "existing". */
export function seedFromInventory(inv: Inventory, extra: Partial<SeedOptions> = {}): SimCluster {
  const c = seedCluster({
    nodes: inv.cluster.nodes,
    storage: inv.cluster.storage,
    imageStorage: inv.cluster.imageStorage,
    template: inv.template.mode === "create" ? undefined : { vmid: inv.template.vmid, node: inv.template.node },
    ...extra,
  });
  if (inv.template.imageUrl) c.urls[inv.template.imageUrl] = 2 * 1024 ** 3;
  // The PCI devices the inventory's mappings describe are on their nodes, as the operator says
  // (a test removes or changes one to make a mapping stale).
  for (const m of inv.pciMappings ?? [])
    for (const e of m.map) c.pci[e.node] = { ...(c.pci[e.node] ?? {}), [e.path]: { id: e.id, subsystemId: e.subsystemId, iommuGroup: e.iommuGroup } };
  return c;
}

/** What OpenTofu/Terraform and the bpg provider need to reach a simulator: the built mirror's CLI config and the API credentials. */
export function providerEnv(o: { url: string; token: { id: string; secret: string }; cliConfig: string }): Record<string, string> {
  return {
    TF_CLI_CONFIG_FILE: o.cliConfig,
    CHECKPOINT_DISABLE: "1",
    PROXMOX_VE_ENDPOINT: o.url,
    PROXMOX_VE_API_TOKEN: `${o.token.id}=${o.token.secret}`,
    PROXMOX_VE_INSECURE: "true",
  };
}

let cert: Promise<{ cert: string; key: string }> | undefined;
/** A self-signed certificate for 127.0.0.1/localhost, made once per process (selfsigned, on node-forge). */
export function simulatorCert(): Promise<{ cert: string; key: string }> {
  cert ??= (async () => {
    const selfsigned = require("selfsigned");
    const pems = await selfsigned.generate([{ name: "commonName", value: "pve.sim" }], {
      keyType: "ec",
      curve: "P-256",
      algorithm: "sha256",
      notAfterDate: new Date(Date.now() + 30 * 24 * 3600 * 1000),
      extensions: [{ name: "subjectAltName", altNames: [{ type: 2, value: "localhost" }, { type: 7, ip: "127.0.0.1" }] }],
    });
    return { cert: pems.cert, key: pems.private };
  })();
  return cert;
}
