# STAND-IN for the few nixpkgs `lib` functions that the flake's own glue uses (nixpkgs cannot be
# fetched offline). `nixosSystem` returns its arguments, so a test sees which modules and
# specialArgs each host would be built with; the rest behave as their nixpkgs namesakes.
rec {
  mapAttrs = builtins.mapAttrs;
  optional = cond: x: if cond then [ x ] else [ ];
  optionals = cond: xs: if cond then xs else [ ];
  genAttrs = names: f: builtins.listToAttrs (map (n: { name = n; value = f n; }) names);
  optionalAttrs = cond: set: if cond then set else { };
  hasPrefix = prefix: s: builtins.substring 0 (builtins.stringLength prefix) s == prefix;
  nameValuePair = name: value: { inherit name value; };
  mapAttrs' = f: set: builtins.listToAttrs (map (n: f n set.${n}) (builtins.attrNames set));
  filterAttrs = pred: set: builtins.listToAttrs (builtins.concatMap (n: if pred n set.${n} then [{ name = n; value = set.${n}; }] else [ ]) (builtins.attrNames set));
  recursiveUpdate = lhs: rhs: lhs // builtins.mapAttrs (n: v: if builtins.isAttrs v && builtins.isAttrs (lhs.${n} or null) then recursiveUpdate lhs.${n} v else v) rhs;
  # lib/modules.nix: mkOverride priority content; mkDefault = mkOverride 1000
  mkDefault = content: { _type = "override"; priority = 1000; inherit content; };
  mkForce = content: { _type = "override"; priority = 50; inherit content; };
  mkIf = condition: content: { _type = "if"; inherit condition content; };
  nixosSystem = args: args;
}
