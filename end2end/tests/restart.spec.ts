import { test, expect } from "@playwright/test";
import { stop, waitUp } from "./helpers";
import { spawn, type ChildProcess } from "node:child_process";
import path from "node:path";

// This test owns its server: it kills it and starts it again.
const port = Number(process.env.HERALD_E2E_RESTART_PORT ?? 3101);
const base = `http://127.0.0.1:${port}`;
const bin = path.resolve(process.cwd(), process.env.HERALD_SERVER_BIN ?? "../target/release/herald-server");

function startServer(): ChildProcess {
  return spawn(bin, ["--addr", `127.0.0.1:${port}`, "--heartbeat-secs", "2", "--retry-ms", "200"], {
    cwd: path.resolve(process.cwd(), ".."),
    env: { ...process.env, LEPTOS_SITE_ADDR: `127.0.0.1:${port}`, HERALD_DEV: "1" },
    stdio: "ignore",
  });
}

for (const transport of ["eventsource", "fetch"]) {
  test(`server killed (${transport}): the page retries with growing delays, then reconnects cleanly and shows the reset notice`, async ({ page }) => {
    // Uncaught exceptions (a callback of a dropped client, say) and console
    // errors of the page's own; the browser's note that a connection was
    // refused while the server is down is expected.
    const problems: string[] = [];
    page.on("pageerror", (e) => problems.push(`uncaught: ${e.message}`));
    page.on("console", (m) => {
      if (m.type() === "error" && !/ERR_CONNECTION_REFUSED|Failed to load resource|net::ERR_/.test(m.text())) {
        problems.push(`console: ${m.text()}`);
      }
    });
    let server = startServer();
    try {
      await waitUp(base);
      await page.goto(`${base}/sse-demo?transport=${transport}`);
      await expect(page.getByTestId("state")).toHaveText("connected");
      await expect(page.getByTestId("transport")).toHaveText(transport);
      // An event with an id, so the page has something to resume from.
      await fetch(`${base}/_sse/publish`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ event: "notification", data: { message: "before the crash" } }),
      });
      await expect(page.getByTestId("last-event-id")).not.toHaveText("");

      await stop(server);
      await expect(page.getByTestId("state")).toHaveText("connecting");
      const retries = page.locator('.timeline li[data-kind="retry"]');
      await expect(retries.nth(1)).toBeVisible({ timeout: 10_000 });
      const delays = (await retries.allInnerTexts()).reverse().map((t) => Number(/in (\d+) ms/.exec(t)?.[1]));
      expect(delays[1]).toBeGreaterThan(delays[0]);
      await page.screenshot({ path: `test-results/artifacts/demo-reconnecting-${transport}.png`, fullPage: true });

      server = startServer();
      await waitUp(base);
      await expect(page.getByTestId("state")).toHaveText("connected", { timeout: 15_000 });
      // A restarted in-memory broker has a new epoch: the page's last id is
      // foreign, so it is told history is gone, and then gets new events.
      await expect(page.getByTestId("reset-notice")).toBeVisible();
      await fetch(`${base}/_sse/publish`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ event: "notification", data: { message: "after the restart" } }),
      });
      await expect(page.locator('.feed-item[data-event="notification"]').first()).toContainText("after the restart");
      expect(problems).toEqual([]);
    } finally {
      await stop(server);
    }
  });
}

test("the chat room keeps receiving after the server cut its stream", async ({ page }) => {
  let server = startServer();
  try {
    await waitUp(base);
    await page.goto(`${base}/sse-demo`);
    await expect(page.getByTestId("state")).toHaveText("connected");
    await page.getByTestId("chat-room").fill("restart-room");
    await page.getByTestId("chat-name").fill("carol");
    await page.getByTestId("chat-join").click();
    await expect(page.getByTestId("chat-lines")).toContainText("carol joined");

    // Another user talks through the chat API (the documented demo token).
    const dave = Buffer.from("dave:dave:dave@demo.invalid:user").toString("base64");
    const say = (message: string) =>
      fetch(`${base}/chat/send`, {
        method: "POST",
        headers: { "Content-Type": "application/json", Authorization: `Bearer ${dave}` },
        body: JSON.stringify({ roomId: "restart-room", message }),
      });
    expect((await say("before the cut")).status).toBe(200);
    await expect(page.getByTestId("chat-lines")).toContainText("dave: before the cut");

    // The server cuts every stream (it dies and comes back).
    await stop(server);
    server = startServer();
    await waitUp(base);
    expect((await say("after the cut")).status).toBe(200);
    // The room's stream reconnected by itself and is still in the room.
    await expect(page.getByTestId("chat-lines")).toContainText("dave: after the cut", { timeout: 15_000 });
    await expect(page.getByTestId("chat-joined")).toHaveText("in room:restart-room");
  } finally {
    await stop(server);
  }
});
