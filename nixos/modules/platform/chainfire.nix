# chainfire: the cluster's replicated configuration store (first in the platform order)
import ./lib.nix {
  name = "chainfire";
  description = "chainfire: the cluster's replicated configuration store (first in the platform order)";
}
