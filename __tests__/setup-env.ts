// Every test talks to terraform with the project's CLI config and without telemetry.
import { join } from "node:path";
process.env.TF_CLI_CONFIG_FILE = join(__dirname, "..", "config", "terraformrc");
process.env.CHECKPOINT_DISABLE = "1";
process.env.TF_IN_AUTOMATION = "1";
