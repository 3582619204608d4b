/**
 * Renders the JSON of `tofu show -json <planfile>` (Terraform/OpenTofu plan format) as Markdown
 * for a pull-request comment: counts, a banner for VMs that would be destroyed or replaced
 * (stateful first), hosts whose NixOS is re-applied and why, imports, drift, and per-resource
 * details with sensitive values masked. Output is sorted, so the comment updates cleanly.
 */

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
  readonly change: PlanChange;
}

export interface Plan {
  readonly format_version: string;
  readonly resource_changes?: ResourceChange[];
  readonly resource_drift?: ResourceChange[];
}

export interface RenderOptions {
  /** Names of stateful hosts; undefined means unknown, and then every VM counts as stateful. */
  readonly statefulHosts?: ReadonlySet<string>;
  readonly allowDestroy?: boolean;
}

export interface Rendered {
  readonly markdown: string;
  /** 0, or EXIT_STATEFUL_DESTROY when a stateful VM would be destroyed or replaced without allowDestroy. */
  readonly exitCode: number;
  readonly counts: Record<Kind, number>;
}

export const EXIT_STATEFUL_DESTROY = 3;
export const EXIT_BAD_INPUT = 2;

type Kind = "create" | "update" | "replace" | "destroy" | "import" | "no-op" | "read";
const VM_TYPES = new Set(["proxmox_virtual_environment_vm", "proxmox_vm"]);
const STEP_TYPES = new Set(["terraform_data", "null_resource"]);

/** Throws an Error with a one-line message when `data` is not a plan. */
export function asPlan(data: unknown): Plan {
  const p = data as Plan;
  if (!p || typeof p !== "object" || typeof p.format_version !== "string" || (!Array.isArray(p.resource_changes) && p.resource_changes !== undefined))
    throw new Error("not a Terraform/OpenTofu plan: expected the JSON of `tofu show -json <planfile>` (format_version, resource_changes)");
  if (!("resource_changes" in p) && !("planned_values" in (p as any)))
    throw new Error("not a Terraform/OpenTofu plan: it has no resource_changes or planned_values (is this `show -json` of a state, not a plan?)");
  return p;
}

export function kindOf(c: PlanChange): Kind {
  const a = c.actions;
  if (a.includes("delete") && a.includes("create")) return "replace";
  if (a.includes("create")) return "create";
  if (a.includes("delete")) return "destroy";
  if (a.includes("update")) return "update";
  if (a.includes("read")) return "read";
  return "no-op";
}

/** The fleet host a resource belongs to, from its name ("<host>_nixos_vm_<hash>", "<host>_deploy_step_<hash>") or its VM name. */
export function hostOf(rc: ResourceChange): string | undefined {
  const m = /^(.*?)_(?:nixos_vm|deploy_step)_[0-9A-F]{8}$/.exec(rc.name);
  if (m) return m[1];
  return rc.change.after?.name ?? rc.change.before?.name ?? undefined;
}

const code = (s: string) => `\`${s.replace(/`/g, "'")}\``;
const html = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
const cell = (s: string) => s.replace(/\|/g, "\\|").replace(/\n/g, " ");

function fmt(v: unknown): string {
  if (v === undefined) return "—";
  const s = JSON.stringify(v);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

/** Flattens a value into path -> leaf, e.g. { "cpu[0].cores": 2 }. */
function flatten(v: unknown, prefix = "", out: Record<string, unknown> = {}): Record<string, unknown> {
  if (Array.isArray(v)) {
    if (v.length === 0) out[prefix] = [];
    v.forEach((x, i) => flatten(x, `${prefix}[${i}]`, out));
  } else if (v && typeof v === "object") {
    const keys = Object.keys(v);
    if (keys.length === 0 && prefix) out[prefix] = {};
    for (const k of keys) flatten((v as any)[k], prefix ? `${prefix}.${k}` : k, out);
  } else out[prefix] = v;
  return out;
}

/** true where the marker tree (before_sensitive / after_unknown) marks `path` or a parent of it. */
function marked(tree: unknown, path: string): boolean {
  if (tree === true) return true;
  if (!tree || typeof tree !== "object" || path === "") return false;
  const m = /^(?:\[(\d+)\]|([^.[]+))/.exec(path);
  if (!m) return false;
  const key = m[1] !== undefined ? Number(m[1]) : m[2];
  return marked((tree as any)[key], path.slice(m[0].length).replace(/^\./, ""));
}

/** Changed attributes of one resource: [path, before, after] with sensitive values masked. */
export function attributeChanges(c: PlanChange): [string, string, string][] {
  const before = c.before == null ? {} : flatten(c.before);
  const after = c.after == null ? {} : flatten(c.after);
  const paths = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort();
  const rows: [string, string, string][] = [];
  for (const p of paths) {
    const unknown = marked(c.after_unknown, p);
    const b = before[p];
    const a = after[p];
    if (!unknown && JSON.stringify(a) === JSON.stringify(b)) continue;
    const sens = marked(c.before_sensitive, p) || marked(c.after_sensitive, p);
    rows.push([p, sens && b !== undefined ? "(sensitive)" : fmt(b), unknown ? "(known after apply)" : sens && a !== undefined ? "(sensitive)" : fmt(a)]);
  }
  // Unknown subtrees that have no concrete leaf in `after`.
  const unknownLeaves = flatten(c.after_unknown ?? {});
  for (const [p, v] of Object.entries(unknownLeaves))
    if (v === true && !(p in after) && !rows.some(([q]) => q === p)) rows.push([p, fmt(before[p]), "(known after apply)"]);
  return rows.sort(([a], [b]) => a.localeCompare(b));
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

export function renderPlans(plans: { label: string; plan: Plan }[], opts: RenderOptions = {}): Rendered {
  const counts: Record<Kind, number> = { create: 0, update: 0, replace: 0, destroy: 0, import: 0, "no-op": 0, read: 0 };
  const lines: string[] = [];
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
      const fleetHost = VM_TYPES.has(rc.type) || STEP_TYPES.has(rc.type) ? hostOf(rc) : undefined;
      const hostPrefix = fleetHost ? `host ${code(fleetHost)}: ` : "";
      if (rc.change.importing) {
        counts.import++;
        imports.push(`- ${hostPrefix}${code(rc.address)} ← ${code(rc.change.importing.id ?? "?")} (${label})`);
      }
      const host = hostOf(rc) ?? rc.address;
      if (VM_TYPES.has(rc.type) && (kind === "destroy" || kind === "replace"))
        dangerous.push({ host, stateful: opts.statefulHosts ? opts.statefulHosts.has(host) : true, kind, address: rc.address, label });
      if (STEP_TYPES.has(rc.type) && (kind === "replace" || kind === "create")) redeploys.push({ host, triggers: kind === "create" ? ["new host"] : triggersChanged(rc.change), label, kind });
      if (kind !== "no-op" && kind !== "read") {
        // A destroy removes everything: listing every attribute would only bury the rest.
        const rows = kind === "destroy" ? [] : attributeChanges(rc.change);
        details.push(
          [
            `<details><summary>${fleetHost ? `<b>${html(fleetHost)}</b> — ` : ""}<code>${html(rc.address)}</code> — ${kind}${rc.change.importing ? " (import)" : ""} (${html(label)})</summary>`,
            "",
            rows.length ? "| attribute | before | after |\n| --- | --- | --- |" : kind === "destroy" ? "_the resource is removed_" : "_no attribute changes_",
            ...rows.slice(0, 60).map(([p, b, a]) => `| ${cell(p)} | ${cell(b)} | ${cell(a)} |`),
            ...(rows.length > 60 ? [`| … ${rows.length - 60} more | | |`] : []),
            "",
            "</details>",
          ].join("\n"),
        );
      }
    }
    for (const rc of [...(plan.resource_drift ?? [])].sort(byAddress)) {
      const changed = attributeChanges(rc.change).map(([p]) => p);
      const driftHost = VM_TYPES.has(rc.type) || STEP_TYPES.has(rc.type) ? hostOf(rc) : undefined;
      drift.push(`- ${driftHost ? `host ${code(driftHost)}: ` : ""}${code(rc.address)} (${label}): ${kindOf(rc.change) === "destroy" ? "deleted outside Terraform" : `changed outside Terraform: ${changed.slice(0, 8).map(code).join(", ") || "attributes"}`}`);
    }
  }

  const labels = plans.map((p) => p.label).sort();
  lines.push(`### Plan: ${labels.join(", ")}`, "");
  lines.push(
    `**${counts.create} to create · ${counts.update} to update · ${counts.replace} to replace · ${counts.destroy} to destroy · ${counts.import} to import · ${counts["no-op"]} unchanged**`,
    "",
  );
  if (dangerous.length) {
    dangerous.sort((a, b) => Number(b.stateful) - Number(a.stateful) || a.host.localeCompare(b.host));
    const stateful = dangerous.filter((d) => d.stateful).length;
    lines.push("> [!CAUTION]", `> **${dangerous.length} VM${dangerous.length > 1 ? "s" : ""} would be destroyed or replaced${stateful ? `, ${stateful} of them stateful` : ""}:**`);
    for (const d of dangerous) lines.push(`> - ${d.stateful ? `**${d.host}** (stateful)` : d.host}: ${d.kind === "replace" ? "replaced (destroyed, then created)" : "destroyed"} — ${code(d.address)} (${d.label})`);
    if (!opts.statefulHosts) lines.push("> _The inventory was not read, so every VM is treated as stateful._");
    lines.push("");
  }
  if (redeploys.length) {
    lines.push("#### NixOS re-applied on", "", "| host | why |", "| --- | --- |");
    for (const r of redeploys.sort((a, b) => a.host.localeCompare(b.host))) {
      const why = r.triggers.length ? r.triggers.join(", ") : dangerous.some((d) => d.host === r.host && d.kind === "replace") ? "its VM is recreated" : "tainted (a previous deploy failed)";
      lines.push(`| ${cell(r.host)} | ${cell(why)} |`);
    }
    lines.push("");
  }
  if (imports.length) lines.push("#### Imports", "", ...imports, "");
  if (drift.length) lines.push("#### Drift", "", ...drift, "");
  if (details.length) lines.push("#### Changes", "", ...details, "");
  if (!details.length && !drift.length) lines.push("_No changes._", "");

  const blocked = dangerous.some((d) => d.stateful) && !opts.allowDestroy;
  if (blocked) lines.push("**This plan would destroy or replace a stateful VM.** Re-run with `--allow-destroy` (or the `allow-destroy` label) if that is intended.", "");
  return { markdown: `${lines.join("\n").trim()}\n`, exitCode: blocked ? EXIT_STATEFUL_DESTROY : 0, counts };
}
