# plasmavmc: VM control plane (needs iam and flaredb)
import ./lib.nix {
  name = "plasmavmc";
  description = "plasmavmc: VM control plane (needs iam and flaredb)";
}
