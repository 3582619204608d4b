import { readFileSync } from "node:fs";
import { join } from "node:path";
import { exampleData, exampleInventory, ROOT, synthFleet } from "./helpers";
import { parseInventory } from "../constructs/inventory";

const schema = JSON.parse(readFileSync(join(ROOT, "providers", "bpg-proxmox-0.112.0.schema.json"), "utf8"));
const provider = schema.provider_schemas["registry.terraform.io/bpg/proxmox"];
const META = new Set(["//", "depends_on", "lifecycle", "provider", "provisioner", "count", "for_each", "connection", "import"]);

/** Every path in `value` that the schema block does not define. */
function unknownPaths(block: any, value: any, path: string): string[] {
  const bad: string[] = [];
  for (const [key, v] of Object.entries(value)) {
    if (META.has(key)) continue;
    const attr = block.attributes?.[key];
    const nested = block.block_types?.[key];
    if (attr) {
      if (attr.deprecated) bad.push(`${path}.${key} (deprecated)`);
      const t = attr.type;
      // list(object({...})) attributes: check the object keys too.
      if (Array.isArray(t) && Array.isArray(t[1]) && t[1][0] === "object" && Array.isArray(v))
        for (const [i, el] of (v as any[]).entries()) for (const k of Object.keys(el)) if (!(k in t[1][1])) bad.push(`${path}.${key}[${i}].${k}`);
      if (attr.nested_type && Array.isArray(v))
        for (const [i, el] of (v as any[]).entries()) bad.push(...unknownPaths({ attributes: attr.nested_type.attributes }, el, `${path}.${key}[${i}]`));
    } else if (nested) {
      const items = Array.isArray(v) ? v : [v];
      if (nested.max_items && items.length > nested.max_items) bad.push(`${path}.${key} (more than ${nested.max_items})`);
      for (const [i, el] of items.entries()) bad.push(...unknownPaths(nested.block, el, `${path}.${key}[${i}]`));
    } else bad.push(`${path}.${key}`);
  }
  return bad;
}

function checkStacks(stacks: Record<string, any>): string[] {
  const bad: string[] = [];
  for (const [stack, json] of Object.entries(stacks)) {
    for (const [type, byName] of Object.entries<any>(json.resource ?? {})) {
      if (type === "terraform_data") continue; // built into Terraform/OpenTofu
      const rs = provider.resource_schemas[type];
      if (!rs) {
        bad.push(`${stack}: resource type ${type} is not in the schema`);
        continue;
      }
      if (rs.block.deprecated) bad.push(`${stack}: ${type} is deprecated`);
      for (const [name, body] of Object.entries(byName)) bad.push(...unknownPaths(rs.block, body, `${stack}: ${type}.${name}`));
    }
    for (const [type, cfg] of Object.entries<any>(json.provider ?? {}))
      if (type === "proxmox") for (const c of cfg) bad.push(...unknownPaths(provider.provider.block, c, `${stack}: provider.proxmox`));
  }
  return bad;
}

describe("synthesized JSON against the committed bpg/proxmox 0.112.0 schema", () => {
  it("uses only attributes and blocks the schema defines, in the example fleet", () => {
    expect(checkStacks(synthFleet(exampleInventory()))).toEqual([]);
  });

  it("uses only attributes and blocks the schema defines with a created template, data disks, VLAN and raw PCI id", () => {
    const d = exampleData();
    d.template.mode = "create";
    d.template.imageUrl = "https://images.example.invalid/nixos-template.qcow2";
    d.template.diskGiB = 16; // clones may only grow the template's disk
    d.template.imageSha256 = "0".repeat(64);
    const vllm = d.hosts.find((h: any) => h.name === "tappaas-vllm");
    vllm.gpu = { rawId: "0000:01:00", pcie: true };
    vllm.dataDisks = [{ sizeGiB: 200 }, { sizeGiB: 100, storage: "tank" }];
    vllm.network.vlan = 20;
    vllm.existing = true;
    const stacks = synthFleet(parseInventory(JSON.stringify(d)));
    expect(checkStacks(stacks)).toEqual([]);
  });

  it("uses only attributes the schema defines with the VMA bootstrap step", () => {
    const d = exampleData();
    d.template.bootstrapImage = true;
    expect(checkStacks(synthFleet(parseInventory(JSON.stringify(d))))).toEqual([]);
  });

  it("notices an attribute the schema does not have (the check itself can fail)", () => {
    const stacks = synthFleet(exampleInventory());
    const vm: any = Object.values(stacks.ai.resource.proxmox_virtual_environment_vm)[0];
    vm.cpu.turbo = true;
    vm.network_device[0].speed = 10;
    expect(checkStacks(stacks)).toEqual(expect.arrayContaining([expect.stringMatching(/\.cpu\[0\]\.turbo$/), expect.stringMatching(/\.network_device\[0\]\.speed$/)]));
  });
});
