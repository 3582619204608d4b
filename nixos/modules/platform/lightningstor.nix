# lightningstor: object storage (needs iam and flaredb)
import ./lib.nix {
  name = "lightningstor";
  description = "lightningstor: object storage (needs iam and flaredb)";
}
