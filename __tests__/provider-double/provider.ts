/**
 * STAND-IN for the behaviour of the bpg/proxmox 0.111.0 provider and the Proxmox VE API behind
 * it. Terraform core's checks (types, required attributes, every object key of list(object)
 * attributes, plan/apply consistency) are Terraform's own; this file decides only what the
 * provider and PVE would do. Each rule names its source: bpg/terraform-provider-proxmox at tag
 * v0.111.0 ("bpg:" + path) or Proxmox VE ("pve:" + repository/path).
 */
import { Cluster, PveVm, readCluster, withClusterLock, writeCluster } from "./cluster";
import { conform, isObj, Obj, same, SchemaBlock, settle, UNKNOWN, unknownComputed, Value } from "./values";

export interface Diag {
  severity: 1 | 2;
  summary: string;
  detail?: string;
}
export interface PlanResult {
  planned: Value;
  requiresReplace: string[][];
  legacy: boolean;
  diags: Diag[];
}
export interface ApplyResult {
  state: Value;
  legacy: boolean;
  diags: Diag[];
}

const err = (summary: string, detail = ""): Diag => ({ severity: 1, summary, detail });
const warn = (summary: string, detail = ""): Diag => ({ severity: 2, summary, detail });

/** Resources written with terraform-plugin-sdk v2 (bpg: proxmoxtf/resource/...); the SDK sets legacy_type_system. */
const SDK_V2 = new Set(["proxmox_virtual_environment_vm", "proxmox_virtual_environment_pool"]);

const list = (v: Value): Obj[] => (Array.isArray(v) ? (v.filter(isObj) as Obj[]) : []);
const first = (v: Value): Obj | undefined => list(v)[0];
const str = (v: Value): string | undefined => (typeof v === "string" ? v : undefined);
const num = (v: Value): number | undefined => (typeof v === "number" ? v : undefined);

export class ProviderDouble {
  private token = false;

  constructor(
    private readonly schemas: Record<string, SchemaBlock>,
    private readonly clusterFile: string,
  ) {}

  configure(config: Value): Diag[] {
    const c = isObj(config) ? config : {};
    // bpg: fwprovider/provider.go reads endpoint and credentials from the block or PROXMOX_VE_*.
    const endpoint = str(c.endpoint) ?? process.env.PROXMOX_VE_ENDPOINT;
    if (!endpoint) return [err("Missing Proxmox VE API Endpoint", "set endpoint or PROXMOX_VE_ENDPOINT")];
    this.token = Boolean(str(c.api_token) ?? process.env.PROXMOX_VE_API_TOKEN);
    if (!this.token && !(str(c.username) ?? process.env.PROXMOX_VE_USERNAME)) return [err("Missing Proxmox VE API credentials", "set api_token / PROXMOX_VE_API_TOKEN or username and password")];
    return [];
  }

  private cluster<T>(fn: (c: Cluster) => T): T {
    return withClusterLock(this.clusterFile, () => {
      const c = readCluster(this.clusterFile);
      const r = fn(c);
      writeCluster(this.clusterFile, c);
      return r;
    });
  }

  plan(type: string, prior: Value, proposed: Value): PlanResult {
    const schema = this.schemas[type];
    const legacy = SDK_V2.has(type);
    if (proposed === null) return { planned: null, requiresReplace: [], legacy, diags: [] };
    let planned = prior === null ? unknownComputed(proposed, schema) : proposed;
    const requiresReplace: string[][] = [];
    if (type === "proxmox_virtual_environment_vm" && prior !== null && isObj(prior) && isObj(planned)) {
      // bpg: proxmoxtf/resource/vm/vm.go CustomizeDiff: ForceNewIf(node_name, !migrate) and
      // ForceNewIf(vm_id) - a VM moved to another node is replaced unless migrate = true.
      if (!same(prior.node_name, planned.node_name) && planned.migrate !== true) requiresReplace.push(["node_name"]);
      if (planned.vm_id !== null && planned.vm_id !== UNKNOWN && !same(prior.vm_id, planned.vm_id)) requiresReplace.push(["vm_id"]);
      if (requiresReplace.length) planned = unknownComputed({ ...planned, id: null, ipv4_addresses: null, ipv6_addresses: null, network_interface_names: null, mac_addresses: null }, schema);
    }
    if (type === "proxmox_virtual_environment_vm" && isObj(planned)) {
      const withDefaults: Obj = { ...planned, network_device: sdkNetworkDevices(planned.network_device, isObj(prior) ? prior.network_device : null) };
      for (const [k, v] of Object.entries(VM_DEFAULTS)) if (withDefaults[k] === null) withDefaults[k] = v;
      planned = withDefaults;
    }
    if (type === "proxmox_hardware_mapping_pci" && prior !== null && isObj(prior) && isObj(planned) && !same(prior.name, planned.name)) requiresReplace.push(["name"]);
    if (type === "proxmox_virtual_environment_pool" && prior !== null && isObj(prior) && isObj(planned) && !same(prior.pool_id, planned.pool_id)) requiresReplace.push(["pool_id"]);
    return { planned, requiresReplace, legacy, diags: [] };
  }

  apply(type: string, prior: Value, planned: Value): ApplyResult {
    const schema = this.schemas[type];
    const legacy = SDK_V2.has(type);
    try {
      if (planned === null) {
        this.destroy(type, prior as Obj);
        return { state: null, legacy, diags: [] };
      }
      const p = planned as Obj;
      let state: Obj;
      const diags: Diag[] = [];
      switch (type) {
        case "proxmox_virtual_environment_vm":
          state = prior === null ? this.createVm(p, diags) : this.updateVm(prior as Obj, p, diags);
          break;
        case "proxmox_virtual_environment_pool":
          state = this.cluster((c) => {
            const id = str(p.pool_id)!;
            // pve: pve-access-control src/PVE/API2/Pool.pm create_pool: "pool '$pool' already exists".
            if (prior === null && c.pools[id]) throw err(`error creating pool: pool '${id}' already exists`);
            if (prior !== null) delete c.pools[str((prior as Obj).pool_id)!];
            c.pools[id] = { comment: str(p.comment) };
            const members = Object.entries(c.vms).filter(([, v]) => v.pool === id).map(([vmid, v]) => ({ datastore_id: null, id: `qemu/${vmid}`, node_name: v.node, type: "qemu", vm_id: Number(vmid) }));
            return { ...p, id, members };
          });
          break;
        case "proxmox_hardware_mapping_pci":
        case "proxmox_virtual_environment_hardware_mapping_pci":
          state = this.cluster((c) => {
            const name = str(p.name)!;
            if (prior === null && c.mappings[name]) throw err(`mapping '${name}' already exists`);
            const map = list(p.map).map((m) => ({ node: str(m.node)!, path: str(m.path)!, id: str(m.id)!, iommuGroup: num(m.iommu_group) ?? null, subsystemId: str(m.subsystem_id) ?? null }));
            for (const m of map) if (!c.nodes.includes(m.node)) throw err(`node '${m.node}' does not exist`);
            c.mappings[name] = { map };
            return { ...p, id: name, mediated_devices: p.mediated_devices === UNKNOWN ? false : p.mediated_devices };
          });
          break;
        case "proxmox_download_file":
        case "proxmox_virtual_environment_download_file":
          state = this.cluster((c) => {
            const ds = str(p.datastore_id)!;
            const content = str(p.content_type)!;
            // pve: pve-storage src/PVE/API2/Storage/Status.pm download_url checks the storage's
            // content types; `import` exists from PVE 8.4 and must be enabled on the storage.
            if (!c.storages[ds]?.content.includes(content)) throw err(`error downloading file: storage '${ds}' does not support content type '${content}'`, "enable the content type on the storage (Datacenter > Storage > Content); `import` needs PVE >= 8.4");
            const fileName = str(p.file_name) ?? str(p.url)!.split("/").pop()!;
            return { ...p, file_name: fileName, id: `${ds}:${content}/${fileName}`, size: 1024 };
          });
          break;
        default:
          state = { ...p, id: p.id === UNKNOWN || p.id === null ? `${type}-${Date.now()}` : p.id };
      }
      return { state: settle(conform(state, schema), schema), legacy, diags };
    } catch (e) {
      if (e && typeof e === "object" && "severity" in e) return { state: prior, legacy, diags: [e as Diag] };
      throw e;
    }
  }

  read(type: string, state: Value): Value {
    if (!isObj(state)) return state;
    if (type === "proxmox_virtual_environment_vm") {
      // bpg: proxmoxtf/resource/vm/vm.go vmRead: a VM that no longer exists is removed from state.
      const vm = readCluster(this.clusterFile).vms[String(state.vm_id)];
      if (!vm) return null;
    }
    return state;
  }

  importState(type: string, id: string): { state: Value; diags: Diag[] } {
    const schema = this.schemas[type];
    if (type !== "proxmox_virtual_environment_vm") return { state: null, diags: [err(`the provider double cannot import ${type}`)] };
    // bpg: proxmoxtf/resource/vm/vm.go Importer: the ID is "<node>/<vmid>" (parseImportIDWithNodeName).
    const m = /^([^/]+)\/(\d+)$/.exec(id);
    if (!m) return { state: null, diags: [err(`invalid import ID "${id}"`, "expected <node_name>/<vm_id>")] };
    const vm = readCluster(this.clusterFile).vms[m[2]];
    if (!vm || vm.node !== m[1]) return { state: null, diags: [err(`VM ${m[2]} does not exist on node ${m[1]}`)] };
    return { state: settle(conform(this.vmState({ node_name: vm.node, vm_id: Number(m[2]), id: m[2] }, Number(m[2]), vm, [], true), schema), schema), diags: [] };
  }

  private destroy(type: string, prior: Obj): void {
    this.cluster((c) => {
      if (type === "proxmox_virtual_environment_vm") {
        const vm = c.vms[String(prior.vm_id)];
        // pve: qemu-server PVE/API2/Qemu.pm destroy_vm: "VM is protected" when protection = 1.
        if (vm?.protection) throw err(`error deleting VM ${String(prior.vm_id)}: VM is protected`);
        delete c.vms[String(prior.vm_id)];
      } else if (type === "proxmox_virtual_environment_pool") {
        const id = str(prior.pool_id)!;
        // pve: pve-access-control PVE/API2/Pool.pm delete_pool: "pool '$pool' is not empty".
        if (Object.values(c.vms).some((v) => v.pool === id)) throw err(`error deleting pool: pool '${id}' is not empty`);
        delete c.pools[id];
      } else if (type.endsWith("hardware_mapping_pci")) delete c.mappings[str(prior.name)!];
    });
  }

  /** bpg: proxmoxtf/resource/vm/vm.go vmCreateClone, then vmCreateStart. */
  private createVm(p: Obj, diags: Diag[]): Obj {
    return this.cluster((c) => {
      const node = str(p.node_name)!;
      if (!c.nodes.includes(node)) throw err(`error creating VM: node '${node}' does not exist`);
      const vmid = num(p.vm_id) ?? nextVmid(c);
      if (c.vms[String(vmid)]) throw err(`error creating VM: VM ${vmid} already exists`);
      const pool = str(p.pool_id);
      // pve: qemu-server PVE/API2/Qemu.pm clone_vm / create_vm check the target pool before
      // anything is created (PVE::Pool / "pool '$pool' does not exist"); bpg passes pool_id as `pool`.
      if (pool && !c.pools[pool]) throw err(`error cloning VM: received an HTTP 500 response - Reason: pool '${pool}' does not exist`);
      const clone = first(p.clone);
      let vm: PveVm;
      if (clone) {
        const src = c.vms[String(num(clone.vm_id))];
        if (!src) throw err(`error cloning VM: VM ${String(clone.vm_id)} does not exist`);
        // pve: qemu-server clone_vm copies the source config; NICs get new MAC addresses.
        vm = { ...structuredClone(src), node, name: str(p.name) ?? `VM ${vmid}`, template: false, running: false, nics: src.nics.map((n, i) => ({ ...n, mac: macFor(vmid, i) })) };
        // bpg: proxmoxtf/resource/vm/disk/disk.go UpdateClone: a declared interface the clone
        // lacks is *added as a new blank disk*; an existing one is only resized, never shrunk.
        this.applyDisks(vm, list(p.disk), false);
        // bpg v0.111.0: boot_order is not applied when cloning (issue #850, fixed in 0.111.1 by
        // PR #2969): the clone keeps the template's boot order until the next apply.
      } else {
        vm = { node, name: str(p.name) ?? `VM ${vmid}`, disks: {}, boot: [], nics: [], hostpci: [], running: false };
        this.applyDisks(vm, list(p.disk), false);
        vm.boot = Array.isArray(p.boot_order) ? (p.boot_order as string[]) : [];
      }
      vm.template = p.template === true;
      vm.pool = pool;
      vm.protection = p.protection === true;
      vm.tags = Array.isArray(p.tags) ? (p.tags as string[]) : [];
      this.applyNics(vm, p, vmid);
      this.applyHostpci(vm, p);
      c.vms[String(vmid)] = vm;
      if (p.started !== false && !vm.template) this.start(c, vm, vmid);
      return this.vmState(p, vmid, vm, diags, false, c);
    });
  }

  /** bpg: proxmoxtf/resource/vm/vm.go vmUpdate (+ vmUpdateDiskLocationAndSize). */
  private updateVm(prior: Obj, p: Obj, diags: Diag[]): Obj {
    return this.cluster((c) => {
      const vmid = num(prior.vm_id)!;
      const vm = c.vms[String(vmid)];
      if (!vm) throw err(`error updating VM: VM ${vmid} does not exist`);
      if (!same(prior.node_name, p.node_name)) {
        // bpg vm.go vmUpdate: migrate = true moves the VM (POST .../migrate).
        const node = str(p.node_name)!;
        if (!c.nodes.includes(node)) throw err(`error migrating VM: node '${node}' does not exist`);
        vm.node = node;
      }
      if (!same(prior.disk, p.disk)) this.applyDisks(vm, list(p.disk), true);
      // bpg vm.go vmUpdate: a changed boot_order is written (and the VM rebooted when running).
      if (!same(prior.boot_order, p.boot_order) && Array.isArray(p.boot_order)) vm.boot = p.boot_order as string[];
      if (!same(prior.network_device, p.network_device)) this.applyNics(vm, p, vmid);
      if (!same(prior.pool_id, p.pool_id)) {
        const pool = str(p.pool_id);
        if (pool && !c.pools[pool]) throw err(`error updating VM: pool '${pool}' does not exist`);
        vm.pool = pool;
      }
      vm.name = str(p.name) ?? vm.name;
      vm.tags = Array.isArray(p.tags) ? (p.tags as string[]) : vm.tags;
      vm.protection = p.protection === true;
      if (!same(prior.hostpci, p.hostpci)) this.applyHostpci(vm, p);
      if (!vm.running && p.started !== false && !vm.template) this.start(c, vm, vmid);
      return this.vmState(p, vmid, vm, diags, false, c);
    });
  }

  private applyDisks(vm: PveVm, declared: Obj[], deleteUndeclared: boolean): void {
    for (const d of declared) {
      const iface = str(d.interface)!;
      const size = num(d.size);
      const cur = vm.disks[iface];
      if (!cur) vm.disks[iface] = { storage: str(d.datastore_id) ?? "local-lvm", size: size ?? 8 };
      else if (size !== undefined && size < cur.size) throw err(`disk resize failure: requested size (${size}G) is lower than current size (${cur.size}G)`);
      else if (size !== undefined) cur.size = size;
    }
    // bpg: proxmoxtf/resource/vm/disk/disk.go Update: disks in the state that the plan no
    // longer lists are deleted from the VM.
    if (deleteUndeclared) {
      const keep = new Set(declared.map((d) => str(d.interface)));
      for (const iface of Object.keys(vm.disks)) if (!keep.has(iface)) delete vm.disks[iface];
    }
  }

  private applyNics(vm: PveVm, p: Obj, vmid: number): void {
    const devices = Array.isArray(p.network_device) ? list(p.network_device) : undefined;
    if (!devices) return; // computed: unchanged
    // bpg: proxmoxtf/resource/vm/network/network.go: the VM gets exactly the declared devices;
    // a declared MAC is used, otherwise the one PVE generated is kept.
    vm.nics = devices.map((d, i) => ({ bridge: str(d.bridge) ?? "vmbr0", model: str(d.model) ?? "virtio", mac: str(d.mac_address) ?? vm.nics[i]?.mac ?? macFor(vmid, i), vlan: num(d.vlan_id) ?? null, firewall: d.firewall === true }));
  }

  private applyHostpci(vm: PveVm, p: Obj): void {
    vm.hostpci = list(p.hostpci).map((h) => ({ device: str(h.device)!, mapping: str(h.mapping), id: str(h.id) }));
    for (const h of vm.hostpci)
      // pve: qemu-server PVE/API2/Qemu.pm check_hostpci_perm: a raw (unmapped) device may be
      // set only by root@pam itself - never through an API token, not even root@pam's.
      if (h.id && this.token) throw err(`error updating VM: received an HTTP 403 response - Reason: only root can set '${h.device}' config for non-mapped devices`, "use a PCI resource mapping (pciMappings in the inventory)");
  }

  private start(c: Cluster, vm: PveVm, vmid: number): void {
    for (const h of vm.hostpci) {
      if (!h.mapping) continue;
      const entry = c.mappings[h.mapping]?.map.find((m) => m.node === vm.node);
      // pve: pve-guest-common src/PVE/Mapping/PCI.pm assert_valid: a mapping entry must carry
      // iommugroup and subsystem-id matching the host; otherwise the VM does not start.
      if (!entry) throw err(`error starting VM ${vmid}: PCI mapping '${h.mapping}' has no entry for node '${vm.node}'`);
      if (entry.iommuGroup === null || entry.iommuGroup === undefined) throw err(`error starting VM ${vmid}: no 'iommugroup' for device '${entry.path}'`);
      if (!entry.subsystemId) throw err(`error starting VM ${vmid}: no 'subsystem-id' for device '${entry.path}'`);
      const dev = c.pci[vm.node]?.[entry.path.includes(".") ? entry.path : `${entry.path}.0`];
      if (!dev || dev.iommuGroup !== entry.iommuGroup || dev.subsystemId !== entry.subsystemId || dev.id !== entry.id) throw err(`error starting VM ${vmid}: PCI mapping '${h.mapping}' does not match the device at ${entry.path} on ${vm.node}`);
    }
    vm.running = true;
  }

  /** The VM as the provider reads it back (bpg: vm.go vmReadCustom, network.go ReadNetworkValues). */
  private vmState(p: Obj, vmid: number, vm: PveVm, diags: Diag[], imported: boolean, c?: Cluster): Obj {
    const cluster = c ?? readCluster(this.clusterFile);
    const declared = list(p.disk);
    const declaredIfaces = declared.map((d) => str(d.interface));
    const diskState = [
      ...declared.map((d) => ({ ...d, size: vm.disks[str(d.interface)!]?.size ?? d.size, file_format: d.file_format === UNKNOWN ? "raw" : d.file_format, path_in_datastore: `vm-${vmid}-disk-${str(d.interface)}` })),
      // Disks on the VM that the configuration does not list are read into the state too.
      ...Object.entries(vm.disks)
        .filter(([i]) => !declaredIfaces.includes(i))
        .sort()
        .map(([i, d]) => ({ interface: i, datastore_id: d.storage, size: d.size, file_format: "raw", path_in_datastore: `vm-${vmid}-disk-${i}` })),
    ];
    const nicState = vm.nics.map((n) => ({ bridge: n.bridge, disconnected: false, enabled: true, firewall: n.firewall ?? false, mac_address: n.mac, model: n.model, mtu: 0, queues: 0, rate_limit: 0, trunks: "", vlan_id: n.vlan ?? 0 }));
    const agent = first(p.agent);
    let names: string[] = [];
    let ipv4: string[][] = [];
    let macs: string[] = [];
    if (!imported && vm.running && agent?.enabled === true) {
      // The agent's view (bpg network.go ReadNetworkValues): one entry per guest interface, `lo`
      // first; ipv4_addresses[i] and mac_addresses[i] belong to network_interface_names[i].
      const canRead = cluster.auth.privileges.includes(cluster.auth.pveMajor >= 9 ? "VM.GuestAgent.Audit" : "VM.Monitor");
      if (!canRead) {
        // bpg network.go: a failed agent call is a warning and leaves the lists empty.
        diags.push(warn("error waiting for network interfaces from QEMU agent", `403 Permission check failed (/vms/${vmid}, ${cluster.auth.pveMajor >= 9 ? "VM.GuestAgent.Audit" : "VM.Monitor"})`));
      } else {
        const ip = staticAddress(p) ?? `192.0.2.${cluster.nextHostOctet++ % 250}`;
        const wait = first(first(agent.wait_for_ip) ? agent.wait_for_ip : null);
        // bpg issue #2062: without wait_for_ip { ipv4 = true } the provider returns as soon as
        // any address is up; a DHCP guest often has only its IPv6 link-local address by then.
        const ipv4Ready = staticAddress(p) !== undefined || wait?.ipv4 === true;
        names = ["lo", "ens18"];
        ipv4 = [["127.0.0.1"], ipv4Ready ? [ip] : []];
        macs = ["00:00:00:00:00:00", vm.nics[0]?.mac.toUpperCase() ?? ""];
      }
    }
    return {
      ...p,
      id: String(vmid),
      vm_id: vmid,
      node_name: vm.node,
      name: imported ? vm.name : p.name,
      disk: diskState,
      boot_order: vm.boot.length ? vm.boot : null,
      network_device: nicState,
      network_interface_names: names,
      ipv4_addresses: ipv4,
      ipv6_addresses: names.map(() => []),
      mac_addresses: macs,
      ...(imported ? { tags: vm.tags ?? [], cpu: vm.cores ? [{ cores: vm.cores }] : [], memory: vm.memory ? [{ dedicated: vm.memory }] : [], pool_id: vm.pool ?? null, started: vm.running } : {}),
    };
  }
}

/**
 * SDKv2 plans an Optional attribute's Default where the configuration has null. The defaults of
 * proxmox_virtual_environment_vm's top-level attributes (bpg: proxmoxtf/resource/vm/vm.go, dv*).
 */
const VM_DEFAULTS: Obj = {
  acpi: true, bios: "seabios", description: "", keyboard_layout: "en-us", kvm_arguments: "", migrate: false, on_boot: true, pool_id: "",
  protection: false, reboot_after_update: true, started: true, tablet_device: true, template: false,
  timeout_clone: 1800, timeout_create: 1800, timeout_migrate: 1800, timeout_reboot: 1800, timeout_shutdown_vm: 1800, timeout_start_vm: 1800, timeout_stop_vm: 300, timeout_move_disk: 1800,
};

/**
 * bpg: proxmoxtf/resource/vm/network/schema.go: network_device is Optional+Computed with
 * ConfigMode Attr; the SDK plans each element with the schema's defaults (bridge "vmbr0",
 * enabled true, firewall false, model "virtio", mtu/queues/rate_limit/vlan_id 0) where the
 * configuration has null, and mac_address (Computed) from the state or unknown.
 */
function sdkNetworkDevices(planned: Value, prior: Value): Value {
  if (!Array.isArray(planned)) return planned;
  const defaults: Obj = { bridge: "vmbr0", disconnected: false, enabled: true, firewall: false, model: "virtio", mtu: 0, queues: 0, rate_limit: 0, trunks: "", vlan_id: 0 };
  const before = Array.isArray(prior) ? prior : [];
  return planned.map((d, i) => {
    if (!isObj(d)) return d;
    const out: Obj = { ...d };
    for (const [k, v] of Object.entries(defaults)) if (out[k] === null) out[k] = v;
    if (out.mac_address === null) out.mac_address = isObj(before[i]) ? (before[i] as Obj).mac_address : UNKNOWN;
    return out;
  });
}

function nextVmid(c: Cluster): number {
  let id = 100;
  while (c.vms[String(id)]) id++;
  return id;
}

function macFor(vmid: number, i: number): string {
  const h = (n: number) => n.toString(16).padStart(2, "0").toUpperCase();
  return `BC:24:11:${h((vmid >> 8) & 0xff)}:${h(vmid & 0xff)}:${h(i)}`;
}

function staticAddress(p: Obj): string | undefined {
  const a = str(first(first(first(p.initialization)?.ip_config ?? null)?.ipv4 ?? null)?.address ?? null);
  return a && a !== "dhcp" ? a.split("/")[0] : undefined;
}
