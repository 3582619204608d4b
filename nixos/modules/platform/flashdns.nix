# flashdns: authoritative DNS (needs iam and flaredb)
import ./lib.nix {
  name = "flashdns";
  description = "flashdns: authoritative DNS (needs iam and flaredb)";
  udpPorts = [ "dns" ];
}
