# novanet: virtual networking (needs iam and flaredb)
import ./lib.nix {
  name = "novanet";
  description = "novanet: virtual networking (needs iam and flaredb)";
}
