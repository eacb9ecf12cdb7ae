import { test, expect } from "@playwright/test";

test("home links to the demo", async ({ page }) => {
  await page.goto("/");
  await page.getByRole("link", { name: "Open the live demo" }).click();
  await expect(page).toHaveURL(/\/sse-demo$/);
});

test("any other path is a 404 page that hydrates without errors", async ({ page }) => {
  const errors: string[] = [];
  page.on("pageerror", (err) => errors.push(err.message));
  const response = await page.goto("/no-such-page");
  expect(response?.status()).toBe(404);
  await expect(page.getByText("Page not found.")).toBeVisible();
  await page.waitForLoadState("networkidle");
  expect(errors).toEqual([]);
});

test("demo hydrates and receives `connected` through EventSource", async ({ page }) => {
  const errors: string[] = [];
  page.on("console", (msg) => {
    if (msg.type() === "error") errors.push(msg.text());
  });
  page.on("pageerror", (err) => errors.push(err.message));

  await page.goto("/sse-demo");
  // Server-rendered before any script runs.
  await expect(page.getByRole("heading", { name: "Herald live demo" })).toBeVisible();

  // The first event of the stream is `connected`, carrying our client id.
  await expect(page.getByTestId("state")).toHaveText("connected");
  const clientId = page.getByTestId("client-id");
  await expect(clientId).not.toHaveText("(not connected)");
  const first = page.locator(".feed-item").last(); // newest first: the last is the oldest
  await expect(first).toHaveAttribute("data-event", "connected");
  await expect(first.locator(".event-data")).toContainText(await clientId.innerText());

  // Hydrated: the feed filter reacts to typing.
  await page.getByTestId("feed-filter").fill("no-such-event");
  await expect(page.locator(".feed-item")).toHaveCount(0);
  await page.getByTestId("feed-filter").fill("");
  await expect(page.locator('.feed-item[data-event="connected"]')).toHaveCount(1);

  // Heartbeats (every 2 s in this suite) arrive as events.
  await expect(page.locator('.feed-item[data-event="heartbeat"]').first()).toBeVisible({ timeout: 8_000 });

  await page.screenshot({ path: "test-results/artifacts/demo-connected.png", fullPage: true });
  expect(errors).toEqual([]);
});
