/**
 * Credentials anywhere in the inventory, which is committed and read into the Nix store of every
 * host: a field named like one, or a value that holds one, whole or inside a longer string
 * (a URL's user:password part, a token in a query, `Bearer ...`, a Proxmox token in a comment;
 * issue #29 item 5: anchored patterns let those through to state, argv and every nix.conf).
 */
export interface Located {
  readonly where: string;
  readonly field: string;
}
export interface CredentialProblem extends Located {
  readonly message: string;
}

const CREDENTIAL_KEY = /(pass(word|wd|phrase)?$|secret|token|api[-_]?key|private[-_]?key|credential)/i;
/** Searched anywhere in a string, not only as its whole value. */
const CREDENTIAL_VALUE: [RegExp, string][] = [
  [/-----BEGIN [A-Z ]*PRIVATE KEY-----/, "private key material"],
  [/AGE-SECRET-KEY-1/, "an age secret key"],
  [/[\w.-]+@[\w.-]+![\w.-]+[=:][0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/i, "a Proxmox API token"],
  [/PVEAPIToken=/, "a Proxmox API token"],
  // scheme://user:password@host (postgres://u:p@db, https://u:p@cache, git+https://x:tok@forge)
  [/[a-z][a-z0-9+.-]*:\/\/[^/\s:@]+:[^/\s@]+@/i, "a URL with a password in it"],
  [/[?&](access_token|token|private_token|password|passwd|key|apikey|api_key)=[^&\s#]{8,}/i, "a credential in a URL's query"],
  [/\bBearer\s+[A-Za-z0-9._~+/-]{16,}=*/, "a bearer token"],
  [/\bhf_[A-Za-z0-9]{30,}/, "a Hugging Face token"],
  [/\bsk-[A-Za-z0-9_-]{20,}/, "an API key"],
  [/\b(ghp|gho|ghs|ghu|ghr|github_pat|glpat)[-_][A-Za-z0-9_]{20,}/, "a git forge token"],
];
const CREDENTIAL_FIX = "credentials never go in the inventory (it is committed, and read into the Nix store): the Proxmox token goes in PROXMOX_VE_API_TOKEN, service keys in secrets/ (npm run secrets), SSH private keys stay in ssh-agent";

/** What looks like a credential, anywhere in the document; `locate` names where a JSON path points. */
export function credentialProblems(data: unknown, locate: (data: unknown, path: string[]) => Located): CredentialProblem[] {
  const out: CredentialProblem[] = [];
  const walk = (v: unknown, path: string[], depth: number) => {
    if (depth > 40) return;
    if (typeof v === "string") {
      for (const [re, what] of CREDENTIAL_VALUE)
        if (re.test(v)) {
          out.push({ ...locate(data, path), message: `looks like ${what}; ${CREDENTIAL_FIX}` });
          break;
        }
      return;
    }
    if (Array.isArray(v)) return v.forEach((x, i) => walk(x, [...path, String(i)], depth + 1));
    if (v && typeof v === "object")
      for (const [k, x] of Object.entries(v)) {
        // public keys and the schema reference are not credentials
        if (CREDENTIAL_KEY.test(k) && !/^(trustedPublicKeys|sshKeys)$/.test(k)) out.push({ ...locate(data, [...path, k]), message: `a credential field; ${CREDENTIAL_FIX}` });
        else walk(x, [...path, k], depth + 1);
      }
  };
  walk(data, [], 0);
  return out;
}
