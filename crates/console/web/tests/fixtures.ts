import AxeBuilder from "@axe-core/playwright";
import { test as base, expect, type Page } from "@playwright/test";

export const MASTER_KEY = process.env.VAULTGATE_MASTER_KEY ?? "";
const SHOTS = process.env.VAULTGATE_CONSOLE_ARTIFACTS
  ? `${process.env.VAULTGATE_CONSOLE_ARTIFACTS}/screenshots`
  : "test-results/screenshots";

/** Every page of every test is watched: a console error or an uncaught exception fails it. */
export const test = base.extend<{ consoleErrors: string[] }>({
  consoleErrors: [
    async ({ page }, use) => {
      const errors: string[] = [];
      page.on("console", (message) => {
        if (message.type() === "error") errors.push(message.text());
      });
      page.on("pageerror", (error) => errors.push(`uncaught: ${error.message}`));
      // Which requests failed, to explain a "Failed to load resource" above.
      const failed: string[] = [];
      page.on("response", (response) => {
        if (response.status() >= 400) failed.push(`${response.status()} ${response.request().method()} ${response.url()}`);
      });
      await use(errors);
      expect(errors, `errors in the browser console (failed requests: ${failed.join(", ")})`).toEqual([]);
    },
    { auto: true },
  ],
});

export { expect };

/** The errors a test expects (a refused request logs one): taken out of the watched list. */
export function expectConsoleErrors(errors: string[], pattern: RegExp) {
  const expected = errors.filter((e) => pattern.test(e));
  errors.splice(0, errors.length, ...errors.filter((e) => !pattern.test(e)));
  return expected;
}

export async function signIn(page: Page, key = MASTER_KEY) {
  await page.goto("/ui/");
  await page.getByLabel("Key").fill(key);
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page.getByRole("button", { name: "Sign out" })).toBeVisible();
}

/** An accessibility scan of the page once it has settled: no serious or critical violation.
 * A menu just used is still fading out for a moment, an empty `role="menu"` that axe flags. */
export async function expectAccessible(page: Page) {
  await expect(page.getByRole("menu")).toHaveCount(0);
  const results = await new AxeBuilder({ page }).analyze();
  const serious = results.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  expect(
    serious.map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(" ")).join("; ")})`),
  ).toEqual([]);
}

export async function screenshot(page: Page, name: string) {
  await page.screenshot({ path: `${SHOTS}/${name}.png`, fullPage: true });
}

/** A chat completion through the gateway's API, as an application would make it. */
export async function chat(page: Page, key: string, model: string) {
  return page.request.post("/v1/chat/completions", {
    headers: { Authorization: `Bearer ${key}` },
    data: { model, messages: [{ role: "user", content: "hello" }] },
  });
}
