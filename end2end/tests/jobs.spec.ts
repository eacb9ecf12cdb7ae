import { test, expect, type Page } from "@playwright/test";
import { openDemo } from "./helpers";

/** Records every percentage the job runner shows, in order. */
async function recordProgress(page: Page) {
  await page.evaluate(() => {
    const seen: string[] = [];
    (window as any).__jobProgress = seen;
    new MutationObserver(() => {
      const text = document.querySelector('[data-testid="job-percent"]')?.textContent ?? "";
      if (text && seen[seen.length - 1] !== text) seen.push(text);
    }).observe(document.body, { subtree: true, childList: true, characterData: true });
  });
}

test("a job's progress bar goes 0 → 100 and shows the result; a failing job shows its reason", async ({ page }) => {
  await openDemo(page);
  await recordProgress(page);

  await page.getByTestId("job-input").fill("E2E Hero");
  await page.getByTestId("job-start").click();
  await expect(page.getByTestId("job-status")).toHaveText("completed", { timeout: 20_000 });
  await expect(page.getByTestId("job-progress")).toHaveAttribute("value", "100");
  await expect(page.getByTestId("job-result")).toContainText("E2E Hero");
  const seen: string[] = await page.evaluate(() => (window as any).__jobProgress);
  const numbers = seen.map((s) => parseInt(s, 10));
  expect(numbers[0]).toBe(0);
  expect(numbers[numbers.length - 1]).toBe(100);
  expect(numbers.length).toBeGreaterThan(2); // intermediate steps were shown
  expect([...numbers].sort((x, y) => x - y)).toEqual(numbers); // never backwards
  await page.screenshot({ path: "test-results/artifacts/job-completed.png", fullPage: true });

  await page.getByTestId("job-fail").check();
  await page.getByTestId("job-start").click();
  await expect(page.getByTestId("job-status")).toHaveText("failed", { timeout: 20_000 });
  await expect(page.getByTestId("job-failure")).toContainText("simulated failure");
  await expect(page.getByTestId("job-result")).toHaveCount(0);
  await page.screenshot({ path: "test-results/artifacts/job-failed.png", fullPage: true });
});
