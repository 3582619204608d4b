/**
 * The workflows' GitHub API steps (Octokit, the GitHub REST client; no `gh` needed on a runner):
 *
 *   reviewed-run <commit>     the merged pull request that produced <commit> and the plan run to
 *                             apply: the NEWEST plan.yml run of its head commit, which must have
 *                             succeeded (an older successful run, say one made with the
 *                             allow-destroy label since removed, is never taken; #28 item 6)
 *   follow-up <pr> <run url>  after a failed apply: a branch with an empty commit on main and a
 *                             pull request that re-plans main (as tfaction's follow-up pull request)
 *   comment <pr> <comment.md>  the plan comment: one per pull request, rewritten on every plan (our
 *                             marker on a comment written by a bot; a person's comment that copies
 *                             the marker is never edited)
 *   drift <comment.md> <stack>...
 *                             a scheduled plan of main changed something: open, or update, the one
 *                             open issue labelled fleet-drift; no stack: close it with a comment
 *
 * Env: GITHUB_TOKEN, GITHUB_REPOSITORY (owner/name), GITHUB_API_URL (set on runners; default
 * https://api.github.com), GITHUB_OUTPUT (step outputs are appended there, else printed).
 * Exit 0 ok; 1 what was asked for does not exist or failed (one line); 2 bad usage.
 */
import { appendFileSync, readFileSync } from "node:fs";
import { Octokit } from "@octokit/rest";

const DRIFT_LABEL = "fleet-drift";
const COMMENT_MARKER = "<!-- fleet-plan -->";
class Refusal extends Error {}
/** A refusal for how the command was called (exit 2), not for what GitHub holds (exit 1). */
class Usage extends Refusal {}

function output(values: Record<string, string | number>) {
  const text = Object.entries(values).map(([k, v]) => `${k}=${v}\n`).join("");
  if (process.env.GITHUB_OUTPUT) appendFileSync(process.env.GITHUB_OUTPUT, text);
  else process.stdout.write(text);
}

async function main(argv: string[]): Promise<void> {
  const [cmd, ...args] = argv;
  const repo = process.env.GITHUB_REPOSITORY ?? "";
  const [owner, name] = repo.split("/");
  if (!owner || !name) throw new Usage("GITHUB_REPOSITORY must be owner/name");
  if (!process.env.GITHUB_TOKEN) throw new Usage("GITHUB_TOKEN is not set");
  const gh = new Octokit({ auth: process.env.GITHUB_TOKEN, baseUrl: process.env.GITHUB_API_URL || "https://api.github.com", request: { retries: 0 } });
  const r = { owner, repo: name };

  if (cmd === "reviewed-run") {
    const sha = args[0] ?? "";
    if (!/^[0-9a-f]{40}$/.test(sha)) throw new Usage("reviewed-run needs the pushed commit's full id");
    const prs = (await gh.rest.repos.listPullRequestsAssociatedWithCommit({ ...r, commit_sha: sha })).data;
    const pr = prs.find((p) => p.merged_at && p.merge_commit_sha === sha);
    if (!pr) throw new Refusal(`commit ${sha} is not the merge of a pull request: there is no reviewed plan to apply (push to main only through pull requests)`);
    const runs = (await gh.rest.actions.listWorkflowRuns({ ...r, workflow_id: "plan.yml", head_sha: pr.head.sha, event: "pull_request", per_page: 100 })).data.workflow_runs;
    // Newest first, by when the run was created (a re-run keeps its id and gets a new attempt).
    // A run that planned nothing is passed over: every job skipped (a label other than
    // allow-destroy, the merge's own `closed` event), or a success without the plan artifact.
    const artifact = `plan-${pr.head.sha}`;
    let newest: (typeof runs)[number] | undefined;
    for (const run of [...runs].sort((a, b) => Date.parse(b.created_at) - Date.parse(a.created_at) || b.id - a.id)) {
      if (run.status === "completed" && run.conclusion === "skipped") continue;
      if (run.status === "completed" && run.conclusion === "success") {
        const arts = (await gh.rest.actions.listWorkflowRunArtifacts({ ...r, run_id: run.id, name: artifact })).data.artifacts;
        if (!arts.some((x) => x.name === artifact && !x.expired)) continue;
      }
      newest = run;
      break;
    }
    if (!newest) throw new Refusal(`pull request #${pr.number} has no plan run with a plan for its head ${pr.head.sha} (expired after 90 days?): re-plan through a follow-up pull request`);
    if (newest.status !== "completed" || newest.conclusion !== "success")
      throw new Refusal(`the newest plan of pull request #${pr.number} (run ${newest.html_url}) is ${newest.status === "completed" ? newest.conclusion : newest.status}, not a success: its saved plans were not accepted, so nothing is applied`);
    output({ pr: pr.number, head: pr.head.sha, base: pr.base.ref, run: newest.id });
    return;
  }

  if (cmd === "follow-up") {
    const [prArg, runUrl] = args;
    if (!/^\d+$/.test(prArg ?? "") || !/^https:\/\/\S+$/.test(runUrl ?? "")) throw new Usage("follow-up needs the failed pull request's number and the run's URL");
    const base = (await gh.rest.repos.get(r)).data.default_branch;
    const head = (await gh.rest.git.getRef({ ...r, ref: `heads/${base}` })).data.object.sha;
    const tree = (await gh.rest.git.getCommit({ ...r, commit_sha: head })).data.tree.sha;
    const commit = (await gh.rest.git.createCommit({ ...r, message: `Follow-up of #${prArg}: re-plan and apply ${base}\n\nThe deploy ${runUrl} failed; this empty commit re-plans ${base} as it is now.`, tree, parents: [head] })).data.sha;
    const branch = `fleet-follow-up/${prArg}-${commit.slice(0, 12)}`;
    await gh.rest.git.createRef({ ...r, ref: `refs/heads/${branch}`, sha: commit });
    const body = [
      `The deploy of #${prArg} failed: ${runUrl}`,
      "",
      `This pull request changes nothing; its plan shows what it takes to bring the fleet to \`${base}\` as it is now, and it holds the stacks #${prArg} held. Review the plan, then merge to apply it.`,
      "",
      "Opened with the workflow's token, which starts no workflow: push to this branch (or close and reopen the pull request) to run its plan, or set the `FLEET_BOT_TOKEN` secret (a GitHub App or fine-grained token) so it starts by itself.",
    ].join("\n");
    const opened = (await gh.rest.pulls.create({ ...r, title: `Follow-up: re-plan and apply ${base} after the failed deploy of #${prArg}`, head: branch, base, body })).data;
    output({ "follow-up": opened.number, "follow-up-url": opened.html_url });
    return;
  }

  if (cmd === "comment") {
    const [prArg, file] = args;
    if (!/^\d+$/.test(prArg ?? "") || !file) throw new Usage("comment needs the pull request's number and the rendered comment");
    const body = `${COMMENT_MARKER}\n${readFileSync(file, "utf8")}`;
    const mine = (await gh.paginate(gh.rest.issues.listComments, { ...r, issue_number: Number(prArg), per_page: 100 })).find((c) => c.user?.type === "Bot" && c.body?.startsWith(COMMENT_MARKER));
    if (mine) await gh.rest.issues.updateComment({ ...r, comment_id: mine.id, body });
    else await gh.rest.issues.createComment({ ...r, issue_number: Number(prArg), body });
    output({ comment: mine ? "updated" : "created" });
    return;
  }

  if (cmd === "drift") {
    const [file, ...stacks] = args;
    if (!file) throw new Usage("drift needs the rendered plan (comment.md) and the stacks that drifted");
    const open = (await gh.paginate(gh.rest.issues.listForRepo, { ...r, labels: DRIFT_LABEL, state: "open", per_page: 100 })).filter((i) => !i.pull_request);
    const current = open.sort((a, b) => a.number - b.number)[0];
    if (!stacks.length) {
      if (current) {
        await gh.rest.issues.createComment({ ...r, issue_number: current.number, body: "A plan of the default branch is empty again: no drift." });
        await gh.rest.issues.update({ ...r, issue_number: current.number, state: "closed", state_reason: "completed" });
        output({ issue: current.number, drift: "closed" });
      } else output({ issue: "", drift: "none" });
      return;
    }
    const title = `Drift: ${stacks.join(", ")} differ from the default branch`;
    const body = `A scheduled plan of the default branch is not empty: the fleet differs from what the repository says (a change made by hand in Proxmox, or a deploy that did not finish). Re-apply through a pull request, or change the inventory to match.\n\n${readFileSync(file, "utf8")}`;
    if (current) {
      await gh.rest.issues.update({ ...r, issue_number: current.number, title, body });
      output({ issue: current.number, drift: "updated" });
    } else {
      const made = (await gh.rest.issues.create({ ...r, title, body, labels: [DRIFT_LABEL] })).data;
      output({ issue: made.number, drift: "opened" });
    }
    return;
  }
  throw new Usage(`unknown command ${JSON.stringify(cmd ?? "")}: reviewed-run <commit> | follow-up <pr> <run url> | comment <pr> <comment.md> | drift <comment.md> <stack>...`);
}

main(process.argv.slice(2)).catch((e: Error & { status?: number }) => {
  const usage = e instanceof Usage;
  process.stdout.write(`::error::${(e instanceof Refusal ? e.message : `GitHub API: ${e.status ?? ""} ${e.message}`.trim()).split("\n")[0]}\n`);
  process.exitCode = usage ? 2 : 1;
});
