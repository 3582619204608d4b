/**
 * A lock directory (mkdir is atomic on every file system we write to): processes that run in
 * parallel (deploy steps, `npm run secrets`) take turns on a file. Polled every 50 ms.
 */
import { mkdirSync, rmSync } from "node:fs";

/** Runs `fn` holding the directory `lock`; after `tries` failed attempts throws `giveUp()`. */
export async function withDirLock<T>(lock: string, tries: number, giveUp: () => Error, fn: () => T | Promise<T>): Promise<T> {
  for (let i = 0; ; i++) {
    try {
      mkdirSync(lock);
      break;
    } catch {
      if (i > tries) throw giveUp();
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}
