import { defineConfig } from "@playwright/test";

// Run by the gateway's end-to-end tests (crates/vaultgate/tests/console.rs), which start the real
// binary, OpenBao and the mock upstream and pass their addresses in the environment.
export default defineConfig({
  testDir: "tests",
  timeout: 60_000,
  expect: { timeout: 10_000 },
  workers: 1,
  fullyParallel: false,
  forbidOnly: true,
  retries: 0,
  reporter: [["list"]],
  outputDir: process.env.VAULTGATE_CONSOLE_ARTIFACTS
    ? `${process.env.VAULTGATE_CONSOLE_ARTIFACTS}/results`
    : "test-results",
  use: {
    baseURL: process.env.VAULTGATE_URL,
    browserName: "chromium",
    viewport: { width: 1280, height: 860 },
    trace: "off",
    actionTimeout: 10_000,
    screenshot: "only-on-failure",
    launchOptions: {
      // Debian's chromium: Playwright never downloads a browser here. Playwright gives every
      // launch a fresh, empty profile directory of its own.
      executablePath: process.env.CHROMIUM_BIN ?? "/usr/bin/chromium",
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    },
  },
});
