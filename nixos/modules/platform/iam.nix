# iam: identity and access management (needs flaredb)
import ./lib.nix {
  name = "iam";
  description = "iam: identity and access management (needs flaredb)";
}
