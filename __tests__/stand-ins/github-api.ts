/**
 * STAND-IN for the GitHub REST API (api.github.com, version 2022-11-28), which cannot exist
 * here: the endpoints scripts/ci/github.mts calls, on loopback, from an in-memory repository.
 * Paths, parameters and the response fields we read are those of GitHub's REST description
 * (github/rest-api-description, descriptions/api.github.com/api.github.com.json; the same one
 * Octokit's endpoint methods are generated from). Kept as harsh as GitHub where our promises
 * depend on it:
 *  - a wrong token is 401 {"message":"Bad credentials"};
 *  - GET /repos/{o}/{r}/commits/{sha}/pulls also lists open pull requests whose head contains
 *    the commit, not only the one it was merged by;
 *  - GET .../actions/workflows/{id}/runs lists every attempt's run, any conclusion, newest first;
 *  - GET /repos/{o}/{r}/issues lists pull requests too ("GitHub's REST API considers every pull
 *    request an issue"), marked by a `pull_request` key;
 *  - POST .../git/refs for an existing ref is 422 {"message":"Reference already exists"};
 *  - a pull request opened with the workflow's token starts no workflow (recorded, not run).
 */
import { createHash } from "node:crypto";
import { createServer, IncomingMessage, Server } from "node:http";
import { AddressInfo } from "node:net";

export interface Run { id: number; head_sha: string; event: string; status: string; conclusion: string | null; created_at: string; path: string; artifacts?: string[] }
export interface Pull { number: number; head: { sha: string; ref: string }; base: { ref: string }; merged_at: string | null; merge_commit_sha: string | null; state: string }
export interface Issue { number: number; title: string; body: string; labels: string[]; state: string; pull_request?: object; comments: string[] }
export interface Comment { id: number; issue: number; body: string; user: { login: string; type: "User" | "Bot" } }

export class FakeGitHub {
  readonly log: string[] = [];
  pulls: Pull[] = [];
  runs: Run[] = [];
  issues: Issue[] = [];
  /** comments on issues and pull requests (GitHub keeps both as issue comments) */
  comments: Comment[] = [];
  refs = new Map<string, string>([["heads/main", "1".repeat(40)]]);
  commits = new Map<string, { tree: string; parents: string[]; message: string }>([["1".repeat(40), { tree: "t".repeat(40), parents: [], message: "root" }]]);
  private server?: Server;
  private next = 1000;
  constructor(readonly token = "ghs_test", readonly repo = "acme/fleet") {}

  async start(): Promise<string> {
    this.server = createServer((req, res) => {
      void this.handle(req).then(([status, body]) => {
        res.writeHead(status, { "content-type": "application/json; charset=utf-8" });
        res.end(JSON.stringify(body));
      });
    });
    await new Promise<void>((ok) => this.server!.listen(0, "127.0.0.1", ok));
    return `http://127.0.0.1:${(this.server!.address() as AddressInfo).port}`;
  }
  stop(): Promise<void> {
    return new Promise((ok) => (this.server ? this.server.close(() => ok()) : ok()));
  }

  private async handle(req: IncomingMessage): Promise<[number, unknown]> {
    let raw = "";
    for await (const c of req) raw += c;
    const url = new URL(req.url ?? "/", "http://x");
    this.log.push(`${req.method} ${url.pathname}${url.search}`);
    if (req.headers.authorization !== `token ${this.token}`) return [401, { message: "Bad credentials", documentation_url: "https://docs.github.com/rest" }];
    const body = raw ? JSON.parse(raw) : {};
    // Octokit sends a ref as one encoded segment (heads%2Fmain); GitHub decodes it
    const p = decodeURIComponent(url.pathname).replace(`/repos/${this.repo}`, "");
    const q = url.searchParams;
    let m: RegExpExecArray | null;
    if (req.method === "GET" && p === "") return [200, { full_name: this.repo, default_branch: "main" }];
    if (req.method === "GET" && (m = /^\/commits\/([0-9a-f]{40})\/pulls$/.exec(p)))
      return [200, this.pulls.filter((x) => x.merge_commit_sha === m![1] || x.head.sha === m![1] || x.state === "open").map((x) => ({ ...x, html_url: `https://github.com/${this.repo}/pull/${x.number}` }))];
    if (req.method === "GET" && (m = /^\/actions\/workflows\/([^/]+)\/runs$/.exec(p))) {
      const runs = this.runs.filter((r) => r.path.endsWith(`/${m![1]}`) && (!q.get("head_sha") || r.head_sha === q.get("head_sha")) && (!q.get("event") || r.event === q.get("event")));
      runs.sort((a, b) => Date.parse(b.created_at) - Date.parse(a.created_at));
      return [200, { total_count: runs.length, workflow_runs: runs.map(({ artifacts: _, ...r }) => ({ ...r, html_url: `https://github.com/${this.repo}/actions/runs/${r.id}` })) }];
    }
    // GET .../actions/runs/{id}/artifacts?name=: only the run's own artifacts (a run whose jobs
    // were all skipped has none)
    if (req.method === "GET" && (m = /^\/actions\/runs\/(\d+)\/artifacts$/.exec(p))) {
      const run = this.runs.find((r) => r.id === Number(m![1]));
      if (!run) return [404, { message: "Not Found" }];
      const list = (run.artifacts ?? []).filter((n) => !q.get("name") || n === q.get("name")).map((name, i) => ({ id: run.id * 10 + i, name, expired: false }));
      return [200, { total_count: list.length, artifacts: list }];
    }
    if (req.method === "GET" && (m = /^\/git\/ref\/(.+)$/.exec(p))) {
      const sha = this.refs.get(m[1]);
      return sha ? [200, { ref: `refs/${m[1]}`, object: { sha, type: "commit" } }] : [404, { message: "Not Found" }];
    }
    if (req.method === "GET" && (m = /^\/git\/commits\/([0-9a-f]{40})$/.exec(p))) {
      const c = this.commits.get(m[1]);
      return c ? [200, { sha: m[1], tree: { sha: c.tree }, parents: c.parents.map((sha) => ({ sha })), message: c.message }] : [404, { message: "Not Found" }];
    }
    if (req.method === "POST" && p === "/git/commits") {
      // git hashes the commit with its committer time: a new commit gets a new id
      const sha = createHash("sha1").update(JSON.stringify([body, this.next++])).digest("hex");
      this.commits.set(sha, { tree: body.tree, parents: body.parents, message: body.message });
      return [201, { sha, tree: { sha: body.tree }, parents: body.parents.map((s: string) => ({ sha: s })) }];
    }
    if (req.method === "POST" && p === "/git/refs") {
      const ref = String(body.ref).replace(/^refs\//, "");
      if (this.refs.has(ref)) return [422, { message: "Reference already exists" }];
      this.refs.set(ref, body.sha);
      return [201, { ref: body.ref, object: { sha: body.sha } }];
    }
    if (req.method === "POST" && p === "/pulls") {
      const sha = this.refs.get(`heads/${body.head}`);
      if (!sha) return [422, { message: "Validation Failed", errors: [{ field: "head", code: "invalid" }] }];
      const pull: Pull & { title: string; body: string } = { number: this.next++, head: { sha, ref: body.head }, base: { ref: body.base }, merged_at: null, merge_commit_sha: null, state: "open", title: body.title, body: body.body };
      this.pulls.push(pull);
      return [201, { ...pull, html_url: `https://github.com/${this.repo}/pull/${pull.number}` }];
    }
    if (req.method === "GET" && p === "/issues") {
      const labels = (q.get("labels") ?? "").split(",").filter(Boolean);
      const list = this.issues.filter((i) => (q.get("state") ?? "open") === i.state && labels.every((l) => i.labels.includes(l)));
      return [200, list.map((i) => ({ ...i, labels: i.labels.map((n) => ({ name: n })) }))];
    }
    if (req.method === "POST" && p === "/issues") {
      const issue: Issue = { number: this.next++, title: body.title, body: body.body, labels: body.labels ?? [], state: "open", comments: [] };
      this.issues.push(issue);
      return [201, issue];
    }
    // a pull request's conversation: GET/POST /issues/{n}/comments, PATCH /issues/comments/{id};
    // a comment written with the workflow's token is by github-actions[bot], type Bot
    if ((m = /^\/issues\/comments\/(\d+)$/.exec(p)) && req.method === "PATCH") {
      const c = this.comments.find((x) => x.id === Number(m![1]));
      if (!c) return [404, { message: "Not Found" }];
      if (c.user.type !== "Bot") return [403, { message: "Resource not accessible by integration" }];
      c.body = body.body;
      return [200, c];
    }
    if ((m = /^\/issues\/(\d+)\/comments$/.exec(p)) && this.pulls.some((x) => x.number === Number(m![1]))) {
      if (req.method === "GET") return [200, this.comments.filter((c) => c.issue === Number(m![1]))];
      const c: Comment = { id: this.next++, issue: Number(m[1]), body: body.body, user: { login: "github-actions[bot]", type: "Bot" } };
      this.comments.push(c);
      return [201, c];
    }
    if ((m = /^\/issues\/(\d+)(\/comments)?$/.exec(p))) {
      const issue = this.issues.find((i) => i.number === Number(m![1]));
      if (!issue) return [404, { message: "Not Found" }];
      if (req.method === "POST" && m[2]) {
        issue.comments.push(body.body);
        return [201, { body: body.body }];
      }
      if (req.method === "PATCH") {
        Object.assign(issue, Object.fromEntries(Object.entries(body).filter(([k]) => ["title", "body", "state"].includes(k))));
        return [200, issue];
      }
    }
    return [404, { message: "Not Found", documentation_url: "https://docs.github.com/rest" }];
  }
}
