/**
 * npm run stack-lock -- <command> ...   Plan locks per stack, kept in the state database.
 *
 * A pull request whose plan changes a stack holds that stack from its plan until the deploy of
 * its merge applies it, so no two pull requests hold reviewed plans for one stack (the second
 * one's saved plan would be stale at apply, and a deploy queue would lose it). As Atlantis's
 * project locks; here in PostgreSQL, next to the state, so the lock and the state live and are
 * backed up together (docs/adr-0021-ci-security-and-locks.md).
 *
 *   setup [--grant <role>]...     create the lock table (owner connection); let <role> (the plan
 *                                 job's SELECT-only role) take and release locks, and nothing else
 *   take --pr N --head SHA [--run-url URL] [<stack>...]
 *                                 hold exactly these stacks for pull request N: take each one
 *                                 that is free or already its own, release its others; one line
 *                                 per stack another pull request holds, tab-separated
 *                                 "<stack>\t<message>"
 *   release --pr N [<stack>...]   release pull request N's locks (all of them without stacks)
 *   move --from N --to M          hand pull request N's locks to M (a follow-up after a failed apply)
 *   list                          one line per held stack: stack, pull request, head, since
 *
 * Connection: FLEET_LOCK_CONN_STR, else PG_CONN_STR (libpq URL, as the pg backend's).
 * Exit 0 ok; 5 a stack is held by another pull request (take); 2 bad usage or no connection
 * setting; 1 the database refused (one line: what and why).
 */
import { Client } from "pg";
import { minimist } from "zx";

const EXIT = { ok: 0, failed: 1, usage: 2, locked: 5 } as const;
const LOCK_TABLE = "fleet_locks.stacks";
const USAGE = "Usage: npm run stack-lock -- setup [--grant <role>] | take --pr N --head SHA [--run-url URL] <stack>... | release --pr N [<stack>...] | move --from N --to M | list";

class Usage extends Error {}

const STACK = /^[A-Za-z0-9_-]{1,100}$/;
const ROLE = /^[a-z_][a-z0-9_]{0,62}$/;

function prNumber(v: unknown, flag: string): number {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 1 || String(v) !== String(n)) throw new Usage(`--${flag} must be a pull request number`);
  return n;
}

function stacks(list: string[]): string[] {
  for (const s of list) if (!STACK.test(s)) throw new Usage(`stack name ${JSON.stringify(s.slice(0, 100))} is not a synthesized stack's name (letters, digits, - and _)`);
  return [...new Set(list)].sort();
}

/** What a pull request is told when another one holds a stack its plan changes. */
function lockedMessage(stack: string, holder: { pr: number; head: string; since: Date; run_url: string | null }): string {
  return `stack ${stack} is locked by pull request #${holder.pr} (planned at ${holder.head.slice(0, 12)}, held since ${holder.since.toISOString()}${holder.run_url ? `, ${holder.run_url}` : ""}): its reviewed plan must be applied first. Merge #${holder.pr} and let its deploy finish, or close it, then re-run this plan.`;
}

async function main(argv: string[]): Promise<number> {
  const a = minimist(argv, { string: ["pr", "head", "run-url", "grant", "from", "to"], boolean: ["help"], alias: { h: "help" } });
  const [cmd, ...rest] = a._.map(String);
  if (a.help) {
    process.stdout.write(`${USAGE}\n`);
    return EXIT.ok;
  }
  const known = new Set(["_", "pr", "head", "run-url", "grant", "from", "to", "help", "h", "--"]);
  for (const k of Object.keys(a)) if (!known.has(k)) throw new Usage(`unknown option --${k}`);
  const conn = process.env.FLEET_LOCK_CONN_STR || process.env.PG_CONN_STR;
  if (!["setup", "take", "release", "move", "list"].includes(cmd ?? "")) throw new Usage(cmd ? `unknown command ${JSON.stringify(cmd)}` : "give a command");
  if (!conn) throw new Usage("set FLEET_LOCK_CONN_STR (or PG_CONN_STR) to the state database's connection string");
  // the connection string never reaches argv or a log line: pg reads it from here
  const db = new Client({ connectionString: conn });
  await db.connect();
  try {
    switch (cmd) {
      case "setup": {
        const roles = ([] as string[]).concat(a.grant ?? []).map(String);
        for (const r of roles) if (!ROLE.test(r)) throw new Usage(`--grant ${JSON.stringify(r)} is not a plain role name`);
        await db.query("BEGIN");
        await db.query("CREATE SCHEMA IF NOT EXISTS fleet_locks");
        await db.query(`CREATE TABLE IF NOT EXISTS ${LOCK_TABLE} (stack text PRIMARY KEY, pr integer NOT NULL, head text NOT NULL, run_url text, since timestamptz NOT NULL DEFAULT now())`);
        for (const r of roles) {
          await db.query(`GRANT USAGE ON SCHEMA fleet_locks TO ${r}`);
          await db.query(`GRANT SELECT, INSERT, UPDATE, DELETE ON ${LOCK_TABLE} TO ${r}`);
        }
        await db.query("COMMIT");
        process.stdout.write(`stack-lock: ${LOCK_TABLE} ready${roles.length ? `; ${roles.join(", ")} may take and release locks` : ""}\n`);
        return EXIT.ok;
      }
      case "take": {
        const pr = prNumber(a.pr, "pr");
        const head = String(a.head ?? "");
        if (!/^[0-9a-f]{7,64}$/.test(head)) throw new Usage("--head must be the pull request's head commit id");
        const runUrl = a["run-url"] === undefined ? null : String(a["run-url"]);
        if (runUrl !== null && !/^https:\/\/[^\s<>()"']+$/.test(runUrl)) throw new Usage("--run-url must be an https URL without spaces");
        const want = stacks(rest);
        const locked: string[] = [];
        await db.query("BEGIN");
        // One statement per stack: a concurrent take of the same stack waits on the primary key
        // and then sees the committed holder (PostgreSQL's INSERT ... ON CONFLICT), so of two pull
        // requests exactly one holds it.
        for (const stack of want) {
          const got = await db.query(
            `INSERT INTO ${LOCK_TABLE} (stack, pr, head, run_url) VALUES ($1, $2, $3, $4)
             ON CONFLICT (stack) DO UPDATE SET head = EXCLUDED.head, run_url = EXCLUDED.run_url WHERE ${LOCK_TABLE}.pr = EXCLUDED.pr RETURNING pr`,
            [stack, pr, head, runUrl],
          );
          if (got.rowCount) continue;
          const holder = (await db.query(`SELECT pr, head, since, run_url FROM ${LOCK_TABLE} WHERE stack = $1`, [stack])).rows[0];
          locked.push(`${stack}\t${lockedMessage(stack, holder)}`);
        }
        // the stacks this plan no longer changes are free again
        await db.query(`DELETE FROM ${LOCK_TABLE} WHERE pr = $1 AND NOT (stack = ANY($2::text[]))`, [pr, want]);
        await db.query("COMMIT");
        process.stdout.write(locked.map((l) => `${l}\n`).join(""));
        return locked.length ? EXIT.locked : EXIT.ok;
      }
      case "release": {
        const pr = prNumber(a.pr, "pr");
        const only = stacks(rest);
        const r = only.length ? await db.query(`DELETE FROM ${LOCK_TABLE} WHERE pr = $1 AND stack = ANY($2::text[]) RETURNING stack`, [pr, only]) : await db.query(`DELETE FROM ${LOCK_TABLE} WHERE pr = $1 RETURNING stack`, [pr]);
        process.stdout.write(`stack-lock: pull request #${pr} released ${r.rows.map((x) => x.stack).sort().join(", ") || "nothing (it held no lock)"}\n`);
        return EXIT.ok;
      }
      case "move": {
        const from = prNumber(a.from, "from");
        const to = prNumber(a.to, "to");
        const r = await db.query(`UPDATE ${LOCK_TABLE} SET pr = $2, since = now() WHERE pr = $1 RETURNING stack`, [from, to]);
        process.stdout.write(`stack-lock: ${r.rows.map((x) => x.stack).sort().join(", ") || "no stack"} moved from #${from} to #${to}\n`);
        return EXIT.ok;
      }
      default: {
        const r = await db.query(`SELECT stack, pr, head, since FROM ${LOCK_TABLE} ORDER BY stack`);
        process.stdout.write(r.rows.map((x) => `${x.stack}\t#${x.pr}\t${x.head}\t${x.since.toISOString()}\n`).join(""));
        return EXIT.ok;
      }
    }
  } catch (e) {
    await db.query("ROLLBACK").catch(() => undefined);
    throw e;
  } finally {
    await db.end();
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: Error & { code?: string }) => {
    const usage = e instanceof Usage;
    const hint = e.code === "42P01" ? ` (run \`npm run stack-lock -- setup --grant <plan role>\` once with the owner's connection)` : e.code === "42501" ? " (grant the role with `npm run stack-lock -- setup --grant <role>`)" : "";
    process.stderr.write(`stack-lock: ${usage ? `${e.message}; ${USAGE}` : `${e.message.split("\n")[0]}${hint}`}\n`);
    process.exitCode = usage ? EXIT.usage : EXIT.failed;
  },
);
