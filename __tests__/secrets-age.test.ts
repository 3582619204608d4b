/**
 * The age calls of scripts/lib/secrets-store.ts with the real age (#29 item 10): age's own error
 * is what the user reads (not its fixed "report unexpected or unhelpful errors" last line), and a
 * secret over 1 MiB goes through instead of "install age".
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { decrypt, encrypt, SecretsError } from "../scripts/lib/secrets-store";

const dir = mkdtempSync(join(tmpdir(), "age-"));
const key = (name: string) => {
  const f = join(dir, name);
  spawnSync("age-keygen", ["-o", f]);
  return { file: f, recipient: spawnSync("age-keygen", ["-y", f], { encoding: "utf8" }).stdout.trim() };
};

describe("age, as the secrets commands run it", () => {
  it("says what age said when it fails: the key that cannot open the file, not age's boilerplate", () => {
    const owner = key("owner");
    const other = key("other");
    const file = join(dir, "s.age");
    encrypt(file, "value", [owner.recipient]);
    let err: unknown;
    try {
      decrypt(file, other.file);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SecretsError);
    expect((err as Error).message).toBe("age -d failed: no identity matched any of the recipients");
    writeFileSync(join(dir, "bad-id"), "not a key\n");
    expect(() => decrypt(file, join(dir, "bad-id"))).toThrow(/^age -d failed: reading ".*bad-id": failed to read ".*bad-id": error at line 1: unknown identity type$/);
  });

  it("encrypts and decrypts a secret over 1 MiB", () => {
    const owner = key("big");
    const file = join(dir, "big.age");
    const value = "v".repeat(3 << 20);
    encrypt(file, value, [owner.recipient]);
    expect(decrypt(file, owner.file)).toBe(value);
  });
});
