{
  # Placeholder for the platform services' flake (chainfire, flaredb, iam, plasmavmc, novanet,
  # flashdns, fiberlb, lightningstor), so the flake locks, evaluates and passes `nix flake check`
  # on any machine before a platform repository exists. Its packages have seed 004's names
  # (<name>-server) and evaluate, but building one fails with one line saying what to do: every
  # host without a platform role builds and deploys; a platform host stops at its build until
  #   nix flake lock ./nixos --override-input platform git+ssh://git@<host>/<path>/platform.git
  # (or inputs.platform.url in nixos/flake.nix). See README, "NixOS".
  description = "No platform services yet (placeholder)";
  outputs = { self }:
    let
      system = "x86_64-linux";
      names = [ "chainfire" "flaredb" "iam" "plasmavmc" "novanet" "flashdns" "fiberlb" "lightningstor" ];
      notSet = name: derivation {
        inherit system;
        name = "${name}-server-platform-flake-not-set";
        builder = "/bin/sh";
        args = [ "-c" "echo 'the platform flake is not set, so ${name}-server cannot be built: run nix flake lock ./nixos --override-input platform <your platform flake> (README, NixOS)' >&2; exit 1" ];
      } // { meta.mainProgram = "${name}-server"; };
    in
    {
      packages.${system} = builtins.listToAttrs (map (n: { name = "${n}-server"; value = notSet n; }) names);
    };
}
