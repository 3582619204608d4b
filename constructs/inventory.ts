/**
 * The fleet inventory: one JSON file, read here (validated) and by nixos/flake.nix
 * (builtins.fromJSON). Validation collects every problem before reporting, so a user fixes
 * a broken file in one pass.
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import type { ErrorObject, ValidateFunction } from "ajv";
import { distance } from "fastest-levenshtein";
import { parse as parseJsonc, ParseError, printParseErrorCode } from "jsonc-parser";
import { ROLES, ROLE_NAMES, PLATFORM_ROLES, RoleName, isRole } from "./roles";
import { textProblems } from "./inventory-text";
import { credentialProblems } from "./inventory-credentials";
import { GLIBC_LOCALES } from "./glibc-locales";
import { TZ_NAMES } from "./tz-names";
import type { HostSpec, Inventory } from "./inventory-schema";

/** The path of the first null inside `v` (a setting TOML cannot hold), if any. */
function nullAt(v: unknown, path: string): string | undefined {
  if (v === null) return path;
  const entries: [string, unknown][] = Array.isArray(v) ? v.map((x, k) => [`${path}[${k}]`, x]) : v !== null && typeof v === "object" ? Object.entries(v).map(([k, x]) => [`${path}.${k}`, x]) : [];
  for (const [p, x] of entries) {
    const found = nullAt(x, p);
    if (found) return found;
  }
  return undefined;
}

/**
 * Accounts that NixOS (nixpkgs nixos/modules/misc/ids.nix and the modules the fleet uses) or the
 * fleet's own services (nixos/modules: vllm, git, the platform services; litellm and open-webui
 * run as DynamicUser under their own names) own; systemd-* and nixbld* are matched apart.
 */
const RESERVED_USERS = new Set<string>(["root", "nobody", "sshd", "messagebus", "nscd", "polkituser", "avahi", "vllm", "litellm", "open-webui", "git", ...PLATFORM_ROLES]);

/**
 * Whether this code runs from a checkout of the repository (this file one level down, in
 * constructs/ or in the .build/ bundle, beside the nixos/ flake), not from the installed package
 * (node_modules/<package>/dist/constructs, with no flake beside it).
 */
export const IN_CHECKOUT = existsSync(join(resolve(__dirname, ".."), "nixos", "flake.nix"));

/**
 * The project root: the checkout; for the installed package the working directory, where cdktf
 * runs the app and Terraform runs the deploy steps (#29 item 4: it was the package's own dist/,
 * inside node_modules).
 */
export const PROJECT_ROOT = IN_CHECKOUT ? resolve(__dirname, "..") : process.cwd();

/** Default inventory path, relative to the project root; FLEET_FILE overrides it. */
export const DEFAULT_FLEET_FILE = "fleet.json";

// The types come from the schema (constructs/inventory-schema.ts): one definition for the
// types, the runtime validation and the published fleet.schema.json.
export type { Inventory, ClusterSpec, TemplateSpec, PciMappingSpec, UserSpec, DeploySpec, NetworkSpec, GpuSpec, HostSpec, ServiceSettings } from "./inventory-schema";

export interface Problem {
  /** Host name, or a top-level section such as "cluster". */
  readonly where: string;
  readonly field: string;
  readonly message: string;
}

/** Raised when the inventory cannot be used; carries every problem found. */
export class InventoryError extends Error {
  constructor(
    readonly file: string,
    readonly problems: Problem[],
  ) {
    super(problems.map((p) => formatProblem(file, p)).join("\n"));
    this.name = "InventoryError";
  }
}

/** One line: file, place, field, what is wrong; control characters from the document escaped. */
export function formatProblem(file: string, p: Problem): string {
  return `${file}: ${p.where}: ${p.field}: ${p.message}`.replace(/[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

/** Path of the inventory: FLEET_FILE, else fleet.json in the project root. */
export function fleetFilePath(env: NodeJS.ProcessEnv = process.env, root = PROJECT_ROOT): string {
  return resolve(root, env.FLEET_FILE || DEFAULT_FLEET_FILE);
}

/** Reads, parses and validates the inventory; throws InventoryError listing every problem. */
export function loadInventory(file: string = fleetFilePath()): Inventory {
  let text: string;
  try {
    // a device (/dev/zero) or a FIFO would be read forever, or block: only a regular file of a
    // sane size is opened at all (statSync opens nothing)
    const st = statSync(file);
    if (!st.isFile()) throw new InventoryError(file, [{ where: "file", field: "path", message: `is not a regular file (${st.isFIFO() ? "a FIFO" : st.isDirectory() ? "a directory" : "a device or socket"}); set FLEET_FILE to an inventory JSON file` }]);
    if (st.size > MAX_INVENTORY_BYTES) throw new InventoryError(file, [{ where: "file", field: "path", message: `is ${Math.round(st.size / 1048576)} MiB; an inventory is at most ${MAX_INVENTORY_BYTES >> 20} MiB` }]);
    text = readFileSync(file, "utf8");
  } catch (e) {
    if (e instanceof InventoryError) throw e;
    throw new InventoryError(file, [
      { where: "file", field: "path", message: `cannot read it (${(e as NodeJS.ErrnoException).code ?? e}); set FLEET_FILE to an inventory JSON file` },
    ]);
  }
  return parseInventory(text, file);
}

/** Larger than any inventory can be (100,000 hosts are about 25 MiB). */
const MAX_INVENTORY_BYTES = 64 << 20;

/** Deeper than any inventory can be (hosts[].services.<role>.<setting>...): refused before parsing. */
const MAX_DEPTH = 32;

export function parseInventory(text: string, file = "<inventory>"): Inventory {
  const refuse = (message: string): never => {
    throw new InventoryError(file, [{ where: "file", field: "json", message }]);
  };
  const early = structureProblem(text);
  if (early) refuse(early);
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    // only a document that is not JSON is parsed a second time, for the position of the error
    refuse(jsonErrorAt(text) ?? `malformed JSON: ${(e as Error).message}; fix the syntax and run again`);
  }
  // duplicate keys and numbers JSON.parse changes silently: reported before anything else
  const text0 = textProblems(text);
  if (text0.length > 0) throw new InventoryError(file, text0.map((p) => ({ ...locate(data, p.path), message: p.message })));
  const problems = validateInventory(data); // reads the document, never changes it
  if (problems.length > 0) throw new InventoryError(file, problems);
  return data as Inventory;
}

/**
 * What keeps `text` from being read at all, before any parser runs: a byte order mark (Nix's
 * builtins.fromJSON refuses it), or nesting deeper than MAX_DEPTH (a linear scan, so a recursive
 * parser never overflows its stack).
 */
function structureProblem(text: string): string | undefined {
  if (text.charCodeAt(0) === 0xfeff) return "the file starts with a byte order mark (BOM, U+FEFF), which Nix's JSON reader refuses; save it as UTF-8 without BOM";
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92) i++; // backslash: skip the escaped character
      else if (c === 34) inString = false;
    } else if (c === 34) inString = true;
    else if (c === 123 || c === 91) {
      if (++depth > MAX_DEPTH) return `${at(text, i)}: nested more than ${MAX_DEPTH} levels deep; an inventory is a few levels deep, check the brackets`;
    } else if (c === 125 || c === 93) depth--;
  }
  return undefined;
}

/** The first JSON syntax error with line and column, as jsonc-parser (VS Code's JSON parser) reports it, comments and trailing commas included. */
function jsonErrorAt(text: string): string | undefined {
  const errors: ParseError[] = [];
  parseJsonc(text, errors, { disallowComments: true, allowTrailingComma: false, allowEmptyContent: false });
  if (!errors.length) return undefined;
  const e = errors[0];
  return `malformed JSON at ${at(text, e.offset)}: ${JSON_ERRORS[printParseErrorCode(e.error)] ?? printParseErrorCode(e.error)}; fix the syntax and run again`;
}

/** "line L, column C" of an offset (1-based, as editors count). */
function at(text: string, offset: number): string {
  const before = text.slice(0, offset);
  const line = before.split("\n").length;
  return `line ${line}, column ${offset - before.lastIndexOf("\n")}`;
}

/** jsonc-parser's error codes in words. */
const JSON_ERRORS: Record<string, string> = {
  InvalidSymbol: "unexpected character",
  InvalidNumberFormat: "malformed number",
  PropertyNameExpected: "expected a property name in double quotes",
  ValueExpected: "expected a value",
  ColonExpected: "expected ':' after the property name",
  CommaExpected: "expected ',' between entries",
  CloseBraceExpected: "expected '}' to close the object",
  CloseBracketExpected: "expected ']' to close the list",
  EndOfFileExpected: "unexpected text after the end of the document",
  InvalidCommentToken: "comments are not allowed in JSON",
  UnexpectedEndOfComment: "comments are not allowed in JSON",
  UnexpectedEndOfString: "the string is not closed",
  UnexpectedEndOfNumber: "malformed number",
  InvalidUnicode: "malformed \\u escape",
  InvalidEscapeCharacter: "invalid escape in a string",
  InvalidCharacter: "a control character (such as a line break) inside a string",
};

// ---------------------------------------------------------------- IPv4 helpers

export function parseIpv4(s: unknown): number | undefined {
  if (typeof s !== "string") return undefined;
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m) return undefined;
  const parts = m.slice(1).map(Number);
  if (parts.some((p) => p > 255)) return undefined;
  return ((parts[0] << 24) | (parts[1] << 16) | (parts[2] << 8) | parts[3]) >>> 0;
}

export function parseCidr(s: unknown): { ip: number; prefix: number; address: string } | undefined {
  if (typeof s !== "string") return undefined;
  const [addr, len, ...rest] = s.split("/");
  if (rest.length || len === undefined || !/^\d{1,2}$/.test(len)) return undefined;
  const ip = parseIpv4(addr);
  const prefix = Number(len);
  if (ip === undefined || prefix < 1 || prefix > 32) return undefined;
  return { ip, prefix, address: addr };
}

function sameSubnet(a: number, b: number, prefix: number): boolean {
  const mask = prefix === 0 ? 0 : (~0 << (32 - prefix)) >>> 0;
  return (a & mask) >>> 0 === (b & mask) >>> 0;
}

// ---------------------------------------------------------------- validation

/**
 * A host name that is at once an RFC 1123 label, a NixOS networking.hostName (no dots) and a
 * Terraform identifier (outputs and resources are named after it: it must start with a letter).
 */
const HOSTNAME = /^(?=.{1,63}$)[a-z]([a-z0-9-]*[a-z0-9])?$/;
/** Construct ids of a host stack that a host named the same would collide with (stacks/fleet.ts). */
export const RESERVED_HOST_NAMES = /^(proxmox|null|backend|role-barrier-.*)$/;
/** Stack names: short identifiers (directory names under cdktf.out/stacks and state file names). */
const STACK_NAME = /^[a-z][a-z0-9-]{0,30}$/;
const RESERVED_STACKS = ["cluster"];
const isObj = (v: unknown): v is Record<string, any> => typeof v === "object" && v !== null && !Array.isArray(v);
const isInt = (v: unknown): v is number => typeof v === "number" && Number.isInteger(v);
const isStr = (v: unknown): v is string => typeof v === "string" && v.length > 0;

/** Effective ports of a host's roles, after the host's overrides (role -> port name -> number). */
export function hostPorts(host: Pick<HostSpec, "roles" | "services">): Record<string, Record<string, number>> {
  const out: Record<string, Record<string, number>> = {};
  for (const role of host.roles) {
    out[role] = { ...ROLES[role].ports, ...(host.services?.[role]?.ports ?? {}) };
  }
  return out;
}

/**
 * The stack a host belongs to: its own `stack`; else "platform" when it has a platform role
 * (their deploy order is kept inside one stack); else the group of its first role; "ops" for a
 * host without roles.
 */
export function stackOf(h: Pick<HostSpec, "roles" | "stack">): string {
  if (h.stack) return h.stack;
  if (h.roles.some((r) => (PLATFORM_ROLES as readonly string[]).includes(r))) return "platform";
  // A plain NixOS host (no role) goes with the operations hosts.
  return h.roles.length ? ROLES[h.roles[0]].group : "ops";
}

/** Returns every problem in the inventory; an empty list means it is usable. */
export function validateInventory(data: unknown): Problem[] {
  const fromSchema = schemaProblems(data);
  const fromRules = ruleProblems(data);
  // A rule's message names the fix more precisely than the schema's, for the same field or one inside it.
  const covered = (p: Problem) => fromRules.some((r) => r.where === p.where && (p.field === r.field || p.field.startsWith(`${r.field}.`) || p.field.startsWith(`${r.field}[`)));
  const seen = new Set<string>();
  return [...fromSchema.filter((p) => !covered(p)), ...fromRules].filter((p) => {
    const k = `${p.where}\u0000${p.field}\u0000${p.message}`;
    return seen.has(k) ? false : (seen.add(k), true);
  });
}

// ---------------------------------------------------------------- the schema (ajv)

let compiled: ValidateFunction | undefined;
function schemaValidator(): ValidateFunction {
  // scripts/app.mjs (the synth) hands over the same schema compiled ahead of time
  // (scripts/gen-validator.mjs; issue #30: compiling cost ~145 ms of every synth)
  compiled ??= (globalThis as Record<symbol, ValidateFunction | undefined>)[Symbol.for("proxmox-nixos-fleet.inventoryValidator")];
  if (!compiled) {
    // loaded only here: the synth never needs ajv's compiler or the schema builder
    const Ajv = (require("ajv") as typeof import("ajv")).default;
    const { InventorySchema } = require("./inventory-schema") as typeof import("./inventory-schema");
    const ajv = new Ajv({ allErrors: true, verbose: true, strict: true, allowUnionTypes: true });
    // VS Code's message for a pattern; an annotation to ajv.
    ajv.addKeyword({ keyword: "patternErrorMessage", schemaType: "string" });
    compiled = ajv.compile(InventorySchema);
  }
  return compiled;
}

/** The schema's findings as problems: where (section or host), field, what is wrong and what to do. */
function schemaProblems(data: unknown): Problem[] {
  const validate = schemaValidator();
  if (validate(data)) return [];
  return (validate.errors ?? []).flatMap((e) => {
    const path = e.instancePath.split("/").slice(1).map((x) => x.replace(/~1/g, "/").replace(/~0/g, "~"));
    const extra = e.keyword === "additionalProperties" ? (e.params as any).additionalProperty : e.keyword === "required" ? (e.params as any).missingProperty : undefined;
    const { where, field } = locate(data, extra === undefined ? path : [...path, extra]);
    const message = describeError(e, extra);
    return message ? [{ where, field, message }] : [];
  });
}

/** Where a JSON path points, as the problems name it: `host "x"` / section, and a dotted field. */
function locate(data: any, path: string[]): { where: string; field: string } {
  // keys that are not plain names (empty, with spaces or dots) are quoted
  const key = (s: string) => (/^[A-Za-z0-9_$-]+$/.test(s) ? s : JSON.stringify(s));
  const join = (segs: string[]) => segs.reduce((acc, s) => (/^\d+$/.test(s) ? `${acc}[${s}]` : acc ? `${acc}.${key(s)}` : key(s)), "");
  const [top, i, ...rest] = path;
  if (top === undefined) return { where: "file", field: "(top level)" };
  const item = Array.isArray(data?.[top]) && i !== undefined && /^\d+$/.test(i) ? data[top][Number(i)] : undefined;
  // a name that is itself wrong (too long, odd characters) is not repeated: the entry's index is
  const named = typeof item?.name === "string" && /^[A-Za-z0-9._-]{1,63}$/.test(item.name) ? item.name : undefined;
  if (top === "hosts" && i !== undefined && /^\d+$/.test(i)) return { where: named ? `host "${named}"` : `hosts[${i}]`, field: join(rest) || "host" };
  if ((top === "users" || top === "pciMappings" || top === "retired") && i !== undefined && /^\d+$/.test(i)) return { where: `${top}[${named ?? i}]`, field: join(rest) || "entry" };
  if (i === undefined) return { where: top === "$schema" ? "file" : key(top), field: key(top) };
  return { where: key(top), field: join([i, ...rest]) };
}

/** A value as JSON, cut after 100 characters (a 100 kB name is not echoed whole). */
const json = (v: unknown) => {
  if (v === undefined) return "nothing";
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 120 ? `${s.slice(0, 100)}… (${s.length} characters)` : s;
};

function describeError(e: ErrorObject, extra?: string): string | undefined {
  const parent = e.parentSchema as any;
  const v = e.data;
  switch (e.keyword) {
    case "additionalProperties": {
      const known = Object.keys(parent?.properties ?? {});
      const guess = suggest(extra!, known);
      return `unknown field ${json(extra)}${guess ? `; did you mean "${guess}"?` : known.length ? `; the fields here are ${known.join(", ")}` : "; nothing may be set here"}`;
    }
    case "required": {
      const d = parent?.properties?.[extra!]?.description;
      return `missing${d ? `; ${d}` : ""}`;
    }
    case "type": {
      const t = (e.params as any).type as string | string[];
      const quoted = typeof v === "string" ? " (without quotes)" : "";
      if (t === "boolean") return `${json(v)} must be true or false${quoted}`;
      if (t === "integer") return `${json(v)} must be a whole number${quoted}`;
      if (t === "number") return `${json(v)} must be a number${quoted}`;
      if (t === "string") return `${json(v)} must be text in double quotes`;
      if (t === "array") return `${json(v)} must be a list [ ... ]`;
      if (t === "object") return `${json(v)} must be an object { ... }`;
      if (v === null) return "null is not allowed here (TOML has no null); remove the setting";
      return `${json(v)} must be one of the types ${([] as string[]).concat(t).join(", ")}`;
    }
    case "enum":
      return `${json(v)} is not one of ${(parent.enum as unknown[]).map(json).join(", ")}`;
    case "minimum":
    case "maximum":
      return `${json(v)} is outside ${parent.minimum}-${parent.maximum}; use a value in that range`;
    case "pattern":
      return `${json(v)} ${parent.patternErrorMessage ?? `does not match ${parent.pattern}`}`;
    case "minItems":
      return (e.params as any).limit === 1 ? "must list at least one entry" : `must list at least ${(e.params as any).limit} entries`;
    case "maxItems":
      return `lists ${(v as unknown[]).length} entries; at most ${(e.params as any).limit} are allowed`;
    case "uniqueItems":
      return `lists ${json((v as unknown[])[(e.params as any).i])} twice; remove one`;
    case "minLength":
      return "must not be empty";
    case "maxLength":
      return `is longer than ${(e.params as any).limit} characters`;
    default:
      return `${json(v)}: ${e.message}`;
  }
}

/** The known name closest to a misspelt one, if it is close (at most a third of its letters differ). */
export function suggest(name: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const k of known) {
    const d = distance(name.toLowerCase(), k.toLowerCase());
    if (d < bestD) [best, bestD] = [k, d];
  }
  return best !== undefined && bestD <= Math.max(1, Math.floor(name.length / 3)) ? best : undefined;
}

// ---------------------------------------------------------------- rules across fields

/**
 * An OpenSSH public key line, parsed: type, base64 body whose wire form starts with the same
 * type (RFC 4253 string), and the key length the type implies; an optional comment after it.
 */
export function sshKeyProblem(line: unknown): string | undefined {
  if (typeof line !== "string") return "must be a public key line in double quotes";
  if (/PRIVATE KEY/.test(line)) return "is a private key; give the public key line (ssh-ed25519 AAAA...), never a private key";
  const m = /^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com) ([A-Za-z0-9+/]+={0,2})( [^\n\r]*)?$/.exec(line);
  if (!m) return `${json(line.length > 60 ? `${line.slice(0, 60)}...` : line)} is not an OpenSSH public key line (type, base64 key, optional comment), e.g. the content of ~/.ssh/id_ed25519.pub; never a private key`;
  const type = m[1];
  const blob = Buffer.from(m[3], "base64");
  if (blob.toString("base64").replace(/=+$/, "") !== m[3].replace(/=+$/, "")) return `the key of type ${type} is not valid base64; copy the whole .pub line`;
  const strings: Buffer[] = [];
  for (let o = 0; o < blob.length; ) {
    if (o + 4 > blob.length) return `the ${type} key is truncated; copy the whole .pub line`;
    const n = blob.readUInt32BE(o);
    if (o + 4 + n > blob.length) return `the ${type} key is truncated; copy the whole .pub line`;
    strings.push(blob.subarray(o + 4, o + 4 + n));
    o += 4 + n;
  }
  if (strings[0]?.toString() !== type) return `the key body is not a ${type} key (it says ${json(strings[0]?.toString() ?? "")}); copy the whole .pub line`;
  if (type === "ssh-ed25519" && !(strings.length === 2 && strings[1].length === 32)) return "an ssh-ed25519 key has a 32-byte public key; this one does not: copy the whole .pub line";
  if (type === "ssh-rsa") {
    const modulus = strings[2] ?? Buffer.alloc(0);
    const bits = (modulus.length - (modulus[0] === 0 ? 1 : 0)) * 8;
    if (strings.length !== 3 || bits < 2048) return `an ssh-rsa key needs at least 2048 bits (this one has ${bits}); use ssh-ed25519`;
  }
  return undefined;
}

/** Network and broadcast address of a subnet cannot be a host's (prefixes up to /30). */
function reservedAddress(ip: number, prefix: number): string | undefined {
  if (prefix > 30) return undefined;
  const mask = (~0 << (32 - prefix)) >>> 0;
  if (((ip & mask) >>> 0) === ip) return "the subnet's network address";
  if (((ip | ~mask) >>> 0) === ip) return "the subnet's broadcast address";
  return undefined;
}

/** The semantic rules: references between sections, subnets, ports, mappings, names. Defensive: runs on any document. */
function ruleProblems(data: unknown): Problem[] {
  const problems: Problem[] = [];
  const add = (where: string, field: string, message: string) => problems.push({ where, field, message });
  if (!isObj(data)) {
    add("file", "json", "the top level must be an object with cluster, template, pciMappings, users and hosts");
    return problems;
  }
  problems.push(...credentialProblems(data, locate));

  // cluster
  const cluster = isObj(data.cluster) ? data.cluster : {};
  const nodes: string[] = Array.isArray(cluster.nodes) ? cluster.nodes.filter(isStr) : [];
  const knownNode = (n: unknown) => nodes.length === 0 || nodes.includes(n as string);
  if (isStr(cluster.timeZone) && !TZ_NAMES.has(cluster.timeZone)) {
    // NixOS links /etc/localtime to the zoneinfo file of exactly this name: a wrong case leaves
    // the host in UTC. The tz list first; ICU only for a name it does not have (a newer zone).
    const lower = cluster.timeZone.toLowerCase();
    let rightCase = [...TZ_NAMES].find((z) => z.toLowerCase() === lower);
    if (!rightCase)
      try {
        const canonical = new Intl.DateTimeFormat("en", { timeZone: cluster.timeZone }).resolvedOptions().timeZone;
        if (canonical !== cluster.timeZone && canonical.toLowerCase() === lower) rightCase = canonical;
      } catch {
        add("cluster", "timeZone", `${json(cluster.timeZone)} is not a time zone; use an IANA name such as "UTC" or "Europe/Oslo" (timedatectl list-timezones)`);
      }
    if (rightCase) add("cluster", "timeZone", `${json(cluster.timeZone)} has the wrong case: zoneinfo names are case-sensitive (the host would run in UTC); write ${json(rightCase)}`);
  }
  if (isStr(cluster.locale)) {
    // NixOS builds "<defaultLocale>/UTF-8" from glibc's locale sources: the name must be one
    // glibc has, and the charset UTF-8
    const m = /^([^.@]+)(?:\.([^@]+))?(@[a-z]+)?$/.exec(cluster.locale);
    if (m && !GLIBC_LOCALES.has(`${m[1]}${m[3] ?? ""}`))
      add("cluster", "locale", `${json(cluster.locale)} is not a locale glibc can build (its localedata/SUPPORTED has no ${json(`${m[1]}${m[3] ?? ""}`)}); use one such as "en_US.UTF-8", "de_DE.UTF-8" or "C.UTF-8"`);
    else if (m?.[2] && !/^utf-?8$/i.test(m[2])) add("cluster", "locale", `${json(cluster.locale)}: NixOS builds the default locale with the UTF-8 charset only; write ${json(`${m[1]}.UTF-8${m[3] ?? ""}`)}`);
  }
  // endpoints of services outside the fleet: a TCP port
  for (const [role, list] of Object.entries(isObj(data.externalServices) ? data.externalServices : {}))
    if (Array.isArray(list))
      list.forEach((e: unknown, i: number) => {
        const port = typeof e === "string" ? Number(e.slice(e.lastIndexOf(":") + 1)) : NaN;
        if (typeof e === "string" && /:\d+$/.test(e) && !(port >= 1 && port <= 65535)) add("externalServices", `${role}[${i}]`, `port ${port} in ${json(e)} is not a TCP port (1-65535)`);
      });

  // template
  const template = isObj(data.template) ? data.template : undefined;
  if (template) {
    if (template.node !== undefined && !knownNode(template.node)) add("template", "node", `${json(template.node)} is not one of cluster.nodes (${nodes.join(", ")})`);
    if (template.mode === "create" && template.bootstrapImage)
      add("template", "bootstrapImage", 'the VMA bootstrap restores the template itself; use it with mode "existing", or import a qcow2 with mode "create" and imageUrl');
    if (template.mode === "create" && !(typeof template.imageUrl === "string" && /^https?:\/\//.test(template.imageUrl)))
      add("template", "imageUrl", 'mode "create" needs the URL of a NixOS qcow2 image to import (http or https)');
  }

  // PCI mappings: name -> node -> number of devices
  const mappings = new Map<string, Map<string, number>>();
  for (const [i, m] of (Array.isArray(data.pciMappings) ? data.pciMappings : []).entries()) {
    if (!isObj(m) || !isStr(m.name)) continue;
    const where = `pciMappings[${m.name}]`;
    if (mappings.has(m.name)) add(where, "name", `duplicate mapping name "${m.name}" (also pciMappings[${i}])`);
    const onNodes = new Map<string, number>();
    for (const e of Array.isArray(m.map) ? m.map : []) {
      if (!isObj(e) || !isStr(e.node)) continue;
      if (!knownNode(e.node)) add(where, "map.node", `"${e.node}" is not one of cluster.nodes (${nodes.join(", ")})`);
      const path = isStr(e.path) ? e.path : "<path>";
      // Proxmox refuses to start a VM with an incomplete mapping (pve-guest-common
      // src/PVE/Mapping/PCI.pm 150-200 assert_valid: "missing expected property 'iommugroup' for device
      // '<path>'", wrapped by qemu-server as "PCI device mapping invalid (hardware probably
      // changed): ..."); the provider calls
      // such mappings incomplete (bpg docs/resources/hardware_mapping_pci.md).
      if (e.iommuGroup === undefined) add(where, "map.iommuGroup", `missing; Proxmox will not start a VM with this mapping. Read it on the node: ls /sys/bus/pci/devices/${path.split(":").length === 3 ? path : "0000:" + path}/iommu_group -l (the number at the end)`);
      if (e.subsystemId === undefined || (typeof e.subsystemId === "string" && !/^[0-9a-f]{4}:[0-9a-f]{4}$/i.test(e.subsystemId)))
        add(where, "map.subsystemId", `${e.subsystemId === undefined ? "missing" : json(e.subsystemId) + " is not a vendor:device id"}; Proxmox will not start a VM with this mapping. Read it on the node: lspci -nnv -s ${path} (the "Subsystem" line), e.g. "10de:147d"`);
      onNodes.set(e.node, (onNodes.get(e.node) ?? 0) + 1);
    }
    mappings.set(m.name, onNodes);
  }

  // users: each name once, and none of the accounts NixOS or the fleet's own services own (root
  // cannot log in over SSH on fleet hosts; a service's account would get login keys and wheel)
  const users = Array.isArray(data.users) ? data.users : [];
  const userNames = new Set<string>();
  for (const [i, u] of users.entries()) {
    if (!isObj(u)) continue;
    const where = `users[${isStr(u.name) ? u.name : i}]`;
    if (isStr(u.name)) {
      if (userNames.has(u.name)) add(where, "name", `"${u.name}" is listed twice (the second entry's keys would be lost); merge the two entries into one`);
      userNames.add(u.name);
      if (RESERVED_USERS.has(u.name) || /^(nixbld|systemd-)/.test(u.name))
        add(where, "name", `"${u.name}" is an account NixOS or a fleet service owns${u.name === "root" ? " (and root cannot log in over SSH on fleet hosts)" : ""}; give the user another name`);
    }
    for (const [j, k] of (Array.isArray(u.sshKeys) ? u.sshKeys : []).entries()) {
      if (typeof k === "string" && /PRIVATE KEY/.test(k)) continue; // reported as a credential
      const p = sshKeyProblem(k);
      if (p) add(where, `sshKeys[${j}]`, p);
    }
  }

  // deploy
  const deploy = isObj(data.deploy) ? data.deploy : {};
  const sshPort = isInt(deploy.sshPort) ? deploy.sshPort : 22;
  if (deploy.user !== undefined) {
    const admins = users.filter((u: any, i: number) => isObj(u) && (u.admin === true || (u.admin === undefined && i === 0))).map((u: any) => u.name);
    // The deploy logs in as this user and runs the activation with sudo: it must be in wheel
    // (nixos/modules/users.nix makes admin users members), which sudo and Nix trust
    // (nixos/modules/base.nix: wheelNeedsPassword = false, trusted-users @wheel). Root cannot
    // log in at all (PermitRootLogin "no").
    if (!(isStr(deploy.user) && admins.includes(deploy.user)))
      add("deploy", "user", `${json(deploy.user)} is not an admin user of the inventory (${admins.join(", ") || "none"}); the deploy needs sudo, which only admin users have${deploy.user === "root" ? "; root logins are refused on fleet hosts" : ""}`);
  }

  // hosts
  const hosts: unknown[] = Array.isArray(data.hosts) ? data.hosts : [];
  const names = new Map<string, number>();
  const vmids = new Map<number, string>();
  const ips = new Map<number, string>();
  if (template && isInt(template.vmid)) vmids.set(template.vmid, "the template");
  const rolesInFleet = new Set<string>();
  /** mapping -> node -> hosts using it there */
  const mappingUse = new Map<string, Map<string, string[]>>();
  for (const [i, h] of hosts.entries()) {
    if (!isObj(h)) continue;
    const where = isStr(h.name) && /^[A-Za-z0-9._-]{1,63}$/.test(h.name) ? `host "${h.name}"` : `hosts[${i}]`;
    if (isStr(h.name)) {
      if (!HOSTNAME.test(h.name))
        add(where, "name", `${json(h.name)} is not a host name: lower-case letters, digits and '-', starting with a letter and not ending with '-', at most 63 (RFC 1123, and valid as a Terraform and a NixOS name)`);
      else if (RESERVED_HOST_NAMES.test(h.name)) add(where, "name", `"${h.name}" is a name the stacks use themselves (proxmox, null, backend, role-barrier-*); choose another host name`);
      if (names.has(h.name)) add(where, "name", `duplicate host name (also hosts[${names.get(h.name)}])`);
      else names.set(h.name, i);
    } else if (h.name !== undefined && typeof h.name !== "string") add(where, "name", `${json(h.name)} is not a host name: lower-case letters, digits and '-', starting with a letter (RFC 1123, and valid as a Terraform and a NixOS name)`);
    if (isInt(h.vmid)) {
      if (vmids.has(h.vmid)) add(where, "vmid", `${h.vmid} is already used by ${vmids.get(h.vmid)}`);
      else vmids.set(h.vmid, where);
    }
    if (h.node !== undefined && typeof h.node === "string" && !knownNode(h.node)) add(where, "node", `${json(h.node)} is not one of cluster.nodes (${nodes.join(", ")})`);
    if (typeof h.stack === "string") {
      if (!STACK_NAME.test(h.stack))
        add(where, "stack", `${json(h.stack)} is not a stack name: lower-case letters, digits and '-', starting with a letter, at most 31 (it names a directory and a state file)`);
      else if (RESERVED_STACKS.includes(h.stack)) add(where, "stack", `"${h.stack}" is the stack of the template and PCI mappings; choose another name`);
    }

    // roles
    const roles: RoleName[] = [];
    if (!Array.isArray(h.roles)) {
      if (h.roles !== undefined) add(where, "roles", `must be a list of roles (${ROLE_NAMES.join(", ")}); [] makes a plain NixOS host`);
    } else
      for (const r of h.roles) {
        if (!isRole(r)) add(where, "roles", `unknown role ${json(r)}${typeof r === "string" && suggest(r, ROLE_NAMES) ? `; did you mean "${suggest(r, ROLE_NAMES)}"?` : ""}; known roles: ${ROLE_NAMES.join(", ")}`);
        else if (!roles.includes(r)) roles.push(r);
      }
    roles.forEach((r) => rolesInFleet.add(r));

    // sizes against the roles' minimums
    for (const [field, unit] of [["cores", ""], ["memoryMiB", " MiB"], ["diskGiB", " GiB"]] as const) {
      const v = h[field];
      if (!isInt(v)) continue;
      for (const r of roles) {
        const min = ROLES[r].min[field];
        if (v < min) add(where, field, `${v}${unit} is below the ${r} role's minimum of ${min}${unit}; raise ${field}`);
      }
    }
    // A clone's OS disk can grow, never shrink (bpg v0.111.0 proxmoxtf/resource/vm/disk/disk.go
    // UpdateClone: "disk resize failure: requested size ... is lower than current size").
    const templateDisk = template?.mode === "create" ? (isInt(template.diskGiB) ? template.diskGiB : 40) : undefined;
    if (templateDisk !== undefined && isInt(h.diskGiB) && h.diskGiB < templateDisk)
      add(where, "diskGiB", `${h.diskGiB} GiB is smaller than the template's disk (template.diskGiB = ${templateDisk}); a clone's disk can only grow: raise diskGiB or lower template.diskGiB`);

    // network
    const net = h.network;
    if (isObj(net)) {
      if (net.dhcp === true) {
        if (net.address !== undefined) add(where, "network.address", "set either dhcp: true or a static address, not both");
      } else if (net.address === undefined && (net.dhcp === undefined || net.dhcp === false)) add(where, "network.address", 'missing; give a static address such as "10.0.0.5/24" and a gateway, or set "dhcp": true');
      else {
        const cidr = parseCidr(net.address);
        if (cidr) {
          const reserved = reservedAddress(cidr.ip, cidr.prefix);
          if (reserved) add(where, "network.address", `${cidr.address} is ${reserved} of ${net.address}; give the host an address inside the subnet`);
          if (ips.has(cidr.ip)) add(where, "network.address", `${cidr.address} is already used by ${ips.get(cidr.ip)}`);
          else ips.set(cidr.ip, where);
          const gw = parseIpv4(net.gateway);
          if (net.gateway === undefined) add(where, "network.gateway", "a static address needs a gateway");
          else if (gw !== undefined && !sameSubnet(gw, cidr.ip, cidr.prefix)) add(where, "network.gateway", `${net.gateway} is outside the subnet of ${net.address}`);
          else if (gw === cidr.ip) add(where, "network.gateway", `${net.gateway} is the host's own address`);
        }
      }
    }

    // GPU
    const gpu = h.gpu;
    const needsGpu = roles.filter((r) => ROLES[r].gpu);
    if (needsGpu.length > 0 && !isObj(gpu)) add(where, "gpu", `the ${needsGpu.join(", ")} role needs a GPU; add "gpu": { "mapping": "<pciMappings name>" }`);
    if (isObj(gpu)) {
      if (!isStr(gpu.mapping) && !isStr(gpu.rawId)) add(where, "gpu.mapping", "name a PCI mapping from pciMappings (or a rawId, which needs root@pam)");
      if (isStr(gpu.mapping)) {
        const onNodes = mappings.get(gpu.mapping);
        if (!onNodes) add(where, "gpu.mapping", `"${gpu.mapping}" is not defined in pciMappings${suggest(gpu.mapping, [...mappings.keys()]) ? `; did you mean "${suggest(gpu.mapping, [...mappings.keys()])}"?` : ""}`);
        else if (isStr(h.node) && !onNodes.has(h.node))
          add(where, "gpu.mapping", `"${gpu.mapping}" has no device on node "${h.node}" (it maps ${[...onNodes.keys()].join(", ") || "no node"}); move the host or extend the mapping`);
        else if (isStr(h.node)) {
          const byNode = mappingUse.get(gpu.mapping) ?? new Map<string, string[]>();
          byNode.set(h.node, [...(byNode.get(h.node) ?? []), isStr(h.name) ? h.name : `hosts[${i}]`]);
          mappingUse.set(gpu.mapping, byNode);
        }
      }
      // qemu-server PVE/API2/Qemu.pm check_hostpci_perm: an unmapped device may be set only by
      // root@pam logged in with its password, never through an API token (not even root@pam's).
      if (isStr(gpu.rawId) && process.env.PROXMOX_VE_API_TOKEN)
        add(where, "gpu.rawId", "a raw PCI id needs root@pam with a password, and PROXMOX_VE_API_TOKEN is set (Proxmox refuses raw ids from every API token); define the device in pciMappings and use gpu.mapping");
    }

    // services and ports: a role's settings only for roles the host has; no two services on one port; never the SSH port
    const services = isObj(h.services) ? h.services : {};
    // a platform service's settings become TOML, which has no null: refused here, not at the deploy
    for (const role of PLATFORM_ROLES) {
      const at = isObj(services[role]) ? nullAt(services[role], `services.${role}`) : undefined;
      if (at) add(where, at, "null has no form in the service's config.toml (TOML has no null); remove the setting or give it a value");
    }
    for (const key of Object.keys(services)) if (isRole(key) && !roles.includes(key)) add(where, `services.${key}`, `settings for role "${key}", which the host does not have; add the role or remove the settings`);
    const seen = new Map<number, string>();
    for (const [role, ports] of Object.entries(hostPorts({ roles, services: services as HostSpec["services"] }))) {
      for (const [pname, port] of Object.entries(ports)) {
        if (!isInt(port)) continue;
        const field = `services.${role}.ports.${pname}`;
        if (port === sshPort) add(where, field, `port ${port} is the SSH port the deploy uses (deploy.sshPort ${sshPort}); give ${role} another port`);
        const other = seen.get(port);
        if (other) add(where, field, `port ${port} is also wanted by ${other} on this host; give one of them another port`);
        else seen.set(port, `${role}.${pname}`);
      }
    }
  }

  // retired hosts (docs/adr-0019-provider-hands-off.md): kept VMs, no longer in the fleet
  for (const [i, r] of (Array.isArray(data.retired) ? data.retired : []).entries()) {
    if (!isObj(r)) continue;
    const where = `retired[${isStr(r.name) ? r.name : i}]`;
    if (isStr(r.name) && names.has(r.name)) add(where, "name", `"${r.name}" is also in hosts: a host is either in the fleet or retired; remove one of the two entries`);
    else if (isStr(r.name) && !HOSTNAME.test(r.name)) add(where, "name", `${json(r.name)} is not a host name (lower-case letters, digits and '-', starting with a letter)`);
    if (isInt(r.vmid)) {
      if (vmids.has(r.vmid)) add(where, "vmid", `${r.vmid} is already used by ${vmids.get(r.vmid)}`);
      else vmids.set(r.vmid, where);
    }
  }

  // A mapping of one device on a node can be given to one VM there at a time.
  for (const [name, byNode] of mappingUse)
    for (const [node, users] of byNode) {
      const devices = mappings.get(name)?.get(node) ?? 0;
      if (users.length > devices)
        for (const u of users.slice(devices))
          add(`host "${u}"`, "gpu.mapping", `"${name}" maps ${devices} device${devices === 1 ? "" : "s"} on node "${node}", already given to ${users.slice(0, devices).join(", ")}; a passed-through device serves one VM: add a device to the mapping, use another mapping, or move the host`);
    }

  // The platform's deploy order is kept inside one stack: its hosts must not be split.
  const platformStacks = new Map<string, string[]>();
  for (const h of hosts)
    if (isObj(h) && Array.isArray(h.roles) && h.roles.some((r: unknown) => (PLATFORM_ROLES as readonly unknown[]).includes(r))) {
      const st = stackOf({ roles: h.roles.filter(isRole), stack: typeof h.stack === "string" ? h.stack : undefined });
      platformStacks.set(st, [...(platformStacks.get(st) ?? []), String(h.name)]);
    }
  if (platformStacks.size > 1) {
    const [first, ...others] = [...platformStacks.keys()];
    for (const st of others)
      for (const n of platformStacks.get(st)!)
        add(`host "${n}"`, "stack", `platform hosts must share one stack (their deploy order is kept inside a stack): this one is in "${st}", others in "${first}"`);
  }

  const n = isObj(data.nix) ? data.nix : {};
  if (Array.isArray(n.substituters) && n.substituters.length > 0 && !(Array.isArray(n.trustedPublicKeys) && n.trustedPublicKeys.length > 0))
    add("nix", "trustedPublicKeys", "a substituter is used only with its public key: add the key its operator publishes");

  // platform dependencies across the fleet (or satisfied by external endpoints)
  const external = isObj(data.externalServices) ? data.externalServices : {};
  for (const [role, eps] of Object.entries(external)) if (isRole(role) && Array.isArray(eps) && eps.length) rolesInFleet.add(role);
  for (const role of PLATFORM_ROLES) {
    if (!rolesInFleet.has(role)) continue;
    for (const need of ROLES[role].requires)
      if (!rolesInFleet.has(need)) {
        const holders = hosts.filter((h: any) => isObj(h) && Array.isArray(h.roles) && h.roles.includes(role)).map((h: any) => h.name);
        add(`host "${holders[0]}"`, "roles", `${role} needs ${need}, but no host in the fleet has the ${need} role; add one or list it in externalServices`);
      }
  }
  return problems;
}
