import { Construct } from "constructs";
import { TerraformOutput } from "cdktn";
import { NixosVm } from "./nixos-vm";
import { gpuHostpci } from "./gpu";
import { hostPorts, Inventory, HostSpec } from "./inventory";
import { ROLES, RoleName } from "./roles";
import { fqdnOf, staticAddressOf } from "./deploy-plan";

export interface FleetHostProps {
  readonly inventory: Inventory;
  readonly host: HostSpec;
  /** Create the Proxmox VM. false: configuration only, for machines made elsewhere. @default true */
  readonly manageVm?: boolean;
}

/**
 * One inventory host: its NixOS VM (with GPU passthrough for GPU roles), its role ports and
 * service URLs, and outputs (vmid, address, service URLs).
 */
export class FleetHost extends Construct {
  readonly spec: HostSpec;
  readonly vm?: NixosVm;
  /** DNS name: <name>.<cluster.domain>, or the bare name. */
  readonly fqdn: string;
  /** Static address from the inventory (without prefix), if any. */
  readonly staticAddress?: string;
  /** Address to use in URLs: the static one, else the guest agent's. */
  readonly address: string;
  /** role -> port name -> port. */
  readonly ports: Record<string, Record<string, number>>;

  constructor(scope: Construct, id: string, props: FleetHostProps) {
    super(scope, id);
    const { inventory: inv, host } = props;
    this.spec = host;
    const user = inv.users.find((u) => u.admin !== false) ?? inv.users[0];
    this.staticAddress = staticAddressOf(host);
    this.fqdn = fqdnOf(inv, host);
    this.ports = hostPorts(host);
    const needsGpu = host.roles.some((r) => ROLES[r as RoleName].gpu);
    if (props.manageVm === false) {
      this.address = this.staticAddress ?? this.fqdn;
      this.outputs(host);
      return;
    }
    this.vm = new NixosVm(this, "nixos", {
      name: host.name,
      node: host.node,
      vmid: host.vmid,
      templateVmid: inv.template.vmid,
      templateNode: inv.template.node,
      datastore: inv.cluster.storage,
      cores: host.cores,
      memoryMiB: host.memoryMiB,
      diskGiB: host.diskGiB,
      dataDisks: host.dataDisks,
      network: host.network,
      bridge: inv.cluster.bridge,
      domain: inv.cluster.domain,
      dnsServers: inv.cluster.dns,
      user: { name: user.name, sshKeys: user.sshKeys },
      hostpci: needsGpu || host.gpu ? gpuHostpci(host.gpu!) : undefined,
      tags: ["nixos", ...host.roles, ...(host.tags ?? [])],
      pool: host.pool,
      onBoot: host.onBoot,
      startupOrder: host.startupOrder,
      preventDestroy: host.stateful === true && host.preventDestroy !== false,
      importExisting: host.existing,
    });
    this.address = this.staticAddress ?? this.vm.ipv4;
    this.outputs(host);
    new TerraformOutput(this, "mac", { value: this.vm.mac, description: `${host.name}: MAC of the first NIC` });
  }

  /** Upstream service URLs (LiteLLM: its vLLM hosts; OpenWebUI: its LiteLLM hosts), set by the stack; a host with both roles gets OpenWebUI's as `openwebui_upstreams`. */
  setUpstreams(urls: string[], id = "upstreams") {
    new TerraformOutput(this, id, { value: urls, description: `${this.spec.name}: upstream service URLs${id === "upstreams" ? "" : " (OpenWebUI)"}` });
  }

  private outputs(host: HostSpec) {
    new TerraformOutput(this, "vmid", { value: host.vmid, description: `${host.name}: VMID` });
    new TerraformOutput(this, "ip", { value: this.address, description: `${host.name}: IPv4 address` });
    new TerraformOutput(this, "urls", { value: this.urls(), description: `${host.name}: service URLs by role and port name` });
  }

  /** Service URLs, e.g. { "vllm.api": "http://10.0.0.5:8000" }. */
  urls(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [role, ports] of Object.entries(this.ports))
      for (const [name, port] of Object.entries(ports)) out[`${role}.${name}`] = `${name === "dns" ? "dns" : "http"}://${this.address}:${port}`;
    return out;
  }

  hasRole(role: RoleName): boolean {
    return this.spec.roles.includes(role);
  }
}
