import { spawnSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { App } from "cdktn";
import { buildFleet } from "../stacks/fleet";
import { parseInventory } from "../constructs/inventory";
import { renderPlans, asPlan, EXIT_STATEFUL_DESTROY } from "../scripts/lib/plan-comment";
import { ROOT } from "./helpers";

const FIXTURES = join(__dirname, "fixtures", "plans");
const fixture = (name: string) => asPlan(JSON.parse(readFileSync(join(FIXTURES, name), "utf8")));

function cli(args: string[], input?: { file: string; text: string }) {
  if (input) writeFileSync(input.file, input.text);
  const r = spawnSync("node", ["--import", "tsx", join(ROOT, "scripts", "plan-comment.ts"), ...args], { cwd: ROOT, encoding: "utf8" });
  return { status: r.status, out: r.stdout, err: r.stderr };
}

describe("plan comment from hand-written Proxmox plan fixtures", () => {
  const r = renderPlans([{ label: "platform", plan: fixture("proxmox-mixed.json") }]);

  it("counts creates, updates, replaces, destroys, imports and no-ops", () => {
    expect(r.counts).toMatchObject({ create: 1, update: 1, replace: 3, destroy: 1, import: 1, "no-op": 2 });
    expect(r.markdown).toContain("**1 to create · 1 to update · 3 to replace · 1 to destroy · 1 to import · 2 unchanged**");
  });

  it("puts a loud banner on VMs destroyed or replaced, stateful hosts first", () => {
    const banner = r.markdown.split("\n").filter((l) => l.startsWith(">"));
    expect(banner[0]).toBe("> [!CAUTION]");
    expect(banner[1]).toBe("> **2 VMs would be destroyed or replaced, 1 of them stateful:**");
    expect(banner[2]).toMatch(/^> - \*\*`tappaas-flaredb`\*\* \(stateful\): replaced/);
    expect(banner[3]).toMatch(/^> - `tappaas-novanet`: destroyed/);
  });

  it("exits non-zero for a stateful VM unless destruction is allowed", () => {
    expect(r.exitCode).toBe(EXIT_STATEFUL_DESTROY);
    expect(renderPlans([{ label: "platform", plan: fixture("proxmox-mixed.json") }], { allowDestroy: true }).exitCode).toBe(0);
    expect(renderPlans([{ label: "ai", plan: fixture("proxmox-create.json") }]).exitCode).toBe(0);
  });

  it("names the hosts whose NixOS is re-applied and which trigger changed", () => {
    expect(r.markdown).toContain("| `tappaas-iam` | `config_hash` |");
    expect(r.markdown).toContain("| `tappaas-flaredb` | `its VM is recreated` |");
  });

  it("lists imports and drift", () => {
    expect(r.markdown).toContain("- host `legacy-git`: `proxmox_virtual_environment_vm.legacy-git_nixos_vm_0A1B2C3D` ← `pve2/150` (`platform`)");
    expect(r.markdown).toMatch(/#### Drift\n\n- host `tappaas-chainfire`: `proxmox_virtual_environment_vm\.tappaas-chainfire_nixos_vm_11111111` \(`platform`\): changed outside Terraform: `tags\[1\]`/);
  });

  it("shows attribute changes per resource and masks sensitive values", () => {
    expect(r.markdown).toContain("<details><summary><b>tappaas-openwebui</b> — <code>proxmox_virtual_environment_vm.tappaas-openwebui_nixos_vm_3EE858B4</code> — update (platform)</summary>");
    expect(r.markdown).toContain("| `memory[0].dedicated` | `8192` | `16384` |");
    expect(r.markdown).toContain("| `node_name` | `\"pve1\"` | `\"pve2\"` |");
    expect(r.markdown).toContain("| `ipv4_addresses` | `—` | `(known after apply)` |");
    const created = r.markdown.slice(r.markdown.indexOf("tappaas-newhost_nixos_vm"));
    expect(created).toContain("| `initialization[0].user_account[0].password` | `—` | `(sensitive)` |");
    expect(r.markdown).not.toMatch(/password \| [^(|]*"[^"]+"/);
  });

  it("renders the same comment whatever the order of the plan's entries", () => {
    const plan = fixture("proxmox-mixed.json");
    const shuffled = { ...plan, resource_changes: [...plan.resource_changes!].reverse() };
    expect(renderPlans([{ label: "platform", plan: shuffled }]).markdown).toBe(r.markdown);
  });

  it("decides what is stateful from Proxmox's side (the prior state's tag or protection), not from an inventory", () => {
    const plan = fixture("proxmox-mixed.json");
    const untagged = JSON.parse(JSON.stringify(plan));
    for (const rc of untagged.resource_changes) if (rc.change.before) (rc.change.before.tags = ["nixos"]), delete rc.change.before.protection;
    expect(renderPlans([{ label: "platform", plan: untagged }]).exitCode).toBe(0);
    const protectedOnly = JSON.parse(JSON.stringify(untagged));
    protectedOnly.resource_changes.find((rc: any) => rc.address.includes("novanet")).change.before.protection = true;
    expect(renderPlans([{ label: "platform", plan: protectedOnly }]).exitCode).toBe(EXIT_STATEFUL_DESTROY);
  });
});

describe("npm run plan-comment", () => {
  const dir = mkdtempSync(join(tmpdir(), "plancomment-"));

  it("prints Markdown and exits 3 for a stateful VM replacement, 0 with --allow-destroy", () => {
    const a = cli([join(FIXTURES, "proxmox-mixed.json")]);
    expect(a.status).toBe(3);
    expect(a.out).toContain("### Plan: `proxmox-mixed`");
    expect(cli([join(FIXTURES, "proxmox-mixed.json"), "--allow-destroy"]).status).toBe(0);
  });

  it("refuses input that is not JSON, or not a plan, with one line and status 2", () => {
    const notJson = cli([join(dir, "x.json")], { file: join(dir, "x.json"), text: "Plan: 1 to add" });
    expect(notJson.status).toBe(2);
    expect(notJson.err.trim().split("\n")).toHaveLength(1);
    expect(notJson.err).toContain("not JSON");
    const notPlan = cli([join(dir, "y.json")], { file: join(dir, "y.json"), text: '{"hello": "world"}' });
    expect(notPlan.status).toBe(2);
    expect(notPlan.err).toMatch(/^plan-comment: .*y\.json: not a Terraform\/OpenTofu plan/);
    for (const [i, bad] of ['{"format_version":"1.2","resource_changes":[null]}', '{"format_version":"1.2","resource_changes":[{"address":"a.b","type":"a","name":"b"}]}', '{"format_version":"1.2","resource_changes":[{"address":"a.b","type":"a","name":"b","change":{"actions":"delete"}}]}'].entries()) {
      const r = cli([join(dir, `bad${i}.json`)], { file: join(dir, `bad${i}.json`), text: bad });
      expect({ status: r.status, lines: r.err.trim().split("\n").length }).toEqual({ status: 2, lines: 1 });
      expect(r.err).toMatch(/resource_changes\[0\] lacks address, type, name or change\.actions/);
    }
  });

  it("refuses an unknown option instead of ignoring it", () => {
    const r = cli([join(FIXTURES, "proxmox-mixed.json"), "--allow-destory"]);
    expect(r.status).toBe(2);
    expect(r.err).toMatch(/^plan-comment: unknown option --allow-destory/);
  });
});

describe("plan comment from real `terraform show -json` of deploy-step stacks", () => {
  it("reports creates, replacements with their trigger, and destroys", () => {
    const root = mkdtempSync(join(tmpdir(), "realplan-"));
    cpSync(join(ROOT, "nixos"), join(root, "nixos"), { recursive: true });
    const data = JSON.parse(readFileSync(join(ROOT, "examples", "ha-3-node-platform.json"), "utf8"));
    const synth = (d: any) => {
      const app = new App({ outdir: join(root, "cdktf.out"), skipValidation: true });
      buildFleet(app, parseInventory(JSON.stringify(d)), { root, manageVms: false, deployCommand: "true", deployWorkingDir: root });
      app.synth();
    };
    const dir = join(root, "cdktf.out", "stacks", "platform");
    const tf = (...args: string[]) => {
      const r = spawnSync("terraform", args, { cwd: dir, encoding: "utf8" });
      if (r.status !== 0) throw new Error(r.stdout + r.stderr);
      return r.stdout;
    };
    synth(data);
    tf("init", "-input=false", "-no-color");
    tf("apply", "-auto-approve", "-input=false", "-no-color");

    // One role module changes, one host goes away, one host is added.
    writeFileSync(join(root, "nixos", "modules", "platform", "fiberlb.nix"), readFileSync(join(root, "nixos", "modules", "platform", "fiberlb.nix"), "utf8") + "# changed\n");
    data.hosts = data.hosts.filter((h: any) => h.name !== "edge3");
    data.hosts.push({ name: "edge4", roles: ["lightningstor"], vmid: 9124, node: "pve1", cores: 2, memoryMiB: 4096, diskGiB: 30, network: { dhcp: true } });
    synth(data);
    tf("plan", "-out", "plan.bin", "-input=false", "-no-color");
    const json = asPlan(JSON.parse(tf("show", "-json", "plan.bin")));

    const r = renderPlans([{ label: "platform", plan: json }]);
    expect(r.counts).toMatchObject({ create: 1, replace: 1, destroy: 1 });
    expect(r.markdown).toContain("| `edge2` | `config_hash` |");
    expect(r.markdown).toContain("| `edge4` | `new host` |");
    expect(r.markdown).toMatch(/<code>terraform_data\.edge3_deploy_step_[0-9A-F]{8}<\/code> — destroy/);
    expect(r.exitCode).toBe(0);
  });
});

describe("plan comment against hostile plans", () => {
  const MarkdownIt = require("markdown-it");
  const md = new MarkdownIt({ html: true });
  /** Every HTML tag in the rendered comment; only the ones the renderer itself writes may appear. */
  const tags = (markdown: string) => [...md.render(markdown).matchAll(/<\/?([a-z0-9-]+)/gi)].map((m) => m[1].toLowerCase());
  const ALLOWED = new Set(["h3", "h4", "p", "strong", "em", "code", "blockquote", "ul", "li", "details", "summary", "b", "table", "thead", "tbody", "tr", "th", "td"]);
  const hostile = ["<!-- hide", "</details><script>alert(1)</script>", "a\n\n# Fake heading\n", "``` fence", "x|y|z", "[click](javascript:alert(1))", "**bold**", "<img src=x onerror=alert(1)>"];

  it("escapes names and values wherever they land: no HTML, no structure from data", () => {
    const plan = {
      format_version: "1.2",
      resource_changes: hostile.flatMap((h, i) => [
        { address: `proxmox_virtual_environment_vm.h${i}_nixos_vm_0000000${i}`, type: "proxmox_virtual_environment_vm", name: `h${i}`, change: { actions: ["delete"], before: { name: h, tags: ["stateful"], description: h } } },
        { address: `terraform_data.x${i}`, type: "terraform_data", name: `x${i}`, change: { actions: ["create"], before: null, after: { input: { [h]: h } }, after_unknown: {}, after_sensitive: {} } },
        { address: `proxmox_virtual_environment_vm.u${i}_nixos_vm_1000000${i}`, type: "proxmox_virtual_environment_vm", name: `u${i}`, change: { actions: ["update"], importing: { id: h }, before: { name: "u", description: "old" }, after: { name: "u", description: h } } },
      ]),
      resource_drift: [{ address: "proxmox_virtual_environment_vm.d", type: "proxmox_virtual_environment_vm", name: "d", change: { actions: ["update"], before: { name: hostile[0], tags: ["a"] }, after: { name: hostile[0], tags: hostile } } }],
    };
    const r = renderPlans([{ label: "plan</summary>", plan: asPlan(plan) }]);
    expect(r.exitCode).toBe(EXIT_STATEFUL_DESTROY);
    for (const t of tags(r.markdown)) expect(ALLOWED.has(t) ? t : `unexpected <${t}>`).toBe(t);
    const html = md.render(r.markdown);
    expect(html).not.toMatch(/<script|<img|<!--|href="javascript/);
    expect(html.match(/<h3>/g)).toHaveLength(1); // "# Fake heading" did not become structure
    expect((html.match(/<details>/g) ?? []).length).toBe((html.match(/<\/details>/g) ?? []).length);
  });

  it("masks sensitive values by structure: keys with . [ \" and values inside lists, maps and objects", () => {
    const secret = "s3cr3t-value";
    const change = {
      actions: ["update"],
      before: { input: { "a.b": secret, "c[0]": secret, 'q"k': secret, plain: "old", list: [secret, "x"], nested: { deep: { k: secret } } } },
      after: { input: { "a.b": `${secret}2`, "c[0]": `${secret}2`, 'q"k': `${secret}2`, plain: "new", list: [`${secret}2`, "x"], nested: { deep: { k: `${secret}2` } } } },
      before_sensitive: { input: { "a.b": true, "c[0]": true, 'q"k': true, list: [true, false], nested: true } },
      after_sensitive: { input: { "a.b": true, "c[0]": true, 'q"k': true, list: [true, false], nested: true } },
      after_unknown: {},
    };
    const r = renderPlans([{ label: "s", plan: asPlan({ format_version: "1.2", resource_changes: [{ address: "terraform_data.t", type: "terraform_data", name: "t", change }] }) }]);
    expect(r.markdown).not.toContain(secret);
    expect(r.markdown).toContain('| `input["a.b"]` | `(sensitive)` | `(sensitive)` |');
    expect(r.markdown).toContain('| `input.nested` | `(sensitive)` | `(sensitive)` |');
    expect(r.markdown).toContain('| `input.plain` | `"old"` | `"new"` |');
  });

  it("masks both sides when only one is marked sensitive (#29 item 2: a value that becomes sensitive never shows its old value)", () => {
    const old = "0ld-s3cret";
    const change = {
      actions: ["update"],
      before: { input: { token: old, obj: { a: old, b: "x" }, plain: "p" } },
      after: { input: { token: "n3w-s3cret", obj: { a: "n3w", b: "x" }, plain: "q" } },
      before_sensitive: {},
      after_sensitive: { input: { token: true, obj: true } },
      after_unknown: {},
    };
    const r = renderPlans([{ label: "s", plan: asPlan({ format_version: "1.2", resource_changes: [{ address: "terraform_data.t", type: "terraform_data", name: "t", change }] }) }]);
    expect(r.markdown).not.toContain(old);
    expect(r.markdown).not.toContain("n3w");
    expect(r.markdown).toContain("| `input.token` | `(sensitive)` | `(sensitive)` |");
    expect(r.markdown).toContain('| `input.plain` | `"p"` | `"q"` |');
    // and the other way round: marked before only
    const back = renderPlans([{ label: "s", plan: asPlan({ format_version: "1.2", resource_changes: [{ address: "terraform_data.t", type: "terraform_data", name: "t", change: { ...change, before_sensitive: { input: { token: true } }, after_sensitive: {} } }] }) }]);
    expect(back.markdown).not.toContain("n3w-s3cret");
  });

  it("stays under GitHub's 65,536-character limit for 13,000 changes and says what it left out", () => {
    const resource_changes = Array.from({ length: 13000 }, (_, i) => ({
      address: `terraform_data.h${i}_deploy_step_${String(i).padStart(8, "0").replace(/\d/g, (d) => "ABCDEF0123"[Number(d)])}`,
      type: "terraform_data",
      name: `h${i}_deploy_step_${String(i).padStart(8, "0").replace(/\d/g, (d) => "ABCDEF0123"[Number(d)])}`,
      change: { actions: ["delete", "create"], before: { triggers_replace: { config_hash: "a" } }, after: { triggers_replace: { config_hash: "b" } }, after_unknown: {}, after_sensitive: {}, before_sensitive: {} },
    }));
    const r = renderPlans([{ label: "big", plan: asPlan({ format_version: "1.2", resource_changes }) }], { fullReportHint: "see plan-comment-full.md" });
    expect(r.markdown.length).toBeLessThan(65536);
    expect(r.markdown).toContain("**0 to create · 0 to update · 13000 to replace");
    expect(r.markdown).toMatch(/_… \d+ more entries left out to stay under GitHub's comment limit; see plan-comment-full\.md\._/);
    expect(r.markdown).toContain("| … and 12700 more | |");
    expect(r.full.length).toBeGreaterThan(1_000_000);
  });

  // #28 item 8 / #29 item 6: every part counts (banners, the host tables, the re-applied table,
  // failed stacks' errors and host lists), not only the per-resource details
  describe("worst cases stay within the limit, every part counted", () => {
    const name = (i: number) => `host-${"x".repeat(40)}-${i}`;
    const hash = (i: number) => String(i).padStart(8, "0").replace(/\d/g, (d) => "ABCDEF0123"[Number(d)]);
    const vms = Array.from({ length: 2000 }, (_, i) => ({
      address: `proxmox_virtual_environment_vm.${name(i)}_nixos_vm_${hash(i)}`,
      type: "proxmox_virtual_environment_vm",
      name: `${name(i)}_nixos_vm_${hash(i)}`,
      change: { actions: ["delete", "create"], before: { name: name(i), tags: ["stateful"], node_name: "pve".repeat(30), disk: Array.from({ length: 12 }, (_, d) => ({ interface: `virtio${d}`, size: 10 })) }, after: { name: name(i), tags: ["stateful"], node_name: "other".repeat(30), disk: [] }, after_unknown: {}, after_sensitive: {}, before_sensitive: {} },
    }));
    const steps = Array.from({ length: 2000 }, (_, i) => ({
      address: `terraform_data.${name(i)}_deploy_step_${hash(i)}`,
      type: "terraform_data",
      name: `${name(i)}_deploy_step_${hash(i)}`,
      change: { actions: ["delete", "create"], before: { triggers_replace: Object.fromEntries(Array.from({ length: 30 }, (_, k) => [`trigger_${"t".repeat(20)}_${k}`, "a"])) }, after: { triggers_replace: Object.fromEntries(Array.from({ length: 30 }, (_, k) => [`trigger_${"t".repeat(20)}_${k}`, "b"])) }, after_unknown: {}, after_sensitive: {}, before_sensitive: {} },
    }));
    const detach = Array.from({ length: 800 }, (_, i) => ({
      address: `proxmox_virtual_environment_vm.d${name(i)}_nixos_vm_${hash(i)}`,
      type: "proxmox_virtual_environment_vm",
      name: `d${name(i)}_nixos_vm_${hash(i)}`,
      change: { actions: ["update"], before: { name: `d${name(i)}`, tags: ["stateful"], disk: Array.from({ length: 12 }, (_, d) => ({ interface: `scsi${d}`, size: 10, datastore_id: "local" })) }, after: { name: `d${name(i)}`, tags: ["stateful"], disk: [] }, after_unknown: {}, after_sensitive: {}, before_sensitive: {} },
    }));
    const forget = Array.from({ length: 1500 }, (_, i) => ({ address: `proxmox_virtual_environment_vm.f${name(i)}_nixos_vm_${hash(i)}`, type: "proxmox_virtual_environment_vm", name: `f${name(i)}_nixos_vm_${hash(i)}`, change: { actions: ["forget"], before: { name: `f${name(i)}` }, after: null } }));
    const errorText = (stack: string) =>
      `Error: stateful VM(s) ${Array.from({ length: 300 }, (_, i) => `${name(i)} (VMID ${1000 + i} on pve)`).join(", ")} are in Proxmox but not in the inventory\n` +
      Array.from({ length: 3000 }, (_, i) => `  with proxmox_virtual_environment_vm.${name(i)}_nixos_vm_${hash(i)} in ${stack}: ${"`".repeat(i % 7)} something broke`).join("\n");
    const plans = [
      { label: "ai", plan: asPlan({ format_version: "1.2", resource_changes: [...vms, ...steps] }) },
      { label: "ops", plan: asPlan({ format_version: "1.2", resource_changes: [...detach, ...forget] }) },
    ];
    const failed = ["cluster", "platform", "p1", "p2", "p3", "p4"].map((label) => ({ label, error: errorText(label) }));

    it("at GitHub's limit: the head alone was 72k+ before; now the whole comment fits and keeps what a reviewer needs", () => {
      const r = renderPlans(plans, { provenance: { commit: "0123456789abcdef0123456789abcdef01234567", runUrl: "https://github.com/o/r/actions/runs/42" } }, failed);
      expect(r.full.length).toBeGreaterThan(200_000);
      expect(r.markdown.length).toBeLessThanOrEqual(65000);
      expect(r.markdown.split("\n")[0]).toBe("<sub>Planned for commit <code>0123456789abcdef0123456789abcdef01234567</code> by [this workflow run](https://github.com/o/r/actions/runs/42); a newer push replaces this comment.</sub>");
      expect(r.markdown).toContain("**The plan of stack `cluster` failed**");
      expect(r.markdown).toContain("2000 VMs would be destroyed or replaced, 2000 of them stateful");
      expect(r.markdown).toContain("**0 to create · 800 to update · 4000 to replace · 0 to destroy · 0 to import · 1500 to forget · 0 unchanged**");
      expect(r.markdown).toMatch(/left out to stay under GitHub's comment limit/);
      // fences and details stay balanced: nothing is cut in the middle of a block
      expect((r.markdown.match(/<details>/g) ?? []).length).toBe((r.markdown.match(/<\/details>/g) ?? []).length);
    });

    it.each([20000, 5000, 1000])("--max-chars %i is honoured by the command, head included", (max) => {
      const dir = mkdtempSync(join(tmpdir(), "pc-max-"));
      const files = plans.map((p) => {
        const f = join(dir, `plan-${p.label}.json`);
        writeFileSync(f, JSON.stringify(p.plan));
        return f;
      });
      for (const f of failed) writeFileSync(join(dir, `${f.label}.error`), f.error);
      const r = cli([...files, ...failed.map((f) => join(dir, `${f.label}.error`)), "--max-chars", String(max), "--commit", "0123456", "--full", join(dir, "full.md")]);
      expect(r.status).toBe(4);
      expect(r.out.length).toBeLessThanOrEqual(max);
      expect(r.out.length).toBeGreaterThan(max / 3);
      expect(r.out).toContain("Planned for commit <code>0123456</code>");
      expect(readFileSync(join(dir, "full.md"), "utf8").length).toBeGreaterThan(200_000);
    });

    it("says the lists were shortened when every entry fitted but the head had to shrink", () => {
      // one small change, and a failed stack whose error alone is over the limit
      const one = { ...steps[0], change: { ...steps[0].change, before: { triggers_replace: { config_hash: "a" } }, after: { triggers_replace: { config_hash: "b" } } } };
      const r = renderPlans([{ label: "ai", plan: asPlan({ format_version: "1.2", resource_changes: [one] }) }], { maxChars: 3500, fullReportHint: "see full.md" }, [{ label: "ops", error: "x".repeat(50_000) }]);
      expect(r.markdown.length).toBeLessThanOrEqual(3500);
      expect(r.full.length).toBeGreaterThan(3500);
      expect(r.markdown).toContain("<details>");
      expect(r.markdown).not.toContain("0 more entries");
      expect(r.markdown).toContain("_Some lists above are shortened to stay under GitHub's comment limit; see full.md._");
    });

    it("refuses a bad --commit or --run-url, and a --full it cannot write, with one line", () => {
      const f = join(mkdtempSync(join(tmpdir(), "pc-bad-")), "p.json");
      writeFileSync(f, JSON.stringify({ format_version: "1.2", resource_changes: [] }));
      for (const args of [["--commit", "main; rm -rf /"], ["--commit", "abcdef0", "--run-url", "javascript:alert(1)"], ["--full", "/nonexistent/dir/full.md"]]) {
        const r = cli([f, ...args]);
        expect({ args, status: r.status, lines: r.err.trim().split("\n").length, out: r.out }).toEqual({ args, status: 2, lines: 1, out: "" });
      }
    });
  });
});
