# The role table (ports, dependencies, files, quorum, ...): nixos/lib/roles.json, which the
# TypeScript side reads too (constructs/roles.ts). One table for both languages.
(builtins.fromJSON (builtins.readFile ./roles.json)).roles
