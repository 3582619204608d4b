/**
 * npm run import -- --name <host> --node <node> --vmid <n> [--role <role> ...]
 *                   [--cores N] [--memory MiB] [--disk GiB] [--address CIDR --gateway IP] [--stateful]
 *
 * Adds an existing VM to the inventory as `"existing": true` (its VM resource then carries an
 * import block), validated like every other host. Refuses duplicate names and VMIDs. Writes
 * nothing when anything is wrong. Exit codes: 0 added, 2 refused (message says why).
 */
import { minimist } from "zx";
import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { fleetFilePath, formatProblem, parseInventory, InventoryError, stackOf, validateInventory } from "../constructs/inventory";
import { ROLES, ROLE_NAMES, isRole } from "../constructs/roles";

const HELP = `Usage: npm run import -- --name <host> --node <node> --vmid <n> [--role <role>...]
       [--cores N] [--memory MiB] [--disk GiB] [--address CIDR --gateway IP] [--stateful]
Roles: ${ROLE_NAMES.join(", ")}
Without --role the host is a plain NixOS host (base modules only). Without --address it uses DHCP. Sizes default to the VM's role minimum; give the VM's real
values (npm run discover prints them) so the plan after the import is a no-op.`;

function refuse(message: string): never {
  process.stderr.write(`import: ${message}\n`);
  process.exit(2);
}

function main() {
  const a = minimist(process.argv.slice(2), {
    string: ["name", "node", "vmid", "role", "cores", "memory", "disk", "address", "gateway"],
    boolean: ["stateful", "help"],
    alias: { h: "help" },
  });
  if (a.help) return void process.stdout.write(`${HELP}\n`);
  for (const k of Object.keys(a)) if (!["_", "name", "node", "vmid", "role", "cores", "memory", "disk", "address", "gateway", "stateful", "help", "h"].includes(k)) refuse(`unknown option --${k}; see --help`);
  const missing = ["name", "node", "vmid"].filter((k) => !a[k]);
  if (missing.length) refuse(`missing ${missing.map((m) => `--${m}`).join(", ")}; see --help`);
  const roles: string[] = a.role === undefined ? [] : ([] as string[]).concat(a.role);
  const unknownRoles = roles.filter((r) => !isRole(r));
  if (unknownRoles.length) refuse(`unknown role ${unknownRoles.join(", ")}; known roles: ${ROLE_NAMES.join(", ")}`);
  const int = (k: string, v: unknown) => {
    if (v === undefined) return undefined;
    if (!/^\d+$/.test(String(v))) refuse(`--${k} must be a whole number, got "${v}"`);
    return Number(v);
  };
  const vmid = int("vmid", a.vmid)!;
  // Without roles: a plain NixOS host, sized like the smallest role.
  const min = (f: "cores" | "memoryMiB" | "diskGiB") => Math.max({ cores: 1, memoryMiB: 1024, diskGiB: 10 }[f], ...roles.map((r) => ROLES[r as keyof typeof ROLES].min[f]));

  const file = fleetFilePath();
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    refuse(`cannot read the inventory ${file}; set FLEET_FILE`);
  }
  try {
    parseInventory(text, file);
  } catch (e) {
    if (e instanceof InventoryError) refuse(`fix the inventory first:\n${e.message}`);
    throw e;
  }
  const data = JSON.parse(text);
  const byName = data.hosts.find((h: any) => h.name === a.name);
  if (byName) refuse(`host "${a.name}" is already in ${file} (vmid ${byName.vmid}); pick another --name or edit that entry`);
  const byVmid = data.hosts.find((h: any) => h.vmid === vmid);
  if (byVmid) refuse(`vmid ${vmid} is already in ${file} as host "${byVmid.name}"; nothing to import`);

  const host: Record<string, unknown> = {
    name: a.name,
    roles,
    vmid,
    node: a.node,
    cores: int("cores", a.cores) ?? min("cores"),
    memoryMiB: int("memory", a.memory) ?? min("memoryMiB"),
    diskGiB: int("disk", a.disk) ?? min("diskGiB"),
    network: a.address ? { address: a.address, gateway: a.gateway } : { dhcp: true },
    existing: true,
    ...(a.stateful ? { stateful: true } : {}),
  };
  data.hosts.push(host);
  const problems = validateInventory(data);
  if (problems.length) refuse(`the new entry is not valid; nothing was written:\n${problems.map((p) => formatProblem(file, p)).join("\n")}`);

  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, `${JSON.stringify(data, null, 2)}\n`);
  renameSync(tmp, file);
  const stack = stackOf(host as any);
  process.stdout.write(
    [
      `added host "${a.name}" (existing VM ${vmid} on ${a.node}) to ${file}`,
      "next:",
      `  1. npx cdktf diff ${stack}      # the VM shows as an import of ${a.node}/${vmid}, not a create`,
      `  2. if the plan wants to change cores/memory/tags, set them in ${file} to the VM's values and diff again`,
      `  3. npx cdktf deploy ${stack}    # imports the VM into state, then applies its NixOS configuration`,
      "",
    ].join("\n"),
  );
}

main();
