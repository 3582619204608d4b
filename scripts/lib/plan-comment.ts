/**
 * Renders the JSON of `tofu show -json <planfile>` (Terraform/OpenTofu plan format) as Markdown
 * for a pull-request comment: counts, a banner for VMs that would be destroyed or replaced
 * (stateful first), hosts whose NixOS is re-applied and why, imports, drift, and per-resource
 * details with sensitive values masked. Output is sorted, so the comment updates cleanly.
 */
import { POOL_LEAVE_ID, STATEFUL_TAG } from "../../constructs/markers";
import { detachedDisks, vmImpact } from "./plan-impact";
import { cellCode, code, html } from "./plan-markdown";
import { compose, FailedPlan, fit, Kind, LADDER, Provenance, provenanceLine } from "./plan-layout";
export { STATEFUL_TAG };
export type { FailedPlan };

export interface PlanChange {
  readonly actions: string[];
  readonly before?: any;
  readonly after?: any;
  readonly after_unknown?: any;
  readonly before_sensitive?: any;
  readonly after_sensitive?: any;
  readonly importing?: { readonly id?: string };
}

export interface ResourceChange {
  readonly address: string;
  readonly type: string;
  readonly name: string;
  readonly mode?: string;
  /** The for_each key of an instance. */
  readonly index?: unknown;
  readonly change: PlanChange;
}

export interface Plan {
  readonly format_version: string;
  readonly resource_changes?: ResourceChange[];
  readonly resource_drift?: ResourceChange[];
  /** Checkable objects and their results (`check` blocks, conditions): Terraform's JSON output format. */
  readonly checks?: { address?: { kind?: string; to_display?: string }; status?: string; instances?: { problems?: { message?: string }[] }[] }[];
}

export interface RenderOptions {
  /** Render even when a stateful VM would be destroyed or replaced (exit 0). */
  readonly allowDestroy?: boolean;
  /** Largest comment body; GitHub refuses more than 65,536 characters. @default 65000 */
  readonly maxChars?: number;
  /** Where the full, untruncated Markdown and plan are (said in the note on what was left out). */
  readonly fullReportHint?: string;
  /** The commit (and workflow run) the plans were made for, shown on the first line. */
  readonly provenance?: Provenance;
}

export interface Rendered {
  readonly markdown: string;
  /** The same without truncation (for an artifact). */
  readonly full: string;
  /** 0, or EXIT_STATEFUL_DESTROY when a stateful VM would be destroyed or replaced without allowDestroy. */
  readonly exitCode: number;
  readonly counts: Record<Kind, number>;
}

export const EXIT_STATEFUL_DESTROY = 3;
/** A stack's plan failed (its error is in the comment). */
export const EXIT_PLAN_FAILED = 4;
export const EXIT_BAD_INPUT = 2;

const VM_TYPES = new Set(["proxmox_virtual_environment_vm", "proxmox_vm"]);
const STEP_TYPES = new Set(["terraform_data", "null_resource"]);
const ACTIONS = new Set(["no-op", "create", "read", "update", "delete", "forget"]);

/** Throws an Error with a one-line message when `data` is not a plan. */
export function asPlan(data: unknown): Plan {
  const p = data as Plan;
  if (!p || typeof p !== "object" || Array.isArray(p) || typeof p.format_version !== "string" || (!Array.isArray(p.resource_changes) && p.resource_changes !== undefined))
    throw new Error("not a Terraform/OpenTofu plan: expected the JSON of `tofu show -json <planfile>` (format_version, resource_changes)");
  if (!("resource_changes" in p) && !("planned_values" in (p as any)))
    throw new Error("not a Terraform/OpenTofu plan: it has no resource_changes or planned_values (is this `show -json` of a state, not a plan?)");
  for (const [field, list] of [["resource_changes", p.resource_changes], ["resource_drift", p.resource_drift]] as const) {
    if (list !== undefined && !Array.isArray(list)) throw new Error(`not a Terraform/OpenTofu plan: ${field} is not a list`);
    for (const [i, rc] of (list ?? []).entries()) {
      const ok = rc && typeof rc === "object" && typeof rc.address === "string" && typeof rc.type === "string" && typeof rc.name === "string" && rc.change && typeof rc.change === "object" && Array.isArray(rc.change.actions) && rc.change.actions.every((a: unknown) => typeof a === "string" && ACTIONS.has(a));
      if (!ok) throw new Error(`not a Terraform/OpenTofu plan: ${field}[${i}] lacks address, type, name or change.actions`);
    }
  }
  return p;
}

export function kindOf(c: PlanChange): Kind {
  const a = c.actions;
  if (a.includes("delete") && a.includes("create")) return "replace";
  if (a.includes("create")) return "create";
  if (a.includes("delete")) return "destroy";
  if (a.includes("update")) return "update";
  if (a.includes("read")) return "read";
  // a `removed` block with destroy = false (a retired host): the object stays, unmanaged
  if (a.includes("forget")) return "forget";
  return "no-op";
}

/** The fleet host a resource belongs to, from its name ("<host>_nixos_vm_<hash>", "<host>_deploy_step_<hash>") or its VM name. */
export function hostOf(rc: ResourceChange): string | undefined {
  const m = /^(.*?)_(?:nixos_vm|deploy_step)_[0-9A-F]{8}$/.exec(rc.name);
  if (m) return m[1];
  const n = rc.change.after?.name ?? rc.change.before?.name;
  return typeof n === "string" ? n : undefined;
}

/** The host of a fleet VM or deploy step; undefined for any other resource. */
const fleetHostOf = (rc: ResourceChange) => (VM_TYPES.has(rc.type) || STEP_TYPES.has(rc.type) ? hostOf(rc) : undefined);

/**
 * Whether a VM holds data, from what Proxmox has now (the plan's `before`): the fleet's
 * `stateful` tag or Proxmox's own `protection` flag (which also makes Proxmox refuse the
 * deletion: "can't remove VM N - protection mode enabled", qemu-server src/PVE/API2/Qemu.pm
 * 2827-2829). Neither can be removed in the same pull
 * request that removes the host: the VM resource is gone from the configuration, its prior
 * state is not.
 */
export function statefulBefore(rc: ResourceChange): boolean {
  const b = rc.change.before;
  if (!b || typeof b !== "object") return false;
  return b.protection === true || (Array.isArray(b.tags) && b.tags.includes(STATEFUL_TAG));
}

// ---- a value shown in a cell (every string is escaped where it lands: plan-markdown.ts)

function fmt(v: unknown): string {
  if (v === undefined) return "—";
  const s = JSON.stringify(v);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

// ---- values walked by structure, never by joining paths into strings first

interface Leaf {
  value: unknown;
  sensitive: boolean;
  unknown: boolean;
}
const isIdent = (k: string) => /^[A-Za-z_][A-Za-z0-9_-]*$/.test(k);
const step = (prefix: string, k: string | number) => (typeof k === "number" ? `${prefix}[${k}]` : isIdent(k) ? (prefix ? `${prefix}.${k}` : k) : `${prefix}[${JSON.stringify(k)}]`);
const sub = (tree: unknown, k: string | number): unknown => (tree === true ? true : tree && typeof tree === "object" ? (tree as any)[k] : undefined);

/**
 * Leaves of `v` by display path, each with whether the marker trees mark it or any parent:
 * a sensitive mark collapses the whole subtree into one "(sensitive)" leaf, so nothing under
 * it is looked at, whatever its keys contain (`.`, `[`, `"`).
 */
function leaves(v: unknown, sens: unknown, unk: unknown, prefix = "", out = new Map<string, Leaf>()): Map<string, Leaf> {
  if (sens === true) out.set(prefix, { value: v, sensitive: true, unknown: unk === true });
  else if (unk === true && (v === undefined || v === null)) out.set(prefix, { value: v, sensitive: false, unknown: true });
  else if (Array.isArray(v)) {
    if (v.length === 0) out.set(prefix, { value: [], sensitive: false, unknown: false });
    v.forEach((x, i) => leaves(x, sub(sens, i), sub(unk, i), step(prefix, i), out));
  } else if (v && typeof v === "object") {
    const keys = Object.keys(v);
    if (keys.length === 0 && prefix) out.set(prefix, { value: {}, sensitive: false, unknown: false });
    for (const k of keys) leaves((v as any)[k], sub(sens, k), sub(unk, k), step(prefix, k), out);
  } else out.set(prefix, { value: v, sensitive: false, unknown: unk === true });
  // unknown parts that have no value yet
  if (unk && typeof unk === "object" && sens !== true)
    for (const [k, m] of Object.entries(unk)) {
      const key = Array.isArray(unk) ? Number(k) : k;
      const has = v && typeof v === "object" && (v as any)[key] !== undefined && (v as any)[key] !== null;
      if (!has && m === true) out.set(step(prefix, key), { value: undefined, sensitive: sub(sens, key) === true, unknown: true });
      else if (!has && m && typeof m === "object") leaves(undefined, sub(sens, key), m, step(prefix, key), out);
    }
  return out;
}

/**
 * Both sides' sensitivity marks together: a value marked on either side is masked on both, as
 * Terraform's own plan renderer does (a value that becomes sensitive, after a provider upgrade or
 * a newly sensitive variable, must not show its old value; issue #29 item 2).
 */
function unionMarks(a: any, b: any): any {
  if (a === true || b === true) return true;
  if (a == null || a === false) return b;
  if (b == null || b === false) return a;
  if (Array.isArray(a) && Array.isArray(b)) return Array.from({ length: Math.max(a.length, b.length) }, (_, i) => unionMarks(a[i], b[i]));
  if (typeof a === "object" && typeof b === "object") return Object.fromEntries([...new Set([...Object.keys(a), ...Object.keys(b)])].map((k) => [k, unionMarks(a[k], b[k])]));
  return a || b;
}

/** Changed attributes of one resource: [path, before, after], sensitive values masked. */
export function attributeChanges(c: PlanChange): [string, string, string][] {
  const marks = unionMarks(c.before_sensitive, c.after_sensitive);
  const before = c.before == null ? new Map<string, Leaf>() : leaves(c.before, marks, undefined);
  const after = c.after == null && !c.after_unknown ? new Map<string, Leaf>() : leaves(c.after ?? {}, marks, c.after_unknown);
  const rows: [string, string, string][] = [];
  for (const p of [...new Set([...before.keys(), ...after.keys()])].sort()) {
    const b = before.get(p);
    const a = after.get(p);
    const sensitive = !!(b?.sensitive || a?.sensitive);
    if (!a?.unknown && !sensitive && JSON.stringify(a?.value) === JSON.stringify(b?.value)) continue;
    if (!a?.unknown && sensitive && b && a && b.sensitive === a.sensitive && JSON.stringify(a.value) === JSON.stringify(b.value)) continue;
    const show = (l: Leaf | undefined) => (l === undefined ? "—" : l.sensitive ? "(sensitive)" : fmt(l.value));
    rows.push([p, show(b), a?.unknown ? "(known after apply)" : show(a)]);
  }
  return rows;
}

/** Which trigger of a deploy step changed (vmid, address, config_hash). */
function triggersChanged(c: PlanChange): string[] {
  const key = "triggers_replace" in (c.before ?? {}) || "triggers_replace" in (c.after ?? {}) ? "triggers_replace" : "triggers";
  const b = c.before?.[key] ?? {};
  const a = c.after?.[key] ?? {};
  const unknown = c.after_unknown?.[key];
  const names = [...new Set([...Object.keys(b), ...Object.keys(a), ...(unknown && typeof unknown === "object" ? Object.keys(unknown) : [])])].sort();
  if (unknown === true) return ["all (known after apply)"];
  return names.filter((n) => (unknown && unknown[n] === true) || JSON.stringify(a[n]) !== JSON.stringify(b[n])).map((n) => (unknown && unknown[n] === true ? `${n} (known after apply)` : n));
}

/** Fleet hosts named in Terraform's error text (resource addresses of VMs and deploy steps). */
export function hostsInError(text: string): string[] {
  return [...new Set([...text.matchAll(/(?:proxmox_virtual_environment_vm|terraform_data|null_resource)\.([A-Za-z0-9-]+?)_(?:nixos_vm|deploy_step)_[0-9A-F]{8}/g)].map((m) => m[1]))].sort();
}

/**
 * Stateful VMs the stack's guard found in Proxmox but not in the inventory (constructs/retirement.ts):
 * "<name> (VMID <n> on <node>)" from its error, across OpenTofu's and Terraform's line wrapping.
 */
export function statefulKept(text: string): string[] {
  const flat = text.replace(/\x1b\[[0-9;]*m/g, "").replace(/[│╷╵]/g, " ").replace(/\s+/g, " ");
  const m = /stateful VM\(s\) (.+?) are in Proxmox but not in the inventory/.exec(flat);
  return m ? [...m[1].matchAll(/([a-z][a-z0-9-]*) \(VMID (\d+) on ([^)]+)\)/g)].map((x) => `${x[1]} (VMID ${x[2]} on ${x[3]})`) : [];
}

export function renderPlans(plans: { label: string; plan: Plan }[], opts: RenderOptions = {}, failed: FailedPlan[] = []): Rendered {
  const counts: Record<Kind, number> = { create: 0, update: 0, replace: 0, destroy: 0, import: 0, forget: 0, "no-op": 0, read: 0 };
  const forgotten: string[] = [];
  const impacts: { host: string; impact: string }[] = [];
  const detaching: { host: string; disks: string[]; label: string }[] = [];
  const dangerous: { host: string; stateful: boolean; kind: Kind; address: string; label: string }[] = [];
  const redeploys: { host: string; triggers: string[]; label: string; kind: Kind }[] = [];
  const imports: string[] = [];
  const drift: string[] = [];
  const details: string[] = [];
  const byAddress = (a: ResourceChange, b: ResourceChange) => a.address.localeCompare(b.address);

  for (const { label, plan } of [...plans].sort((a, b) => a.label.localeCompare(b.label))) {
    for (const rc of [...(plan.resource_changes ?? [])].sort(byAddress)) {
      if (rc.mode === "data") continue;
      const kind = kindOf(rc.change);
      counts[kind]++;
      // Reviewers think in host names: every VM and deploy step is shown with its host.
      const fleetHost = fleetHostOf(rc);
      const hostPrefix = fleetHost ? `host ${code(fleetHost)}: ` : "";
      if (rc.change.importing) {
        counts.import++;
        imports.push(`- ${hostPrefix}${code(rc.address)} ← ${code(String(rc.change.importing.id ?? "?"))} (${code(label)})`);
      }
      const host = hostOf(rc) ?? rc.address;
      if (VM_TYPES.has(rc.type) && kind !== "no-op" && kind !== "read") impacts.push({ host: `${hostOf(rc) ?? rc.address} (${label})`, impact: vmImpact(rc.change) });
      const detached = VM_TYPES.has(rc.type) && kind === "update" && statefulBefore(rc) ? detachedDisks(rc.change) : [];
      if (detached.length) detaching.push({ host: hostOf(rc) ?? rc.address, disks: detached, label });
      if (VM_TYPES.has(rc.type) && kind === "forget") forgotten.push(`- host ${code(host)}: ${code(rc.address)} (${code(label)}) — the VM keeps running as it is; Terraform no longer manages it (retired)`);
      if (VM_TYPES.has(rc.type) && (kind === "destroy" || kind === "replace")) dangerous.push({ host, stateful: statefulBefore(rc), kind, address: rc.address, label });
      // a host that lost its pool (constructs/pool-leave.ts): its VM leaves it; no deploy
      const leaving = rc.type === "terraform_data" && rc.name === POOL_LEAVE_ID;
      const pool = leaving && kind === "create" ? rc.change.after?.input?.pool : undefined;
      if (typeof pool === "string" && pool) impacts.push({ host: `${String(rc.index)} (${label})`, impact: `leaves pool ${pool} (the provider never takes a VM out of a pool)` });
      if (STEP_TYPES.has(rc.type) && !leaving && (kind === "replace" || kind === "create")) redeploys.push({ host, triggers: kind === "create" ? ["new host"] : triggersChanged(rc.change), label, kind });
      if (kind !== "no-op" && kind !== "read") {
        // A destroy removes everything: listing every attribute would only bury the rest.
        const rows = kind === "destroy" ? [] : attributeChanges(rc.change);
        details.push(
          [
            `<details><summary>${fleetHost ? `<b>${html(fleetHost)}</b> — ` : ""}<code>${html(rc.address)}</code> — ${kind}${rc.change.importing ? " (import)" : ""} (${html(label)})</summary>`,
            "",
            rows.length ? "| attribute | before | after |\n| --- | --- | --- |" : kind === "destroy" ? "_the resource is removed_" : "_no attribute changes_",
            ...rows.slice(0, 60).map(([p, b, a]) => `| ${cellCode(p)} | ${cellCode(b)} | ${cellCode(a)} |`),
            ...(rows.length > 60 ? [`| … ${rows.length - 60} more | | |`] : []),
            "",
            "</details>",
          ].join("\n"),
        );
      }
    }
    for (const rc of [...(plan.resource_drift ?? [])].sort(byAddress)) {
      const changed = attributeChanges(rc.change).map(([p]) => p);
      const driftHost = fleetHostOf(rc);
      drift.push(`- ${driftHost ? `host ${code(driftHost)}: ` : ""}${code(rc.address)} (${code(label)}): ${kindOf(rc.change) === "destroy" ? "deleted outside Terraform" : `changed outside Terraform: ${changed.slice(0, 8).map((c) => code(c)).join(", ") || "attributes"}`}`);
    }
  }

  // a failed `check` block is a warning: the plan goes on (constructs/clone-source.ts has one)
  const warnings = plans.flatMap(({ label, plan }) =>
    (Array.isArray(plan.checks) ? plan.checks : [])
      .filter((c) => c?.address?.kind === "check" && c.status === "fail")
      .flatMap((c) => (c.instances ?? []).flatMap((i) => i.problems ?? []).map((pr) => `${code(String(c.address?.to_display ?? "check"))} (${code(label)}): ${String(pr.message ?? "").replace(/\s+/g, " ").slice(0, 600)}`)),
  );
  const blocked = (dangerous.some((d) => d.stateful) || detaching.length > 0) && !opts.allowDestroy;
  const max = opts.maxChars ?? 65000;
  const hint = opts.fullReportHint ?? "the full report is in the workflow run's artifacts";
  const parts = { labels: [...plans.map((p) => p.label), ...failed.map((f) => f.label)].sort(), failed: [...failed].sort((a, b) => a.label.localeCompare(b.label)).map((f) => ({ ...f, hosts: hostsInError(f.error), kept: statefulKept(f.error) })), counts, forgotten: forgotten.sort(), impacts: impacts.sort((a, b) => a.host.localeCompare(b.host)), dangerous: dangerous.sort((a, b) => Number(b.stateful) - Number(a.stateful) || a.host.localeCompare(b.host)), redeploys: redeploys.sort((a, b) => a.host.localeCompare(b.host)), detaching: detaching.sort((a, b) => a.host.localeCompare(b.host)), warnings: [...new Set(warnings)].sort(), blocked, nothing: !details.length && !drift.length && !failed.length };
  const sections = [imports.length ? ["#### Imports", "", ...imports, ""] : [], drift.length ? ["#### Drift", "", ...drift, ""] : [], details.length ? ["#### Changes", "", ...details, ""] : []];
  const provenance = provenanceLine(opts.provenance);
  const full = compose(parts, LADDER[0], provenance, sections.flat(), "");
  let markdown = full;
  if (full.length > max) markdown = fit(parts, provenance, sections.flat(), max, hint);
  return { markdown, full, exitCode: failed.length ? EXIT_PLAN_FAILED : blocked ? EXIT_STATEFUL_DESTROY : 0, counts };
}

