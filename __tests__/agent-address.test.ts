/**
 * The expression that picks a VM's address from the guest agent's report, evaluated by the real
 * terraform: a terraform_data stands in for the VM (its output has the same two attributes as
 * proxmox_virtual_environment_vm), so the HCL itself is checked, not just its text.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { firstIpv4Expression } from "../constructs/nixos-vm";

function pick(reports: Record<string, { network_interface_names: string[]; ipv4_addresses: string[][] }>): Record<string, string> {
  const dir = mkdtempSync(join(tmpdir(), "agentip-"));
  const config = {
    resource: { terraform_data: Object.fromEntries(Object.entries(reports).map(([k, v]) => [k, { input: v }])) },
    output: Object.fromEntries(Object.keys(reports).map((k) => [k, { value: firstIpv4Expression(`terraform_data.${k}.output`) }])),
  };
  writeFileSync(join(dir, "main.tf.json"), JSON.stringify(config));
  for (const args of [["init", "-input=false"], ["apply", "-auto-approve", "-input=false"]]) {
    const r = spawnSync("terraform", [...args, "-no-color"], { cwd: dir, encoding: "utf8" });
    if (r.status !== 0) throw new Error(r.stdout + r.stderr);
  }
  const out = JSON.parse(spawnSync("terraform", ["output", "-json"], { cwd: dir, encoding: "utf8" }).stdout);
  return Object.fromEntries(Object.entries<any>(out).map(([k, v]) => [k, v.value]));
}

describe("guest-agent address selection under real terraform", () => {
  it("skips lo, loopback and link-local addresses, by interface name not index, and gives \"\" before the agent reports", () => {
    expect(
      pick({
        usual: { network_interface_names: ["lo", "ens18"], ipv4_addresses: [["127.0.0.1"], ["192.168.10.22"]] },
        lo_last: { network_interface_names: ["ens18", "lo"], ipv4_addresses: [["10.0.0.7"], ["127.0.0.1"]] },
        link_local_first: { network_interface_names: ["lo", "ens18", "ens19"], ipv4_addresses: [["127.0.0.1"], ["169.254.3.4", "10.1.2.3"], ["10.9.9.9"]] },
        no_report: { network_interface_names: [], ipv4_addresses: [] },
        only_loopback: { network_interface_names: ["lo"], ipv4_addresses: [["127.0.0.1"]] },
      }),
    ).toEqual({ usual: "192.168.10.22", lo_last: "10.0.0.7", link_local_first: "10.1.2.3", no_report: "", only_loopback: "" });
  });
});
