// Preloaded by the benchmark (node -r): writes this process's peak resident set size (KiB,
// from getrusage) to $BENCH_RSS_FILE when it exits.
const { writeFileSync } = require("node:fs");
process.on("exit", () => {
  if (process.env.BENCH_RSS_FILE) writeFileSync(process.env.BENCH_RSS_FILE, String(process.resourceUsage().maxRSS));
});
