/**
 * STAND-IN: a Terraform provider plugin that serves the committed bpg/proxmox 0.111.0 schema to
 * real Terraform over plugin protocol 6, with the behaviour in provider.ts. Terraform runs it
 * like any provider binary (found through a filesystem mirror, see install.ts).
 *
 * The handshake is go-plugin's (hashicorp/go-plugin server.go): check the magic cookie, serve
 * gRPC on a local port with AutoMTLS (Terraform >= 1.11 passes its certificate in
 * PLUGIN_CLIENT_CERT, the plugin answers with its own, base64 of the DER without padding, on
 * the handshake line) and print `1|6|tcp|127.0.0.1:<port>|grpc|<cert>` as the first stdout line.
 * GRPCController.Shutdown ends the process (Terraform waits 2 s for that before killing it).
 */
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ProviderDouble, Diag } from "./provider";
import { fromMsgpack, SchemaAttr, SchemaBlock, toMsgpack, Value } from "./values";

const MAGIC_KEY = "TF_PLUGIN_MAGIC_COOKIE";
const MAGIC_VALUE = "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2"; // hashicorp/terraform internal/plugin6/serve.go

if (process.env[MAGIC_KEY] !== MAGIC_VALUE) {
  process.stderr.write("This binary is a plugin. These are not meant to be executed directly.\n");
  process.exit(1);
}
const here = process.env.PVE_DOUBLE_HOME!;
const schemaFile = process.env.PVE_DOUBLE_SCHEMA!;
const clusterFile = process.env.PVE_DOUBLE_CLUSTER!;
const logFile = process.env.PVE_DOUBLE_LOG;

const loadOpts = { keepCase: true, longs: Number, enums: Number, defaults: true, oneofs: true, bytes: Buffer };
const tf = grpc.loadPackageDefinition(protoLoader.loadSync(join(here, "tfplugin6.proto"), loadOpts)) as any;
const gp = grpc.loadPackageDefinition(protoLoader.loadSync(join(here, "go-plugin.proto"), loadOpts)) as any;

const raw = JSON.parse(readFileSync(schemaFile, "utf8"));
const ps = Object.values<any>(raw.provider_schemas)[0];
const resourceBlocks: Record<string, SchemaBlock> = Object.fromEntries(Object.entries<any>(ps.resource_schemas).map(([k, v]) => [k, v.block]));
const double = new ProviderDouble(resourceBlocks, clusterFile);

// ---- schema: JSON (terraform providers schema -json) -> protocol messages ----
const NESTING: Record<string, number> = { single: 1, list: 2, set: 3, map: 4, group: 5 };
function attrMsg(name: string, a: SchemaAttr): any {
  return {
    name,
    type: a.type !== undefined ? Buffer.from(JSON.stringify(a.type)) : Buffer.alloc(0),
    nested_type: a.nested_type ? { attributes: Object.entries(a.nested_type.attributes).map(([n, x]) => attrMsg(n, x)), nesting: NESTING[a.nested_type.nesting_mode] } : null,
    description: a.description ?? "",
    required: !!a.required,
    optional: !!a.optional,
    computed: !!a.computed,
    sensitive: !!a.sensitive,
    deprecated: !!a.deprecated,
  };
}
function blockMsg(b: SchemaBlock): any {
  return {
    attributes: Object.entries(b.attributes ?? {}).map(([n, a]) => attrMsg(n, a)),
    block_types: Object.entries(b.block_types ?? {}).map(([n, bt]) => ({ type_name: n, block: blockMsg(bt.block), nesting: NESTING[bt.nesting_mode], min_items: bt.min_items ?? 0, max_items: bt.max_items ?? 0 })),
    description: b.description ?? "",
    deprecated: !!b.deprecated,
  };
}
const schemaMsg = (s: any) => ({ version: s.version ?? 0, block: blockMsg(s.block) });
const schemaResponse = {
  provider: schemaMsg(ps.provider),
  resource_schemas: Object.fromEntries(Object.entries<any>(ps.resource_schemas).map(([k, v]) => [k, schemaMsg(v)])),
  data_source_schemas: Object.fromEntries(Object.entries<any>(ps.data_source_schemas ?? {}).map(([k, v]) => [k, schemaMsg(v)])),
  diagnostics: [],
  server_capabilities: { plan_destroy: false, get_provider_schema_optional: false, move_resource_state: false },
};

// ---- the Provider service ----
const dv = (v: Value) => ({ msgpack: Buffer.from(toMsgpack(v)) });
const inV = (d: any): Value => {
  if (!d) return null;
  if (d.msgpack && d.msgpack.length) return fromMsgpack(d.msgpack);
  if (d.json && d.json.length) return JSON.parse(d.json.toString());
  return null;
};
const diags = (ds: Diag[]) => ds.map((d) => ({ severity: d.severity, summary: d.summary, detail: d.detail ?? "" }));
function log(line: string) {
  if (logFile) require("node:fs").appendFileSync(logFile, `${new Date().toISOString()} ${line}\n`);
}

type Handler = (req: any) => any;
function unary(fn: Handler) {
  return (call: grpc.ServerUnaryCall<any, any>, cb: grpc.sendUnaryData<any>) => {
    try {
      cb(null, fn(call.request));
    } catch (e) {
      log(`error: ${(e as Error).stack}`);
      cb({ code: grpc.status.INTERNAL, details: String((e as Error)?.message ?? e) } as any, null);
    }
  };
}

const provider = {
  GetProviderSchema: unary(() => schemaResponse),
  ValidateProviderConfig: unary(() => ({ diagnostics: [] })),
  ValidateResourceConfig: unary(() => ({ diagnostics: [] })),
  ValidateDataResourceConfig: unary(() => ({ diagnostics: [] })),
  ConfigureProvider: unary((r) => ({ diagnostics: diags(double.configure(inV(r.config))) })),
  // State written by this double is already in the current schema's shape (version 0).
  UpgradeResourceState: unary((r) => ({ upgraded_state: dv(r.raw_state?.json?.length ? JSON.parse(r.raw_state.json.toString()) : null), diagnostics: [] })),
  ReadResource: unary((r) => ({ new_state: dv(double.read(r.type_name, inV(r.current_state))), diagnostics: [], private: r.private })),
  PlanResourceChange: unary((r) => {
    const res = double.plan(r.type_name, inV(r.prior_state), inV(r.proposed_new_state));
    log(`plan ${r.type_name} replace=${JSON.stringify(res.requiresReplace)}`);
    return {
      planned_state: dv(res.planned),
      requires_replace: res.requiresReplace.map((path) => ({ steps: path.map((s) => ({ attribute_name: s })) })),
      planned_private: r.prior_private ?? Buffer.alloc(0),
      diagnostics: diags(res.diags),
      legacy_type_system: res.legacy,
    };
  }),
  ApplyResourceChange: unary((r) => {
    const res = double.apply(r.type_name, inV(r.prior_state), inV(r.planned_state));
    log(`apply ${r.type_name} ${res.diags.map((d) => d.summary).join("; ")}`);
    return { new_state: dv(res.state), private: Buffer.alloc(0), diagnostics: diags(res.diags), legacy_type_system: res.legacy };
  }),
  ImportResourceState: unary((r) => {
    const res = double.importState(r.type_name, r.id);
    return { imported_resources: res.state === null ? [] : [{ type_name: r.type_name, state: dv(res.state), private: Buffer.alloc(0) }], diagnostics: diags(res.diags) };
  }),
  ReadDataSource: unary((r) => ({ state: dv(inV(r.config)), diagnostics: [] })),
  StopProvider: unary(() => ({ Error: "" })),
};

// ---- go-plugin handshake with AutoMTLS ----
const clientCert = process.env.PLUGIN_CLIENT_CERT;
const certPem = readFileSync(join(here, "server-cert.pem"));
const keyPem = readFileSync(join(here, "server-key.pem"));
const creds = clientCert
  ? grpc.ServerCredentials.createSsl(Buffer.from(clientCert), [{ private_key: keyPem, cert_chain: certPem }], true)
  : grpc.ServerCredentials.createInsecure();
const server = new grpc.Server();
server.addService(tf.tfplugin6.Provider.service, provider);
server.addService(gp.plugin.GRPCController.service, {
  Shutdown: (_c: any, cb: grpc.sendUnaryData<any>) => {
    cb(null, {});
    setImmediate(() => process.exit(0));
  },
});
server.bindAsync("127.0.0.1:0", creds, (e, port) => {
  if (e) {
    process.stderr.write(`provider double: ${e.message}\n`);
    process.exit(1);
  }
  const der = Buffer.from(certPem.toString().replace(/-----[^-]+-----/g, "").replace(/\s+/g, ""), "base64");
  const certField = clientCert ? der.toString("base64").replace(/=+$/, "") : "";
  process.stdout.write(`1|6|tcp|127.0.0.1:${port}|grpc|${certField}\n`);
});
process.on("SIGINT", () => {}); // go-plugin servers ignore interrupts; Terraform shuts them down itself
