/**
 * The pull-request comment's layout: its head (failed stacks, counts, retired hosts, impact per
 * host, destroyed or replaced VMs, re-applied hosts, detached disks, failed checks) and the
 * per-resource sections, fitted under GitHub's limit by walking down a ladder of how much of each
 * list and text is shown (scripts/lib/plan-comment.ts gathers the parts from the plans).
 */
import { cellCode, code, fenced, html } from "./plan-markdown";

export type Kind = "create" | "update" | "replace" | "destroy" | "import" | "forget" | "no-op" | "read";

/** A stack whose `plan` failed: its label and Terraform's error output. */
export interface FailedPlan {
  readonly label: string;
  readonly error: string;
}

/** The commit (and workflow run) a comment is for. */
export interface Provenance {
  readonly commit: string;
  readonly runUrl?: string;
}

/** What the comment's head is made of (everything but the per-resource sections). */
export interface Parts {
  labels: string[];
  /** with the hosts and kept stateful VMs their errors name, read once (fit() composes several times) */
  failed: (FailedPlan & { hosts: string[]; kept: string[] })[];
  counts: Record<Kind, number>;
  forgotten: string[];
  impacts: { host: string; impact: string }[];
  dangerous: { host: string; stateful: boolean; kind: Kind; address: string; label: string }[];
  redeploys: { host: string; triggers: string[]; label: string; kind: Kind }[];
  detaching: { host: string; disks: string[]; label: string }[];
  /** failed `check` blocks: "<address> (<stack>): <message>" */
  warnings: string[];
  blocked: boolean;
  nothing: boolean;
}

/** How much of each list and text the head shows; fit() walks down this ladder until the comment fits. */
interface Limits {
  rows: number;
  error: number;
  cell: number;
}
export const LADDER: Limits[] = [
  { rows: 300, error: 4000, cell: 400 },
  { rows: 100, error: 2000, cell: 200 },
  { rows: 30, error: 800, cell: 120 },
  { rows: 10, error: 300, cell: 80 },
  { rows: 3, error: 0, cell: 60 },
  { rows: 0, error: 0, cell: 40 },
];

/** The commit and run a comment belongs to (an old plan must not pass for the newest push's). */
export function provenanceLine(p: Provenance | undefined): string[] {
  if (!p) return [];
  // the URL is checked by the caller (https, no spaces); parentheses are escaped for the link
  const run = p.runUrl ? ` by [this workflow run](${p.runUrl.replace(/[()<>\s]/g, encodeURIComponent)})` : "";
  return [`<sub>Planned for commit <code>${html(p.commit)}</code>${run}; a newer push replaces this comment.</sub>`, ""];
}

export function compose(p: Parts, l: Limits, provenance: string[], entries: string[], note: string): string {
  const head: string[] = [...provenance];
  const cap = <T,>(list: T[], n: number) => ({ shown: list.slice(0, n), more: Math.max(0, list.length - n) });
  const shownLabels = cap(p.labels, Math.max(l.rows, 8));
  head.push(`### Plan: ${shownLabels.shown.map((x) => code(x)).join(", ")}${shownLabels.more ? ` and ${shownLabels.more} more` : ""}`, "");
  const failedShown = cap(p.failed, Math.max(l.rows, 3));
  for (const f of failedShown.shown) {
    const hosts = cap(f.hosts, Math.max(l.rows, 5));
    const kept = cap(f.kept, Math.max(l.rows, 5));
    head.push(
      "> [!WARNING]",
      `> **The plan of stack ${code(f.label)} failed**${hosts.shown.length ? `; hosts involved: ${hosts.shown.map((h) => code(h)).join(", ")}${hosts.more ? ` and ${hosts.more} more` : ""}` : ""}. Nothing below is complete for this stack.`,
      ...kept.shown.map((v) => `> - stateful VM ${code(v)} is no longer in the inventory: **it is kept as it is (running, protected); nothing was changed.** Add it to \`retired\` to stop managing it, or set \`"stateful": false\` first to destroy it later.`),
      ...(kept.more ? [`> - … and ${kept.more} more stateful VMs kept`] : []),
      "",
      ...(l.error ? [fenced(f.error, l.error), ""] : []),
    );
  }
  if (failedShown.more) head.push("> [!WARNING]", `> **The plans of ${failedShown.more} more stacks failed**; their errors are in the workflow run's artifacts.`, "");
  const c = p.counts;
  head.push(`**${c.create} to create · ${c.update} to update · ${c.replace} to replace · ${c.destroy} to destroy · ${c.import} to import${c.forget ? ` · ${c.forget} to forget` : ""} · ${c["no-op"]} unchanged**`, "");
  if (p.warnings.length) {
    const { shown, more } = cap(p.warnings, Math.max(l.rows, 3));
    head.push("> [!WARNING]", "> **Checks that failed** (the plan goes on):", ...shown.map((w) => `> - ${w}`), ...(more ? [`> - … and ${more} more`] : []), "");
  }
  if (p.forgotten.length) {
    const { shown, more } = cap(p.forgotten, l.rows);
    head.push("#### Retired (kept, no longer managed)", "", ...shown, ...(more ? [`- … and ${more} more`] : []), "");
  }
  if (p.impacts.length) {
    const { shown, more } = cap(p.impacts, l.rows);
    head.push("#### Impact per host", "", "| host | what happens to its VM |", "| --- | --- |");
    for (const i of shown) head.push(`| ${cellCode(i.host)} | ${cellCode(i.impact, l.cell)} |`);
    if (more) head.push(`| … ${more} more | |`);
    head.push("");
  }
  if (p.dangerous.length) {
    const stateful = p.dangerous.filter((d) => d.stateful).length;
    head.push("> [!CAUTION]", `> **${p.dangerous.length} VM${p.dangerous.length > 1 ? "s" : ""} would be destroyed or replaced${stateful ? `, ${stateful} of them stateful` : ""}:**`);
    // the stateful ones come first and are never left out before the others
    const { shown, more } = cap(p.dangerous, Math.max(l.rows, Math.min(stateful, 20)));
    for (const d of shown) head.push(`> - ${d.stateful ? `**${code(d.host)}** (stateful)` : code(d.host)}: ${d.kind === "replace" ? "replaced (destroyed, then created)" : "destroyed"} — ${code(d.address, l.cell)} (${code(d.label)})`);
    if (more) head.push(`> - … and ${more} more`);
    head.push("");
  }
  if (p.redeploys.length) {
    head.push("#### NixOS re-applied on", "", "| host | why |", "| --- | --- |");
    const { shown, more } = cap(p.redeploys, l.rows);
    for (const r of shown) {
      const why = r.triggers.length ? r.triggers.join(", ") : p.dangerous.some((d) => d.host === r.host && d.kind === "replace") ? "its VM is recreated" : "tainted (a previous deploy failed)";
      head.push(`| ${cellCode(r.host)} | ${cellCode(why, l.cell)} |`);
    }
    if (more) head.push(`| … and ${more} more | |`);
    head.push("");
  }
  if (p.detaching.length) {
    head.push("> [!CAUTION]", "> **Data disks of stateful VMs would be detached** (Proxmox keeps the volume as `unusedN`, and refuses on a protected VM):");
    const { shown, more } = cap(p.detaching, Math.max(l.rows, 3));
    for (const d of shown) head.push(`> - **${code(d.host)}** (stateful): ${d.disks.slice(0, 8).map((x) => code(x)).join(", ")}${d.disks.length > 8 ? ` and ${d.disks.length - 8} more` : ""} (${code(d.label)})`);
    if (more) head.push(`> - … and ${more} more`);
    head.push("");
  }
  const tail: string[] = [];
  if (p.nothing) tail.push("_No changes._", "");
  if (p.blocked)
    tail.push(
      "**This plan would destroy or replace a VM that Proxmox marks stateful, or detach one of its data disks** (tag `stateful` or protection). To do it on purpose, first merge a change that sets `\"stateful\": false` on the host (that removes the tag and the protection), then remove or replace it; or add the `allow-destroy` label (`--allow-destroy`).",
      "",
    );
  return `${[...head, ...entries, ...(note ? ["", note, ""] : []), ...tail].join("\n").trim()}\n`;
}

/**
 * The comment within `max` characters: the head at the most generous limits that leave room,
 * then as many whole entries (imports, drift, per-resource details) as fit, in order, with a
 * line saying how many were left out and where the full report is. Every list and error text in
 * the head is counted (#29 item 6: banners, the re-applied table and failed stacks' errors).
 */
export function fit(p: Parts, provenance: string[], entries: string[], max: number, where: string): string {
  const counted = entries.filter((e) => e.startsWith("<details>") || e.startsWith("- ")).length;
  const note = (left: number) =>
    left ? `_… ${left} more entr${left === 1 ? "y" : "ies"} left out to stay under GitHub's comment limit; ${where}._` : `_Some lists above are shortened to stay under GitHub's comment limit; ${where}._`;
  for (const l of LADDER) {
    const bare = compose(p, l, provenance, [], note(counted));
    if (bare.length > max) continue;
    const kept: string[] = [];
    let used = bare.length;
    let left = 0;
    for (const e of entries) {
      if (left === 0 && used + e.length + 1 <= max) {
        kept.push(e);
        used += e.length + 1;
      } else if (e.startsWith("<details>") || e.startsWith("- ")) left++;
    }
    // a section heading whose entries were all left out is dropped with them
    while (kept.length && (kept[kept.length - 1] === "" || kept[kept.length - 1].startsWith("####"))) kept.pop();
    const out = compose(p, l, provenance, kept, left || l !== LADDER[0] ? note(left) : "");
    if (out.length <= max) return out;
  }
  // Not even the counts fit (a limit far below GitHub's): the first lines, cut at a line end.
  const bare = compose(p, LADDER[LADDER.length - 1], provenance, [], note(counted));
  const cut = bare.slice(0, Math.max(0, max - 200)).replace(/\n[^\n]*$/, "");
  return `${cut}\n\n${note(counted)}\n`.slice(0, max);
}
