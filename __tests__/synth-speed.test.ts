/**
 * What the synth-speed work (issue #30) changed must not change what the synth writes:
 * - cdktn's resolver, edited at bundle time (scripts/lib/cdktn-fast-resolve.mjs), still finds
 *   every edit in the installed cdktn, and the stacks `node scripts/app.mjs` writes are byte for
 *   byte those the unedited cdktn writes (in this process, through ts-jest's own module loading);
 * - the validator compiled ahead of time reports the same problems as ajv compiling the schema.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { App } from "cdktn";
import { buildFleet } from "../stacks/fleet";
import { parseInventory } from "../constructs/inventory";
import { generateInventory } from "../scripts/lib/gen-inventory";
import { exampleData, ROOT } from "./helpers";

/** What a bundle plugin's patch function (an export of scripts/lib/<plugin>) makes of the installed cdktn's `file`. */
function patched(plugin: string, fn: string, file: string): string {
  const path = require.resolve(`cdktn/lib/${file}`, { paths: [ROOT] });
  const r = spawnSync("node", ["--input-type=module", "-e", `import { ${fn} } from ${JSON.stringify(join(ROOT, "scripts", "lib", plugin))}; import { readFileSync } from "node:fs"; process.stdout.write(${fn}(readFileSync(${JSON.stringify(path)}, "utf8")) ?? "NOT PATCHED")`], { encoding: "utf8" });
  return r.stdout;
}

const stacksOf = (outdir: string) => Object.fromEntries(readdirSync(join(outdir, "stacks")).map((s) => [s, readFileSync(join(outdir, "stacks", s, "cdk.tf.json"), "utf8")]));

describe("synth speed changes keep the output", () => {
  it("every edit of the resolver and of processDynamicAttributes applies to the installed cdktn", () => {
    const resolve = patched("cdktn-fast-resolve.mjs", "patchResolve", "tokens/private/resolve.js");
    expect(resolve).not.toBe("NOT PATCHED");
    expect(resolve).not.toContain("const pathName");
    expect(resolve).toContain("const __leaf = (v) =>");
    expect(resolve.match(/__fleetWalk\(/g)).toHaveLength(5); // its own two, in objects and in lists, and itself
    expect(patched("cdktn-fast-resolve.mjs", "patchUtil", "util.js")).toContain("Object.keys(attributes).forEach((attributeName) => {\n        const value = attributes[attributeName];");
  });

  it("fflate is loaded at its first use: the edit applies to the installed cdktn, and a synth of the bundle does not load it", () => {
    expect(patched("cdktn-lazy-fflate.mjs", "patchFs", "private/fs.js")).toContain('(__fleetFflate ??= require("fflate"))');
    // fflate starts a worker_threads import at load: a synth that never zips never loads it (the
    // first synth may rebuild the bundle, and esbuild's buildSync runs in a worker: the second counts)
    const dir = mkdtempSync(join(tmpdir(), "synth-fflate-"));
    writeFileSync(join(dir, "loaded.cjs"), `process.on("exit", () => require("node:fs").writeFileSync(${JSON.stringify(join(dir, "modules.json"))}, JSON.stringify(process.moduleLoadList)));`);
    spawnSync("node", [join(ROOT, "scripts", "app.mjs")], { cwd: ROOT, env: { ...process.env, CDKTF_OUTDIR: join(dir, "out"), FLEET_SKIP_VALIDATION: "1" } });
    const s = spawnSync("node", ["-r", join(dir, "loaded.cjs"), join(ROOT, "scripts", "app.mjs")], { cwd: ROOT, encoding: "utf8", env: { ...process.env, CDKTF_OUTDIR: join(dir, "out"), FLEET_SKIP_VALIDATION: "1" } });
    expect({ status: s.status, err: s.stderr }).toEqual({ status: 0, err: "" });
    expect(JSON.parse(readFileSync(join(dir, "modules.json"), "utf8"))).not.toContain("NativeModule worker_threads");
  });

  it("the edits that keep the preparing resolve's result apply to the installed cdktn, and step aside for cross-stack references and aspects", () => {
    const dir = mkdtempSync(join(tmpdir(), "synth-edits-"));
    // an app whose second stack reads the first (a cross-stack reference) and whose third has an
    // aspect that changes an element after the stacks were prepared: bundled with the edits and
    // without, it writes the same stacks
    writeFileSync(
      join(dir, "app.ts"),
      `import { App, Aspects, DataResource, Lazy, LocalBackend, TerraformStack } from "cdktn";
      const app = new App({ outdir: process.argv[2], skipValidation: true });
      const stack = (id: string) => { const s = new TerraformStack(app, id); new LocalBackend(s, { path: id + ".tfstate" }); return s; };
      const a = stack("a"), b = stack("b"), c = stack("c");
      const d = new DataResource(a, "d", { input: "from a" });
      new DataResource(b, "e", { input: process.env.CROSS ? d.output : "plain" });
      const f = new DataResource(c, "f", { input: "before" });
      const nest = (n: number): any => (n === 0 ? undefined : { x: nest(n - 1) });
      // what the JSON writer must write as safe-stable-stringify does: escapes, empty and nested
      // containers, nulls and gaps in lists, key order, array-index-like keys, numbers
      new DataResource(c, "g", { input: { z: "é \u2028 \\"quoted\\" \\\\ \\u0001 \\ud800", a: [null, 1.5, -0, 1e21, [], {}, [[]], { "10": 1, "9": 2, b: { c: [] } }], m: {}, "${"${"}x}": "${"${"}y}",
        // what the resolver's walker of plain members must hand to cdktn's own path: a token deep in
        // plain objects and lists, undefined members and list items, a gap, an object without a
        // prototype, a lazy value, a date, a list that holds a token beside plain strings, an object
        // literal that is a token (it has resolve()), an instance of a class, a key that is a token; and
        // a construct, a value that looks like one, a value nested 200 levels deep (see below)
        deep: { a: [{ b: { c: f.output, d: undefined, e: [1, , 3, undefined] } }], n: Object.assign(Object.create(null), { x: 1, y: undefined, z: { w: f.output } }), l: Lazy.anyValue({ produce: () => ({ k: ["v", f.output] }) }), t: new Date(0), r: ["a", f.output, "b"], o: { resolve: () => "resolved by a plain object" }, i: new (class { k = [f.output, { m: 1 }]; })(), k: { [f.output]: "a key that is a token" }, ...(process.env.CONSTRUCT ? { c: [f] } : {}), ...(process.env.NODELIKE ? { c: { _children: {}, _metadata: [] } } : {}), u: nest(Number(process.env.DEPTH ?? 0)) } } });
      a.addOverride("locals.from_d", d.output);
      a.addOverride("terraform.backend.local.path", undefined);
      if (process.env.ASPECT) Aspects.of(c).add({ visit: (n: any) => { if (n instanceof DataResource) n.input = "changed by an aspect"; } });
      app.synth();`,
    );
    // (jest cannot import the .mjs plugin: a small ES module script builds both bundles)
    writeFileSync(
      join(dir, "build.mjs"),
      `import { readFileSync } from "node:fs";
      import { createRequire } from "node:module";
      import { fastResolve, patchStack } from ${JSON.stringify(join(ROOT, "scripts", "lib", "cdktn-fast-resolve.mjs"))};
      const req = createRequire(${JSON.stringify(join(ROOT, "package.json"))});
      const { build } = req("esbuild");
      const p = patchStack(readFileSync(req.resolve("cdktn/lib/terraform-stack.js"), "utf8"), readFileSync(req.resolve("cdktn/lib/synthesize/synthesizer.js"), "utf8"));
      const opts = { entryPoints: [${JSON.stringify(join(dir, "app.ts"))}], nodePaths: [${JSON.stringify(join(ROOT, "node_modules"))}], bundle: true, platform: "node", format: "cjs", logLevel: "silent" };
      await build({ ...opts, outfile: ${JSON.stringify(join(dir, "stock.js"))} });
      await build({ ...opts, outfile: ${JSON.stringify(join(dir, "edited.js"))}, plugins: [fastResolve] });
      process.stdout.write(JSON.stringify({ stack: p?.stack.includes("e.__fleetPrepared = "), synthesizer: p?.synthesizer.includes("__fleetPreparedStale = true") }));`,
    );
    const b = spawnSync("node", [join(dir, "build.mjs")], { cwd: ROOT, encoding: "utf8" });
    expect({ status: b.status, err: b.stderr, out: b.stdout }).toEqual({ status: 0, err: "", out: JSON.stringify({ stack: true, synthesizer: true }) });
    expect(readFileSync(join(dir, "edited.js"), "utf8")).toContain("__fleetPrepared");
    expect(readFileSync(join(dir, "stock.js"), "utf8")).not.toContain("__fleetPrepared");
    for (const env of [{}, { CROSS: "1" }, { ASPECT: "1" }, { CROSS: "1", ASPECT: "1" }]) {
      const out: Record<string, Record<string, string>> = {};
      for (const kind of ["stock", "edited"]) {
        const r = spawnSync("node", [join(dir, `${kind}.js`), join(dir, `${kind}-out`)], { encoding: "utf8", env: { ...process.env, ...env } });
        expect({ kind, env, status: r.status, err: r.stderr }).toEqual({ kind, env, status: 0, err: "" });
        out[kind] = stacksOf(join(dir, `${kind}-out`));
      }
      expect({ env, edited: out.edited }).toEqual({ env, edited: out.stock });
    }
    // values cdktn refuses, with its own message at its own path: a construct (cdktn walks into it,
    // its node and host refer to each other, and gives up 200 levels down), a value that looks
    // like a construct, an undefined member one level below the deepest cdktn resolves; one
    // level less is written
    const run = (env: Record<string, string>) =>
      ["stock", "edited"].map((kind) => {
        const r = spawnSync("node", [join(dir, `${kind}.js`), join(dir, `${kind}-bad`)], { encoding: "utf8", env: { ...process.env, ...env } });
        return { env, status: r.status, message: r.stderr.split("\n").filter((l) => /Error/.test(l))[0] };
      });
    for (const [env, message] of [
      [{ CONSTRUCT: "1" }, /^Error: Unable to resolve object tree with circular reference at .\/resource\/terraform_data\/g\/input\/deep\/c\/0\/node\/host\/node/],
      [{ NODELIKE: "1" }, /construct/i],
      [{ DEPTH: "195" }, /^Error: Unable to resolve object tree with circular reference at .\/resource\/terraform_data\/g\/input\/deep\/u(\/x){195}.\.$/],
    ] as const) {
      const [stock, edited] = run(env);
      expect(stock.status).toBe(1);
      expect(stock.message).toMatch(message);
      expect(edited).toEqual(stock);
    }
    const [stock, edited] = run({ DEPTH: "194" });
    expect(edited).toEqual(stock);
    expect(stock.status).toBe(0);
    expect(stacksOf(join(dir, "edited-bad"))).toEqual(stacksOf(join(dir, "stock-bad")));
    expect(JSON.stringify(stacksOf(join(dir, "edited-out")))).toContain("changed by an aspect");
    const a = JSON.parse(stacksOf(join(dir, "edited-out")).a);
    expect({ local: a.locals.from_d, backend: a.terraform.backend.local }).toEqual({ local: "${terraform_data.d.output}", backend: {} });
  });

  it.each([["fleet.json", () => exampleData()], ["150 generated hosts", () => generateInventory(150)]])("%s: the bundled app writes the same stacks as the unedited cdktn", (_name, make) => {
    const dir = mkdtempSync(join(tmpdir(), "synth-same-"));
    const data = make();
    writeFileSync(join(dir, "fleet.json"), JSON.stringify(data));
    const r = spawnSync("node", [join(ROOT, "scripts", "app.mjs")], { cwd: ROOT, encoding: "utf8", env: { ...process.env, FLEET_FILE: join(dir, "fleet.json"), CDKTF_OUTDIR: join(dir, "bundled"), FLEET_SKIP_VALIDATION: "1" } });
    expect({ status: r.status, err: r.stderr }).toEqual({ status: 0, err: "" });
    const app = new App({ outdir: join(dir, "stock"), skipValidation: true });
    buildFleet(app, parseInventory(JSON.stringify(data), "fleet.json"));
    app.synth();
    const bundled = stacksOf(join(dir, "bundled"));
    const stock = stacksOf(join(dir, "stock"));
    expect(Object.keys(bundled).sort()).toEqual(Object.keys(stock).sort());
    for (const s of Object.keys(stock)) expect({ s, same: bundled[s] === stock[s] }).toEqual({ s, same: true });
  });

  it("the validator compiled ahead of time reports what ajv compiling the schema reports", () => {
    const broken = exampleData();
    broken.cluster.nodes = "pve1";
    broken.hosts[0].cores = "4";
    broken.hosts[1].bogus = true;
    broken.template.vmid = 5;
    delete broken.users[0].sshKeys;
    const dir = mkdtempSync(join(tmpdir(), "synth-val-"));
    writeFileSync(join(dir, "fleet.json"), JSON.stringify(broken));
    const r = spawnSync("node", [join(ROOT, "scripts", "app.mjs")], { cwd: ROOT, encoding: "utf8", env: { ...process.env, FLEET_FILE: join(dir, "fleet.json"), CDKTF_OUTDIR: join(dir, "out"), FLEET_SKIP_VALIDATION: "1" } });
    let expected = "";
    try {
      parseInventory(JSON.stringify(broken), join(dir, "fleet.json"));
    } catch (e) {
      expected = (e as Error).message;
    }
    expect(expected.split("\n").length).toBeGreaterThanOrEqual(5);
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(`${expected}\n${expected.split("\n").length} problem(s) in the inventory; nothing was synthesized.\n`);
  });
});
