/**
 * The inventory entry of an adopted VM, as `npm run import` writes it and `npm run discover`
 * suggests it: built from the same values, validated by the same rules (the inventory's schema
 * and rules), inserted into the file's text without reformatting it.
 */
import { applyEdits, modify } from "jsonc-parser";
import { validateInventory, Problem } from "../../constructs/inventory";
import { ROLES, RoleName, isRole } from "../../constructs/roles";

export interface ImportFlags {
  readonly name: string;
  readonly node: string;
  readonly vmid: string | number;
  readonly roles?: readonly string[];
  readonly cores?: string | number;
  readonly memory?: string | number;
  readonly disk?: string | number;
  readonly address?: string;
  readonly gateway?: string;
  readonly stateful?: boolean;
  readonly gpuMapping?: string;
  readonly cuda?: readonly string[];
}

/** A flag's value as the inventory would hold it: whole numbers as numbers, anything else as given (the schema then names it). */
const num = (v: string | number | undefined) => (v === undefined ? undefined : typeof v === "number" ? v : /^-?\d+$/.test(v) ? Number(v) : v);

/** Without roles: a plain NixOS host, sized like the smallest role; with roles, their minimum. */
function minimum(roles: readonly string[], f: "cores" | "memoryMiB" | "diskGiB"): number {
  return Math.max({ cores: 1, memoryMiB: 1024, diskGiB: 10 }[f], ...roles.filter(isRole).map((r) => ROLES[r as RoleName].min[f]));
}

export function hostEntry(f: ImportFlags): Record<string, unknown> {
  const roles = [...(f.roles ?? [])];
  return {
    name: f.name,
    roles,
    vmid: num(f.vmid),
    node: f.node,
    cores: num(f.cores) ?? minimum(roles, "cores"),
    memoryMiB: num(f.memory) ?? minimum(roles, "memoryMiB"),
    diskGiB: num(f.disk) ?? minimum(roles, "diskGiB"),
    network: f.address !== undefined ? { address: f.address, gateway: f.gateway } : { dhcp: true },
    ...(f.gpuMapping !== undefined ? { gpu: { mapping: f.gpuMapping, ...(f.cuda?.length ? { cudaCapabilities: [...f.cuda] } : {}) } } : {}),
    existing: true,
    ...(f.stateful ? { stateful: true } : {}),
  };
}

/** The problems the inventory would have with `entry` added (the inventory itself being valid). */
export function entryProblems(data: any, entry: Record<string, unknown>): Problem[] {
  return validateInventory({ ...data, hosts: [...data.hosts, entry] });
}

/**
 * `text` with `entry` appended to "hosts", everything else byte for byte as it was: the
 * indentation and line endings of the file are used for the new entry (jsonc-parser's modify).
 */
export function insertHost(text: string, entry: Record<string, unknown>): string {
  const eol = text.includes("\r\n") ? "\r\n" : "\n";
  const indent = /^([ \t]+)"/m.exec(text)?.[1] ?? "  ";
  const edits = modify(text, ["hosts", -1], entry, {
    isArrayInsertion: true,
    formattingOptions: { insertSpaces: !indent.includes("\t"), tabSize: indent.includes("\t") ? 1 : indent.length, eol },
  });
  return applyEdits(text, edits);
}
