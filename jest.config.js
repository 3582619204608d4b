/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: "node",
  roots: ["<rootDir>/__tests__"],
  testMatch: ["**/*.test.ts"],
  transform: { "^.+\\.(t|j)sx?$": ["@swc/jest", { jsc: { target: "es2022" } }] },
  setupFiles: ["<rootDir>/__tests__/setup-env.ts"],
  setupFilesAfterEnv: ["<rootDir>/__tests__/setup-jest.ts"],
  testTimeout: 120000,
  maxWorkers: 2,
};
