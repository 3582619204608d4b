import { Construct } from "constructs";
import { DataResource, TerraformResource } from "cdktn";
import type { SecretEnvFile } from "./secrets";
import { IN_CHECKOUT } from "./inventory";

/** Name of the environment variable that carries a deploy step's input (one JSON document). */
export const DEPLOY_SPEC_ENV = "FLEET_DEPLOY_SPEC";

/** The JSON document a deploy step hands to scripts/deploy.ts. No secrets: keys come from ssh-agent, secret values from secrets/ (names only here). */
export interface DeploySpecDocument {
  readonly host: string;
  readonly vmid: number;
  readonly node: string;
  readonly roles: readonly string[];
  /** Address the guest agent reports now (filled in by Terraform); empty when unknown. */
  readonly agentAddress: string;
  /** Address the host has once its configuration is active (static from the inventory), if known. */
  readonly finalAddress?: string;
  /** DNS name of the host (<name>.<domain>), tried when no address answers. */
  readonly fqdn?: string;
  /** Flake reference of nixos/, e.g. "./nixos". */
  readonly flake: string;
  readonly user: string;
  readonly sshPort: number;
  /**
   * The host is a VM this fleet manages: before its switch the deploy applies what the apply left
   * pending in Proxmox with a reboot through the API (scripts/lib/pending-reboot.ts). @default false
   */
  readonly managedVm?: boolean;
  readonly buildHost?: string;
  /** Binary caches (inventory `nix`), passed to nixos-rebuild as extra-substituters / extra-trusted-public-keys. */
  readonly substituters?: readonly string[];
  readonly trustedPublicKeys?: readonly string[];
  readonly health: readonly { readonly role: string; readonly kind: "http" | "tcp"; readonly port: number; readonly path?: string }[];
  /**
   * Quorum roles the host is a member of: the health gate also asks the member for its cluster's
   * membership and passes only when all `expected` members are healthy (while fewer members exist
   * the cluster is forming: its present members must be healthy). docs/adr-0013-rolling-updates.md.
   */
  readonly quorum?: readonly { readonly role: string; readonly port: number; readonly path: string; readonly expected: number; readonly members?: readonly string[] }[];
  /** systemd units of the host's roles: the health check fails only on these (constructs/roles.ts). */
  readonly units?: readonly string[];
  /** Environment files of secrets the host's roles read (constructs/secrets.ts); names, never values. */
  readonly secrets?: readonly SecretEnvFile[];
  /** healthStableSeconds: how long every check must keep passing. @default 10 */
  /** guardSeconds: the target's dead-man guard after a switch (scripts/lib/guard.ts); 0 turns it off. @default sshSeconds + healthSeconds + healthStableSeconds + 60 */
  readonly timeouts: { readonly sshSeconds: number; readonly switchSeconds: number; readonly healthSeconds: number; readonly healthStableSeconds?: number; readonly guardSeconds?: number };
}

export interface NixosDeployStepProps {
  /** Everything the deploy script needs, except the agent address. */
  readonly spec: Omit<DeploySpecDocument, "agentAddress">;
  /** Address expression from the VM (NixosVm.ipv4); used when the host has no static address. */
  readonly agentAddress?: string;
  /** Content hash of the host's NixOS configuration files and inventory entry. */
  readonly configHash: string;
  /** The VM and the deploy steps this one waits for. */
  readonly dependsOn?: TerraformResource[];
  /**
   * Terraform address of the host's VM: a recreated VM (same vmid and address) must be
   * configured again, so the step is replaced when the VM's id is. @default none
   */
  readonly vmAddress?: string;
  /**
   * The steps were null_resources before (an older release, or a hand-written module): emit a
   * `moved` block from null_resource.<same id> so Terraform >= 1.9 / OpenTofu >= 1.7 move the
   * state instead of re-deploying. @default false
   */
  readonly movedFromNullResource?: boolean;
  /**
   * Command run by local-exec. @default in a checkout of the repository `node --import tsx
   * scripts/deploy.ts --from-env`; from the installed package its bin,
   * `node_modules/.bin/proxmox-nixos-fleet-deploy --from-env` (run in the project root)
   */
  readonly command?: string;
  /** Working directory of the command, relative to the stack's directory. @default "../../.." (the project root from cdktf.out/stacks/<stack>) */
  readonly workingDir?: string;
}

const AGENT = "__FLEET_AGENT_ADDRESS__";

/** What a deploy step runs unless told otherwise: the repository's script, or the package's bin. */
export const DEFAULT_DEPLOY_COMMAND = IN_CHECKOUT ? "node --import tsx scripts/deploy.ts --from-env" : "node_modules/.bin/proxmox-nixos-fleet-deploy --from-env";

/** A resource's Terraform address ("type.name") as a plain string, without creating a token. */
export function addressOf(r: TerraformResource): string {
  return `${r.terraformResourceType}.${r.friendlyUniqueId}`;
}

/**
 * Applies a host's NixOS flake after its VM exists: a terraform_data (or null_resource) with a
 * local-exec provisioner. Its triggers are the vmid, the target address and the content hash of
 * the host's configuration, so only a real change re-deploys; a failed run taints the step and
 * the next apply retries it.
 */
export class NixosDeployStep extends Construct {
  readonly resource: TerraformResource;

  constructor(scope: Construct, id: string, props: NixosDeployStepProps) {
    super(scope, id);
    const s = props.spec;
    const address = s.finalAddress ?? props.agentAddress;
    if (!address) throw new Error(`${this.node.path}: host "${s.host}" has neither a static address nor an agent address`);
    // The agent address is a Terraform expression: keep it out of JSON.stringify, escape template
    // sequences in the static part, then splice the expression in.
    const doc = JSON.stringify({ ...s, agentAddress: AGENT })
      .replace(/\$\{/g, () => "$${")
      .replace(/%\{/g, () => "%%{")
      .replace(`"${AGENT}"`, () => `"${props.agentAddress ?? ""}"`);
    // Static hosts trigger on their inventory address. A DHCP host's agent address is no trigger
    // (docs/adr-0019-provider-hands-off.md): the provider re-reads it on every refresh and empties
    // it when the agent does not answer within agent.timeout (bpg v0.112.0
    // proxmoxtf/resource/vm/network/network.go ReadNetworkValues 185-256), and
    // a new lease is no new configuration; the script tries the agent's address, then the DNS name.
    const triggers = { vmid: String(s.vmid), ...(s.finalAddress ? { address: s.finalAddress } : {}), config_hash: props.configHash };
    // An address string, not the resource object: cdktf renders objects as "${type.name}", which Terraform rejects here.
    const lifecycle = props.vmAddress ? { replaceTriggeredBy: [`${props.vmAddress}.id`] } : undefined;
    const provisioner = {
      type: "local-exec" as const,
      command: props.command ?? DEFAULT_DEPLOY_COMMAND,
      workingDir: props.workingDir ?? "../../..",
      environment: { [DEPLOY_SPEC_ENV]: doc },
    };
    // terraform_data is built into Terraform >= 1.4 and OpenTofu: no provider to install (the
    // null_resource engine went with cdktf 0.21, docs/adr-0018-cdk-terrain.md).
    this.resource = new DataResource(this, "step", { triggersReplace: triggers, provisioners: [provisioner], lifecycle });
    if (props.movedFromNullResource) this.resource.moveFromId(`null_resource.${this.resource.friendlyUniqueId}`);
    // Plain addresses instead of cdktf's dependable tokens: the same JSON, without a token (and
    // its captured stack trace) per edge, which dominated synth time of large fleets.
    if (props.dependsOn?.length) this.resource.dependsOn = props.dependsOn.map(addressOf);
  }
}
