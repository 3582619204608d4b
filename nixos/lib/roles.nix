# The role table: one place (for Nix) that says which ports each role listens on and which
# files (relative to nixos/) make it up. Its TypeScript twin is constructs/roles.ts; the test
# __tests__/nix-agreement.test.ts fails when the two disagree.
{
  vllm = { group = "ai"; quorum = false; ports = { api = 8000; }; requires = [ ]; files = [ "modules/roles/vllm.nix" ]; };
  litellm = { group = "ai"; quorum = false; ports = { api = 4000; }; requires = [ ]; files = [ "modules/roles/litellm.nix" ]; };
  openwebui = { group = "ai"; quorum = false; ports = { http = 8080; }; requires = [ ]; files = [ "modules/roles/openwebui.nix" ]; };
  cicd = { group = "ops"; quorum = false; ports = { }; requires = [ ]; files = [ "modules/roles/cicd.nix" "scripts/git-update-hook.sh" ]; };
  chainfire = { group = "platform"; quorum = true; ports = { api = 2379; raft = 2380; gossip = 2381; }; requires = [ ]; files = [ "modules/platform/lib.nix" "modules/platform/chainfire.nix" ]; };
  flaredb = { group = "platform"; quorum = true; ports = { api = 2479; raft = 2480; }; requires = [ "chainfire" ]; files = [ "modules/platform/lib.nix" "modules/platform/flaredb.nix" ]; };
  iam = { group = "platform"; quorum = false; ports = { api = 7100; }; requires = [ "flaredb" ]; files = [ "modules/platform/lib.nix" "modules/platform/iam.nix" ]; };
  plasmavmc = { group = "platform"; quorum = false; ports = { api = 7200; }; requires = [ "iam" "flaredb" ]; files = [ "modules/platform/lib.nix" "modules/platform/plasmavmc.nix" ]; };
  novanet = { group = "platform"; quorum = false; ports = { api = 7300; }; requires = [ "iam" "flaredb" ]; files = [ "modules/platform/lib.nix" "modules/platform/novanet.nix" ]; };
  flashdns = { group = "platform"; quorum = false; ports = { api = 7400; dns = 53; }; requires = [ "iam" "flaredb" ]; files = [ "modules/platform/lib.nix" "modules/platform/flashdns.nix" ]; };
  fiberlb = { group = "platform"; quorum = false; ports = { api = 7500; }; requires = [ "iam" "flaredb" ]; files = [ "modules/platform/lib.nix" "modules/platform/fiberlb.nix" ]; };
  lightningstor = { group = "platform"; quorum = false; ports = { api = 7600; }; requires = [ "iam" "flaredb" ]; files = [ "modules/platform/lib.nix" "modules/platform/lightningstor.nix" ]; };
}
