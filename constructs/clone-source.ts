/**
 * What a clone needs from the cluster, read at plan time by the cluster stack (issue #25 M8,
 * docs/adr-0019-provider-hands-off.md).
 *
 * - The datastore every clone is made on (`cluster.storage`) must be enabled on the template's
 *   node and on every node a host is cloned to. Proxmox lists a storage that storage.cfg restricts
 *   to other nodes with enabled 0 (pve-storage src/PVE/Storage.pm storage_info 1440-1478,
 *   storage_check_node 264-278 at 0c56bad: "storage 'X' is not available on node 'Y'"), so the
 *   clone would fail half-way through a deploy. A postcondition on each node's datastore list
 *   fails the plan first, naming the node, the datastore and the hosts.
 * - A host on another node than the template, with the template's disks on storage that is not
 *   shared, is cloned on the template's node and then migrated (bpg v0.112.0
 *   proxmoxtf/resource/vm/vm.go 2386-2466, "clone to the source node and then migrate"): the
 *   API token needs VM.Migrate, and a failed migrate leaves the VM on the template's node,
 *   outside the state; each later apply takes it as the clone (bpg retries a clone refused with
 *   "already exists" as done: proxmox/nodes/vms/vms.go 35-40, proxmox/retry/retry.go 106-160)
 *   and tries the migrate again.
 *   Terraform cannot read a token's privileges, so this is a `check` block: a warning on every
 *   plan and in the pull-request comment, naming the hosts.
 */
import { TerraformStack } from "cdktn";
import { DataProxmoxDatastores } from "../.gen/providers/proxmox/data-proxmox-datastores";
import type { Inventory } from "./inventory";

/** The check block's name (plan-comment shows its warning). */
export const CLONE_PATH_CHECK = "clone_path";

export function checkCloneSource(stack: TerraformStack, inv: Inventory): void {
  const storage = inv.cluster.storage;
  const templateNode = inv.template.node;
  const cloned = inv.hosts.filter((h) => !h.existing);
  const byNode = new Map<string, string[]>([[templateNode, []]]);
  for (const h of cloned) byNode.set(h.node, [...(byNode.get(h.node) ?? []), h.name]);
  const lists = new Map<string, DataProxmoxDatastores>();
  for (const node of [...byNode.keys()].sort()) {
    const hosts = byNode.get(node)!;
    const ds = new DataProxmoxDatastores(stack, `datastores-${node}`, { nodeName: node });
    const what = [...(node === templateNode ? ["the NixOS template"] : []), ...(hosts.length ? [`hosts ${names(hosts)}`] : [])].join(" and ");
    ds.addOverride("lifecycle.postcondition", [
      {
        condition: `\${length([for d in self.datastores : d if d.id == ${JSON.stringify(storage)} && d.enabled != false]) == 1}`,
        error_message:
          `datastore ${JSON.stringify(storage)} (cluster.storage) is not enabled on node ${JSON.stringify(node)}, where ${what} ${hosts.length + (node === templateNode ? 1 : 0) > 1 ? "are" : "is"} cloned: nothing was changed. ` +
          `Make it available there (Datacenter > Storage > ${storage} > Nodes), or set cluster.storage to a datastore every node has.`,
      },
    ]);
    lists.set(node, ds);
  }
  const away = cloned.filter((h) => h.node !== templateNode);
  if (!away.length) return;
  const t = lists.get(templateNode)!;
  const shared = `anytrue([for d in data.${t.terraformResourceType}.${t.friendlyUniqueId}.datastores : d.id == ${JSON.stringify(storage)} && d.shared == true])`;
  const nodes = [...new Set(away.map((h) => h.node))].sort();
  stack.addOverride(`check.${CLONE_PATH_CHECK}`, {
    assert: [
      {
        condition: `\${${shared}}`,
        error_message:
          `hosts ${names(away.map((h) => h.name))} (on ${nodes.join(", ")}) are cloned on ${templateNode} and then migrated, because datastore ${JSON.stringify(storage)} is not shared: ` +
          `the API token needs VM.Migrate (docs/bootstrap.md); without it the apply fails and leaves the VM on ${templateNode} until the token has it (docs/troubleshooting.md). ` +
          `A shared datastore for the template clones them in place.`,
      },
    ],
  });
}

function names(hosts: string[]): string {
  const sorted = [...hosts].sort();
  return sorted.length > 10 ? `${sorted.slice(0, 10).join(", ")} and ${sorted.length - 10} more` : sorted.join(", ");
}
