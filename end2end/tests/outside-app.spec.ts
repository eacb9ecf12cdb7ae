import { test, expect } from "@playwright/test";
import { stop, waitUp } from "./helpers";
import { spawn, type ChildProcess } from "node:child_process";
import { createServer, type Server } from "node:http";
import { readFile } from "node:fs/promises";
import path from "node:path";

// An app outside Herald's workspace (examples/outside-app: its own
// Cargo.toml and lock, Leptos 0.8.22, herald-client by path), built to WASM
// by scripts/test.sh, served from one origin; the Herald server it reads
// runs on another. The server goes down for over a minute (a slow deploy):
// the page says so, keeps trying slowly, and once the server is back it
// resumes and shows every event published since, none twice.

const appDir = process.env.HERALD_OUTSIDE_APP_DIR ?? path.resolve(process.cwd(), "../target/outside-app");
const appPort = Number(process.env.HERALD_E2E_OUTSIDE_APP_PORT ?? 3104);
const heraldPort = Number(process.env.HERALD_E2E_OUTSIDE_PORT ?? 3105);
const herald = `http://127.0.0.1:${heraldPort}`;
const bin = path.resolve(process.cwd(), process.env.HERALD_SERVER_BIN ?? "../target/release/herald-server");

const types: Record<string, string> = {
  ".html": "text/html",
  ".js": "text/javascript",
  ".wasm": "application/wasm",
};

function serveApp(): Promise<Server> {
  const server = createServer(async (req, res) => {
    const file = (req.url ?? "/").split("?")[0].replace(/^\/$/, "/index.html");
    try {
      const body = await readFile(path.join(appDir, path.normalize(file)));
      res.writeHead(200, { "Content-Type": types[path.extname(file)] ?? "application/octet-stream" });
      res.end(body);
    } catch {
      res.writeHead(404);
      res.end();
    }
  });
  return new Promise((resolve) => server.listen(appPort, "127.0.0.1", () => resolve(server)));
}

function startHerald(): ChildProcess {
  // A separate origin: the stream answers with the app's origin allowed.
  return spawn(
    bin,
    ["--addr", `127.0.0.1:${heraldPort}`, "--anonymous-publish", "--cors-origin", `http://127.0.0.1:${appPort}`],
    { cwd: path.resolve(process.cwd(), ".."), env: { ...process.env, LEPTOS_SITE_ADDR: `127.0.0.1:${heraldPort}` }, stdio: "ignore" },
  );
}

async function notify(message: string) {
  const answer = await fetch(`${herald}/_sse/publish`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ topic: "outside", event: "notification", data: { message } }),
  });
  expect(answer.status).toBe(200);
}

test("an app outside the workspace reads another origin's stream and survives a minute of downtime", async ({ page }) => {
  test.setTimeout(200_000);
  const app = await serveApp();
  let server = startHerald();
  try {
    await waitUp(herald);
    await page.goto(`http://127.0.0.1:${appPort}/?server=${encodeURIComponent(herald)}`);
    await expect(page.getByTestId("state")).toHaveText("connected");
    for (const m of ["one", "two", "three"]) await notify(m);
    await expect(page.getByTestId("count")).toHaveText("3");

    await stop(server);
    // Its fast retries (about 30 s) run out: it says so, and keeps trying.
    await expect(page.getByTestId("offline")).toBeVisible({ timeout: 45_000 });
    await page.waitForTimeout(65_000 - 45_000);

    server = startHerald();
    await waitUp(herald);
    for (const m of ["four", "five", "six"]) await notify(m);
    // Within its slow retry (a minute) it is back and has everything.
    await expect(page.getByTestId("state")).toHaveText("connected", { timeout: 70_000 });
    await expect(page.getByTestId("count")).toHaveText("6");
    await expect(page.getByTestId("notes").locator("li")).toHaveText(["one", "two", "three", "four", "five", "six"]);
    await page.screenshot({ path: "test-results/artifacts/outside-app.png", fullPage: true });
  } finally {
    await stop(server);
    app.close();
  }
});
