/**
 * npm run plan-comment -- <plan.json> [<plan.json>...] [--allow-destroy] [--full <file>] [--max-chars N]
 *                        [--commit <sha>] [--run-url <https://…>]
 *
 * Reads the JSON of `tofu show -json <planfile>` (or `terraform show -json`), one file per
 * stack, and prints Markdown for a pull-request comment to stdout.
 * Exit status: 0 normally; 3 when a stateful VM would be destroyed or replaced (unless
 * --allow-destroy): a VM counts as stateful by what Proxmox has now (tag `stateful` or
 * protection in the plan's prior state); 2 for input that is not a plan or an unknown option
 * (one line on stderr); 4 when a stack's plan failed (given as <stack>.error, Terraform's
 * output; the comment shows it). The comment stays under GitHub's limit (65,536 characters; default
 * --max-chars 65000, every part counted); --full writes it untruncated. --commit and --run-url put
 * the commit the plans were made for, and the run that made them, on the comment's first line.
 */
import { minimist } from "zx";
import { readFileSync, writeFileSync } from "node:fs";
import { basename } from "node:path";
import { asPlan, EXIT_BAD_INPUT, FailedPlan, Plan, renderPlans } from "./lib/plan-comment";

function bad(message: string): never {
  process.stderr.write(`plan-comment: ${message}\n`);
  process.exit(EXIT_BAD_INPUT);
}

const USAGE = "Usage: npm run plan-comment -- <plan.json|stack.error>... [--allow-destroy] [--full <file>] [--max-chars N] [--commit <sha>] [--run-url <url>]";

function main() {
  const known = new Set(["allow-destroy", "help", "h", "full", "max-chars", "commit", "run-url", "_"]);
  const a = minimist(process.argv.slice(2), {
    boolean: ["allow-destroy", "help"],
    string: ["full", "max-chars", "commit", "run-url"],
    alias: { h: "help" },
    unknown: (arg: string) => {
      if (arg.startsWith("-") && !known.has(arg.replace(/^-+/, "").split("=")[0])) bad(`unknown option ${arg}; ${USAGE}`);
      return true;
    },
  });
  if (a.help) return void process.stdout.write(`${USAGE}\n`);
  const files = a._.map(String);
  if (!files.length) bad(`give the JSON of \`tofu show -json <planfile>\` (one file per stack); ${USAGE}`);
  const maxChars = a["max-chars"] === undefined ? undefined : Number(a["max-chars"]);
  if (maxChars !== undefined && !(Number.isInteger(maxChars) && maxChars >= 1000)) bad("--max-chars must be a whole number >= 1000");
  const commit = a.commit === undefined ? undefined : String(a.commit);
  if (commit !== undefined && !/^[0-9a-f]{7,64}$/.test(commit)) bad("--commit must be a commit id (hex)");
  const runUrl = a["run-url"] === undefined ? undefined : String(a["run-url"]);
  if (runUrl !== undefined && (!commit || !/^https:\/\/[^\s<>()"']+$/.test(runUrl))) bad("--run-url must be an https URL without spaces, given with --commit");
  // <stack>.error: what `tofu plan` printed when it failed for that stack
  const failed: FailedPlan[] = files.filter((f) => f.endsWith(".error")).map((f) => {
    try {
      return { label: basename(f).replace(/\.error$/, "").replace(/^plan[-_.]?/, ""), error: readFileSync(f, "utf8") };
    } catch {
      bad(`${f}: cannot read it`);
    }
  });
  const plans: { label: string; plan: Plan }[] = files.filter((f) => !f.endsWith(".error")).map((f) => {
    let text: string;
    try {
      text = readFileSync(f, "utf8");
    } catch {
      bad(`${f}: cannot read it`);
    }
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch {
      bad(`${f}: not JSON; give the output of \`tofu show -json <planfile>\``);
    }
    try {
      return { label: basename(f).replace(/\.json$/, "").replace(/^plan[-_.]?/, "") || basename(f), plan: asPlan(data) };
    } catch (e) {
      bad(`${f}: ${(e as Error).message}`);
    }
  });
  let r;
  try {
    r = renderPlans(plans, { allowDestroy: a["allow-destroy"], maxChars, provenance: commit ? { commit, runUrl } : undefined, fullReportHint: a.full ? `the full report is \`${basename(a.full)}\` in the workflow run's artifacts` : undefined }, failed);
  } catch (e) {
    bad(`the plan has an unexpected shape: ${(e as Error).message}`);
  }
  // Whether a VM holds data is read from the plan's prior state (its `stateful` tag or
  // Proxmox protection), never from the inventory the pull request may have changed.
  if (a.full) {
    try {
      writeFileSync(a.full, r.full);
    } catch (e) {
      bad(`--full ${a.full}: cannot write it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
  }
  // exitCode, not exit(): a pipe takes a 65 kB comment in several writes (#29 item 8)
  process.stdout.write(r.markdown);
  process.exitCode = r.exitCode;
}

main();
