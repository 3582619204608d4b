/**
 * Installs the provider double (STAND-IN for the bpg/proxmox provider binary, which cannot be
 * downloaded here) where real Terraform finds providers: a filesystem mirror
 * (<dir>/mirror/registry.terraform.io/bpg/proxmox/0.111.0/linux_amd64/) named by a CLI config
 * that sends every other provider to the registry as usual. Terraform's `init` then installs it,
 * records its hash in .terraform.lock.hcl, and runs it for validate, plan, apply and import.
 */
import { buildSync } from "esbuild";
import { chmodSync, copyFileSync, existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Cluster, seedCluster, writeCluster } from "./cluster";

const ROOT = join(__dirname, "..", "..");
const VERSION = "0.112.0";

export interface DoubleInstall {
  /** Environment for terraform: the CLI config, the cluster file, provider credentials. */
  env: Record<string, string>;
  clusterFile: string;
  cliConfig: string;
}

let cert: { cert: string; key: string } | undefined;

/** A self-signed certificate for localhost, made once per test process (selfsigned on node-forge). */
async function serverCert(): Promise<{ cert: string; key: string }> {
  if (cert) return cert;
  const selfsigned = require("selfsigned");
  // go-plugin's generateCert (hashicorp/go-plugin mtls.go): CN localhost, DNS SAN localhost,
  // CA (the client pins this very certificate as its root), server and client auth.
  const pems = await selfsigned.generate([{ name: "commonName", value: "localhost" }, { name: "organizationName", value: "HashiCorp" }], {
    keyType: "ec",
    curve: "P-256",
    algorithm: "sha256",
    notAfterDate: new Date(Date.now() + 7 * 24 * 3600 * 1000),
    extensions: [
      { name: "basicConstraints", cA: true, critical: true },
      { name: "keyUsage", digitalSignature: true, keyEncipherment: true, keyCertSign: true, critical: true },
      { name: "extKeyUsage", serverAuth: true, clientAuth: true },
      { name: "subjectAltName", altNames: [{ type: 2, value: "localhost" }] },
    ],
  });
  cert = { cert: pems.cert, key: pems.private };
  return cert;
}

export async function installProviderDouble(dir: string, cluster: Cluster): Promise<DoubleInstall> {
  const home = join(dir, "double");
  mkdirSync(home, { recursive: true });
  buildSync({ entryPoints: [join(__dirname, "server.ts")], bundle: true, platform: "node", target: "node20", format: "cjs", outfile: join(home, "server.js"), logLevel: "silent" });
  for (const f of ["tfplugin6.proto", "go-plugin.proto"]) copyFileSync(join(__dirname, f), join(home, f));
  const { cert: c, key } = await serverCert();
  writeFileSync(join(home, "server-cert.pem"), c);
  writeFileSync(join(home, "server-key.pem"), key, { mode: 0o600 });

  const platform = `${process.platform}_${process.arch === "x64" ? "amd64" : process.arch}`;
  const binDir = join(dir, "mirror", "registry.terraform.io", "bpg", "proxmox", VERSION, platform);
  mkdirSync(binDir, { recursive: true });
  const bin = join(binDir, `terraform-provider-proxmox_v${VERSION}`);
  writeFileSync(
    bin,
    `#!/bin/sh\n# STAND-IN for terraform-provider-proxmox ${VERSION} (the project's provider double)\nPVE_DOUBLE_HOME='${home}' PVE_DOUBLE_SCHEMA='${join(ROOT, "providers", `bpg-proxmox-${VERSION}.schema.json`)}' exec '${process.execPath}' '${join(home, "server.js")}'\n`,
  );
  chmodSync(bin, 0o755);

  const cliConfig = join(dir, "terraformrc");
  writeFileSync(
    cliConfig,
    `disable_checkpoint = true\nprovider_installation {\n  filesystem_mirror {\n    path    = "${join(dir, "mirror")}"\n    include = ["registry.terraform.io/bpg/proxmox"]\n  }\n  direct {\n    exclude = ["registry.terraform.io/bpg/proxmox"]\n  }\n}\n`,
  );
  const clusterFile = join(dir, "cluster.json");
  if (!existsSync(clusterFile)) writeCluster(clusterFile, cluster);
  return {
    clusterFile,
    cliConfig,
    env: {
      TF_CLI_CONFIG_FILE: cliConfig,
      CHECKPOINT_DISABLE: "1",
      TF_IN_AUTOMATION: "1",
      PVE_DOUBLE_CLUSTER: clusterFile,
      PVE_DOUBLE_LOG: join(dir, "double.log"),
      PROXMOX_VE_ENDPOINT: "https://pve1.test:8006/",
      // A made-up token: the double only notes that token auth is used. Tests check it never
      // reaches state or plans.
      PROXMOX_VE_API_TOKEN: "terraform@pve!fleet=00000000-0000-4000-8000-0000000000aa",
    },
  };
}

export { seedCluster };
