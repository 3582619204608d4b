/**
 * Worker tasks as PVE runs them (pve-common src/PVE/RESTEnvironment.pm fork_worker, UPID.pm
 * 18-30 at f665029): the API call returns a UPID at once, the work happens while the task is
 * `running`, and the task ends `stopped` with exitstatus "OK" or the error text, its log ending
 * "TASK OK" / "TASK ERROR: <msg>". Status and log: pve-manager PVE/API2/Tasks.pm 453-546 at
 * 14a22df; an unknown UPID is 400 "no such task". /cluster/tasks lists every task ever run
 * (pve-manager PVE/API2/Cluster.pm 730-771).
 */
import { paramError, PveError, SimCluster, SimTask } from "./state";

let pid = 0x1000;

/** UPID:node:pid:pstart:starttime:type:id:user: (UPID.pm 18-30; hex fields 8 wide). */
function upidOf(node: string, type: string, id: string, user: string, starttime: number): string {
  const hex = (n: number) => n.toString(16).toUpperCase().padStart(8, "0");
  return `UPID:${node}:${hex(pid++)}:${hex(0x2000 + pid)}:${hex(starttime)}:${type}:${id}:${user}:`;
}

/**
 * Starts a task: `work` runs after the task has been `running` for `timing.taskMs` (so a client
 * polling at once sees it running, as with PVE), and may throw a PveError/Error to fail the task.
 * What PVE checks before it forks the worker, the caller checks before calling this.
 */
export function startTask(c: SimCluster, node: string, type: string, id: string, user: string, work: (log: (l: string) => void) => void | Promise<void>): string {
  const starttime = Math.floor(Date.now() / 1000);
  const task: SimTask = { upid: upidOf(node, type, id, user, starttime), node, type, id, user, starttime, status: "running", log: [] };
  c.tasks.push(task);
  setTimeout(async () => {
    try {
      await c.taskGate;
      await work((l) => task.log.push(l));
      task.exitstatus = "OK";
      task.log.push("TASK OK");
    } catch (e: any) {
      const msg = String(e?.message ?? e).replace(/\n+$/, "");
      task.exitstatus = msg;
      task.log.push(`TASK ERROR: ${msg}`);
    }
    task.status = "stopped";
    task.endtime = Math.floor(Date.now() / 1000);
  }, c.timing.taskMs);
  return task.upid;
}

export function findTask(c: SimCluster, upid: string): SimTask {
  // pve-manager PVE/API2/Tasks.pm 315-316, 516-517: parameter errors on upid
  if (!/^UPID:[^:]+:[0-9A-F]{8}:[0-9A-F]{8}:[0-9A-F]{8}:[^:]+:[^:]*:[^:]+:$/.test(upid)) paramError({ upid: "unable to parse worker upid" });
  const t = c.tasks.find((x) => x.upid === upid);
  if (!t) paramError({ upid: "no such task" });
  return t!;
}

export function taskStatus(t: SimTask) {
  return { upid: t.upid, node: t.node, pid: parseInt(t.upid.split(":")[2], 16), pstart: parseInt(t.upid.split(":")[3], 16), starttime: t.starttime, type: t.type, id: t.id, user: t.user, status: t.status, ...(t.status === "stopped" ? { exitstatus: t.exitstatus } : {}) };
}

/** /cluster/tasks entries (Cluster.pm 730-771): the stopped ones carry endtime and status. */
export function clusterTasks(c: SimCluster) {
  return c.tasks.map((t) => ({ upid: t.upid, node: t.node, pid: parseInt(t.upid.split(":")[2], 16), pstart: parseInt(t.upid.split(":")[3], 16), starttime: t.starttime, type: t.type, id: t.id, user: t.user, ...(t.status === "stopped" ? { endtime: t.endtime, status: t.exitstatus } : {}) }));
}
