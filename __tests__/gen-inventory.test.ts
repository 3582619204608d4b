import { generateInventory } from "../scripts/lib/gen-inventory";
import { validateInventory } from "../constructs/inventory";
import { ROLE_NAMES } from "../constructs/roles";

describe("benchmark inventories", () => {
  it.each([10, 100, 1000])("generates a valid %i-host inventory with every role", (n) => {
    const d = generateInventory(n);
    expect(validateInventory(d)).toEqual([]);
    expect(d.hosts).toHaveLength(n);
    if (n >= 12) expect(new Set(d.hosts.flatMap((h: any) => h.roles))).toEqual(new Set(ROLE_NAMES));
  });

  it("generates independent hosts of one role for the deploy-graph benchmark", () => {
    const d = generateInventory(50, { roles: ["cicd"] });
    expect(validateInventory(d)).toEqual([]);
    expect(new Set(d.hosts.flatMap((h: any) => h.roles))).toEqual(new Set(["cicd"]));
  });
});
