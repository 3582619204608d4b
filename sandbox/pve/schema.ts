/**
 * Every request to the simulator is checked against Proxmox VE's own API schema
 * (apidata/pve-api-subset.json, from proxmox/pve-docs api-viewer/apidata.js at e5010dc, PVE 9.1.3)
 * the way pve-manager checks it, with PVE's message texts:
 *  - routing: PVE::API2->find_handler; no handler -> 501 "Method 'GET /x' not implemented"
 *    (proxmox/pve-manager PVE/HTTPServer.pm at 14a22df, lines 144-151);
 *  - parameters: PVE::JSONSchema::validate (proxmox/pve-common src/PVE/JSONSchema.pm at f665029):
 *    check_object 1300-1420 (unknown property, alias), check_type 1185-1275 (booleans are '0'/'1'
 *    or JSON booleans, integers), check_prop 1570-1690 (missing, format, pattern, lengths,
 *    bounds, enum), parse_property_string 1068-1148 for property-string formats, and the named
 *    format verifiers 250-355 (pve-vmid, pve-node, pve-storage-id, pve-configid, pve-bridge-id);
 *    any error -> 400 "Parameter verification failed." with `errors` { param: message } (1695-1718).
 * Indexed options (`net[n]` in the schema, `net0` on the wire) take the index range qemu-server
 * allows (proxmox/qemu-server at e6352be: QemuServer.pm 862-864, Drive.pm 158, PCI.pm 26,
 * USB.pm 19, Memory.pm 20, Virtiofs.pm 23; disk buses from the schema's own "n is 0 to N").
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";

export interface MethodInfo {
  parameters?: { properties?: Record<string, any>; additionalProperties?: number };
  returns?: any;
  permissions?: any;
  protected?: number;
  allowtoken?: number;
}

interface Route {
  template: string;
  re: RegExp;
  names: string[];
  methods: Record<string, MethodInfo>;
}

const data = JSON.parse(readFileSync(join(__dirname, "apidata", "pve-api-subset.json"), "utf8"));
export const SCHEMA_SOURCE: { repo: string; path: string; commit: string; pveVersion: string } = data.source;

const routes: Route[] = Object.entries<Record<string, MethodInfo>>(data.paths).map(([template, methods]) => {
  const names: string[] = [];
  const re = new RegExp(
    "^" +
      template.replace(/\{(\w+)\}/g, (_, n) => {
        names.push(n);
        return "([^/]+)";
      }) +
      "$",
  );
  return { template, re, names, methods };
});

export type RouteResult = { template: string; uriParams: Record<string, string>; info: MethodInfo } | { notImplemented: string };

/** find_handler: the schema's path template and method for a request, or pveproxy's 501 text. */
export function route(method: string, relPath: string): RouteResult {
  const path = relPath.replace(/\/+$/, "") || "/";
  for (const r of routes) {
    const m = r.re.exec(path);
    if (!m) continue;
    const info = r.methods[method];
    if (!info) break;
    const uriParams = Object.fromEntries(r.names.map((n, i) => [n, decodeURIComponent(m[i + 1])]));
    return { template: r.template, uriParams, info };
  }
  return { notImplemented: `Method '${method} ${relPath}' not implemented` };
}

// Index limits of indexed options where the schema's description gives none (see the header).
const INDEX_LIMITS: Record<string, number> = { net: 32, ipconfig: 32, hostpci: 16, unused: 256, serial: 4, parallel: 3, usb: 14, numa: 8, virtiofs: 10 };

/** The schema of a parameter name: `net3` -> the `net[n]` property when 3 is within range. */
function propertyOf(props: Record<string, any>, name: string): any {
  if (props[name]) return props[name];
  const m = /^([a-z]+)(\d+)$/.exec(name);
  const indexed = m && props[`${m[1]}[n]`];
  if (!indexed) return undefined;
  const range = /n is 0 to (\d+)/.exec(indexed.description ?? "");
  const limit = range ? Number(range[1]) + 1 : INDEX_LIMITS[m![1]] ?? 0;
  return Number(m![2]) < limit ? indexed : undefined;
}

const CONFIGID_RE = /^[a-z][a-z0-9_-]+$/i;
const NAMED_FORMATS: Record<string, (v: string) => string | undefined> = {
  "pve-vmid": (v) => (/^[1-9][0-9]{2,8}$/.test(v) ? undefined : "value does not look like a valid VM ID"),
  "pve-node": (v) => (/^([a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?)$/.test(v) ? undefined : "value does not look like a valid node name"),
  "pve-storage-id": (v) => (v.length < 2 ? `storage ID '${v}' cannot be shorter than 2 characters` : /^[a-z][a-z0-9\-_.]*[a-z0-9]$/i.test(v) ? undefined : `storage ID '${v}' contains illegal characters`),
  "pve-configid": (v) => (CONFIGID_RE.test(v) ? undefined : `invalid configuration ID '${v}'`),
  "pve-configid-list": (v) => v.split(/[,;\s]+/).filter(Boolean).map((x) => (CONFIGID_RE.test(x) ? undefined : `invalid configuration ID '${x}'`)).find(Boolean),
  "pve-bridge-id": (v) => (/^[-_.\w]+$/.test(v) ? undefined : `invalid bridge ID '${v}'`),
  // pve-access-control src/PVE/AccessControl.pm verify_poolname 1353-1368
  "pve-poolid": (v) => (v.split("/").length > 3 ? `pool name '${v}' nested too deeply (max levels = 3)` : /^[A-Za-z0-9.\-_]+(?:\/[A-Za-z0-9.\-_]+){0,2}$/.test(v) ? undefined : `pool name '${v}' contains invalid characters`),
};

const isInteger = (v: unknown) => (typeof v === "number" && Number.isInteger(v)) || (typeof v === "string" && /^-?\d+$/.test(v));
const isNumber = (v: unknown) => (typeof v === "number" && Number.isFinite(v)) || (typeof v === "string" && /^-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(v));

function checkType(type: string | undefined, v: unknown): string | undefined {
  if (!type || type === "string" || type === "any") return typeof v === "object" && v !== null ? `type check ('${type}') failed - got ${Array.isArray(v) ? "ARRAY" : "HASH"}` : undefined;
  if (type === "boolean") return typeof v === "boolean" || v === "0" || v === "1" || v === 0 || v === 1 ? undefined : `type check ('boolean') failed - got '${v}'`;
  if (type === "integer") return isInteger(v) ? undefined : `type check ('integer') failed - got '${v}'`;
  if (type === "number") return isNumber(v) ? undefined : `type check ('number') failed - got '${v}'`;
  if (type === "array") return Array.isArray(v) ? undefined : "type check ('array') failed";
  if (type === "object") return typeof v === "object" && v && !Array.isArray(v) ? undefined : "type check ('object') failed";
  return undefined;
}

/** parse_property_string: `k=v,k2=v2` (plus the default key) checked against a format object. */
export function parsePropertyString(format: Record<string, any>, text: string): { value?: Record<string, string>; error?: string; errors?: Record<string, string> } {
  const res: Record<string, string> = {};
  let defaultKey: string | undefined;
  for (const part of text.split(",")) {
    if (/^\s*$/.test(part)) continue;
    const kv = /^([^=]+)=(.+)$/.exec(part);
    if (kv) {
      let [, k, v] = kv;
      if (res[k] !== undefined) return { error: `duplicate key in comma-separated list property: ${k}` };
      let schema = format[k];
      if (schema?.alias) {
        if (schema.keyAlias) {
          if (res[schema.keyAlias] !== undefined) return { error: `key alias '${schema.keyAlias}' is already defined` };
          res[schema.keyAlias] = k;
        }
        k = schema.alias;
        schema = format[k];
        if (res[k] !== undefined) return { error: `key '${k}' is already defined (via alias)` };
      }
      if (!schema) return { error: `invalid key in comma-separated list property: ${k}` };
      if (schema.type === "boolean") v = /^(1|on|yes|true)$/i.test(v) ? "1" : /^(0|off|no|false)$/i.test(v) ? "0" : v;
      res[k] = v;
    } else if (!part.includes("=")) {
      if (defaultKey) return { error: `duplicate key in comma-separated list property: ${defaultKey}` };
      defaultKey = Object.keys(format).find((k) => format[k].default_key);
      if (!defaultKey) return { error: "value without key, but schema does not define a default key" };
      if (res[defaultKey] !== undefined) return { error: `duplicate key in comma-separated list property: ${defaultKey}` };
      res[defaultKey] = part;
    } else return { error: "missing key in comma-separated list property" };
  }
  const errors = checkObject(format, res, 0);
  return Object.keys(errors).length ? { error: "format error", errors } : { value: res };
}

/** check_prop for one value; undefined when it passes. */
function checkProp(schema: any, v: unknown): string | undefined {
  if (schema.alias) return undefined;
  const typeError = checkType(schema.type, v);
  if (typeError) return typeError;
  if (typeof v === "object") return undefined;
  const s = String(v);
  if (schema.format && typeof schema.format === "object") {
    const r = parsePropertyString(schema.format, s);
    if (r.error) return `invalid format - ${r.error}${r.errors ? "\n" + Object.entries(r.errors).map(([k, m]) => `${k}: ${m}`).join("\n") : ""}`;
  } else if (typeof schema.format === "string" && NAMED_FORMATS[schema.format]) {
    const e = NAMED_FORMATS[schema.format](s);
    if (e) return `invalid format - ${e}`;
  }
  if (schema.pattern && !new RegExp(`^(?:${schema.pattern})$`).test(s)) return "value does not match the regex pattern";
  if (schema.maxLength !== undefined && s.length > schema.maxLength) return `value may only be ${schema.maxLength} characters long`;
  if (schema.minLength !== undefined && s.length < schema.minLength) return `value must be at least ${schema.minLength} characters long`;
  if (isNumber(s)) {
    if (schema.maximum !== undefined && Number(s) > schema.maximum) return `value must have a maximum value of ${schema.maximum}`;
    if (schema.minimum !== undefined && Number(s) < schema.minimum) return `value must have a minimum value of ${schema.minimum}`;
  }
  if (schema.enum && !schema.enum.map(String).includes(s)) return `value '${s}' does not have a value in the enumeration '${schema.enum.join(", ")}'`;
  return undefined;
}

function checkObject(props: Record<string, any>, value: Record<string, unknown>, additional: number | undefined): Record<string, string> {
  const errors: Record<string, string> = {};
  for (const [k, schema] of Object.entries(props)) {
    if (k.endsWith("[n]")) continue;
    if (value[k] === undefined || value[k] === null) {
      if (!schema.optional && !schema.alias && schema.type !== "null") errors[k] = "property is missing and it is not optional";
    }
  }
  for (const [k, v] of Object.entries(value)) {
    const schema = propertyOf(props, k);
    if (!schema) {
      if (additional === 0) errors[k] = "property is not defined in schema and the schema does not allow additional properties";
      continue;
    }
    if (v === undefined || v === null) continue;
    const e = checkProp(schema, v);
    if (e) errors[k] = e;
  }
  return errors;
}

/** PVE::JSONSchema::validate of a request's parameters (URI parameters merged in). */
export function verifyParams(info: MethodInfo, params: Record<string, unknown>): Record<string, string> | undefined {
  const errors = checkObject(info.parameters?.properties ?? {}, params, info.parameters?.additionalProperties);
  return Object.keys(errors).length ? errors : undefined;
}

/**
 * The `returns` schema against an answer, as PVE's RESTHandler verifies results in its debug mode
 * (pve-common src/PVE/RESTHandler.pm handle, $result_verification -> PVE::JSONSchema::validate):
 * types, required properties, nested objects and list items. Paths of the problems, or [].
 */
export function verifyReturns(schema: any, value: unknown, path = "data"): string[] {
  if (!schema || value === undefined) return [];
  if (value === null) return schema.type === "null" || schema.optional ? [] : schema.type ? [`${path}: null for ${schema.type}`] : [];
  // Strict JSON types: clients decode integers and booleans from JSON numbers (bpg's Go structs
  // fail on a quoted number), so a string where the schema says integer is an error here.
  if ((schema.type === "integer" || schema.type === "number" || schema.type === "boolean") && typeof value !== "number" && typeof value !== "boolean") return [`${path}: ${JSON.stringify(value)} is not a JSON ${schema.type === "boolean" ? "0/1" : "number"}`];
  const typeError = schema.type && schema.type !== "null" ? checkType(schema.type, value) : undefined;
  if (typeError) return [`${path}: ${typeError}`];
  if (schema.type === "array" && Array.isArray(value)) return value.flatMap((v, i) => verifyReturns(schema.items, v, `${path}[${i}]`));
  if (schema.type === "object" && schema.properties && typeof value === "object") {
    const obj = value as Record<string, unknown>;
    const out: string[] = [];
    for (const [k, p] of Object.entries<any>(schema.properties)) {
      if (k.endsWith("[n]")) continue;
      if (obj[k] === undefined) {
        if (!p.optional && !("default" in p)) out.push(`${path}.${k}: missing`);
      } else out.push(...verifyReturns(p, obj[k], `${path}.${k}`));
    }
    return out;
  }
  return [];
}
