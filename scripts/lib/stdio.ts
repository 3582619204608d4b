/**
 * Terminal and pipe output of the command-line tools.
 * - Node writes to a pipe asynchronously on POSIX (the kernel buffers 64 KiB): text written just
 *   before process.exit() is lost, and CI logs miss their tail and summary (#29 item 8). The
 *   tools make stdout and stderr blocking first, as Node already does for files and terminals.
 * - Text from outside (an inventory, the Proxmox API) never reaches a terminal raw: a control
 *   character (ESC can retitle or repaint it, NUL and BEL confuse logs) or a bidirectional override
 *   is shown as an escape.
 */
export function blockingStdio(): void {
  for (const s of [process.stdout, process.stderr]) (s as unknown as { _handle?: { setBlocking?: (b: boolean) => void } })._handle?.setBlocking?.(true);
}

// C0 controls but tab and newline, DEL, C1 controls, and the bidi embedding/override/isolate marks
const UNPRINTABLE = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;

/** `s` with every control character as a visible escape (\x1b, \u202e); newlines and tabs kept. */
export function printable(s: string): string {
  return s.replace(UNPRINTABLE, (c) => {
    const n = c.charCodeAt(0);
    return n < 0x100 ? `\\x${n.toString(16).padStart(2, "0")}` : `\\u${n.toString(16).padStart(4, "0")}`;
  });
}
