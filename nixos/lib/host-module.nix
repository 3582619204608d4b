# Turns one host of the inventory (lib/inventory.nix's view) into NixOS settings of its role
# modules: enables each role, sets its ports, wires LiteLLM to the vLLM hosts, OpenWebUI to
# LiteLLM, and the platform services to their peers. Only the host's own role modules are
# imported, so only their options are set here.
{ host }:
{ lib, config, ... }:
let
  # The role's decrypted secrets (modules/secrets.nix), when it consumes any; a host's own
  # hosts/<name>.nix may point elsewhere (mkDefault).
  envFileOf = r:
    let f = builtins.filter (f: f.role == r) host.secretEnvFiles;
    in if f == [ ] then { } else { environmentFile = lib.mkDefault "${config.fleet.secrets.runDir}/${(builtins.head f).file}"; };
  optionName = p: if p == "api" then "port" else "${p}Port";
  settingsOf = r: removeAttrs (host.services.${r} or { }) [ "ports" "model" "join" ];
  roleConfig = r:
    if r == "vllm" then {
      fleet.vllm = { enable = true; port = host.ports.vllm.api; model = host.vllmModel; } // envFileOf r
        // lib.optionalAttrs ((host.services.vllm or { }) ? modelPath) { modelPath = host.services.vllm.modelPath; }
        // lib.optionalAttrs ((host.services.vllm or { }) ? startTimeout) { startTimeout = host.services.vllm.startTimeout; }
        // lib.optionalAttrs ((host.gpu or null) != null && host.gpu ? cudaCapabilities) { cudaCapabilities = host.gpu.cudaCapabilities; }
        // lib.optionalAttrs (host.vllmClients != null) { clients = host.vllmClients; };
    }
    else if r == "litellm" then { fleet.litellm = { enable = true; port = host.ports.litellm.api; upstreams = host.upstreams.litellm; } // envFileOf r; }
    else if r == "openwebui" then { fleet.openwebui = { enable = true; port = host.ports.openwebui.http; upstreams = host.upstreams.openwebui; } // envFileOf r; }
    else if r == "cicd" then { fleet.cicd.enable = true; }
    else {
      # A platform service: ports, then peers (where its dependencies answer), then free settings:
      # only the options of seed 004's interface, so the platform flake's own module takes them too.
      # Its credentials reach the unit directly (EnvironmentFile=), not through an option.
      systemd.services.${r}.serviceConfig = lib.optionalAttrs (envFileOf r ? environmentFile) { EnvironmentFile = (envFileOf r).environmentFile; };
      services.${r} = { enable = true; }
        // lib.mapAttrs' (p: v: lib.nameValuePair (optionName p) v) host.ports.${r}
        // {
        settings = lib.recursiveUpdate
          ({ peers = lib.filterAttrs (n: _: builtins.elem n (import ./roles.nix).${r}.requires) host.peers; }
            // lib.optionalAttrs (host.raft ? ${r}) { cluster = host.raft.${r}; })
          (settingsOf r);
      };
    };
  # flashdns answers on port 53, where systemd-resolved's stub listener sits (127.0.0.53:53, on
  # with networkd): the stub goes, and /etc/resolv.conf lists resolved's upstream servers
  # instead of the stub (systemd-resolved(8), /run/systemd/resolve/resolv.conf) (issue #27 M7).
  dnsOnHost = builtins.elem "flashdns" host.roles && (host.ports.flashdns.dns or null) == 53;
  resolvedAside = lib.optionalAttrs dnsOnHost {
    services.resolved.settings.Resolve.DNSStubListener = lib.mkIf config.services.resolved.enable "no";
    environment.etc."resolv.conf".source = lib.mkIf config.services.resolved.enable (lib.mkForce "/run/systemd/resolve/resolv.conf");
  };
  # A Raft role's peer ports (raft; gossip on TCP and UDP) open only to the other members, when
  # every member has a static address (an iptables rule needs one); else open to all.
  peerFirewall = c:
    let
      others = builtins.filter (m: m.id != c.node_id) c.members;
      isIp = a: builtins.match "[0-9.]+" a != null;
      me = builtins.head (builtins.filter (m: m.id == c.node_id) c.members);
      gossip = if me ? gossip_port then [ me.gossip_port ] else [ ];
      tcp = [ me.raft_port ] ++ gossip;
      rule = proto: m: port: "iptables -A nixos-fw -p ${proto} -s ${m.address} --dport ${toString port} -j nixos-fw-accept\n";
      rules = m: builtins.concatStringsSep "" (map (rule "tcp" m) tcp ++ map (rule "udp" m) gossip);
    in
    if builtins.all (m: isIp m.address) others then { extraCommands = builtins.concatStringsSep "" (map rules others); tcp = [ ]; udp = [ ]; }
    else { extraCommands = ""; inherit tcp; udp = gossip; };
  firewalls = builtins.filter (f: f.extraCommands != "" || f.tcp != [ ])
    (map (r: peerFirewall host.raft.${r}) (builtins.filter (r: host.raft ? ${r}) host.roles));
in
{
  config = builtins.foldl' lib.recursiveUpdate resolvedAside (map roleConfig host.roles)
    // (if firewalls == [ ] then { } else {
    # two Raft roles on one host: both sets of peer rules
    networking.firewall = {
      extraCommands = builtins.concatStringsSep "" (map (f: f.extraCommands) firewalls);
      allowedTCPPorts = builtins.concatMap (f: f.tcp) firewalls;
      allowedUDPPorts = builtins.concatMap (f: f.udp) firewalls;
    };
  });
}
