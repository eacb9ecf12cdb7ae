import { defineConfig } from "@playwright/test";

// The server under test: the release binary that `scripts/test.sh` just
// built, on its own port so a running dev server does not interfere.
const addr = process.env.HERALD_E2E_ADDR ?? "127.0.0.1:3100";
const serverBin = process.env.HERALD_SERVER_BIN ?? "../target/release/herald-server";

export default defineConfig({
  testDir: "./tests",
  timeout: 30_000,
  expect: { timeout: 10_000 },
  fullyParallel: false,
  // Two files at a time: the outside app's minute of downtime (and the
  // specs that own their servers) overlap the rest.
  workers: 2,
  retries: 0,
  reporter: [["list"]],
  outputDir: "./test-results",
  use: {
    baseURL: `http://${addr}`,
    trace: "retain-on-failure",
    screenshot: "only-on-failure",
    launchOptions: {
      // Debian's chromium: Playwright never downloads a browser here.
      executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-quic",
      ],
    },
  },
  // Playwright starts the server, waits until it answers, and stops it
  // when the run ends, whatever happens.
  webServer: {
    command: serverBin,
    cwd: "..",
    url: `http://${addr}/healthz`,
    reuseExistingServer: false,
    timeout: 60_000,
    stdout: "pipe",
    stderr: "pipe",
    env: {
      LEPTOS_SITE_ADDR: addr,
      LEPTOS_SITE_ROOT: process.env.LEPTOS_SITE_ROOT ?? "target/site",
      LEPTOS_OUTPUT_NAME: "herald",
      LEPTOS_SITE_PKG_DIR: "pkg",
      LEPTOS_ENV: "PROD",
      HERALD_HEARTBEAT_SECS: "2",
      HERALD_STATUS_SECS: "1",
      HERALD_JOB_STEP_MS: "300",
      // The demo publishes from the page without a token, and its user's
      // token is the documented base64 demo token: dev mode.
      HERALD_DEV: "1",
      // One access-log line per request would drown the test output.
      RUST_LOG: "info,herald_server::routes::access_log=warn",
    },
  },
});
