# flaredb: the distributed database (needs chainfire)
import ./lib.nix {
  name = "flaredb";
  description = "flaredb: the distributed database (needs chainfire)";
}
