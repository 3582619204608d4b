/**
 * npm run import -- --name <host> --node <node> --vmid <n> [--role <role> ...]
 *                   [--cores N] [--memory MiB] [--disk GiB] [--address CIDR --gateway IP]
 *                   [--gpu-mapping NAME [--cuda X.Y ...]] [--stateful]
 *
 * Adds an existing VM to the inventory as `"existing": true` (its VM resource then carries an
 * import block), validated like every other host (same schema, same messages). Refuses
 * duplicate names and VMIDs. Holds an exclusive lock on the inventory while it reads, checks
 * and writes (concurrent imports wait for each other and all land); writes through a symlink to
 * its target, keeps the file's mode and owner, and changes nothing in the file but the new
 * entry (indentation and line endings kept). Writes nothing when anything is wrong.
 * Exit codes: 0 added, 2 refused (one line per problem says why).
 */
import { parseArgs } from "node:util";
import { accessSync, constants, readFileSync, realpathSync, statSync } from "node:fs";
import { lock } from "proper-lockfile";
import writeFileAtomic from "write-file-atomic";
import { fleetFilePath, formatProblem, parseInventory, InventoryError, stackOf } from "../constructs/inventory";
import { ROLE_NAMES } from "../constructs/roles";
import { entryProblems, hostEntry, insertHost } from "./lib/import-entry";
import { blockingStdio } from "./lib/stdio";

// output reaches a pipe whole before the process exits (scripts/lib/stdio.ts)
blockingStdio();

const HELP = `Usage: npm run import -- --name <host> --node <node> --vmid <n> [--role <role>...]
       [--cores N] [--memory MiB] [--disk GiB] [--address CIDR --gateway IP]
       [--gpu-mapping NAME [--cuda X.Y ...]] [--stateful]
Roles: ${ROLE_NAMES.join(", ")}
Without --role the host is a plain NixOS host (base modules only). Without --address it uses DHCP.
A vllm host needs --gpu-mapping (a pciMappings name; --cuda sets its compute capabilities).
Sizes default to the roles' minimum; give the VM's real values (npm run discover prints them)
so the plan after the import is a no-op.`;

function refuse(message: string): never {
  process.stderr.write(`import: ${message}\n`);
  process.exit(2);
}

const STRINGS = ["name", "node", "vmid", "role", "cores", "memory", "disk", "address", "gateway", "gpu-mapping", "cuda"] as const;

async function main() {
  // A value that starts with "-" (--vmid -5) is the option's value, not another option: the
  // inventory's rules then say what is wrong with it.
  const argv = process.argv.slice(2);
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (STRINGS.some((s) => argv[i] === `--${s}`) && /^-\d/.test(argv[i + 1] ?? "")) args.push(`${argv[i]}=${argv[++i]}`);
    else args.push(argv[i]);
  }
  let values: Record<string, any>;
  try {
    ({ values } = parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: {
        ...Object.fromEntries(STRINGS.map((s) => [s, { type: "string" as const, multiple: s === "role" || s === "cuda" }])),
        stateful: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (e) {
    refuse(`${(e as Error).message.split("\n")[0]}; see --help`);
  }
  if (values.help) return void process.stdout.write(`${HELP}\n`);
  const missing = ["name", "node", "vmid"].filter((k) => values[k] === undefined);
  if (missing.length) refuse(`missing ${missing.map((m) => `--${m}`).join(", ")}; see --help`);
  if (values.gateway !== undefined && values.address === undefined) refuse("--gateway needs --address (the static address in CIDR form, e.g. 10.0.0.5/24); without --address the host uses DHCP");
  if (values.cuda !== undefined && values["gpu-mapping"] === undefined) refuse("--cuda needs --gpu-mapping (the pciMappings name of the VM's GPU)");

  const configured = fleetFilePath();
  let file: string;
  try {
    // the target of a symlinked inventory: lock, read and write it there
    file = realpathSync(configured);
  } catch {
    refuse(`cannot read the inventory ${configured}; set FLEET_FILE`);
  }
  // write-file-atomic renames a new file over the inventory, which a read-only mode does not
  // stop: a file its owner made read-only is refused here, before anything is read or locked
  // (checked by its mode bits too: root may write any file, but a 0444 inventory is a decision)
  try {
    accessSync(file, constants.W_OK);
    if ((statSync(file).mode & 0o222) === 0) throw new Error("no write bit");
  } catch {
    refuse(`${configured} is read-only (mode ${(statSync(file).mode & 0o777).toString(8).padStart(4, "0")}); nothing was written: make it writable (chmod u+w) if you mean to add the host`);
  }
  const release = await lock(file, { realpath: false, stale: 30_000, retries: { retries: 200, minTimeout: 25, maxTimeout: 250 } }).catch((e: Error) => refuse(`cannot lock ${file}: ${e.message}`));
  try {
    const text = readFileSync(file, "utf8");
    let data: any;
    try {
      data = parseInventory(text, configured);
    } catch (e) {
      if (e instanceof InventoryError) refuse(`fix the inventory first:\n${e.message}`);
      throw e;
    }
    const entry = hostEntry({
      name: values.name,
      node: values.node,
      vmid: values.vmid,
      roles: values.role ?? [],
      cores: values.cores,
      memory: values.memory,
      disk: values.disk,
      address: values.address,
      gateway: values.gateway,
      stateful: values.stateful,
      gpuMapping: values["gpu-mapping"],
      cuda: values.cuda,
    });
    const byName = data.hosts.find((h: any) => h.name === entry.name);
    if (byName) refuse(`host "${entry.name}" is already in ${configured} (vmid ${byName.vmid}); pick another --name or edit that entry`);
    const byVmid = data.hosts.find((h: any) => h.vmid === entry.vmid);
    if (byVmid) refuse(`vmid ${entry.vmid} is already in ${configured} as host "${byVmid.name}"; nothing to import`);
    const problems = entryProblems(data, entry);
    if (problems.length) refuse(`the new entry is not valid; nothing was written:\n${problems.map((p) => formatProblem(configured, p)).join("\n")}`);

    const updated = insertHost(text, entry);
    parseInventory(updated, configured); // the text written is the inventory checked
    // write-file-atomic: a temp file renamed over the target, with the target's mode and owner
    await writeFileAtomic(file, updated);
    const stack = stackOf(entry as any);
    process.stdout.write(
      [
        `added host "${entry.name}" (existing VM ${entry.vmid} on ${entry.node}) to ${configured}`,
        "next:",
        `  1. npx cdktf diff ${stack}      # the VM shows as an import of ${entry.node}/${entry.vmid}, not a create`,
        `  2. if the plan wants to change the VM's name, tags, pool or on-boot, set them in ${configured} to the VM's values and diff again (its cores, memory, disks and devices are left as they are: an adopted VM keeps them)`,
        `  3. npx cdktf deploy ${stack}    # imports the VM into state, then applies its NixOS configuration`,
        "",
      ].join("\n"),
    );
  } finally {
    await release();
  }
}

main().catch((e) => refuse(`unexpected error: ${(e as Error)?.message ?? e}`));
