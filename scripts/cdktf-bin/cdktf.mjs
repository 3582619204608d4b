#!/usr/bin/env node
// `npx cdktf` in this project: the shim in scripts/cdktf.mjs (this folder is a local dev
// dependency, so consumers of the package never get a `cdktf` bin from it).
import "../cdktf.mjs";
