import { MASTER_KEY, expect, expectAccessible, screenshot, signIn, test } from "./fixtures";

test("every deployment with its provider, health, latency, cooldown and error rate", async ({ page }) => {
  await signIn(page);
  await page.getByRole("link", { name: "Models" }).click();
  await expect(page.getByRole("heading", { name: "Models" })).toBeVisible();
  const a = page.getByTestId("model-gpt-a");
  await expect(a.getByTestId("deployment-gpt-a-0")).toContainText("openai");
  await expect(a.getByTestId("deployment-gpt-a-0").getByTestId("health")).toHaveText("no requests yet");
  await expect(a.getByTestId("deployment-gpt-a-0")).toContainText("os.environ/CONSOLE_PROVIDER_KEY");

  // Traffic: one answer from gpt-a, failures from gpt-down (its upstream port is closed).
  const master = { Authorization: `Bearer ${MASTER_KEY}` };
  const ask = (model: string) =>
    page.request.post("/v1/chat/completions", {
      headers: master,
      data: { model, messages: [{ role: "user", content: "hi" }] },
    });
  expect((await ask("gpt-a")).status()).toBe(200);
  for (let i = 0; i < 3; i++) expect((await ask("gpt-down")).status()).toBe(502);

  await page.reload();
  await expect(a.getByTestId("deployment-gpt-a-0").getByTestId("health")).toHaveText("healthy");
  await expect(a.getByTestId("deployment-gpt-a-0")).toContainText(" ms");
  await expect(a.getByTestId("error-rate")).toContainText("0.0% of 1");
  const down = page.getByTestId("model-gpt-down");
  await expect(down.getByTestId("health")).toHaveText("cooling down");
  await expect(down.getByTestId("deployment-gpt-down-2")).toContainText("back in");
  await expect(down.getByTestId("error-rate")).toContainText("100.0% of 3");
  await expectAccessible(page);
  await screenshot(page, "models");
});
