/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: "node",
  roots: ["<rootDir>/__tests__"],
  testMatch: ["**/*.test.ts"],
  transform: { "^.+\\.(t|j)sx?$": ["@swc/jest", { jsc: { target: "es2022" } }] },
  setupFiles: ["<rootDir>/__tests__/setup-env.ts"],
  setupFilesAfterEnv: ["<rootDir>/__tests__/setup-jest.ts"],
  testTimeout: 120000,
  // Three workers on two cores: most suites wait on sshd, Terraform and sleeps, not the CPU
  // (measured: 106-108 s against 116 s with two).
  maxWorkers: 3,
};
