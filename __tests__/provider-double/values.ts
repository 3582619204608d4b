/**
 * Terraform values as the provider double handles them: msgpack with cty's conventions, a marker
 * for unknown values, and schema-directed helpers (full objects, unknown computed attributes).
 *
 * cty's msgpack encoding (github.com/zclconf/go-cty, cty/msgpack): unknown values are a msgpack
 * extension (type 0, or type 12 with refinements); objects are maps keyed by attribute name;
 * lists and sets are arrays; null is nil. Terraform decodes by the schema's type, so a value is
 * always sent as a complete object of its block (every attribute, null where unset).
 */
import { decode, encode, ExtensionCodec } from "@msgpack/msgpack";

export const UNKNOWN: unique symbol = Symbol("unknown");
export type Value = null | boolean | number | string | Value[] | { [k: string]: Value } | typeof UNKNOWN;

const codec = new ExtensionCodec();
// Decoding: any extension is an unknown value (type 0 plain, type 12 refined).
for (const type of [0, 12]) codec.register({ type, encode: () => null, decode: () => UNKNOWN });
// Encoding: the unknown marker as fixext1 type 0 with a zero byte, as cty writes it.
codec.register({ type: 0, encode: (v) => (v === UNKNOWN ? new Uint8Array([0]) : null), decode: () => UNKNOWN });

export function fromMsgpack(buf: Uint8Array | undefined | null): Value {
  if (!buf || buf.length === 0) return null;
  return decode(buf, { extensionCodec: codec, useBigInt64: false }) as Value;
}

export function toMsgpack(v: Value): Uint8Array {
  return encode(v, { extensionCodec: codec, ignoreUndefined: false });
}

export interface SchemaAttr {
  type?: unknown;
  nested_type?: { attributes: Record<string, SchemaAttr>; nesting_mode: string };
  required?: boolean;
  optional?: boolean;
  computed?: boolean;
  sensitive?: boolean;
  description?: string;
  deprecated?: boolean;
}
export interface SchemaBlock {
  attributes?: Record<string, SchemaAttr>;
  block_types?: Record<string, { nesting_mode: string; block: SchemaBlock; min_items?: number; max_items?: number }>;
  description?: string;
  deprecated?: boolean;
}

export type Obj = { [k: string]: Value };
export const isObj = (v: Value): v is Obj => v !== null && v !== UNKNOWN && typeof v === "object" && !Array.isArray(v);

/** A value completed to its block's full shape: every attribute present (null), blocks [] or null. */
export function conform(v: Value, block: SchemaBlock): Value {
  if (v === null || v === UNKNOWN) return v;
  const o = v as Obj;
  const out: Obj = {};
  for (const k of Object.keys(block.attributes ?? {})) out[k] = o[k] === undefined ? null : o[k];
  for (const [k, b] of Object.entries(block.block_types ?? {})) {
    const x = o[k];
    if (b.nesting_mode === "single" || b.nesting_mode === "group") out[k] = x === undefined || x === null ? null : conform(x, b.block);
    else if (b.nesting_mode === "map") out[k] = x && isObj(x) ? Object.fromEntries(Object.entries(x).map(([kk, e]) => [kk, conform(e, b.block)])) : {};
    else out[k] = Array.isArray(x) ? x.map((e) => conform(e, b.block)) : x === UNKNOWN ? UNKNOWN : [];
  }
  return out;
}

/** Computed attributes that are null become unknown (what a provider plans for values it will learn). */
export function unknownComputed(v: Value, block: SchemaBlock): Value {
  if (!isObj(v)) return v;
  const out: Obj = { ...v };
  for (const [k, a] of Object.entries(block.attributes ?? {})) if (a.computed && out[k] === null) out[k] = UNKNOWN;
  for (const [k, b] of Object.entries(block.block_types ?? {})) {
    const x = out[k];
    if (Array.isArray(x)) out[k] = x.map((e) => unknownComputed(e, b.block));
    else if (isObj(x) && (b.nesting_mode === "single" || b.nesting_mode === "group")) out[k] = unknownComputed(x, b.block);
  }
  return out;
}

/** Replaces every unknown that is left after an apply with the zero value a provider would read back. */
export function settle(v: Value, block: SchemaBlock): Value {
  if (!isObj(v)) return v;
  const out: Obj = { ...v };
  for (const [k, a] of Object.entries(block.attributes ?? {})) if (out[k] === UNKNOWN) out[k] = zeroOf(a.type, a.nested_type);
  for (const [k, b] of Object.entries(block.block_types ?? {})) {
    const x = out[k];
    if (x === UNKNOWN) out[k] = b.nesting_mode === "single" ? null : [];
    else if (Array.isArray(x)) out[k] = x.map((e) => settle(e, b.block));
    else if (isObj(x)) out[k] = settle(x, b.block);
  }
  return out;
}

function zeroOf(type: unknown, nested?: SchemaAttr["nested_type"]): Value {
  if (nested) return nested.nesting_mode === "single" ? null : [];
  if (type === "string") return "";
  if (type === "number") return 0;
  if (type === "bool") return false;
  if (Array.isArray(type) && (type[0] === "list" || type[0] === "set")) return [];
  if (Array.isArray(type) && type[0] === "map") return {};
  return null;
}

/** Structural equality of two values (unknown equals only unknown). */
export function same(a: Value, b: Value): boolean {
  if (a === b) return true;
  if (a === null || b === null || a === UNKNOWN || b === UNKNOWN || typeof a !== "object" || typeof b !== "object") return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) return a.length === (b as Value[]).length && a.every((x, i) => same(x, (b as Value[])[i]));
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => same((a as Obj)[k], (b as Obj)[k] ?? null));
}
