{
  # Placeholder for the platform services' flake (chainfire, flaredb, iam, plasmavmc, novanet,
  # flashdns, fiberlb, lightningstor): it provides no packages, so the flake locks and every host
  # without a platform role evaluates and deploys before any platform repository exists. Hosts
  # with a platform role stop with "services.<name>.package is not set" until the input points
  # at the real flake:
  #   nix flake lock ./nixos --override-input platform git+ssh://git@<host>/<path>/platform.git
  # or set inputs.platform.url in nixos/flake.nix. See README, "NixOS".
  description = "No platform services yet (placeholder)";
  outputs = { self }: { packages.x86_64-linux = { }; };
}
