# fiberlb: load balancer (needs iam and flaredb)
import ./lib.nix {
  name = "fiberlb";
  description = "fiberlb: load balancer (needs iam and flaredb)";
}
