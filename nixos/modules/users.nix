# Users from the inventory: the admin user (first user with admin = true) is in wheel; every
# user logs in with its public keys only. No password is set anywhere.
{ lib, fleet, ... }:
{
  users.mutableUsers = false;
  users.users = lib.listToAttrs (map
    (u: {
      name = u.name;
      value = {
        isNormalUser = true;
        extraGroups = lib.optional (u.admin or (u.name == fleet.admin.name)) "wheel";
        openssh.authorizedKeys.keys = u.sshKeys;
      };
    })
    fleet.users);
}
