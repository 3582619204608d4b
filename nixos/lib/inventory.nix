# Pure reading of the fleet inventory (the same JSON file the TypeScript side validates).
# No nixpkgs needed: tests evaluate it with `nix-instantiate --eval --strict --json`.
#
#   import ./inventory.nix { raw = builtins.fromJSON (builtins.readFile ../fleet.json); }
#
# yields { hosts = { <name> = { name, roles, ports, address, fqdn, vmid, node, upstreams, peers, ... }; }; hostNames; ... }
{ raw }:
let
  roles = import ./roles.nix;
  defaults = import ./defaults.nix;
  # The model a vLLM host serves: one answer for vLLM's --served-model-name and LiteLLM's route.
  modelOf = h: ((h.services or { }).vllm or { }).model or defaults.vllmModel;
  inherit (builtins) attrNames concatMap elem filter foldl' hasAttr head length listToAttrs map split throw;
  # The secrets each role consumes (constructs/secrets.ts reads the same file).
  secretTable = (builtins.fromJSON (builtins.readFile ./secrets.json)).secrets;

  cluster = raw.cluster;
  domain = cluster.domain or null;
  hostList = raw.hosts;

  checkRole = host: r:
    if hasAttr r roles then r
    else throw "fleet inventory: host \"${host.name}\": roles: unknown role \"${r}\" (known: ${builtins.concatStringsSep ", " (attrNames roles)})";

  # role -> port name -> port, after the host's overrides (services.<role>.ports).
  portsOf = host: listToAttrs (map
    (r: {
      name = r;
      value = roles.${r}.ports // ((host.services or { }).${r}.ports or { });
    })
    (map (checkRole host) host.roles));

  # Static address without prefix, or null for DHCP.
  staticAddress = host:
    if (host.network.dhcp or false) then null
    else head (split "/" host.network.address);

  fqdn = host: if domain == null then host.name else "${host.name}.${domain}";
  # How other hosts reach this one: its static address, else its DNS name.
  reachAt = host: let a = staticAddress host; in if a == null then fqdn host else a;

  holders = role: filter (h: elem role h.roles) hostList;

  # role -> [ "addr:port" ] for every host holding the role (its main "api" port).
  endpoints = role: map (h: "${reachAt h}:${toString (portsOf h).${role}.api}") (holders role)
    ++ ((raw.externalServices or { }).${role} or [ ]);

  # A Raft role's cluster as this member must know it (docs/adr-0020-raft-membership.md): its
  # identity (the VM id: stable while the VM lives, new for a replaced member, as Raft wants),
  # where it binds and what it advertises, every member with its addresses, and whether it forms
  # the cluster ("new") or joins a running one ("existing": services.<role>.join in the inventory).
  raftView = host: r: {
    node_id = host.vmid;
    node_name = host.name;
    bind_address = let a = staticAddress host; in if a == null then "0.0.0.0" else a;
    advertise_address = reachAt host;
    initial_cluster_state = if ((host.services or { }).${r}.join or false) then "existing" else "new";
    members = map
      (h: let p = (portsOf h).${r}; in
        { id = h.vmid; name = h.name; address = reachAt h; api_port = p.api; raft_port = p.raft; }
        // (if p ? gossip then { gossip_port = p.gossip; } else { }))
      (holders r);
  };

  hostView = host: let checkedRoles = map (checkRole host) host.roles; in {
    inherit (host) name vmid node;
    roles = checkedRoles;
    ports = portsOf host;
    address = staticAddress host;
    prefixLength = if staticAddress host == null then null else builtins.fromJSON (builtins.elemAt (split "/" host.network.address) 2);
    gateway = host.network.gateway or null;
    dns = host.network.dns or (cluster.dns or [ ]);
    dhcp = host.network.dhcp or false;
    fqdn = fqdn host;
    stateful = host.stateful or false;
    vllmModel = modelOf host;
    gpu = host.gpu or null;
    services = host.services or { };
    # LiteLLM points at every vLLM host; OpenWebUI at every LiteLLM host: per role, so a host
    # with both (a valid inventory) gets both, each its own.
    upstreams = {
      litellm = if elem "litellm" host.roles then map (h: { name = h.name; url = "http://${reachAt h}:${toString (portsOf h).vllm.api}/v1"; model = modelOf h; }) (holders "vllm") else [ ];
      openwebui = if elem "openwebui" host.roles then map (h: { name = h.name; url = "http://${reachAt h}:${toString (portsOf h).litellm.api}/v1"; }) (holders "litellm") else [ ];
    };
    # Who may reach a vLLM host's API: the LiteLLM hosts, when all have static addresses (a
    # firewall rule needs one); null: open (no LiteLLM host, or one on DHCP).
    vllmClients =
      let ls = holders "litellm"; as = map staticAddress ls;
      in if elem "vllm" checkedRoles && ls != [ ] && builtins.all (a: a != null) as then as else null;
    # Raft roles of this host (chainfire, flaredb): the cluster each member is told about.
    raft = listToAttrs (map (r: { name = r; value = raftView host r; }) (filter (r: roles.${r}.quorum or false) checkedRoles));
    # Where this host finds the platform services it depends on.
    peers = listToAttrs (map (r: { name = r; value = endpoints r; })
      (foldl' (acc: r: acc ++ filter (x: !(elem x acc)) roles.${r}.requires) [ ] checkedRoles));
    # One environment file per role that consumes secrets: /run/fleet-secrets/<role>.env
    # (constructs/secrets.ts secretEnvFiles computes the same; modules/secrets.nix decrypts it).
    secretEnvFiles = filter (f: f.entries != [ ]) (map
      (r: {
        role = r;
        file = "${r}.env";
        entries = concatMap
          (s:
            let
              c = secretTable.${s}.consumers.${r} or null;
              # Open WebUI sends one key per upstream (its upstreams are the LiteLLM hosts).
              times = if c == null then 0 else if c.perUpstream or false then length (holders "litellm") else 1;
            in
            if times == 0 then [ ] else [{ var = c.var; secret = s; inherit times; optional = secretTable.${s}.optional or false; }])
          (attrNames secretTable);
      })
      checkedRoles);
    files = foldl' (acc: m: if elem m acc then acc else acc ++ [ m ]) [ ] (concatMap (r: roles.${r}.files) checkedRoles);
  };
in
{
  inherit cluster roles defaults;
  # Binary caches for building the fleet (e.g. a CUDA cache for vLLM hosts), from the inventory.
  nix = { substituters = (raw.nix or { }).substituters or [ ]; trustedPublicKeys = (raw.nix or { }).trustedPublicKeys or [ ]; };
  users = raw.users;
  deploy = raw.deploy or { };
  admin = head (filter (u: u.admin or true) raw.users ++ raw.users);
  template = raw.template;
  hostNames = map (h: h.name) hostList;
  hosts = listToAttrs (map (h: { name = h.name; value = hostView h; }) hostList);
}
